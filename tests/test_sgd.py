"""SGD: the lecture's worked update, convergence close to ALS, and estimator contracts."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmf.datasets import make_synthetic
from bayesmf.exceptions import BayesMFError, NotFittedError
from bayesmf.kernels.sgd import sgd_epoch
from bayesmf.models.pmf import HISTORY_COLUMNS, PMF
from bayesmf.models.sgd import SGDPMF
from bayesmf.split import random_split


def test_lecture_worked_example() -> None:
    # Alice rates Sholay 5; w = [0.4, 0.2, 0.3], h = [0.95, 0.10, 0.85], alpha = 0.01:
    # prediction 0.655, error 4.345, w -> [0.4413, 0.2043, 0.3369], h -> [0.9674, 0.1087, 0.8631]
    U = np.array([[0.4, 0.2, 0.3]])
    V = np.array([[0.95, 0.10, 0.85]])
    sse = sgd_epoch(np.array([0]), np.array([0], dtype=np.int32), np.array([0], dtype=np.int32),
                    np.array([5.0]), U, V, 0.0, np.zeros(1), np.zeros(1), 0.01, 0.0, False)
    assert sse == pytest.approx(4.345**2)
    np.testing.assert_allclose(U[0], [0.4413, 0.2043, 0.3369], atol=5e-5)
    np.testing.assert_allclose(V[0], [0.9674, 0.1087, 0.8631], atol=1e-4)  # slide rounds 0.86304 up
    # exact values: both updates use the pre-update vectors
    np.testing.assert_allclose(U[0], np.array([0.4, 0.2, 0.3]) + 0.04345 * np.array([0.95, 0.10, 0.85]))
    np.testing.assert_allclose(V[0], np.array([0.95, 0.10, 0.85]) + 0.04345 * np.array([0.4, 0.2, 0.3]))


def test_penalty_and_bias_update() -> None:
    U = np.array([[1.0]])
    V = np.array([[2.0]])
    bu = np.array([0.5])
    bi = np.array([-0.5])
    # prediction 3 + 0.5 - 0.5 + 2 = 5, rating 4: e = -1
    sgd_epoch(np.array([0]), np.array([0], dtype=np.int32), np.array([0], dtype=np.int32),
              np.array([4.0]), U, V, 3.0, bu, bi, 0.1, 0.5, True)
    assert bu[0] == pytest.approx(0.5 + 0.1 * (-1 - 0.25))
    assert bi[0] == pytest.approx(-0.5 + 0.1 * (-1 + 0.25))
    assert U[0, 0] == pytest.approx(1.0 + 0.1 * (-2.0 - 0.5))
    assert V[0, 0] == pytest.approx(2.0 + 0.1 * (-1.0 - 1.0))


@pytest.fixture(scope="module")
def data():
    ratings, truth = make_synthetic(n_users=150, n_items=100, rank=2, density=0.3, noise_sd=0.4,
                                    scale=None, random_state=2)
    return (*random_split(ratings, 0.2, random_state=0), truth)


def test_sgd_reaches_als_accuracy(data) -> None:
    train, test, truth = data
    sgd = SGDPMF(rank=2, lr=0.02, lambda_=0.02, n_epochs=60, tol=1e-6, random_state=0).fit(train)
    lam = truth.noise_sd**2 / truth.factor_sd**2
    als = PMF(rank=2, lambda_u=lam, lambda_v=lam, random_state=0).fit(train)

    def rmse(fit):
        return float(np.sqrt(np.mean((fit.predict_mean(test.users, test.items) - test.values) ** 2)))

    r_sgd, r_als = rmse(sgd), rmse(als)
    # ~24 training ratings per user: estimation error adds ~15% to the noise floor
    assert r_sgd < 1.2 * truth.noise_sd
    assert r_als < 1.2 * truth.noise_sd
    assert abs(r_sgd - r_als) < 0.02
    h = sgd.history_
    assert list(h.columns) == HISTORY_COLUMNS
    assert h["train_rmse"].iloc[-1] < h["train_rmse"].iloc[0]
    # the penalised objective falls over the run (SGD is noisy step to step, not overall)
    assert h["objective"].iloc[-1] < 0.5 * h["objective"].iloc[0]


def test_reproducible_and_seed_sensitive(data) -> None:
    train, _, _ = data
    a = SGDPMF(rank=2, n_epochs=3, random_state=5).fit(train)
    b = SGDPMF(rank=2, n_epochs=3, random_state=5).fit(train)
    c = SGDPMF(rank=2, n_epochs=3, random_state=6).fit(train)
    np.testing.assert_array_equal(a.U_, b.U_)
    np.testing.assert_array_equal(a.item_bias_, b.item_bias_)
    assert not np.array_equal(a.U_, c.U_)
    assert a.n_iter_ == 3 and not a.converged_
    assert a.get_params()["lambda_"] == 0.02


def test_no_bias_mode_and_idata(data) -> None:
    train, _, _ = data
    fit = SGDPMF(rank=2, biases=False, n_epochs=2, random_state=0).fit(train)
    np.testing.assert_array_equal(fit.user_bias_, 0.0)
    idata = fit.to_inference_data()
    assert idata.attrs["method"] == "sgd"
    assert "user_bias" not in idata.posterior
    assert idata.posterior["V"].shape == (1, 1, train.n_items, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"rank": -1}, "rank"), ({"lr": 0.0}, "lr"), ({"lambda_": -1.0}, "lambda_"),
     ({"n_epochs": 0}, "n_epochs"), ({"tol": -1e-3}, "tol")],
)
def test_bad_arguments(data, kwargs, match) -> None:
    with pytest.raises(BayesMFError, match=match):
        SGDPMF(**kwargs).fit(data[0])


def test_divergence_and_not_fitted(data) -> None:
    with pytest.raises(NotFittedError):
        SGDPMF().predict_mean([0], [0])
    with pytest.raises(BayesMFError, match="diverged"):
        SGDPMF(rank=2, lr=5.0, n_epochs=20, random_state=0).fit(data[0])
