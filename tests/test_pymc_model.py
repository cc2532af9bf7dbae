"""The PyMC PMF graph and its one-pass numba likelihood: values, gradients, names, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from pytensor.compile.mode import Mode

from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError, DataError
from bayesmf.kernels import pmf_logp
from bayesmf.kernels.pmf_logp import loglik, loglik_draws, loglik_grad, loglik_grad_reference
from bayesmf.models import pymc_model
from bayesmf.models.pymc_model import PMFPriors, build_pmf_model, working_values

FAST_COMPILE = {"mode": "FAST_COMPILE"}  # python linker: no C compilation in the fast tests
NO_REWRITES = {"mode": Mode(linker="py", optimizer=None)}  # quickest compile for value checks


def _ratings(scale=(1, 5, 1), n=120, n_users=9, n_items=7, seed=0) -> Ratings:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "user": rng.integers(0, n_users, n) * 10 + 3,
            "item": [f"m{x}" for x in rng.integers(0, n_items, n)],
            "rating": rng.integers(1, 6, n).astype(float),
        }
    )
    return Ratings.from_frame(df, duplicates="mean", scale=scale)


def _params(r: Ratings, k: int, rng: np.random.Generator):
    return (
        rng.normal(size=(r.n_users, k)),
        rng.normal(size=(r.n_items, k)),
        float(rng.normal()),
        rng.normal(size=r.n_users) * 0.5,
        rng.normal(size=r.n_items) * 0.5,
        float(rng.uniform(0.5, 1.5)),
    )


# ------------------------------------------------------------------ the kernel
@pytest.mark.parametrize("logistic", [False, True])
def test_kernel_matches_numpy_reference(logistic):
    r = _ratings()
    vals = working_values(r, "logistic") if logistic else r.values
    U, V, mu, ub, ib, s = _params(r, 3, np.random.default_rng(1))
    fast = loglik_grad(r.users, r.items, vals, U, V, mu, ub, ib, s, logistic)
    ref = loglik_grad_reference(r.users, r.items, vals, U, V, mu, ub, ib, s, logistic)
    for a, b in zip(fast, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-10)
    assert loglik(r.users, r.items, vals, U, V, mu, ub, ib, s, logistic) == pytest.approx(
        fast[0], rel=1e-13
    )


def test_kernel_hand_computed_single_rating():
    # one rating r=3, eta = 1 + 0.5 + (-0.5) + 1*2 = 3 -> residual 0; then r=4 -> residual 1
    users = np.array([0], dtype=np.int32)
    items = np.array([0], dtype=np.int32)
    U, V = np.array([[1.0]]), np.array([[2.0]])
    ub, ib = np.array([0.5]), np.array([-0.5])
    lp, dU, dV, dmu, dub, dib, ds = loglik_grad(
        users, items, np.array([4.0]), U, V, 1.0, ub, ib, 2.0, False
    )
    assert lp == pytest.approx(-0.5 * np.log(2 * np.pi) - np.log(2.0) - 1.0 / 8.0)
    g = 1.0 / 4.0  # residual / sigma^2
    assert dU[0, 0] == pytest.approx(g * 2.0) and dV[0, 0] == pytest.approx(g * 1.0)
    assert dmu == pytest.approx(g) and dub[0] == pytest.approx(g) and dib[0] == pytest.approx(g)
    assert ds == pytest.approx(-1 / 2.0 + 1.0 / 8.0)


@pytest.mark.parametrize("logistic", [False, True])
def test_kernel_gradient_finite_differences(logistic):
    r = _ratings(n=40, n_users=4, n_items=3)
    vals = working_values(r, "logistic") if logistic else r.values
    U, V, mu, ub, ib, s = _params(r, 2, np.random.default_rng(2))
    _, dU, dV, dmu, dub, dib, ds = loglik_grad(r.users, r.items, vals, U, V, mu, ub, ib, s, logistic)
    h = 1e-6

    def f(U_=U, V_=V, mu_=mu, ub_=ub, ib_=ib, s_=s):
        return loglik(r.users, r.items, vals, U_, V_, mu_, ub_, ib_, s_, logistic)

    for arr, grad, key in ((U, dU, "U_"), (V, dV, "V_"), (ub, dub, "ub_"), (ib, dib, "ib_")):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            up, dn = arr.copy(), arr.copy()
            up[idx] += h
            dn[idx] -= h
            num[idx] = (f(**{key: up}) - f(**{key: dn})) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-6)
    assert dmu == pytest.approx((f(mu_=mu + h) - f(mu_=mu - h)) / (2 * h), rel=1e-5)
    assert ds == pytest.approx((f(s_=s + h) - f(s_=s - h)) / (2 * h), rel=1e-5)


def test_loglik_draws_matches_single_draw_and_accepts_float32():
    r = _ratings()
    rng = np.random.default_rng(3)
    draws = [_params(r, 2, rng) for _ in range(3)]
    stack = [np.stack([d[j] for d in draws]) for j in range(6)]
    U, V, mu, ub, ib, s = stack
    out = loglik_draws(r.users, r.items, r.values, U.astype(np.float32), V, mu, ub, ib, s, False)
    for d in range(3):
        exp = loglik(r.users, r.items, r.values, U[d].astype(np.float32).astype(float), V[d],
                     mu[d], ub[d], ib[d], s[d], False)
        assert out[d] == pytest.approx(exp, rel=1e-12)


# ------------------------------------------------------------------ the model
def _random_point(model, rng):
    ip = model.initial_point()
    return {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in ip.items()}


def _logp_dlogp(model, compile_kwargs=NO_REWRITES):
    fn = model.logp_dlogp_function(ravel_inputs=True, **compile_kwargs)
    fn.set_extra_values({})
    ip = model.initial_point()
    x0 = np.concatenate([np.ravel(ip[v.name]) for v in fn._grad_vars])
    return fn, x0


@pytest.mark.parametrize(
    "link,parametrization,biases",
    [
        ("identity", "noncentered", True),
        pytest.param("identity", "centered", False, marks=pytest.mark.slow),
        pytest.param("logistic", "noncentered", True, marks=pytest.mark.slow),
        pytest.param("logistic", "centered", False, marks=pytest.mark.slow),
    ],
)
def test_fast_and_naive_models_agree(link, parametrization, biases):
    r = _ratings()
    kw = dict(rank=2, biases=biases, link=link, parametrization=parametrization)
    fast = build_pmf_model(r, likelihood="fast", **kw)
    naive = build_pmf_model(r, likelihood="naive", **kw)
    assert [v.name for v in fast.value_vars] == [v.name for v in naive.value_vars]
    f_fast, x0 = _logp_dlogp(fast)
    f_naive, _ = _logp_dlogp(naive)
    x = x0 + 0.3 * np.random.default_rng(4).standard_normal(x0.size)
    lf, gf = f_fast(x)
    ln, gn = f_naive(x)
    assert abs(float(lf) - float(ln)) < 1e-8
    np.testing.assert_allclose(gf, gn, rtol=1e-9, atol=1e-8)


def test_model_gradient_matches_finite_differences():
    r = _ratings(n=50, n_users=5, n_items=4)
    model = build_pmf_model(r, 2, likelihood="fast")
    fn, x = _logp_dlogp(model)
    x = x + 0.2 * np.random.default_rng(5).standard_normal(x.size)
    _, g = fn(x)
    h = 1e-6
    num = np.array([
        (float(fn(x + h * e)[0]) - float(fn(x - h * e)[0])) / (2 * h) for e in np.eye(x.size)
    ])
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_logp_and_gradient_share_one_kernel_pass(monkeypatch):
    calls = []
    real = pmf_logp.loglik_grad

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(pymc_model, "loglik_grad", counting)
    r = _ratings()
    model = build_pmf_model(r, 2, likelihood="fast")
    fn, x = _logp_dlogp(model, FAST_COMPILE)  # with rewrites: the two Op nodes are merged
    calls.clear()
    fn(x)
    assert len(calls) == 1


def test_model_names_dims_and_coords():
    r = _ratings()
    model = build_pmf_model(r, 3)
    assert list(model.coords["user"]) == list(r.user_ids)
    assert list(model.coords["item"]) == list(r.item_ids)
    assert list(model.coords["factor"]) == [0, 1, 2]
    assert len(model.coords["rating"]) == r.nnz
    for name in pymc_model.SHARED_NAMES:
        assert name in model.named_vars
    assert model.named_vars_to_dims["U"] == ("user", "factor")
    assert model.named_vars_to_dims["V"] == ("item", "factor")
    assert model.named_vars_to_dims["user_bias"] == ("user",)
    assert model.named_vars_to_dims["sigma_u"] == ("factor",)
    assert "U_z" in model.named_vars  # non-centred auxiliary
    centered = build_pmf_model(r, 3, parametrization="centered", biases=False)
    assert "U_z" not in centered.named_vars and "user_bias" not in centered.named_vars
    naive = build_pmf_model(r, 3, likelihood="naive")
    assert naive.named_vars_to_dims["R"] == ("rating",)


def test_prior_constants_enter_the_model():
    r = _ratings()
    a = build_pmf_model(r, 2, priors=PMFPriors(noise_rate=1.0))
    b = build_pmf_model(r, 2, priors=PMFPriors(noise_rate=3.0))
    point = a.initial_point()
    la = a.compile_logp(**NO_REWRITES)(point)
    lb = b.compile_logp(**NO_REWRITES)(point)
    # tau ~ Gamma(1, rate): log density differs by log(3) - 2 * tau (log-transformed, same tau)
    tau = np.exp(point["tau_log__"])
    assert lb - la == pytest.approx(np.log(3.0) - 2.0 * tau, rel=1e-6)


def test_logistic_link_needs_a_scale():
    r = _ratings(scale=None)
    with pytest.raises(DataError, match="scale"):
        build_pmf_model(r, 2, link="logistic")
    mapped = working_values(_ratings(), "logistic")
    assert mapped.min() >= 0 and mapped.max() <= 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rank": 0},
        {"rank": 2, "link": "probit"},
        {"rank": 2, "parametrization": "sideways"},
        {"rank": 2, "likelihood": "slow"},
        {"rank": 2, "minibatch_size": 10},  # needs the naive likelihood
    ],
)
def test_bad_options_raise(kwargs):
    with pytest.raises(BayesMFError):
        build_pmf_model(_ratings(), **kwargs)


def test_bad_priors_and_data_raise():
    with pytest.raises(BayesMFError):
        PMFPriors(noise_rate=0.0)
    with pytest.raises(DataError):
        build_pmf_model("not ratings", 2)  # type: ignore[arg-type]


@pytest.mark.slow
def test_numba_backend_matches_default_backend():
    r = _ratings()
    model = build_pmf_model(r, 2, likelihood="fast", link="logistic")
    point = _random_point(model, np.random.default_rng(6))
    c = model.compile_dlogp()(point)
    with warnings.catch_warnings():
        # the Op has a native numba implementation: no object-mode fallback
        warnings.filterwarnings("error", message=".*object mode.*")
        n = model.compile_dlogp(mode="NUMBA")(point)
    np.testing.assert_allclose(c, n, rtol=1e-10, atol=1e-10)
    assert model.compile_logp(mode="NUMBA")(point) == pytest.approx(model.compile_logp()(point))
