"""Gibbs sampler (BPMF): conditional draws against closed forms, recovery, moves, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from bayesmf.data import Ratings
from bayesmf.datasets import make_synthetic
from bayesmf.diagnostics import diagnose
from bayesmf.exceptions import BayesMFError, DataError, MemoryBudgetError
from bayesmf.kernels.als import als_half_sweep
from bayesmf.kernels.gibbs import (
    _compose_shears,
    factor_mean_shift_move,
    factor_shift_move,
    gibbs_half_sweep,
    gibbs_half_sweep_serial,
    residual_sums,
    residual_sums_serial,
    row_conditional_reference,
    sample_gamma_overrelaxed,
    sample_gig0,
    sample_global_mean,
    sample_normal_wishart,
    sample_wishart,
    shear_moves,
)
from bayesmf.models.gibbs import GibbsLinkError, GibbsPMF, GibbsPriors


def _repeated_row_csr(n_rep: int, cols: np.ndarray, vals: np.ndarray):
    """A CSR structure with ``n_rep`` identical rows (so one call gives ``n_rep`` draws)."""
    m = len(cols)
    indptr = np.arange(0, (n_rep + 1) * m, m, dtype=np.int64)
    return indptr, np.tile(cols, n_rep).astype(np.int32), np.tile(vals, n_rep).astype(np.float64)


# ---------------------------------------------------------------------- kernels
def test_row_draw_matches_closed_form_conditional():
    rng = np.random.default_rng(0)
    d, n_other, n_rep = 3, 6, 40000
    Y = rng.standard_normal((n_other, d))
    offset = rng.standard_normal(n_other) * 0.1
    cols = np.array([0, 2, 3, 5])
    vals = rng.standard_normal(4) + 1.0
    M = rng.standard_normal((d, d))
    P0 = M @ M.T + np.eye(d)
    m0 = np.array([0.3, -0.2, 0.5])
    tau = 2.5
    indptr, indices, data = _repeated_row_csr(n_rep, cols, vals)
    Z = rng.standard_normal((n_rep, d))
    X = np.empty((n_rep, d))
    assert gibbs_half_sweep(indptr, indices, data, Y, offset, tau, P0, P0 @ m0, Z, X) == 0
    mean, cov = row_conditional_reference(Y[cols], vals - offset[cols], tau, P0, m0)
    se = np.sqrt(np.diag(cov) / n_rep)
    assert np.all(np.abs(X.mean(axis=0) - mean) < 5 * se)
    emp = np.cov(X.T)
    # sd of a sample covariance entry ~ sqrt((s_aa s_bb + s_ab^2) / n)
    sd_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n_rep)
    assert np.all(np.abs(emp - cov) < 5 * sd_cov)
    # the serial kernel gives the very same draws
    X2 = np.empty_like(X)
    gibbs_half_sweep_serial(indptr, indices, data, Y, offset, tau, P0, P0 @ m0, Z, X2)
    np.testing.assert_array_equal(X, X2)


def test_overrelaxed_row_draw_leaves_the_conditional_invariant():
    """Iterated overrelaxed draws: stationary law = closed-form conditional, lag-1 corr = alpha."""
    rng = np.random.default_rng(1)
    d, n_other, n_rep, alpha = 3, 6, 10000, -0.7
    Y = rng.standard_normal((n_other, d))
    offset = rng.standard_normal(n_other) * 0.1
    cols = np.array([0, 1, 4])
    vals = rng.standard_normal(3) + 1.0
    M = rng.standard_normal((d, d))
    P0 = M @ M.T + np.eye(d)
    m0 = np.array([0.3, -0.2, 0.5])
    tau = 2.0
    indptr, indices, data = _repeated_row_csr(n_rep, cols, vals)
    mean, cov = row_conditional_reference(Y[cols], vals - offset[cols], tau, P0, m0)
    X = np.full((n_rep, d), 5.0)  # far from the mean: the chain must forget it
    for _ in range(40):
        prev = X.copy()
        Z = rng.standard_normal((n_rep, d))
        gibbs_half_sweep(indptr, indices, data, Y, offset, tau, P0, P0 @ m0, Z, X, alpha)
    se = np.sqrt(np.diag(cov) / n_rep)
    assert np.all(np.abs(X.mean(axis=0) - mean) < 5 * se)
    sd_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n_rep)
    assert np.all(np.abs(np.cov(X.T) - cov) < 5 * sd_cov)
    for a in range(d):
        assert np.corrcoef(X[:, a], prev[:, a])[0, 1] == pytest.approx(alpha, abs=0.03)
    # serial kernel: same update
    X2 = prev.copy()
    gibbs_half_sweep_serial(indptr, indices, data, Y, offset, tau, P0, P0 @ m0, Z, X2, alpha)
    np.testing.assert_allclose(X2, X, atol=1e-12)


def test_overrelaxed_scalar_updates_leave_their_laws_invariant():
    rng = np.random.default_rng(2)
    shape, rate, alpha = 3.0, 2.0, -0.8
    x, xs = 1.0, []
    for _ in range(20000):
        x = sample_gamma_overrelaxed(rng, x, shape, rate, alpha)
        xs.append(x)
    xs = np.array(xs)
    assert stats.kstest(xs[::5], stats.gamma(shape, scale=1 / rate).cdf).pvalue > 1e-3
    assert np.corrcoef(xs[:-1], xs[1:])[0, 1] < -0.5
    # global mean: conditional N(m, 1/prec) with prec = tau n + 1/sd0^2
    sum_e, n, tau, m0, sd0 = 30.0, 10, 2.0, 1.0, 0.5
    prec = tau * n + 1 / sd0**2
    m = (tau * sum_e + m0 / sd0**2) / prec
    x, xs = 0.0, []
    for _ in range(20000):
        x = sample_global_mean(rng, sum_e, n, tau, m0, sd0, alpha, x)
        xs.append(x)
    xs = np.array(xs[10:])
    assert stats.kstest(xs[::5], stats.norm(m, 1 / np.sqrt(prec)).cdf).pvalue > 1e-3
    assert np.corrcoef(xs[:-1], xs[1:])[0, 1] == pytest.approx(alpha, abs=0.03)


def test_row_draw_mode_is_the_als_solution():
    """With z = 0, tau = 1 and prior precision diag(reg) the draw is the ALS ridge solve."""
    r, _ = make_synthetic(n_users=30, n_items=20, rank=2, density=0.4, scale=None, random_state=1)
    rng = np.random.default_rng(1)
    d = 3
    Y = rng.standard_normal((r.n_items, d))
    off = np.full(r.n_items, 0.2)
    reg = np.array([0.5, 1.0, 2.0])
    c = r.by_user
    X_als = np.empty((r.n_users, d))
    als_half_sweep(c.indptr, c.indices, c.data, Y, off, reg, X_als, np.zeros(r.n_users, bool))
    X_g = np.empty((r.n_users, d))
    gibbs_half_sweep(c.indptr, c.indices, c.data, Y, off, 1.0, np.diag(reg), np.zeros(d),
                     np.zeros((r.n_users, d)), X_g)
    np.testing.assert_allclose(X_g, X_als, rtol=1e-10, atol=1e-12)


def test_residual_sums_match_numpy():
    r, _ = make_synthetic(n_users=25, n_items=15, rank=2, density=0.5, scale=None, random_state=2)
    rng = np.random.default_rng(2)
    U = rng.standard_normal((r.n_users, 3))
    V = rng.standard_normal((r.n_items, 3))
    bu, bi = rng.standard_normal(r.n_users), rng.standard_normal(r.n_items)
    e = r.values - bu[r.users] - bi[r.items] - np.einsum("pk,pk->p", U[r.users, :2], V[r.items, :2])
    for fn in (residual_sums, residual_sums_serial):
        s1, s2 = fn(r.users, r.items, r.values, U, V, bu, bi, 2)
        assert s1 == pytest.approx(e.sum(), rel=1e-12)
        assert s2 == pytest.approx((e * e).sum(), rel=1e-12)


def test_wishart_and_normal_wishart_moments():
    rng = np.random.default_rng(3)
    W = np.array([[1.0, 0.3], [0.3, 0.5]])
    draws = np.array([sample_wishart(rng, W, 5.0) for _ in range(2000)])
    np.testing.assert_allclose(draws.mean(axis=0), 5.0 * W, rtol=0.07, atol=0.07)
    # Normal-Wishart posterior mean of Lambda: nu_n W_n
    X = rng.standard_normal((50, 2)) @ np.array([[1.0, 0.0], [0.5, 0.7]]) + 0.4
    nu0, beta0, W0_inv, mu0 = 2.0, 2.0, np.eye(2), np.zeros(2)
    xbar = X.mean(0)
    S = (X - xbar).T @ (X - xbar)
    Wn = np.linalg.inv(W0_inv + S + beta0 * 50 / 52 * np.outer(xbar, xbar))
    mus, lams = zip(*(sample_normal_wishart(rng, X, mu0, beta0, W0_inv, nu0) for _ in range(1500)),
                    strict=True)
    np.testing.assert_allclose(np.mean(lams, axis=0), 52 * Wn, rtol=0.08, atol=0.07)
    np.testing.assert_allclose(np.mean(mus, axis=0), 50 * xbar / 52, atol=0.04)


def test_gig0_sampler_matches_scipy():
    rng = np.random.default_rng(4)
    for a, b in [(1e-3, 5e-3), (2.0, 3.0), (300.0, 50.0)]:
        x = sample_gig0(rng, np.full(1500, a), np.full(1500, b))
        ref = stats.geninvgauss(0.0, np.sqrt(a * b), scale=np.sqrt(b / a))
        assert stats.kstest(x, ref.cdf).pvalue > 1e-3


def test_shear_moves_transform_the_precisions():
    rng = np.random.default_rng(5)
    k = 3
    M = rng.standard_normal((k, k))
    Lu = M @ M.T + np.eye(k)
    M = rng.standard_normal((k, k))
    Lv = M @ M.T + np.eye(k)
    A = shear_moves(np.random.default_rng(6), Lu, Lv, 1.0)
    assert np.linalg.det(A) == pytest.approx(1.0)
    # the composition equals the product of the single shears applied in order
    z = np.random.default_rng(6).standard_normal((k, k))
    np.testing.assert_allclose(_compose_shears(Lu, Lv, 1.0, z), A)


def test_factor_shift_move_is_the_gaussian_conditional():
    rng = np.random.default_rng(7)
    k, n = 2, 40
    Y = rng.standard_normal((n, k))
    c = rng.standard_normal(n)
    P0 = np.array([[2.0, 0.3], [0.3, 1.0]])
    l0 = np.array([0.4, -0.1])
    tau_b = 3.0
    ws = np.array([factor_shift_move(rng, P0, l0, Y, c, tau_b) for _ in range(4000)])
    P = P0 + tau_b * Y.T @ Y
    mean = np.linalg.solve(P, l0 + tau_b * Y.T @ c)
    np.testing.assert_allclose(ws.mean(0), mean, atol=4 * np.sqrt(np.diag(np.linalg.inv(P)).max() / 4000))
    cov = np.linalg.inv(P)
    sd_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / 4000)
    assert np.all(np.abs(np.cov(ws.T) - cov) < 5 * sd_cov)


def test_factor_mean_shift_move_is_the_conditional_along_the_orbit():
    """(w, delta) ~ the target restricted to the orbit u + w, mu + delta, c - Y w - delta.

    The target's terms that change along the orbit (Normal-Wishart mean of the factors, the
    other side's biases, the prior of mu) are written out by hand; their log density is an
    exact quadratic in (w, delta), recovered by finite differences and compared with the
    sample moments of the move.
    """
    rng = np.random.default_rng(11)
    k, n, beta0, tau_b, mu, m0, sd0 = 2, 30, 2.0, 4.0, 3.5, 0.5, 1.5
    Y = rng.standard_normal((n, k)) + 0.8  # factors with a common component
    c = 0.3 * rng.standard_normal(n)
    Lam = np.array([[1.5, 0.4], [0.4, 0.8]])
    mean_u = np.array([0.3, -0.6])

    def logp(x):
        w, d = x[:k], x[k]
        mu_new = mu + d
        c_new = c - Y @ w - d
        m_new = mean_u + w
        return (-0.5 * (mu_new - m0) ** 2 / sd0**2 - 0.5 * tau_b * c_new @ c_new
                - 0.5 * beta0 * m_new @ Lam @ m_new)

    h, d = 0.5, k + 1  # exact for a quadratic
    E = np.eye(d) * h
    grad = np.array([(logp(E[a]) - logp(-E[a])) / (2 * h) for a in range(d)])
    H = np.array([[(logp(E[a] + E[b]) - logp(E[a] - E[b]) - logp(-E[a] + E[b])
                    + logp(-E[a] - E[b])) / (4 * h * h) for b in range(d)] for a in range(d)])
    cov = np.linalg.inv(-H)
    mean = cov @ grad
    P0 = beta0 * Lam
    xs = []
    for _ in range(4000):
        w, delta = factor_mean_shift_move(rng, P0, -P0 @ mean_u, Y, c, tau_b, mu, m0, sd0)
        xs.append(np.append(w, delta))
    xs = np.array(xs)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(xs.mean(0) - mean) < 4 * sd / np.sqrt(4000))
    sd_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / 4000)
    assert np.all(np.abs(np.cov(xs.T) - cov) < 5 * sd_cov)
    # overrelaxed, iterated along the orbit (the state moves each time): the visited
    # positions still follow the conditional along the orbit
    mu_t, c_t, m_t, pos, xs = mu, c.copy(), mean_u.copy(), np.zeros(k + 1), []
    for _ in range(6000):
        w, delta = factor_mean_shift_move(rng, P0, -P0 @ m_t, Y, c_t, tau_b, mu_t, m0, sd0,
                                          alpha=-0.7)
        mu_t, c_t, m_t = mu_t + delta, c_t - Y @ w - delta, m_t + w
        pos = pos + np.append(w, delta)
        xs.append(pos)
    xs = np.array(xs)
    n_eff = 6000 / 4  # conservative for an anti-correlated chain of squares
    assert np.all(np.abs(xs.mean(0) - mean) < 5 * sd / np.sqrt(n_eff))
    assert np.all(np.abs(np.cov(xs.T) - cov) < 5 * np.sqrt(
        (np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n_eff))


@pytest.mark.parametrize("hyperprior", ["normal-wishart", "diagonal"])
def test_shift_moves_leave_the_likelihood_unchanged(hyperprior):
    """The joint factor/bias/mu shift changes mu and the factors but no predicted mean."""
    from bayesmf.models.gibbs_chain import ChainSampler

    r, _ = make_synthetic(n_users=40, n_items=30, rank=2, density=0.5, scale=None, random_state=2)
    s = ChainSampler(r, 2, True, hyperprior, GibbsPriors(), np.random.default_rng(0))
    s.initialise("random")
    s.sweep()
    before = s.predict(r.users, r.items)
    mu0, U0 = s.mu, s.Ux.copy()
    s._shift_factors()
    np.testing.assert_allclose(s.predict(r.users, r.items), before, atol=1e-10)
    assert s.mu != mu0 and not np.allclose(s.Ux[:, :2], U0[:, :2])


# ---------------------------------------------------------------------- model fits
@pytest.fixture(scope="module")
def recovery_data():
    r, truth = make_synthetic(n_users=80, n_items=60, rank=2, density=0.5, noise_sd=0.3,
                              scale=None, random_state=11)
    rng = np.random.default_rng(0)
    test = rng.random(r.nnz) < 0.2
    return r.take(np.flatnonzero(~test)), r.take(np.flatnonzero(test)), truth


def _fit(train, **kw):
    args = dict(rank=2, chains=2, draws=150, tune=100, random_state=3, progress=False)
    args.update(kw)
    return GibbsPMF(**args).fit(train)


@pytest.mark.parametrize("hyperprior", ["normal-wishart", "diagonal"])
def test_posterior_recovers_truth(recovery_data, hyperprior):
    train, test, truth = recovery_data
    g = _fit(train, hyperprior=hyperprior)
    true_mean = truth.mean(test.users, test.items)
    pred = g.predict_mean(test.users, test.items)
    rmse_latent = np.sqrt(np.mean((pred - true_mean) ** 2))
    # noise sd 0.3; a perfect fit of the latent means scores 0, the global mean ~1.1
    assert rmse_latent < 0.2  # ~0.15 expected: sigma * sqrt(params per row / ratings per row)
    assert np.sqrt(np.mean((true_mean - true_mean.mean()) ** 2)) > 0.8
    assert g.sigma_ == pytest.approx(0.3, rel=0.1)
    # posterior 90% intervals of the latent means cover most true means
    lat = g.predict_draws(test.users, test.items).reshape(-1, test.nnz)
    lo, hi = np.quantile(lat, [0.05, 0.95], axis=0)
    assert 0.75 < np.mean((true_mean >= lo) & (true_mean <= hi)) <= 1.0


def test_fitted_attributes_are_posterior_means(recovery_data):
    train, test, _ = recovery_data
    g = _fit(train, chains=2, draws=20, tune=10)
    post = g.idata_.posterior
    assert g.U_.shape == (train.n_users, 2) and g.V_.shape == (train.n_items, 2)
    np.testing.assert_allclose(g.U_, post["U"].values.astype(float).mean((0, 1)))
    np.testing.assert_allclose(g.item_bias_, post["item_bias"].values.astype(float).mean((0, 1)))
    assert g.mu_ == pytest.approx(float(post["mu"].mean()))
    assert g.sigma_ == pytest.approx(float(post["sigma"].mean()))
    assert g.fit_time_ > 0 and g.ratings_ is train and g.link_ == "identity"
    assert post["U"].dtype == np.float32 and post["sigma"].dtype == np.float64
    # loglik is the Gaussian log-likelihood of the training ratings at each stored draw
    c, d = 1, 7
    U = post["U"].values[c, d].astype(float)
    V = post["V"].values[c, d].astype(float)
    m = (float(post["mu"][c, d]) + post["user_bias"].values[c, d][train.users]
         + post["item_bias"].values[c, d][train.items]
         + np.einsum("pk,pk->p", U[train.users], V[train.items]))
    ll = stats.norm.logpdf(train.values, m, float(post["sigma"][c, d])).sum()
    assert float(g.idata_.sample_stats["loglik"][c, d]) == pytest.approx(ll, rel=1e-4)


def test_probe_accumulates_posterior_mean(recovery_data):
    train, test, _ = recovery_data
    g = GibbsPMF(rank=2, chains=2, draws=30, tune=10, random_state=1, progress=False)
    g.fit(train, probe=test)
    lat = g.predict_draws(test.users, test.items)
    np.testing.assert_allclose(g.probe_mean_, lat.mean((0, 1)), atol=1e-4)
    np.testing.assert_allclose(g.probe_sd_, lat.reshape(-1, test.nnz).std(0), atol=1e-3)


def test_same_seed_same_draws_and_different_seed_differs(recovery_data):
    train, _, _ = recovery_data
    a = _fit(train, draws=20, tune=10, random_state=42)
    b = _fit(train, draws=20, tune=10, random_state=42)
    c = _fit(train, draws=20, tune=10, random_state=43)
    np.testing.assert_array_equal(a.idata_.posterior["U"].values, b.idata_.posterior["U"].values)
    np.testing.assert_array_equal(a.idata_.posterior["sigma"].values,
                                  b.idata_.posterior["sigma"].values)
    assert not np.array_equal(a.idata_.posterior["sigma"].values, c.idata_.posterior["sigma"].values)
    # chains differ from each other
    s = a.idata_.posterior["sigma"].values
    assert not np.array_equal(s[0], s[1])


def test_thinning_and_no_bias_layout(recovery_data):
    train, _, _ = recovery_data
    g = _fit(train, biases=False, chains=3, draws=30, tune=5, thin=4)
    post = g.idata_.posterior
    assert post.sizes["chain"] == 3 and post.sizes["draw"] == 30 // 4
    assert "user_bias" not in post and "sigma_user_bias" not in post
    np.testing.assert_array_equal(g.user_bias_, np.zeros(train.n_users))
    assert g.idata_.attrs["biases"] == 0 and g.idata_.attrs["thin"] == 4


def test_refit_resets_state(recovery_data):
    train, test, _ = recovery_data
    g = GibbsPMF(rank=2, chains=1, draws=10, tune=5, random_state=0, progress=False)
    g.fit(train, probe=test)
    assert g.probe_mean_ is not None
    g.fit(train)
    assert g.probe_mean_ is None


def test_ctrl_c_returns_draws_so_far(recovery_data, monkeypatch):
    train, _, _ = recovery_data
    calls = {"n": 0}
    original = GibbsPMF._sweep

    def interrupting(self, sampler):
        calls["n"] += 1
        if calls["n"] == 60 + 25:  # chain 0 done (60 sweeps), chain 1 after 25 sweeps
            raise KeyboardInterrupt
        original(self, sampler)

    monkeypatch.setattr(GibbsPMF, "_sweep", interrupting)
    g = GibbsPMF(rank=2, chains=3, draws=50, tune=10, random_state=0, progress=False)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        g.fit(train)
    post = g.idata_.posterior
    # chain 1 kept 24 - 10 = 14 draws; chain 0 is trimmed to match; chain 2 never started
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 14
    assert g.idata_.attrs["interrupted"] == 1 and g.interrupted_
    assert np.all(np.isfinite(post["U"].values))


def test_memory_budget_error_before_sampling(recovery_data, monkeypatch):
    train, _, _ = recovery_data

    def fail(self, sampler):  # pragma: no cover - must not be reached
        raise AssertionError("sampling started")

    monkeypatch.setattr(GibbsPMF, "_sweep", fail)
    with pytest.raises(MemoryBudgetError, match="memory budget"):
        GibbsPMF(rank=2, chains=2, draws=100, thin=1, memory_budget_bytes=10_000,
                 progress=False).fit(train)


def test_auto_thin_fits_the_budget(recovery_data):
    train, _, _ = recovery_data
    g = GibbsPMF(rank=2, chains=2, draws=40, tune=5, thin="auto", memory_budget_bytes=60_000,
                 random_state=0, progress=False).fit(train)
    assert g.thin_ > 1
    assert g.memory_bytes_ <= 60_000
    assert g.idata_.posterior.sizes["draw"] == 40 // g.thin_


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"draws": 0}, "draws"),
        ({"chains": 0}, "chains"),
        ({"tune": -1}, "tune"),
        ({"thin": 0}, "thin"),
        ({"thin": 20, "draws": 10}, "thin"),
        ({"rank": 0}, "rank"),
        ({"hyperprior": "wishart"}, "hyperprior"),
        ({"init": "svd"}, "init"),
        ({"store": "float16"}, "store"),
        ({"priors": GibbsPriors(noise_shape=-1.0)}, "noise_shape"),
        ({"n_threads": 0}, "n_threads"),
        ({"overrelax": 1.0}, "overrelax"),
        ({"overrelax": "yes"}, "overrelax"),
        ({"check_convergence": "yes"}, "check_convergence"),
    ],
)
def test_bad_arguments_raise_clear_errors(recovery_data, kwargs, match):
    train, _, _ = recovery_data
    with pytest.raises(BayesMFError, match=match):
        GibbsPMF(progress=False, **kwargs).fit(train)


def test_bad_data_and_logistic_link(recovery_data):
    train, _, _ = recovery_data
    with pytest.raises(DataError, match="Ratings"):
        GibbsPMF(progress=False).fit(train.to_frame())
    with pytest.raises(BayesMFError, match="declared rating scale"):
        GibbsPMF(link="logistic", progress=False).fit(train)  # continuous, no scale
    r, _ = make_synthetic(n_users=10, n_items=8, rank=2, density=0.5, random_state=0)
    with pytest.raises(GibbsLinkError, match="NUTS"):
        GibbsPMF(link="logistic", progress=False).fit(r)
    assert issubclass(GibbsLinkError, NotImplementedError)
    g = _fit(train, draws=5, tune=2, chains=1)
    with pytest.raises(BayesMFError, match="outside"):
        g.predict_mean(np.array([0, 10_000]), np.array([0, 0]))


def test_not_fitted_and_empty():
    with pytest.raises(BayesMFError, match="not fitted"):
        GibbsPMF().predict_mean(np.array([0]), np.array([0]))
    import pandas as pd

    empty = Ratings(np.array([], int), np.array([], int), np.array([]), pd.Index([1]), pd.Index([2]))
    with pytest.raises(DataError, match="empty"):
        GibbsPMF(progress=False).fit(empty)


def test_collapsed_precision_update_leaves_its_target_invariant():
    """Iterated slice updates of a bias precision sample its collapsed conditional exactly."""
    from scipy import integrate

    from bayesmf.kernels.gibbs import collapsed_precision_log_density, sample_collapsed_precision

    rng = np.random.default_rng(8)
    n = np.array([0, 1, 1, 2, 3, 5, 8, 20], dtype=float)
    tau = 2.0
    s2 = tau * n  # a group without ratings has s2 = rr = 0
    rr = tau * rng.standard_normal(8) * np.sqrt(n)
    a0, b0 = 2.0, 1.0
    tb, xs = 1.0, []
    for _ in range(2500):
        tb = sample_collapsed_precision(rng, s2, rr, tb, a0, b0)
        xs.append(np.log(tb))
    xs = np.array(xs[500:])

    def dens(x):
        return np.exp(collapsed_precision_log_density(x, s2, rr, a0, b0) - ref)

    ref = collapsed_precision_log_density(0.0, s2, rr, a0, b0)
    Z = integrate.quad(dens, -15, 15)[0]
    mean = integrate.quad(lambda x: x * dens(x), -15, 15)[0] / Z
    sd = np.sqrt(integrate.quad(lambda x: (x - mean) ** 2 * dens(x), -15, 15)[0] / Z)
    assert abs(xs.mean() - mean) < 0.1 * sd
    assert xs.std() == pytest.approx(sd, rel=0.1)


def test_factorised_draw_equals_the_direct_row_draw():
    """Factorise without the bias prior, then draw with it: the very draws of gibbs_half_sweep."""
    from bayesmf.kernels.gibbs import (
        gibbs_draw_factorised,
        gibbs_draw_factorised_serial,
        gibbs_factorise,
        gibbs_factorise_serial,
    )

    r, _ = make_synthetic(n_users=40, n_items=30, rank=2, density=0.3, scale=None, random_state=1)
    rng = np.random.default_rng(0)
    d, tau, tb = 3, 2.0, 3.7
    c = r.by_user
    Y = rng.standard_normal((r.n_items, d))
    Y[:, -1] = 1.0
    off = rng.standard_normal(r.n_items) * 0.1
    M = rng.standard_normal((2, 2))
    P0 = np.zeros((d, d))
    P0[:2, :2] = M @ M.T + np.eye(2)
    shift = np.zeros(d)
    shift[:2] = P0[:2, :2] @ np.array([0.2, -0.1])
    P0b = P0.copy()
    P0b[2, 2] = tb
    Z = rng.standard_normal((r.n_users, d))
    for alpha in (0.0, -0.7):
        X0 = rng.standard_normal((r.n_users, d))
        direct = X0.copy()
        gibbs_half_sweep_serial(c.indptr, c.indices, c.data, Y, off, tau, P0b, shift, Z, direct,
                                alpha)
        for factorise, draw in ((gibbs_factorise, gibbs_draw_factorised),
                                (gibbs_factorise_serial, gibbs_draw_factorised_serial)):
            n = r.n_users
            s2, rr, a, g = np.empty(n), np.empty(n), np.empty((n, d - 1)), np.empty((n, d - 1))
            assert factorise(c.indptr, c.indices, c.data, Y, off, tau, P0, shift, Z, alpha,
                             s2, rr, a, g) == 0
            X = X0.copy()
            draw(s2, rr, a, g, tb, Z, X, alpha)
            np.testing.assert_allclose(X, direct, rtol=1e-10, atol=1e-12)


def test_factorised_statistics_give_the_marginal_likelihood_of_the_bias_precision():
    """(s2, rr) from gibbs_factorise reproduce log p(ratings | t), factors and bias integrated out."""
    from scipy.stats import multivariate_normal

    from bayesmf.kernels.gibbs import gibbs_factorise

    r, _ = make_synthetic(n_users=25, n_items=20, rank=2, density=0.3, scale=None, random_state=3)
    rng = np.random.default_rng(3)
    d, tau = 3, 2.0
    c = r.by_user
    Y = rng.standard_normal((r.n_items, d))
    Y[:, -1] = 1.0
    off = rng.standard_normal(r.n_items) * 0.1
    Lam = np.array([[1.5, 0.3], [0.3, 0.8]])
    m0 = np.array([0.2, -0.1])
    P0 = np.zeros((d, d))
    P0[:2, :2] = Lam
    shift = np.zeros(d)
    shift[:2] = Lam @ m0
    n = r.n_users
    s2, rr, a, g = np.empty(n), np.empty(n), np.empty((n, d - 1)), np.empty((n, d - 1))
    gibbs_factorise(c.indptr, c.indices, c.data, Y, off, tau, P0, shift, np.zeros((n, d)), 0.0,
                    s2, rr, a, g)

    def brute(t):  # sum over users of log N(ratings | Y m0, Y P0(t)^-1 Y^T + I / tau)
        Pt = P0.copy()
        Pt[-1, -1] = t
        cov = np.linalg.inv(Pt)
        tot = 0.0
        for u in range(r.n_users):
            sl = slice(c.indptr[u], c.indptr[u + 1])
            Yr = Y[c.indices[sl]]
            if len(Yr):
                tot += multivariate_normal.logpdf(c.data[sl] - off[c.indices[sl]],
                                                  Yr @ np.r_[m0, 0.0],
                                                  Yr @ cov @ Yr.T + np.eye(len(Yr)) / tau)
        return tot

    def ours(t):
        return 0.5 * np.sum(np.log(t) - np.log(s2 + t) + rr * rr / (s2 + t))

    diffs = [brute(t) - ours(t) for t in (0.3, 2.0, 15.0)]
    np.testing.assert_allclose(diffs, diffs[0], atol=1e-8)


def test_chains_in_worker_processes_give_the_very_same_draws(recovery_data):
    """cores=2 runs chains in fresh worker processes; each chain's seed fixes its draws."""
    train, test, _ = recovery_data
    kw = dict(rank=2, chains=3, draws=30, tune=20, random_state=1, progress=False)
    a = GibbsPMF(cores=1, **kw).fit(train, probe=test)
    b = GibbsPMF(cores=2, **kw).fit(train, probe=test)
    assert a.workers_ == 1 and b.workers_ == 2
    for name in a.idata_.posterior.data_vars:
        np.testing.assert_array_equal(a.idata_.posterior[name].values,
                                      b.idata_.posterior[name].values, err_msg=name)
    np.testing.assert_array_equal(a.idata_.sample_stats["loglik"].values,
                                  b.idata_.sample_stats["loglik"].values)
    np.testing.assert_allclose(b.probe_mean_, a.probe_mean_, rtol=1e-12)


