"""Tests of bayesmf.coldstart: exact per-draw fold-in, agreement with ALS, cold users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmf.coldstart import fold_in_user
from bayesmf.data import Ratings
from bayesmf.datasets import make_synthetic
from bayesmf.exceptions import BayesMFError, DataError
from bayesmf.models.base import FitBase
from bayesmf.models.baselines import BiasBaseline
from bayesmf.models.idata import build_inference_data
from bayesmf.models.pmf import PMF
from bayesmf.predict import predict


class DrawsFit(FitBase):
    method = "gibbs"
    is_bayesian = True

    def __init__(self, rank: int = 2) -> None:
        self.rank = rank


@pytest.fixture(scope="module")
def setup():
    r, truth = make_synthetic(n_users=40, n_items=25, rank=2, density=0.4, random_state=7)
    rng = np.random.default_rng(1)
    C, D, k = 2, 15, 2
    lam = np.empty((C, D, k, k))
    for c in range(C):
        for t in range(D):
            a = rng.standard_normal((k, k))
            lam[c, t] = a @ a.T + 0.5 * np.eye(k)
    post = {
        "U": truth.U + 0.2 * rng.standard_normal((C, D, r.n_users, k)),
        "V": truth.V + 0.2 * rng.standard_normal((C, D, r.n_items, k)),
        "mu": truth.mu + 0.05 * rng.standard_normal((C, D)),
        "user_bias": truth.user_bias + 0.05 * rng.standard_normal((C, D, r.n_users)),
        "item_bias": truth.item_bias + 0.05 * rng.standard_normal((C, D, r.n_items)),
        "sigma": 0.5 + 0.1 * rng.random((C, D)),
        "mu_u": 0.3 * rng.standard_normal((C, D, k)),
        "Lambda_u": lam,
        "sigma_u": np.sqrt(np.diagonal(np.linalg.inv(lam), axis1=-2, axis2=-1)),
        "sigma_v": np.ones((C, D, k)),
        "sigma_user_bias": 0.2 + 0.1 * rng.random((C, D)),
        "sigma_item_bias": np.full((C, D), 0.3),
    }
    fit = DrawsFit(rank=k)
    fit.idata_ = build_inference_data(post, r, method="gibbs", params={}, rank=k, biases=True,
                                      dtype=np.float64)
    fit.ratings_ = r
    fit.link_ = "identity"
    return r, truth, post, fit


def test_bayesian_fold_in_is_the_exact_conditional_per_draw(setup):
    r, truth, post, fit = setup
    items = np.array([0, 3, 4, 10, 11])
    vals = np.array([4.0, 2.0, 5.0, 3.0, 4.0])
    new = pd.DataFrame({"item": r.item_ids[items], "rating": vals})
    f = fold_in_user(fit, new)
    S, k = 30, 2
    for s in (0, 7, 29):
        c, t = divmod(s, 15)
        Y = np.column_stack([post["V"][c, t, items], np.ones(len(items))])
        resid = vals - post["mu"][c, t] - post["item_bias"][c, t, items]
        prior_cov = np.zeros((k + 1, k + 1))
        prior_cov[:k, :k] = np.linalg.inv(post["Lambda_u"][c, t])
        prior_cov[k, k] = post["sigma_user_bias"][c, t] ** 2
        prior_mean = np.append(post["mu_u"][c, t], 0.0)
        P0 = np.linalg.inv(prior_cov)
        A = P0 + Y.T @ Y / post["sigma"][c, t] ** 2
        cov = np.linalg.inv(A)
        mean = cov @ (P0 @ prior_mean + Y.T @ resid / post["sigma"][c, t] ** 2)
        np.testing.assert_allclose(f.mean_[s], mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(f.cov_[s], cov, rtol=1e-9, atol=1e-12)
    assert f.mean_.shape == (S, k + 1) and f.n_ratings_ == 5
    # predictions: per draw N(mu + c_j + y_j.m, sigma^2 + y_j' C y_j), mixed over draws
    out = f.predict(items=[r.item_ids[2]])
    Vd = post["V"].reshape(S, -1, k)[:, 2]
    y = np.column_stack([Vd, np.ones(S)])
    m = post["mu"].reshape(S) + post["item_bias"].reshape(S, -1)[:, 2] + (y * f.mean_).sum(1)
    v = post["sigma"].reshape(S) ** 2 + np.einsum("sa,sab,sb->s", y, f.cov_, y)
    assert out["mean"][0] == pytest.approx(m.mean(), rel=1e-10)
    assert out["sd"][0] == pytest.approx(np.sqrt(m.var() + v.mean()), rel=1e-10)
    assert not out["cold_user"][0] and out["user"][0] == "new_user"


def test_more_ratings_shrink_the_interval_and_cold_user_is_population(setup):
    r, truth, post, fit = setup
    cold = fold_in_user(fit, None)
    assert cold.is_cold
    pc = cold.predict(items=r.item_ids[:5])
    assert pc["cold_user"].all()
    ref = predict(fit, pd.DataFrame({"user": "stranger", "item": r.item_ids[:5]}))
    np.testing.assert_allclose(pc["mean"], ref["mean"], rtol=1e-12)
    np.testing.assert_allclose(pc["sd"], ref["sd"], rtol=1e-12)
    many = fold_in_user(fit, pd.DataFrame({"item": r.item_ids[:20], "rating": 3.0}))
    pm = many.predict(items=r.item_ids[20:25])
    pc2 = cold.predict(items=r.item_ids[20:25])
    assert (pm["sd"] < pc2["sd"]).all()


def test_map_fold_in_reproduces_the_als_row_of_a_training_user():
    r, _ = make_synthetic(n_users=50, n_items=30, rank=2, density=0.4, random_state=4)
    fit = PMF(rank=2, tol=1e-10, max_iter=500, random_state=0).fit(r)
    u = 3
    mask = r.users == u
    new = pd.DataFrame({"item": r.item_ids[r.items[mask]], "rating": r.values[mask]})
    f = fold_in_user(fit, new)
    np.testing.assert_allclose(f.mean_[0, :2], fit.U_[u], atol=1e-6)
    assert f.mean_[0, 2] == pytest.approx(fit.user_bias_[u], abs=1e-6)
    # its Laplace covariance is the one PMF.laplace_var uses for that user
    items = np.array([0, 5])
    got = f.predict(items=r.item_ids[items])
    ref = predict(fit, pd.DataFrame({"user": r.user_ids[u], "item": r.item_ids[items]}))
    np.testing.assert_allclose(got["mean"], ref["mean"], atol=1e-6)
    assert (got["sd"] <= ref["sd"] + 1e-9).all()  # no item-side factor uncertainty added
    assert (got["sd"] > fit.sigma_).all()


def test_recommend_for_a_folded_in_user(setup):
    r, _, _, fit = setup
    f = fold_in_user(fit, pd.DataFrame({"item": r.item_ids[:3], "rating": [5.0, 1.0, 4.0]}))
    rec = f.recommend(n=4)
    assert len(rec) == 4 and rec["mean"].is_monotonic_decreasing
    assert not set(rec["item"]) & set(r.item_ids[:3])


def test_fold_in_bad_input(setup):
    r, _, _, fit = setup
    with pytest.raises(DataError, match="lack column"):
        fold_in_user(fit, pd.DataFrame({"movie": [1], "rating": [3.0]}))
    with pytest.raises(DataError, match="non-numeric"):
        fold_in_user(fit, pd.DataFrame({"item": [r.item_ids[0]], "rating": ["good"]}))
    with pytest.raises(DataError, match="off the fit's scale"):
        fold_in_user(fit, pd.DataFrame({"item": [r.item_ids[0]], "rating": [9.0]}))
    with pytest.raises(DataError, match="more than once"):
        fold_in_user(fit, pd.DataFrame({"item": [r.item_ids[0]] * 2, "rating": [3.0, 4.0]}))
    with pytest.warns(UserWarning, match="unknown to the fit"):
        f = fold_in_user(fit, pd.DataFrame({"item": [r.item_ids[0], "zzz"], "rating": [3.0, 4.0]}))
    assert f.n_ratings_ == 1
    base = BiasBaseline().fit(Ratings(r.users, r.items, r.values, r.user_ids, r.item_ids, r.scale))
    with pytest.raises(BayesMFError, match="no factors"):
        fold_in_user(base, None)


def test_map_uncertainty_shrinks_from_unknown_to_folded_in_to_known():
    """MAP cold start uses the ridge prior N(0, sigma^2/lambda): more ratings, narrower intervals."""
    import pandas as pd

    from bayesmf.coldstart import fold_in_user
    from bayesmf.datasets import make_synthetic
    from bayesmf.models.pmf import PMF

    ratings, _ = make_synthetic(200, 150, rank=3, random_state=0)
    fit = PMF(rank=3, random_state=0).fit(ratings)
    items = list(ratings.item_ids[:20])
    unknown = fit.predict(pd.DataFrame({"user": ["nobody"] * 20, "item": items}))
    known = fit.predict(pd.DataFrame({"user": [ratings.user_ids[0]] * 20, "item": items}))
    folded = fold_in_user(fit, pd.DataFrame({"item": items[:3], "rating": [4.0, 3.0, 5.0]}))
    sd_folded = folded.predict(items)["sd"].mean()
    assert unknown["cold_user"].all()
    assert unknown["sd"].mean() > sd_folded > known["sd"].mean()
