"""NUTSPMF and ADVIPMF: argument checks, the storage trace, posterior recovery, result layout."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from bayesmf.datasets import make_synthetic
from bayesmf.exceptions import BayesMFError, DataError, MemoryBudgetError, NotFittedError
from bayesmf.kernels.pmf_logp import loglik
from bayesmf.models.pymc_fit import ADVIPMF, NUTSPMF, _collect, _KeepTrace, _trace_vars
from bayesmf.models.pymc_model import SHARED_NAMES, build_pmf_model, working_values

SHARED_DIMS = {
    "U": ("chain", "draw", "user", "factor"),
    "V": ("chain", "draw", "item", "factor"),
    "mu": ("chain", "draw"),
    "user_bias": ("chain", "draw", "user"),
    "item_bias": ("chain", "draw", "item"),
    "sigma": ("chain", "draw"),
    "sigma_u": ("chain", "draw", "factor"),
    "sigma_v": ("chain", "draw", "factor"),
    "sigma_user_bias": ("chain", "draw"),
    "sigma_item_bias": ("chain", "draw"),
}


@pytest.fixture(scope="module")
def synth():
    return make_synthetic(
        n_users=20, n_items=15, rank=2, n_ratings=200, noise_sd=0.3, factor_sd=0.8,
        scale=None, random_state=1,
    )


@pytest.fixture(scope="module")
def starred():
    return make_synthetic(n_users=12, n_items=10, rank=2, n_ratings=80, random_state=2)


# ------------------------------------------------------------------ argument checks (no sampling)
@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"draws": 0}, BayesMFError),
        ({"chains": 0}, BayesMFError),
        ({"tune": 0}, BayesMFError),
        ({"tune": -5}, BayesMFError),
        ({"rank": 0}, BayesMFError),
        ({"target_accept": 1.5}, BayesMFError),
        ({"nuts_sampler": "stan"}, BayesMFError),
        ({"likelihood": "slow"}, BayesMFError),
        ({"store": "float16"}, BayesMFError),
        ({"thin": 0}, BayesMFError),
        ({"biases": "yes"}, BayesMFError),
        ({"check_convergence": "yes"}, BayesMFError),
        ({"memory_budget_bytes": 10_000, "thin": 1}, MemoryBudgetError),
    ],
)
def test_nuts_bad_settings_raise_before_sampling(synth, kwargs, error):
    r, _ = synth
    with pytest.raises(error):
        NUTSPMF(**{"rank": 2, "progress": False, **kwargs}).fit(r)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_steps": 0}, {"draws": 0}, {"learning_rate": -1.0}, {"minibatch_size": 0}],
)
def test_advi_bad_settings_raise(synth, kwargs):
    r, _ = synth
    with pytest.raises(BayesMFError):
        ADVIPMF(**{"rank": 2, "progress": False, **kwargs}).fit(r)


def test_logistic_link_without_scale_is_a_data_error(synth):
    r, _ = synth  # continuous synthetic ratings: no declared scale
    with pytest.raises(DataError, match="scale"):
        NUTSPMF(rank=2, link="logistic", progress=False).fit(r)
    with pytest.raises(DataError, match="scale"):
        ADVIPMF(rank=2, link="logistic", progress=False).fit(r)


def test_not_ratings_and_not_fitted():
    with pytest.raises(DataError):
        NUTSPMF(progress=False).fit([1, 2, 3])
    with pytest.raises(NotFittedError):
        NUTSPMF().predict_mean(np.array([0]), np.array([0]))


def test_memory_error_says_what_it_needs(synth):
    r, _ = synth
    with pytest.raises(MemoryBudgetError, match="budget"):
        NUTSPMF(rank=2, draws=1000, thin=1, memory_budget_bytes=50_000, progress=False).fit(r)
    with pytest.raises(MemoryBudgetError):
        NUTSPMF(rank=2, nuts_sampler="nutpie", memory_budget_bytes=50_000, progress=False).fit(r)


# ------------------------------------------------------------------ the storage trace
def test_keep_trace_thins_skips_warmup_casts_and_computes_loglik(synth):
    r, _ = synth
    model = build_pmf_model(r, 2, likelihood="naive")
    data = (r.users, r.items, working_values(r, "identity"), False)
    registry: list = []
    tmpl = _KeepTrace(model, _trace_vars(model), thin=3, store=np.float32, data=data,
                      registry=registry, expected_draws=7)
    tr = tmpl.__class__.__new__(tmpl.__class__)
    tr.__dict__.update(tmpl.__dict__)  # what pm.sample's copy() does
    tr.setup(9, 0, None)
    rng = np.random.default_rng(0)
    ip = model.initial_point()
    points = [
        {k: np.asarray(v + 0.1 * rng.standard_normal(np.shape(v))) for k, v in ip.items()}
        for _ in range(9)
    ]
    for n, p in enumerate(points):
        tr.record(p, [{"diverging": n == 4, "depth": 3}], in_warmup=n < 2)
    assert registry == [tr] and len(tr) == 9 and tr.n_post == 7
    assert tr.n_kept == 2  # post-warm-up draws 3 and 6 (1-based) -> points 4 and 7
    assert tr.samples["U"].dtype == np.float32 and tr.samples["mu"].dtype == np.float64
    outs = model.replace_rvs_by_values(
        [model[n] for n in ("U", "mu", "sigma", "user_bias", "item_bias", "V")]
    )
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    for j, idx in enumerate((4, 7)):
        U, mu, s, ub, ib, V = fn(points[idx])
        np.testing.assert_allclose(tr.samples["U"][j], U.astype(np.float32))
        assert tr.samples["mu"][j] == mu
        assert tr.loglik[j] == pytest.approx(
            loglik(r.users, r.items, r.values, U, V, float(mu), ub, ib, float(s), False), rel=1e-12
        )
    post, stats, n_div, n_post = _collect(registry)
    assert post["U"].shape == (1, 2, r.n_users, 2) and stats["loglik"].shape == (1, 2)
    assert stats["diverging"].tolist() == [[True, False]]  # point 4 diverged and was kept
    assert n_div == 1 and n_post == 7  # divergences counted over every post-warm-up draw


# ------------------------------------------------------------------ sampling (slow)
def _check_layout(fit, r, chains, draws, method):
    idata = fit.idata_
    post = idata.posterior
    for name, dims in SHARED_DIMS.items():
        assert post[name].dims == dims, name
    assert set(post.data_vars) == set(SHARED_NAMES)
    assert post.sizes["chain"] == chains and post.sizes["draw"] == draws
    assert list(post["user"].values) == list(r.user_ids)
    assert list(post["item"].values) == list(r.item_ids)
    assert post["U"].dtype == np.float32 and post["sigma"].dtype == np.float64
    assert idata.sample_stats["loglik"].dims == ("chain", "draw")
    assert np.all(np.isfinite(idata.sample_stats["loglik"].values))
    np.testing.assert_array_equal(idata.observed_data["R"].values, r.values)
    np.testing.assert_array_equal(idata.constant_data["user_idx"].values, r.users)
    np.testing.assert_array_equal(idata.constant_data["item_idx"].values, r.items)
    assert idata.attrs["method"] == method and idata.attrs["rank"] == 2
    np.testing.assert_allclose(fit.U_, post["U"].values.astype(float).mean(axis=(0, 1)), rtol=1e-6)
    assert fit.sigma_ == pytest.approx(float(post["sigma"].mean()))


def _heldout(truth, r, n=150, seed=9):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, r.n_users, n)
    i = rng.integers(0, r.n_items, n)
    return u, i, truth.mean(u, i)


@pytest.mark.slow
def test_nuts_recovers_truth_and_reports_diagnostics(synth):
    r, truth = synth
    fit = NUTSPMF(rank=2, chains=2, draws=300, tune=300, cores=1, random_state=0,
                  memory_budget_bytes=200_000, progress=False).fit(r)
    assert fit.summary_["thin"] == 2  # auto-thinned into the small budget
    _check_layout(fit, r, chains=2, draws=150, method="nuts")
    ss = fit.idata_.sample_stats
    for key in ("diverging", "tree_depth", "step_size", "energy"):
        assert key in ss
    assert fit.summary_["divergent_fraction"] < 0.05
    # the convergence check ran on the identifiable quantities and kept its table
    assert fit.diagnostics_ is not None and "pred_mean" in set(fit.diagnostics_["group"])
    assert fit.sigma_ == pytest.approx(truth.noise_sd, rel=0.3)
    u, i, true_mean = _heldout(truth, r)
    rmse = np.sqrt(np.mean((fit.predict_mean(u, i) - true_mean) ** 2))
    baseline = np.sqrt(np.mean((true_mean - r.values.mean()) ** 2))
    assert rmse < 0.6 * baseline
    # seeds reproduce
    again = NUTSPMF(rank=2, chains=2, draws=300, tune=300, cores=1, random_state=0,
                    memory_budget_bytes=200_000, progress=False).fit(r)
    np.testing.assert_array_equal(again.idata_.posterior["mu"], fit.idata_.posterior["mu"])


@pytest.mark.slow
def test_advi_same_layout_and_elbo_improves(synth):
    r, truth = synth
    fit = ADVIPMF(rank=2, n_steps=4000, draws=100, learning_rate=0.05, random_state=0,
                  progress=False).fit(r)
    _check_layout(fit, r, chains=1, draws=100, method="advi")
    elbo = fit.elbo_
    assert elbo.shape == (4000,)
    assert elbo[-400:].mean() > elbo[:400].mean()
    np.testing.assert_array_equal(fit.idata_.elbo["elbo"].values, elbo)
    u, i, true_mean = _heldout(truth, r)
    rmse = np.sqrt(np.mean((fit.predict_mean(u, i) - true_mean) ** 2))
    baseline = np.sqrt(np.mean((true_mean - r.values.mean()) ** 2))
    assert rmse < baseline


@pytest.mark.slow
def test_minibatch_advi_runs(synth):
    r, _ = synth
    fit = ADVIPMF(rank=2, n_steps=500, minibatch_size=50, draws=20, random_state=0,
                  progress=False).fit(r)
    assert fit.idata_.attrs["minibatch_size"] == 50
    assert fit.idata_.posterior.sizes["draw"] == 20


@pytest.mark.slow
def test_logistic_nuts_predicts_on_the_rating_scale(starred):
    r, _ = starred
    fit = NUTSPMF(rank=2, link="logistic", chains=1, draws=100, tune=100, cores=1,
                  random_state=0, progress=False).fit(r)
    pred = fit.predict_mean(r.users, r.items)
    assert np.all((pred > r.scale.min) & (pred < r.scale.max))
    assert fit.idata_.attrs["link"] == "logistic"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("nutpie") is None, reason="nutpie not installed")
def test_nutpie_sampler_with_fast_likelihood(synth):
    r, truth = synth
    fit = NUTSPMF(rank=2, chains=2, draws=200, tune=200, cores=1, nuts_sampler="nutpie",
                  random_state=0, progress=False).fit(r)
    _check_layout(fit, r, chains=2, draws=200, method="nuts")
    assert fit.sigma_ == pytest.approx(truth.noise_sd, rel=0.3)


@pytest.mark.slow
def test_tiny_sbc_for_nuts_and_advi_runs_through_the_shared_engine():
    from bayesmf.models.pymc_fit import sbc_fit_fn
    from bayesmf.sbc import SBCSetup, run_sbc, simulate_pmf_prior

    setup = SBCSetup(n_users=8, n_items=6, rank=2, density=0.6)
    results = {}
    for method, kw in (("nuts", {"tune": 150, "thin": 2}), ("advi", {"n_steps": 1500})):
        results[method] = run_sbc(
            sbc_fit_fn(setup, method, n_draws=19, **kw),
            lambda rng: simulate_pmf_prior(setup, rng),
            n_reps=6,
            n_draws=19,
            bins=4,
            pairs=setup.pairs,
            random_state=0,
        )
        ranks = results[method].ranks
        assert ranks.shape[0] == 6 and ranks.to_numpy().min() >= 0 and ranks.to_numpy().max() <= 19
    # six replications detect only gross miscalibration; NUTS must not show any
    assert results["nuts"].min_p_value() > 1e-3


def test_sbc_fit_fn_rejects_a_normal_wishart_setup():
    from bayesmf.models.pymc_fit import sbc_fit_fn
    from bayesmf.sbc import SBCSetup

    with pytest.raises(BayesMFError, match="diagonal"):
        sbc_fit_fn(SBCSetup(hyperprior="normal-wishart"))
    with pytest.raises(BayesMFError):
        sbc_fit_fn(SBCSetup(), method="gibbs")
