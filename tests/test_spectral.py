"""The spectral start of ALS: bias baseline, randomized truncated SVD, and what PMF gains from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmf.data import Ratings
from bayesmf.datasets import make_synthetic
from bayesmf.kernels.als import als_half_sweep, bias_passes
from bayesmf.kernels.objective import regularised_objective
from bayesmf.kernels.spectral import spectral_start, truncated_svd
from bayesmf.models.pmf import PMF


@pytest.fixture(scope="module")
def synth() -> Ratings:
    ratings, _ = make_synthetic(n_users=120, n_items=90, rank=4, density=0.3, noise_sd=0.3,
                                scale=None, random_state=3)
    return ratings


def _dense(rows, vals, n_cols: int) -> np.ndarray:
    A = np.zeros((rows.indptr.shape[0] - 1, n_cols))
    for r in range(A.shape[0]):
        sl = slice(rows.indptr[r], rows.indptr[r + 1])
        A[r, rows.indices[sl]] = vals[sl]
    return A


def test_bias_passes_reach_the_ridge_solution(synth: Ratings) -> None:
    """Many alternating passes converge to the exact minimiser of the ridge bias objective."""
    lam, mu = 2.0, synth.global_mean
    u, i = synth.by_user, synth.by_item
    bu, bi = np.zeros(synth.n_users), np.zeros(synth.n_items)
    bias_passes(u.indptr, u.indices, u.data, i.indptr, i.indices, i.data, mu, lam, lam, bu, bi,
                300)
    nu, ni = synth.n_users, synth.n_items
    X = np.zeros((synth.nnz, nu + ni))
    X[np.arange(synth.nnz), synth.users] = 1.0
    X[np.arange(synth.nnz), nu + synth.items] = 1.0
    exact = np.linalg.solve(X.T @ X + lam * np.eye(nu + ni), X.T @ (synth.values - mu))
    np.testing.assert_allclose(np.r_[bu, bi], exact, atol=1e-8)


def test_truncated_svd_matches_dense_svd(synth: Ratings) -> None:
    u, i = synth.by_user, synth.by_item
    rng = np.random.default_rng(0)
    A = _dense(u, u.data - synth.global_mean, synth.n_items)
    t_vals = _dense(i, i.data - synth.global_mean, synth.n_users)  # A^T, built the other way
    np.testing.assert_array_equal(A.T, t_vals)
    P, s, Q = truncated_svd(u, u.data - synth.global_mean, i, i.data - synth.global_mean, 5,
                            30, 6, rng)
    s_ref = np.linalg.svd(A, compute_uv=False)[:5]
    np.testing.assert_allclose(s, s_ref, rtol=1e-6)
    np.testing.assert_allclose(P.T @ P, np.eye(5), atol=1e-8)
    np.testing.assert_allclose(Q.T @ Q, np.eye(5), atol=1e-6)
    # A q_j = s_j p_j for each triplet
    np.testing.assert_allclose(A @ Q, P * s, atol=1e-6 * s[0])


def test_spectral_start_shapes_shrinkage_and_short_side(synth: Ratings) -> None:
    u, i = synth.by_user, synth.by_item
    U, V, bu, bi = spectral_start(u, i, synth.global_mean, 3, True, 1.0, 0.0,
                                  np.random.default_rng(0), n_iter=30)
    A = _dense(u, u.data, synth.n_items)
    R = A - synth.global_mean - bu[:, None] - bi[None, :]
    R[A == 0] = 0.0
    s_ref = np.linalg.svd(R, compute_uv=False)[:3]
    # U V^T is the best rank-3 approximation of the residual matrix: its singular values
    np.testing.assert_allclose(np.linalg.svd(U @ V.T, compute_uv=False)[:3], s_ref, rtol=1e-6)
    # with shrinkage each singular value loses `shrink`
    U2, V2, _, _ = spectral_start(u, i, synth.global_mean, 3, True, 1.0, 2.0,
                                  np.random.default_rng(0), n_iter=30)
    np.testing.assert_allclose(np.linalg.svd(U2 @ V2.T, compute_uv=False)[:3], s_ref - 2.0,
                               rtol=1e-6)
    # more users than items: the iteration runs on the item side
    flipped = Ratings(synth.items, synth.users, synth.values, synth.item_ids, synth.user_ids)
    Uf, Vf, buf, bif = spectral_start(flipped.by_user, flipped.by_item, synth.global_mean, 3,
                                      False, 1.0, 0.0, np.random.default_rng(0), n_iter=30)
    assert Uf.shape == (synth.n_items, 3) and Vf.shape == (synth.n_users, 3)
    assert not buf.any() and not bif.any()
    Un, Vn, _, _ = spectral_start(u, i, synth.global_mean, 3, False, 1.0, 0.0,
                                  np.random.default_rng(0), n_iter=30)
    np.testing.assert_allclose(Vf @ Uf.T, Un @ Vn.T, atol=1e-6)


def test_rank_above_the_short_side_fills_random_columns() -> None:
    r = Ratings(np.array([0, 0, 1, 1, 1]), np.array([0, 2, 1, 2, 3]),
                np.array([4.0, 3.0, 5.0, 2.0, 1.0]), pd.Index([10, 11]), pd.Index(list("abcd")))
    U, V, _, _ = spectral_start(r.by_user, r.by_item, r.global_mean, 4, True, 1.0, 0.0,
                                np.random.default_rng(0), fill_scale=0.1)
    assert U.shape == (2, 4) and V.shape == (4, 4)
    assert np.all(U[:, 2:] != 0.0) and np.all(V[:, 2:] != 0.0)
    fit = PMF(rank=4, random_state=0, max_iter=50).fit(r)
    assert np.isfinite(fit.history_["objective"]).all()


def test_pmf_spectral_and_random_starts_reach_the_same_map(synth: Ratings) -> None:
    """Both starts find the same optimum; with uniform sampling (where the zero-filled SVD is
    unbiased) the spectral one gets there in fewer sweeps."""
    fits = {init: PMF(rank=4, lambda_u=2.0, lambda_v=2.0, tol=1e-7, max_iter=2000, init=init,
                      random_state=1).fit(synth) for init in ("spectral", "random")}
    obj = {k: f.history_["objective"].iloc[-1] for k, f in fits.items()}
    assert obj["spectral"] == pytest.approx(obj["random"], rel=1e-7)
    pred = {k: f.predict_mean(synth.users, synth.items) for k, f in fits.items()}
    np.testing.assert_allclose(pred["spectral"], pred["random"], atol=1e-4)
    at_tol = {init: PMF(rank=4, lambda_u=2.0, lambda_v=2.0, init=init, random_state=s)
              .fit(synth).n_iter_ for init in ("spectral", "random") for s in range(3)}
    assert max(v for (k, v) in at_tol.items() if k == "spectral") < min(
        v for (k, v) in at_tol.items() if k == "random")


def test_regularised_objective_against_numpy() -> None:
    rng = np.random.default_rng(0)
    Xu, Xv = rng.normal(size=(7, 4)), rng.normal(size=(5, 4))
    got = regularised_objective(3.0, Xu, Xv, 3, 2.0, 0.5, 0.25)
    want = 0.5 * (3.0 + 2.0 * np.sum(Xu[:, :3] ** 2) + 0.5 * np.sum(Xv[:, :3] ** 2)
                  + 0.25 * (np.sum(Xu[:, 3] ** 2) + np.sum(Xv[:, 3] ** 2)))
    assert got == pytest.approx(want, rel=1e-12)
    assert regularised_objective(3.0, Xu[:, :3], Xv[:, :3], 3, 2.0, 0.5, 0.25) == pytest.approx(
        0.5 * (3.0 + 2.0 * np.sum(Xu[:, :3] ** 2) + 0.5 * np.sum(Xv[:, :3] ** 2)), rel=1e-12)


@pytest.mark.parametrize("parallel", [False, True])
def test_half_sweep_writes_the_next_design_matrix(synth: Ratings, parallel: bool) -> None:
    rng = np.random.default_rng(0)
    u = synth.by_user
    d = 4
    Y = np.c_[rng.normal(size=(synth.n_items, d - 1)), np.ones(synth.n_items)]
    X = np.empty((synth.n_users, d))
    design = np.full((synth.n_users, d), 7.0)
    under = np.zeros(synth.n_users, dtype=bool)
    als_half_sweep(u.indptr, u.indices, u.data, Y, np.zeros(synth.n_items), np.full(d, 1.0), X,
                   under, parallel=parallel, design_out=design)
    np.testing.assert_array_equal(design[:, : d - 1], X[:, : d - 1])
    assert np.all(design[:, d - 1] == 7.0)  # the ones column is the caller's
    with pytest.raises(ValueError, match="design_out"):
        als_half_sweep(u.indptr, u.indices, u.data, Y, np.zeros(synth.n_items), np.full(d, 1.0),
                       X, under, design_out=np.empty((3, d)))


def test_orthonormal_columns_including_the_rank_deficient_fallback() -> None:
    from bayesmf.kernels.spectral import _cholesky_qr, _orthonormal_columns

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    Q = _orthonormal_columns(X)  # Cholesky-QR2
    np.testing.assert_allclose(Q.T @ Q, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(Q @ (Q.T @ X), X, atol=1e-10)  # same column space
    # one pass: orthonormal to about cond(X)^2 * eps, the same column space
    Xc = X * np.array([1.0, 10.0, 100.0, 1.0, 1e3, 1.0])  # cond ~ 1e3
    Q1 = _orthonormal_columns(Xc, passes=1)
    assert np.abs(Q1.T @ Q1 - np.eye(6)).max() < 1e-8
    np.testing.assert_allclose(Q1 @ np.linalg.solve(Q1.T @ Q1, Q1.T @ Xc), Xc, atol=1e-8)
    X[:, 5] = 0.0  # a zero column: a zero Cholesky pivot, so Householder QR takes over
    for passes in (1, 2):
        assert not _cholesky_qr(X.copy(), passes)
        Q = _orthonormal_columns(X, passes=passes)
        np.testing.assert_allclose(Q.T @ Q, np.eye(6), atol=1e-12)
        np.testing.assert_allclose(Q @ (Q.T @ X), X, atol=1e-10)


def test_cross_is_the_symmetrised_product() -> None:
    from bayesmf.kernels.spectral import _cross

    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.normal(size=(40, 5)))
    M = rng.normal(size=(40, 40))
    S = M @ M.T
    np.testing.assert_allclose(_cross(Q, S @ Q), Q.T @ S @ Q, atol=1e-10)
    G = _cross(Q, S @ Q)
    assert np.array_equal(G, G.T)
