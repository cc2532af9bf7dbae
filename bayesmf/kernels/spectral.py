"""A spectral starting point for the alternating solvers: biases, then a truncated SVD.

From random small factors ALS spends its first sweeps finding the large-scale structure that
a truncated SVD of the residual matrix gives directly. :func:`spectral_start` computes

1. the regularised bias baseline, ``b_u`` and ``b_i`` by a few alternating ridge passes
   (:func:`bias_passes`);
2. the top-``k`` singular triplets of the sparse residual matrix ``R - mu - b_u - b_i``
   (unobserved entries are zeros) by randomized subspace iteration
   (:func:`truncated_svd`, Halko, Martinsson & Tropp 2011, Algorithm 4.4);
3. factors ``U = P sqrt(s)``, ``V = Q sqrt(s)``, each singular value first shrunk by the
   ridge penalty (``s - sqrt(lambda_u lambda_v)``, floored at a small fraction of ``s``), which
   is the ridge solution of the fully observed problem.

Its cost is a few sparse products with ``k + oversample`` columns, a fraction of one ALS
sweep's ``nnz * k^2``. Whether it saves sweeps depends on the data: the zero-filled residual
matrix weights each row by how often it is observed, so with very uneven activity its top
singular subspace leans towards the most active users and items, and ALS can take longer to
turn away from it than to grow factors from a small random start (see ``PMF(init=...)``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from bayesmf.data import SparseRows


@njit(cache=True)
def bias_passes(
    u_indptr: np.ndarray,
    u_indices: np.ndarray,
    u_data: np.ndarray,
    i_indptr: np.ndarray,
    i_indices: np.ndarray,
    i_data: np.ndarray,
    mu: float,
    lam: float,
    n_pass: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Regularised bias baseline by alternating ridge passes, items first.

    Each pass sets ``b_i = sum_u (r_ui - mu - b_u) / (lam + n_i)`` over the item's ratings and
    then ``b_u`` likewise, the exact minimiser of ``sum (r - mu - b_u - b_i)^2 +
    lam (||b_u||^2 + ||b_i||^2)`` in each block given the other.

    Returns
    -------
    (b_user, b_item) : tuple of ndarray
    """
    nu = u_indptr.shape[0] - 1
    ni = i_indptr.shape[0] - 1
    bu = np.zeros(nu)
    bi = np.zeros(ni)
    for _ in range(n_pass):
        for i in range(ni):
            s = 0.0
            for p in range(i_indptr[i], i_indptr[i + 1]):
                s += i_data[p] - mu - bu[i_indices[p]]
            n = i_indptr[i + 1] - i_indptr[i]
            bi[i] = s / (lam + n) if lam + n > 0 else 0.0
        for u in range(nu):
            s = 0.0
            for p in range(u_indptr[u], u_indptr[u + 1]):
                s += u_data[p] - mu - bi[u_indices[p]]
            n = u_indptr[u + 1] - u_indptr[u]
            bu[u] = s / (lam + n) if lam + n > 0 else 0.0
    return bu, bi


@njit(cache=True)
def _residuals(indptr, indices, data, mu, bu, bi):  # noqa: ANN001, ANN202
    out = np.empty(data.shape[0])
    for u in range(indptr.shape[0] - 1):
        for p in range(indptr[u], indptr[u + 1]):
            out[p] = data[p] - mu - bu[u] - bi[indices[p]]
    return out


@njit(cache=True, fastmath=True, parallel=True)
def gram_apply(
    indptr: np.ndarray,
    indices: np.ndarray,
    vals: np.ndarray,
    t_indptr: np.ndarray,
    t_indices: np.ndarray,
    t_vals: np.ndarray,
    Q: np.ndarray,
    tmp: np.ndarray,
    out: np.ndarray,
) -> None:
    """``tmp = A^T Q`` and ``out = A tmp = A A^T Q``, both as row gathers in parallel.

    ``(indptr, indices, vals)`` is ``A`` in CSR form (``n_rows x n_cols``) and
    ``(t_indptr, t_indices, t_vals)`` is ``A^T`` in CSR form.
    """
    p = Q.shape[1]
    for c in prange(t_indptr.shape[0] - 1):
        for a in range(p):
            tmp[c, a] = 0.0
        for e in range(t_indptr[c], t_indptr[c + 1]):
            r = t_indices[e]
            v = t_vals[e]
            for a in range(p):
                tmp[c, a] += v * Q[r, a]
    for r in prange(indptr.shape[0] - 1):
        for a in range(p):
            out[r, a] = 0.0
        for e in range(indptr[r], indptr[r + 1]):
            c = indices[e]
            v = vals[e]
            for a in range(p):
                out[r, a] += v * tmp[c, a]