def test_ctrl_c_stops_worker_processes_and_keeps_their_draws(recovery_data, monkeypatch):
    import bayesmf.models.gibbs as gibbs_mod

    train, _, _ = recovery_data
    real = gibbs_mod.run_chains_in_processes

    def interrupt_after_some_sweeps(n_workers, job, spec, on_progress):
        def progress(done):
            on_progress(done)
            if done >= 500:
                raise KeyboardInterrupt
        return real(n_workers, job, spec, progress)

    monkeypatch.setattr(gibbs_mod, "run_chains_in_processes", interrupt_after_some_sweeps)
    g = GibbsPMF(rank=2, chains=2, tune=10, draws=1_000_000, thin=50, cores=2,
                 memory_budget_bytes=None, random_state=0, progress=False)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        g.fit(train)
    assert g.interrupted_ and g.idata_.attrs["interrupted"] == 1
    assert g.idata_.posterior.sizes["draw"] >= 1
    assert np.all(np.isfinite(g.idata_.posterior["U"].values))


def test_too_few_draws_to_check_convergence_warn_instead_of_failing(recovery_data):
    """An interrupted or tiny run keeps its draws; the check says it was skipped and why."""
    train, _, _ = recovery_data
    g = GibbsPMF(rank=2, chains=1, tune=5, draws=3, random_state=0, progress=False,
                 check_convergence=True)
    with pytest.warns(RuntimeWarning, match="3 posterior draw.*too few to check"):
        g.fit(train)
    assert g.diagnostics_ is None and g.idata_.posterior.sizes["draw"] == 3


