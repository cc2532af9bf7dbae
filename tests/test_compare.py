"""Tests of bayesmf.compare: metrics agree with bayesmf.evaluate's reference functions."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmf.compare import compare, log_likelihood_draws, loo_compare
from bayesmf.datasets import make_synthetic
from bayesmf.evaluate import (
    coverage,
    crps_from_draws,
    crps_gaussian,
    log_predictive_density_from_draws,
    log_predictive_density_gaussian,
    rmse,
)
from bayesmf.exceptions import BayesMFError
from bayesmf.models.base import FitBase
from bayesmf.models.idata import build_inference_data
from bayesmf.models.pmf import PMF
from bayesmf.predict import predict, predict_draws


class DrawsFit(FitBase):
    method = "gibbs"
    is_bayesian = True

    def __init__(self, rank: int = 2) -> None:
        self.rank = rank


def draws_fit(r, truth, spread, seed, C=2, D=30):
    rng = np.random.default_rng(seed)
    k = truth.rank
    post = {
        "U": truth.U + spread * rng.standard_normal((C, D, r.n_users, k)),
        "V": truth.V + spread * rng.standard_normal((C, D, r.n_items, k)),
        "mu": truth.mu + 0.02 * rng.standard_normal((C, D)),
        "user_bias": truth.user_bias + 0.02 * rng.standard_normal((C, D, r.n_users)),
        "item_bias": truth.item_bias + 0.02 * rng.standard_normal((C, D, r.n_items)),
        "sigma": truth.noise_sd + 0.02 * rng.random((C, D)),
    }
    fit = DrawsFit(rank=k)
    fit.idata_ = build_inference_data(post, r, method="gibbs", params={}, rank=k, biases=True,
                                      dtype=np.float64)
    fit.ratings_ = r
    fit.link_ = "identity"
    fit.fit_time_ = 2.0
    return fit, post


@pytest.fixture(scope="module")
def setup():
    full, truth = make_synthetic(n_users=40, n_items=30, rank=2, density=0.5, noise_sd=0.5,
                                 scale=None, random_state=0)
    rng = np.random.default_rng(0)
    test_mask = rng.random(full.nnz) < 0.25
    train, test = full.take(~test_mask), full.take(test_mask)
    good, post = draws_fit(train, truth, 0.05, 1)
    bad, _ = draws_fit(train, truth, 0.8, 2)
    mapfit = PMF(rank=2, random_state=0).fit(train)
    return train, test, truth, good, post, bad, mapfit


def test_compare_table_matches_reference_metrics(setup):
    train, test, truth, good, post, bad, mapfit = setup
    mle = PMF(rank=2, method="mle", random_state=0).fit(train)
    table = compare({"gibbs": good, "map": mapfit, "mle": mle}, test, ess=False)
    assert list(table.index) == ["gibbs", "map", "mle"]
    for col in ("rmse", "mae", "lpd", "coverage_50", "coverage_90", "width_50", "width_90",
                "crps", "fit_time", "ess_per_sec", "n_test", "n_cold"):
        assert col in table.columns
    y = test.values
    pairs = test.to_frame()[["user", "item"]]
    # Bayesian: log-mean-exp over draws, exact mixture intervals, sample CRPS with noise draws
    m = predict_draws(good, pairs).values.reshape(60, -1)
    assert table.loc["gibbs", "lpd"] == pytest.approx(
        log_predictive_density_from_draws(y, m, post["sigma"].reshape(-1)), rel=1e-10)
    p90 = predict(good, pairs, prob=0.9, levels=False)
    assert table.loc["gibbs", "coverage_90"] == coverage(y, p90["lower"], p90["upper"])
    assert table.loc["gibbs", "rmse"] == pytest.approx(rmse(y, p90["mean"]))
    noisy = predict_draws(good, pairs, include_noise=True, random_state=0).values.reshape(60, -1)
    assert table.loc["gibbs", "crps"] == pytest.approx(crps_from_draws(y, noisy), rel=1e-10)
    # MAP: Gaussian predictive
    pm = predict(mapfit, pairs, levels=False)
    assert table.loc["map", "lpd"] == pytest.approx(
        log_predictive_density_gaussian(y, pm["mean"], pm["sd"]), rel=1e-10)
    assert table.loc["map", "crps"] == pytest.approx(crps_gaussian(y, pm["mean"], pm["sd"]))
    # MLE: no uncertainty
    assert np.isnan(table.loc["mle", ["lpd", "coverage_90", "crps"]].astype(float)).all()
    assert np.isfinite(table.loc["mle", "rmse"])
    # the good posterior beats the bad one on every proper score
    t2 = compare({"good": good, "bad": bad}, test, ess=False)
    assert t2.loc["good", "lpd"] > t2.loc["bad", "lpd"]
    assert t2.loc["good", "crps"] < t2.loc["bad", "crps"]


def test_ess_per_second_uses_the_identifiable_quantities(setup):
    train, test, truth, good, *_ = setup
    table = compare({"g": good}, test)
    assert table.loc["g", "ess_per_sec"] > 0


def test_loo_compare_prefers_the_better_posterior(setup):
    train, test, truth, good, post, bad, mapfit = setup
    table = loo_compare({"good": good, "bad": bad, "map": mapfit}, max_draws=40, max_obs=200)
    assert table.index[0] == "good" and table.attrs["skipped"] == ["map"]
    assert table.attrs["n_obs"] == 200
    ll = log_likelihood_draws(good, max_draws=20)
    assert ll.log_likelihood["R"].shape == (2, 10, train.nnz)
    with pytest.raises(BayesMFError, match="at least two"):
        loo_compare({"good": good, "map": mapfit})


def test_compare_bad_input(setup):
    train, test, truth, good, *_ = setup
    with pytest.raises(BayesMFError, match="non-empty dict"):
        compare({}, test)
    with pytest.raises(BayesMFError, match="empty"):
        compare({"g": good}, test.take(np.zeros(0, dtype=int)))
    with pytest.raises(BayesMFError, match="between 0 and 1"):
        compare({"g": good}, test, prob=(0.5, 1.2))