def truncated_svd(
    rows: SparseRows,
    vals: np.ndarray,
    cols: SparseRows,
    t_vals: np.ndarray,
    k: int,
    n_iter: int,
    oversample: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` singular triplets of a sparse matrix ``A`` by randomized subspace iteration.

    Iterates on ``A A^T`` from a random ``n_rows x (k + oversample)`` block, orthonormalising
    after each application (Halko, Martinsson & Tropp 2011, Algorithm 4.4), so each iteration
    costs two passes over the stored entries (:func:`gram_apply`) and one QR of an
    ``n_rows``-row block; pass the shorter side as the rows.

    Parameters
    ----------
    rows, cols : SparseRows
        The CSR structures of ``A`` and of ``A^T`` (their ``data`` is not used).
    vals, t_vals : ndarray
        The entries of ``A`` in the order of ``rows`` and of ``cols``.
    k, n_iter, oversample : int
        Rank, subspace iterations and extra columns.
    rng : numpy.random.Generator
        Source of the random starting block.

    Returns
    -------
    (P, s, Q) : left vectors (n_rows, m), singular values (m,), right vectors (n_cols, m), with
    ``m = min(k, n_rows)``.
    """
    n_rows = rows.indptr.shape[0] - 1
    n_cols = cols.indptr.shape[0] - 1
    p = min(k + oversample, n_rows)
    Qs, _ = np.linalg.qr(rng.standard_normal((n_rows, p)))
    tmp = np.empty((n_cols, p))
    out = np.empty((n_rows, p))
    for _ in range(max(n_iter, 1)):
        gram_apply(rows.indptr, rows.indices, vals, cols.indptr, cols.indices, t_vals,
                   np.ascontiguousarray(Qs), tmp, out)
        Qs, _ = np.linalg.qr(out)
    gram_apply(rows.indptr, rows.indices, vals, cols.indptr, cols.indices, t_vals,
               np.ascontiguousarray(Qs), tmp, out)
    # tmp = A^T Qs (n_cols x p): the SVD of its transpose through the p x p Gram matrix
    evals, W = np.linalg.eigh(tmp.T @ tmp)
    order = np.argsort(evals)[::-1][:k]
    s = np.sqrt(np.maximum(evals[order], 0.0))
    W = W[:, order]
    safe = np.where(s > 0, s, 1.0)
    return Qs @ W, s, (tmp @ W) / safe


def spectral_start(
    by_user: SparseRows,
    by_item: SparseRows,
    mu: float,
    k: int,
    biases: bool,
    lambda_bias: float,
    shrink: float,
    rng: np.random.Generator,
    n_iter: int = 3,
    oversample: int = 6,
    fill_scale: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Starting factors and biases for ALS from the bias baseline and a truncated SVD.

    Parameters
    ----------
    by_user, by_item : SparseRows
        The two CSR views of the training ratings.
    mu : float
        Global mean.
    k : int
        Rank.
    biases : bool
        Start the biases at the regularised bias baseline (else they are zero).
    lambda_bias : float
        Ridge penalty of the bias baseline.
    shrink : float
        Subtracted from each singular value before it is split between the two sides
        (``sqrt(lambda_u lambda_v)``; 0 for MLE); floored at ``1e-3 s``.
    rng : numpy.random.Generator
        Source of the random block of the subspace iteration.
    n_iter, oversample : int
        Subspace iterations and extra columns.
    fill_scale : float
        Standard deviation of the random Gaussian columns that fill the factors beyond the
        singular triplets available (``k`` larger than the shorter side).

    Returns
    -------
    (U, V, b_user, b_item) : factors (n_users, k), (n_items, k) and biases.
    """
    nu = by_user.indptr.shape[0] - 1
    ni = by_item.indptr.shape[0] - 1
    if biases:
        bu, bi = bias_passes(by_user.indptr, by_user.indices, by_user.data, by_item.indptr,
                             by_item.indices, by_item.data, mu, lambda_bias, 2)
    else:
        bu, bi = np.zeros(nu), np.zeros(ni)
    U = np.zeros((nu, k))
    V = np.zeros((ni, k))
    users_short = nu <= ni
    rows, cols = (by_user, by_item) if users_short else (by_item, by_user)
    row_b, col_b = (bu, bi) if users_short else (bi, bu)
    vals = _residuals(rows.indptr, rows.indices, rows.data, mu, row_b, col_b)
    t_vals = _residuals(cols.indptr, cols.indices, cols.data, mu, col_b, row_b)
    P, s, Q = truncated_svd(rows, vals, cols, t_vals, k, n_iter, oversample, rng)
    scale = np.sqrt(np.maximum(s - shrink, 1e-3 * s))
    m = s.shape[0]
    if users_short:
        U[:, :m], V[:, :m] = P * scale, Q * scale
    else:
        U[:, :m], V[:, :m] = Q * scale, P * scale
    if m < k:
        U[:, m:] = fill_scale * rng.standard_normal((nu, k - m))
        V[:, m:] = fill_scale * rng.standard_normal((ni, k - m))
    return U, V, bu, bi