def test_scratch_dir_falls_back_to_the_temp_dir_when_shared_memory_is_short(monkeypatch):
    import collections
    import shutil
    import tempfile

    from bayesmf.models import gibbs_chain

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 10 << 20))
    assert gibbs_chain.scratch_dir(1 << 30) == tempfile.gettempdir()


def test_worker_processes_write_through_a_disk_backed_scratch_dir(recovery_data, monkeypatch,
                                                                   tmp_path):
    from bayesmf.models import gibbs_chain

    train, _, _ = recovery_data
    monkeypatch.setattr(gibbs_chain, "scratch_dir", lambda nbytes: str(tmp_path))
    kw = dict(rank=2, chains=2, draws=10, tune=5, random_state=4, progress=False)
    a = GibbsPMF(cores=2, **kw).fit(train)
    b = GibbsPMF(cores=1, **kw).fit(train)
    np.testing.assert_array_equal(a.idata_.posterior["V"].values, b.idata_.posterior["V"].values)
    assert list(tmp_path.iterdir()) == []  # the scratch files are removed


def test_convergence_check_warns_on_short_chains_and_keeps_the_table(recovery_data):
    train, _, _ = recovery_data
    with pytest.warns(RuntimeWarning, match=r"checks are not ok .* worst .*diagnostics_"):
        g = GibbsPMF(rank=2, chains=2, tune=5, draws=20, random_state=0,
                     progress=False).fit(train)
    table = g.diagnostics_
    assert table.attrs["verdict"] != "ok"
    assert {"sigma", "loglik", "pred_mean"} <= set(table["group"])
    # the same table diagnose() gives
    again = diagnose(g)
    np.testing.assert_allclose(again["r_hat"], table["r_hat"], equal_nan=True)


