"""ALS kernels: the fast numba half-sweep against the slow NumPy reference and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmf.kernels.als import (
    als_half_sweep,
    als_half_sweep_reference,
    balanced_chunks,
    chunk_order,
    ordered_chunks,
    predict_observed,
    row_covariances,
)
from bayesmf.kernels.linalg import row_normal_equations
from bayesmf.kernels.objective import residual_stats, squared_error


def _random_csr(n_rows: int, n_cols: int, density: float, rng: np.random.Generator):
    # row densities vary so that rows range from empty through few to many entries
    dens = density * rng.uniform(0.0, 2.0, size=(n_rows, 1))
    dens[0] = 0.0
    dens[1] = 1.5 / n_cols
    mask = rng.random((n_rows, n_cols)) < dens
    counts = mask.sum(axis=1)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.nonzero(mask)[1].astype(np.int32)
    data = rng.normal(3.5, 1.0, size=indices.size)
    return indptr, indices, data


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("d", [1, 4, 11])
def test_fast_sweep_matches_reference_map(d: int, parallel: bool) -> None:
    rng = np.random.default_rng(d)
    # density chosen so that rows range from empty through fewer-than-d to many entries
    indptr, indices, data = _random_csr(60, 40, 0.2, rng)
    Y = rng.standard_normal((40, d))
    offset = rng.normal(size=40)
    reg = rng.uniform(0.5, 3.0, size=d)
    X = np.full((60, d), np.nan)
    under = np.ones(60, dtype=bool)
    als_half_sweep(indptr, indices, data, Y, offset, reg, X, under, parallel=parallel)
    X_ref, under_ref = als_half_sweep_reference(indptr, indices, data, Y, offset, reg)
    np.testing.assert_allclose(X, X_ref, rtol=1e-9, atol=1e-11)
    assert not under.any() and not under_ref.any()
    counts = np.diff(indptr)
    assert counts[0] == 0 and ((counts > 0) & (counts < max(d, 2))).any()
    np.testing.assert_array_equal(X[counts == 0], 0.0)


@pytest.mark.parametrize("parallel", [False, True])
def test_fast_sweep_matches_reference_mle_min_norm(parallel: bool) -> None:
    rng = np.random.default_rng(3)
    d = 5
    indptr, indices, data = _random_csr(50, 30, 0.15, rng)
    Y = rng.standard_normal((30, d))
    offset = np.zeros(30)
    reg = np.zeros(d)
    X = np.empty((50, d))
    under = np.zeros(50, dtype=bool)
    als_half_sweep(indptr, indices, data, Y, offset, reg, X, under, parallel=parallel)
    X_ref, under_ref = als_half_sweep_reference(indptr, indices, data, Y, offset, reg)
    counts = np.diff(indptr)
    np.testing.assert_array_equal(under, counts < d)
    np.testing.assert_array_equal(under, under_ref)
    np.testing.assert_allclose(X, X_ref, rtol=1e-7, atol=1e-9)
    # the min-norm solution of an underdetermined row fits its ratings exactly
    for r in np.flatnonzero((counts > 0) & (counts < d)):
        sl = slice(indptr[r], indptr[r + 1])
        np.testing.assert_allclose(Y[indices[sl]] @ X[r], data[sl], atol=1e-8)
        np.testing.assert_allclose(X[r], np.linalg.pinv(Y[indices[sl]]) @ data[sl], atol=1e-8)


def test_hand_computed_one_user_two_items_rank_one() -> None:
    # user rates item 0 with 4 and item 1 with 2; item factors 1 and 2; lambda = 1:
    # (1 + 4 + 1) u = 1*4 + 2*2  ->  u = 8 / 6
    indptr = np.array([0, 2], dtype=np.int64)
    indices = np.array([0, 1], dtype=np.int32)
    data = np.array([4.0, 2.0])
    Y = np.array([[1.0], [2.0]])
    X = np.empty((1, 1))
    under = np.zeros(1, dtype=bool)
    als_half_sweep(indptr, indices, data, Y, np.zeros(2), np.array([1.0]), X, under)
    assert X[0, 0] == pytest.approx(8.0 / 6.0, rel=1e-14)
    # with an offset of 1 on both items: (1*3 + 2*1) / 6
    als_half_sweep(indptr, indices, data, Y, np.ones(2), np.array([1.0]), X, under)
    assert X[0, 0] == pytest.approx(5.0 / 6.0, rel=1e-14)
    # MLE: (1 + 4) u = 8
    als_half_sweep(indptr, indices, data, Y, np.zeros(2), np.array([0.0]), X, under)
    assert X[0, 0] == pytest.approx(8.0 / 5.0, rel=1e-14)
    assert not under[0]


def test_hand_computed_underdetermined_rank_two() -> None:
    # one rating r=3 with item factor y=(1, 1), MLE: min-norm solution of u1 + u2 = 3
    indptr = np.array([0, 1], dtype=np.int64)
    indices = np.array([0], dtype=np.int32)
    data = np.array([3.0])
    Y = np.array([[1.0, 1.0]])
    X = np.empty((1, 2))
    under = np.zeros(1, dtype=bool)
    als_half_sweep(indptr, indices, data, Y, np.zeros(1), np.zeros(2), X, under)
    np.testing.assert_allclose(X[0], [1.5, 1.5], rtol=1e-12)
    assert under[0]
    # MAP with lambda=1 through the dual path: u = y * 3 / (1 + |y|^2) = (1, 1)
    als_half_sweep(indptr, indices, data, Y, np.zeros(1), np.ones(2), X, under)
    np.testing.assert_allclose(X[0], [1.0, 1.0], rtol=1e-12)
    assert not under[0]


def test_row_normal_equations_against_numpy() -> None:
    rng = np.random.default_rng(7)
    indptr, indices, data = _random_csr(5, 30, 0.6, rng)
    Y = rng.standard_normal((30, 6))
    off = rng.normal(size=30)
    A = np.empty((6, 6))
    b = np.empty(6)
    for r in range(5):
        row_normal_equations(r, indptr, indices, data, Y, off, A, b)
        sl = slice(indptr[r], indptr[r + 1])
        Yr = Y[indices[sl]]
        np.testing.assert_allclose(A, Yr.T @ Yr, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b, Yr.T @ (data[sl] - off[indices[sl]]), rtol=1e-12, atol=1e-12)


def test_row_covariances_is_scaled_inverse() -> None:
    rng = np.random.default_rng(11)
    indptr, indices, data = _random_csr(8, 20, 0.4, rng)
    Y = rng.standard_normal((20, 3))
    reg = np.array([0.5, 1.0, 2.0])
    rows = np.array([0, 3, 7], dtype=np.int64)
    cov = np.empty((3, 3, 3))
    row_covariances(rows, indptr, indices, data, Y, np.zeros(20), reg, 0.25, cov)
    for t, r in enumerate(rows):
        Yr = Y[indices[indptr[r]:indptr[r + 1]]]
        np.testing.assert_allclose(cov[t], 0.25 * np.linalg.inv(Yr.T @ Yr + np.diag(reg)), rtol=1e-10)


def test_balanced_chunks_cover_rows() -> None:
    indptr = np.array([0, 100, 100, 101, 300, 301, 302], dtype=np.int64)
    for n in (1, 2, 3, 64):
        b = balanced_chunks(indptr, n)
        assert b[0] == 0 and b[-1] == 6
        assert np.all(np.diff(b) > 0)
        assert len(b) - 1 <= n


def test_chunk_order_is_a_permutation_spread_over_each_threads_block() -> None:
    for n in range(0, 70):
        assert sorted(chunk_order(n).tolist()) == list(range(n))
    np.testing.assert_array_equal(chunk_order(8), [0, 4, 2, 6, 1, 5, 3, 7])
    order = chunk_order(64)
    # a static two-thread split of the loop: the even chunks, then the odd ones
    assert set(order[:32].tolist()) == set(range(0, 64, 2))
    # four threads: each block takes one residue class mod 4, spread over all the rows
    for block in order.reshape(4, 16):
        assert len({int(c) % 4 for c in block}) == 1 and block.min() < 4 and block.max() >= 60


def test_ordered_chunks_are_the_balanced_chunks_in_chunk_order() -> None:
    rng = np.random.default_rng(2)
    indptr = np.concatenate([[0], np.cumsum(rng.integers(0, 40, size=300))]).astype(np.int64)
    bounds = balanced_chunks(indptr, 16)
    chunks = ordered_chunks(indptr, 16)
    order = chunk_order(len(bounds) - 1)
    np.testing.assert_array_equal(chunks[:, 0], bounds[order])
    np.testing.assert_array_equal(chunks[:, 1], bounds[order + 1])
    # together the chunks cover every row once
    covered = np.concatenate([np.arange(a, b) for a, b in chunks])
    np.testing.assert_array_equal(np.sort(covered), np.arange(300))


def test_predict_observed_and_residual_stats() -> None:
    rng = np.random.default_rng(5)
    U = rng.standard_normal((4, 3))
    V = rng.standard_normal((6, 3))
    bu = rng.normal(size=4)
    bi = rng.normal(size=6)
    users = np.array([0, 1, 3, 3, 2], dtype=np.int32)
    items = np.array([5, 0, 1, 2, 2], dtype=np.int32)
    out = np.empty(5)
    predict_observed(users, items, U, V, 3.0, bu, bi, out)
    expected = 3.0 + bu[users] + bi[items] + np.sum(U[users] * V[items], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    values = rng.normal(size=5)
    sse, diff2, norm2 = residual_stats(values, out, np.ones(5))
    assert sse == pytest.approx(np.sum((values - out) ** 2))
    assert diff2 == pytest.approx(np.sum((out - 1) ** 2))
    assert norm2 == pytest.approx(5.0)
    assert squared_error(users, items, values, U, V, 3.0, bu, bi) == pytest.approx(sse)


@pytest.mark.parametrize("parallel", [False, True])
def test_sweep_writes_fitted_values_in_csr_order(parallel: bool) -> None:
    rng = np.random.default_rng(13)
    d = 4
    indptr, indices, data = _random_csr(30, 25, 0.3, rng)
    Y = rng.standard_normal((25, d))
    offset = rng.normal(size=25)
    reg = np.full(d, 0.7)
    X = np.empty((30, d))
    under = np.zeros(30, dtype=bool)
    pred = np.full(indices.size, np.nan)
    als_half_sweep(indptr, indices, data, Y, offset, reg, X, under, parallel=parallel, pred_out=pred)
    rows = np.repeat(np.arange(30), np.diff(indptr))
    np.testing.assert_allclose(pred, offset[indices] + np.sum(Y[indices] * X[rows], axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="pred_out"):
        als_half_sweep(indptr, indices, data, Y, offset, reg, X, under, pred_out=np.empty(3))


def test_mle_rank_deficient_row_falls_back_to_min_norm() -> None:
    # two ratings on items with identical factor rows: Y Y^T is singular, so the dual
    # Cholesky cannot be used; the eigen-decomposition path gives pinv(Y) t
    indptr = np.array([0, 2], dtype=np.int64)
    indices = np.array([0, 1], dtype=np.int32)
    data = np.array([2.0, 4.0])
    Y = np.array([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0]])
    X = np.empty((1, 3))
    under = np.zeros(1, dtype=bool)
    als_half_sweep(indptr, indices, data, Y, np.zeros(2), np.zeros(3), X, under)
    np.testing.assert_allclose(X[0], np.linalg.pinv(Y) @ data, atol=1e-10)
    np.testing.assert_allclose(X[0], [0.6, 1.2, 0.0], atol=1e-10)  # (3 / 5) * (1, 2, 0)
    assert under[0]
