"""Simulation-based calibration: the engine on an exact conjugate model, then the Gibbs sampler."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmf.exceptions import BayesMFError
from bayesmf.sbc import (
    SBCSetup,
    run_sbc,
    sbc_gibbs,
    sbc_rank,
    simulate_pmf_prior,
    uniformity_test,
)


def _normal_mean_problem(width: float):
    """theta ~ N(0, 1), y_1..5 ~ N(theta, 1); the fit draws from N(m, width^2 * v)."""

    class _Post:  # mimics the two attributes the engine reads through draws_fn
        def __init__(self, draws):
            self.draws = draws

    def simulate(rng):
        theta = rng.standard_normal()
        y = theta + rng.standard_normal(5)
        return y, {"theta": theta}

    def fit(y, seed):
        rng = np.random.default_rng(seed)
        v = 1.0 / (1.0 + len(y))
        m = v * y.sum()
        return _Post(m + width * np.sqrt(v) * rng.standard_normal(99))

    return simulate, fit, lambda post: {"theta": post.draws}


def test_engine_accepts_exact_posterior_and_rejects_overconfident_one():
    simulate, fit, draws_fn = _normal_mean_problem(1.0)
    good = run_sbc(fit, simulate, n_reps=300, n_draws=99, random_state=1, draws_fn=draws_fn,
                   pairs=())
    assert good.ranks.shape == (300, 1)
    assert good.ranks["theta"].between(0, 99).all()
    assert good.min_p_value() > 0.01
    simulate, fit, draws_fn = _normal_mean_problem(0.5)
    bad = run_sbc(fit, simulate, n_reps=300, n_draws=99, random_state=0, draws_fn=draws_fn,
                  pairs=())
    assert bad.min_p_value() < 1e-6
    h = bad.histogram("theta")
    assert h[0] + h[-1] > 3 * h[len(h) // 2]  # U-shaped: too narrow


def test_rank_and_uniformity_by_hand():
    assert sbc_rank(0.5, np.array([0.1, 0.2, 0.9])) == 2
    assert sbc_rank(-1.0, np.array([0.1, 0.2])) == 0
    stat, p, bins = uniformity_test(np.array([0, 1, 2, 3] * 5), n_draws=3, bins=4)
    assert stat == 0.0 and p == pytest.approx(1.0) and bins == 4
    stat, p, _ = uniformity_test(np.zeros(20, int), n_draws=3, bins=2)
    assert stat == pytest.approx(20.0)  # (20-10)^2/10 * 2
    with pytest.raises(BayesMFError, match="divide"):
        uniformity_test(np.zeros(5, int), n_draws=3, bins=3)
    with pytest.raises(BayesMFError, match="0..3"):
        uniformity_test(np.array([4]), n_draws=3)


def test_simulator_truth_matches_data():
    setup = SBCSetup(n_users=6, n_items=5, rank=2)
    r, truth = simulate_pmf_prior(setup, np.random.default_rng(0))
    assert r.n_users == 6 and r.n_items == 5
    assert np.all(r.user_counts > 0) and np.all(r.item_counts > 0)
    assert {"sigma", "mu", "norm_U", "norm_V", "pred_0_0"} <= set(truth)
    assert truth["sigma"] > 0 and truth["norm_U"] > 0


@pytest.mark.parametrize("hyperprior", ["diagonal", "normal-wishart"])
def test_gibbs_sbc_fast(hyperprior):
    """A quick SBC of the Gibbs sampler: no grossly non-uniform rank statistic."""
    setup = SBCSetup(n_users=10, n_items=8, rank=2, hyperprior=hyperprior)
    res = sbc_gibbs(setup, n_reps=12, n_draws=7, tune=30, thin=4, random_state=0)
    assert res.ranks.shape == (12, 6 + len(setup.pairs))  # 4 globals + 2 bias sds + pairs
    assert {"sigma_user_bias", "sigma_item_bias"} <= set(res.ranks.columns)
    assert res.min_p_value() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("hyperprior", ["diagonal", "normal-wishart"])
def test_gibbs_sbc_long(hyperprior):
    res = sbc_gibbs(SBCSetup(hyperprior=hyperprior), n_reps=200, n_draws=19, tune=100, thin=5,
                    random_state=1)
    # 9 quantities: a Bonferroni-style bound well inside what a calibrated sampler passes
    assert res.min_p_value() > 0.001