def test_convergence_check_is_quiet_when_converged_or_off(recovery_data):
    train, _, _ = recovery_data
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        g = GibbsPMF(rank=2, chains=2, tune=100, draws=1500, random_state=0,
                     progress=False).fit(train)
        assert g.diagnostics_.attrs["verdict"] == "ok"
        off = GibbsPMF(rank=2, chains=2, tune=5, draws=20, random_state=0, progress=False,
                       check_convergence=False).fit(train)
        assert off.diagnostics_ is None
        one = GibbsPMF(rank=2, chains=1, tune=5, draws=20, random_state=0,
                       progress=False).fit(train)
        assert one.diagnostics_ is None  # split R-hat of one chain is too weak to warn on


def test_fused_row_helpers_match_numpy_on_strided_views():
    """The numba helpers of the hyperparameter draw and the moves, on the factor columns of a
    ``[factors, bias]`` array (a strided view), against the NumPy expressions they replace."""
    from bayesmf.kernels.gibbs import gram_and_cross, mean_and_scatter, shift_rows, transform_rows

    rng = np.random.default_rng(11)
    k = 4
    X = rng.normal(size=(37, k + 1))
    Y = rng.normal(size=(23, k + 1))
    F = X[:, :k]
    xbar, S = mean_and_scatter(F)
    np.testing.assert_allclose(xbar, F.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(S, (F - F.mean(axis=0)).T @ (F - F.mean(axis=0)), rtol=1e-12)
    G, h = gram_and_cross(Y[:, :k], Y[:, k], False)
    np.testing.assert_allclose(G, Y[:, :k].T @ Y[:, :k], rtol=1e-12)
    np.testing.assert_allclose(h, Y[:, :k].T @ Y[:, k], rtol=1e-12)
    Ya = np.c_[Y[:, :k], np.ones(len(Y))]
    G, h = gram_and_cross(Y[:, :k], Y[:, k], True)
    np.testing.assert_allclose(G, Ya.T @ Ya, rtol=1e-12)
    np.testing.assert_allclose(h, Ya.T @ Y[:, k], rtol=1e-12)
    M = rng.normal(size=(k, k))
    X2 = X.copy()
    transform_rows(X2, M, k)
    np.testing.assert_allclose(X2[:, :k], X[:, :k] @ M.T, rtol=1e-12)
    np.testing.assert_array_equal(X2[:, k], X[:, k])  # the bias column is left alone
    w, delta = rng.normal(size=k), 0.3
    X3, Y3 = X.copy(), Y.copy()
    shift_rows(X3, w, Y3, delta, k)
    np.testing.assert_allclose(X3[:, :k], X[:, :k] + w, rtol=1e-12)
    np.testing.assert_allclose(Y3[:, k], Y[:, k] - (Y[:, :k] @ w + delta), rtol=1e-12)
    np.testing.assert_array_equal(Y3[:, :k], Y[:, :k])
