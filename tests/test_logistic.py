"""Logistic-link PMF: gradient against finite differences, predictions inside the scale, fit quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmf.data import Ratings
from bayesmf.datasets import make_synthetic
from bayesmf.exceptions import BayesMFError, DataError, NotFittedError
from bayesmf.kernels.objective import logistic_objective_grad
from bayesmf.models.logistic import LogisticPMF
from bayesmf.split import random_split


def _objective_numpy(users, items, t, U, V, mu, bu, bi, lu, lv, lb) -> float:
    eta = mu + bu[users] + bi[items] + np.sum(U[users] * V[items], axis=1)
    g = 1.0 / (1.0 + np.exp(-eta))
    pen = lu * np.sum(U**2) + lv * np.sum(V**2) + lb * (np.sum(bu**2) + np.sum(bi**2))
    return 0.5 * np.sum((t - g) ** 2) + 0.5 * pen


def test_objective_and_gradient_against_finite_differences() -> None:
    rng = np.random.default_rng(0)
    nu, ni, k, n = 5, 4, 2, 12
    users = rng.integers(0, nu, n).astype(np.int32)
    items = rng.integers(0, ni, n).astype(np.int32)
    t = rng.uniform(0, 1, n)
    U, V = rng.normal(size=(nu, k)), rng.normal(size=(ni, k))
    bu, bi = rng.normal(size=nu), rng.normal(size=ni)
    mu, lu, lv, lb = 0.3, 0.7, 0.4, 0.2
    gU, gV, gbu, gbi = np.empty((nu, k)), np.empty((ni, k)), np.empty(nu), np.empty(ni)
    obj, gmu = logistic_objective_grad(users, items, t, U, V, mu, bu, bi, lu, lv, lb, gU, gV, gbu, gbi)
    assert obj == pytest.approx(_objective_numpy(users, items, t, U, V, mu, bu, bi, lu, lv, lb))
    h = 1e-6

    def num(arr, idx):
        old = arr[idx]
        arr[idx] = old + h
        fp = _objective_numpy(users, items, t, U, V, mu, bu, bi, lu, lv, lb)
        arr[idx] = old - h
        fm = _objective_numpy(users, items, t, U, V, mu, bu, bi, lu, lv, lb)
        arr[idx] = old
        return (fp - fm) / (2 * h)

    for arr, grad in ((U, gU), (V, gV), (bu, gbu), (bi, gbi)):
        for idx in np.ndindex(arr.shape):
            assert grad[idx] == pytest.approx(num(arr, idx), rel=1e-5, abs=1e-8)
    m = np.array([mu])
    fp = _objective_numpy(users, items, t, U, V, m[0] + h, bu, bi, lu, lv, lb)
    fm = _objective_numpy(users, items, t, U, V, m[0] - h, bu, bi, lu, lv, lb)
    assert gmu == pytest.approx((fp - fm) / (2 * h), rel=1e-5)


@pytest.fixture(scope="module")
def data():
    ratings, truth = make_synthetic(n_users=120, n_items=80, rank=2, density=0.35, noise_sd=0.5,
                                    random_state=4)  # rounded to 1..5 stars
    return (*random_split(ratings, 0.2, random_state=0), truth)


def test_fit_predictions_inside_scale_and_accurate(data) -> None:
    train, test, truth = data
    fit = LogisticPMF(rank=2, lambda_u=0.2, lambda_v=0.2, max_iter=200, random_state=0).fit(train)
    assert fit.link_ == "logistic" and fit.sigma_scale_ == "unit"
    pred = fit.predict_mean(test.users, test.items)
    assert np.all((pred > 1.0) & (pred < 5.0))
    far = fit.predict_mean(np.zeros(3, dtype=int), np.arange(3))
    assert np.all((far >= 1.0) & (far <= 5.0))
    rmse = float(np.sqrt(np.mean((pred - test.values) ** 2)))
    base = float(np.sqrt(np.mean((train.global_mean - test.values) ** 2)))
    truth_rmse = float(np.sqrt(np.mean((np.clip(truth.mean(test.users, test.items), 1, 5)
                                        - test.values) ** 2)))
    assert rmse < 0.75 * base
    assert rmse < truth_rmse + 0.1
    h = fit.history_
    assert len(h) == fit.n_iter_ and h["objective"].iloc[-1] < h["objective"].iloc[0]
    # the prediction is the link applied to the linear predictor, mapped to the scale
    u, i = test.users[:5], test.items[:5]
    eta = fit.mu_ + fit.user_bias_[u] + fit.item_bias_[i] + np.sum(fit.U_[u] * fit.V_[i], axis=1)
    np.testing.assert_allclose(pred[:5], 1.0 + 4.0 / (1.0 + np.exp(-eta)), rtol=1e-12)
    idata = fit.to_inference_data()
    assert idata.attrs["link"] == "logistic" and idata.attrs["scale_min"] == 1.0


def test_reproducible_and_no_bias(data) -> None:
    train, _, _ = data
    a = LogisticPMF(rank=2, biases=False, max_iter=20, random_state=1).fit(train)
    b = LogisticPMF(rank=2, biases=False, max_iter=20, random_state=1).fit(train)
    np.testing.assert_array_equal(a.U_, b.U_)
    np.testing.assert_array_equal(a.user_bias_, 0.0)


def test_requires_scale_and_valid_args() -> None:
    df = pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 1], "rating": [1.0, 3.0, 2.0]})
    with pytest.raises(DataError, match="rating scale"):
        LogisticPMF().fit(Ratings.from_frame(df))
    r = Ratings.from_frame(df, scale=(1, 5, 1))
    with pytest.raises(BayesMFError, match="lambda_u"):
        LogisticPMF(lambda_u=-1).fit(r)
    with pytest.raises(BayesMFError, match="rank"):
        LogisticPMF(rank=0).fit(r)
    with pytest.raises(NotFittedError):
        LogisticPMF().predict_mean([0], [0])
