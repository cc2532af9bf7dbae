"""Anderson acceleration: the kernels against NumPy, a linear fixed point solved exactly, and PMF."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmf.datasets import make_synthetic
from bayesmf.kernels.anderson import (
    anderson_coefficients,
    anderson_extrapolate,
    anderson_record,
)
from bayesmf.models.pmf import PMF, _AndersonState


def _history(n: int, m: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal(n),
        "g": rng.standard_normal(n),
        "f_prev": rng.standard_normal(n),
        "g_prev": rng.standard_normal(n),
        "dF": rng.standard_normal((m, n)),
        "dG": rng.standard_normal((m, n)),
    }


@pytest.mark.parametrize("parallel", [False, True])
def test_record_matches_numpy(parallel: bool) -> None:
    n, m, slot = 1001, 3, 1
    h = _history(n, m)
    ref = {k: v.copy() for k, v in h.items()}
    valid = np.array([True, True, False])
    row, rhs = anderson_record(h["x"], h["g"], h["f_prev"], h["g_prev"], h["dF"], h["dG"], slot,
                               valid, parallel=parallel)
    f = ref["g"] - ref["x"]
    new_df = f - ref["f_prev"]
    np.testing.assert_allclose(h["dF"][slot], new_df)
    np.testing.assert_allclose(h["dG"][slot], ref["g"] - ref["g_prev"])
    np.testing.assert_allclose(h["dF"][2], ref["dF"][2])  # other rows untouched
    np.testing.assert_allclose(h["f_prev"], f)
    np.testing.assert_allclose(h["g_prev"], ref["g"])
    cols = [ref["dF"][0], new_df]
    np.testing.assert_allclose(row[:2], [c @ new_df for c in cols], rtol=1e-12)
    np.testing.assert_allclose(rhs[:2], [c @ f for c in cols], rtol=1e-12)
    assert row[2] == 0.0 and rhs[2] == 0.0


def test_record_restart_only_stores_and_serial_equals_threaded() -> None:
    h = _history(500, 2)
    dF0 = h["dF"].copy()
    row, rhs = anderson_record(h["x"], h["g"], h["f_prev"], h["g_prev"], h["dF"], h["dG"], -1,
                               np.zeros(2, dtype=bool))
    assert not row.any() and not rhs.any()
    np.testing.assert_array_equal(h["dF"], dF0)
    np.testing.assert_allclose(h["f_prev"], h["g"] - h["x"])
    a, b = _history(5000, 2, 1), _history(5000, 2, 1)
    valid = np.array([True, True])
    ra = anderson_record(*a.values(), 0, valid, parallel=False)
    rb = anderson_record(*b.values(), 0, valid, parallel=True)
    np.testing.assert_array_equal(np.r_[ra], np.r_[rb])  # same chunks, same sums


def test_record_rejects_bad_shapes_and_slots() -> None:
    h = _history(10, 2)
    with pytest.raises(ValueError, match="shape"):
        anderson_record(h["x"], h["g"][:5], h["f_prev"], h["g_prev"], h["dF"], h["dG"], 0,
                        np.array([True, False]))
    with pytest.raises(ValueError, match="slot"):
        anderson_record(*h.values(), 1, np.array([True, False]))


def test_coefficients_solve_the_least_squares_problem() -> None:
    rng = np.random.default_rng(2)
    dF = rng.standard_normal((3, 40))
    f = rng.standard_normal(40)
    valid = np.array([True, False, True])
    gamma = anderson_coefficients(dF @ dF.T, dF @ f, valid)
    ref, *_ = np.linalg.lstsq(dF[valid].T, f, rcond=None)
    np.testing.assert_allclose(gamma[valid], ref, rtol=1e-8)
    assert gamma[1] == 0.0
    assert not anderson_coefficients(np.zeros((2, 2)), np.ones(2), np.array([True, True])).any()
    assert not anderson_coefficients(np.eye(2), np.ones(2), np.zeros(2, dtype=bool)).any()


@pytest.mark.parametrize("parallel", [False, True])
def test_extrapolate_matches_numpy_and_ignores_unused_rows(parallel: bool) -> None:
    rng = np.random.default_rng(3)
    G = rng.standard_normal((50, 4))
    dG = rng.standard_normal((3, 50, 4))
    dG[2] = np.nan  # an unused history row may hold anything
    gamma = np.array([0.5, -1.25, 0.0])
    X = np.empty_like(G)
    design = np.full_like(G, 7.0)
    anderson_extrapolate(G, dG, gamma, X, design_out=design, parallel=parallel)
    ref = G - 0.5 * dG[0] + 1.25 * dG[1]
    np.testing.assert_allclose(X, ref)
    np.testing.assert_allclose(design[:, :3], ref[:, :3])
    assert np.all(design[:, 3] == 7.0)  # the ones column of a design matrix is left alone
    with pytest.raises(ValueError, match="shape"):
        anderson_extrapolate(G, dG, gamma[:2], X)


def test_linear_fixed_point_is_solved_in_dimension_plus_one_steps() -> None:
    """On an affine map in n dimensions, Anderson with depth n is GMRES: exact in n + 1 steps."""
    rng = np.random.default_rng(5)
    n = 4
    A = rng.standard_normal((n, n))
    A *= 0.9 / np.max(np.abs(np.linalg.eigvals(A)))
    b = rng.standard_normal(n)
    fixed = np.linalg.solve(np.eye(n) - A, b)
    x = np.zeros(n)
    f_prev, g_prev = np.empty(n), np.empty(n)
    dF, dG = np.zeros((n, n)), np.zeros((n, n))
    valid = np.zeros(n, dtype=bool)
    gram = np.zeros((n, n))
    for it in range(n + 1):
        g = A @ x + b
        slot = it - 1
        if slot >= 0:
            valid[slot] = True
        row, rhs = anderson_record(x, g, f_prev, g_prev, dF, dG, slot, valid)
        if slot < 0:
            x = g.copy()
            continue
        gram[slot, :] = row
        gram[:, slot] = row
        gamma = anderson_coefficients(gram, rhs, valid)
        x_new = np.empty((n, 1))
        anderson_extrapolate(g.reshape(n, 1), dG.reshape(n, n, 1), gamma, x_new)
        x = x_new.ravel()
    np.testing.assert_allclose(x, fixed, atol=1e-8)
    # plain iteration is nowhere near after the same number of steps
    y = np.zeros(n)
    for _ in range(n + 1):
        y = A @ y + b
    assert np.max(np.abs(y - fixed)) > 1e-3


def test_state_reverts_when_the_objective_rises() -> None:
    n, m = 12, 2
    st = _AndersonState(n, m)
    rng = np.random.default_rng(0)
    blocks = lambda v: (v.reshape(4, 3),)  # noqa: E731
    x = rng.standard_normal(n)
    actions, outputs = [], []
    for obj in (10.0, 9.0, 8.0):  # the first depth steps only build the history
        g = 0.5 * x + 1.0
        outputs.append(g.copy())
        actions.append(st.step(x, g, obj, blocks(g), blocks(x), None, False))
        if actions[-1] == "plain":
            x = g.copy()
    assert actions == ["plain", "plain", "extrapolated"]
    assert not np.allclose(x, outputs[-1])
    g = rng.standard_normal(n)
    assert st.step(x, g, 8.5, blocks(g), blocks(x), None, False) == "reverted"
    np.testing.assert_array_equal(x, outputs[-1])  # back to the last output that was kept
    assert st.reverts == 1 and not st.valid.any() and st.count == 0


@pytest.fixture(scope="module")
def synth():
    r, _ = make_synthetic(n_users=300, n_items=200, rank=4, density=0.15, noise_sd=0.5,
                          random_state=1)
    return r


def test_accelerated_fit_reaches_the_plain_optimum_in_fewer_sweeps(synth) -> None:
    plain = PMF(rank=6, tol=1e-6, max_iter=2000, random_state=0, accelerate=False).fit(synth)
    fast = PMF(rank=6, tol=1e-6, max_iter=2000, random_state=0).fit(synth)
    assert plain.converged_ and fast.converged_
    assert fast.extrapolated_sweeps_ > 0 and plain.extrapolated_sweeps_ == 0
    assert fast.n_iter_ < plain.n_iter_
    po = plain.history_["objective"].iloc[-1]
    fo = fast.history_["objective"].iloc[-1]
    assert abs(fo - po) < 1e-5 * po
    np.testing.assert_allclose(fast.predict_mean(synth.users, synth.items),
                               plain.predict_mean(synth.users, synth.items), atol=2e-3)
    # the convergence test still means one ALS sweep's relative change
    assert fast.history_["rel_change"].iloc[-1] < 1e-6


def test_acceleration_is_off_for_mle_and_zero_penalties(synth) -> None:
    mle = PMF(rank=3, method="mle", max_iter=30, random_state=0).fit(synth)
    assert mle.extrapolated_sweeps_ == 0
    zero = PMF(rank=3, lambda_bias=0.0, max_iter=30, random_state=0).fit(synth)
    assert zero.extrapolated_sweeps_ == 0
    nobias = PMF(rank=3, biases=False, tol=1e-6, max_iter=300, random_state=0).fit(synth)
    assert nobias.extrapolated_sweeps_ > 0 and nobias.converged_
