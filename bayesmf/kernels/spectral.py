"""A spectral starting point for the alternating solvers: biases, then a truncated SVD.

From random small factors ALS spends its first sweeps finding the large-scale structure that
a truncated SVD of the residual matrix gives directly. :func:`spectral_start` computes

1. the regularised bias baseline, ``b_u`` and ``b_i`` by a few alternating ridge passes
   (:func:`bayesmf.kernels.als.bias_passes`, the kernel of
   :class:`~bayesmf.models.baselines.BiasBaseline`);
2. the top-``k`` singular triplets of the sparse residual matrix ``R - mu - b_u - b_i``
   (unobserved entries are zeros) by randomized subspace iteration
   (:func:`truncated_svd`, Halko, Martinsson & Tropp 2011, Algorithm 4.4);
3. factors ``U = P sqrt(s)``, ``V = Q sqrt(s)``, each singular value first shrunk by the
   ridge penalty (``s - sqrt(lambda_u lambda_v)``, floored at a small fraction of ``s``), which
   is the ridge solution of the fully observed problem.

Its cost is a few sparse products with ``k + oversample`` columns, a fraction of one ALS
sweep's ``nnz * k^2``. It is :class:`~bayesmf.models.pmf.PMF`'s default start: on
ml-latest-small it saves about a third of the sweeps; on synthetic data from the model itself
it is about even with a small random start (``benchmarks/bench_init.py``). The zero-filled
residual matrix weights each row by how often it is observed, so with very uneven activity its
top singular subspace leans towards the most active users and items; the sweeps correct that.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from bayesmf.data import SparseRows
from bayesmf.kernels.als import bias_passes
from bayesmf.kernels.linalg import cholesky_inplace, mirror_lower, solve_lower


@njit(cache=True)
def _residuals(indptr, indices, data, mu, bu, bi):  # noqa: ANN001, ANN202
    out = np.empty(data.shape[0])
    for u in range(indptr.shape[0] - 1):
        for p in range(indptr[u], indptr[u + 1]):
            out[p] = data[p] - mu - bu[u] - bi[indices[p]]
    return out


@njit(cache=True, fastmath=True, parallel=True)
def csr_times_dense(
    indptr: np.ndarray, indices: np.ndarray, vals: np.ndarray, X: np.ndarray, out: np.ndarray
) -> None:
    """``out = A X`` for ``A`` in CSR form, one output row per parallel iteration."""
    p = X.shape[1]
    for r in prange(indptr.shape[0] - 1):
        for a in range(p):
            out[r, a] = 0.0
        for e in range(indptr[r], indptr[r + 1]):
            c = indices[e]
            v = vals[e]
            for a in range(p):
                out[r, a] += v * X[c, a]


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
    csr_times_dense(t_indptr, t_indices, t_vals, Q, tmp)
    csr_times_dense(indptr, indices, vals, tmp, out)


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
    # the iterations only need a basis that is nearly orthonormal (the next product and
    # orthonormalisation absorb the error): one Cholesky-QR pass; the last block gets two
    Qs = _orthonormal_columns(rng.standard_normal((n_rows, p)), passes=1)
    tmp = np.empty((n_cols, p))
    out = np.empty((n_rows, p))
    n_iter = max(n_iter, 1)
    for t in range(n_iter):
        gram_apply(rows.indptr, rows.indices, vals, cols.indptr, cols.indices, t_vals, Qs, tmp,
                   out)
        Qs = _orthonormal_columns(out, passes=2 if t == n_iter - 1 else 1)
    gram_apply(rows.indptr, rows.indices, vals, cols.indptr, cols.indices, t_vals, Qs, tmp, out)
    # tmp = A^T Qs (n_cols x p): the SVD of its transpose through the p x p Gram matrix
    # tmp^T tmp = Qs^T A A^T Qs = Qs^T out, a product over the shorter side's rows
    evals, W = np.linalg.eigh(_cross(Qs, out))
    order = np.argsort(evals)[::-1][:k]
    s = np.sqrt(np.maximum(evals[order], 0.0))
    W = np.ascontiguousarray(W[:, order])
    safe = np.where(s > 0, s, 1.0)
    return _times_small(Qs, W), s, _times_small(tmp, W) / safe


# The dense steps below are tiny (p = k + oversample columns) and run in numba rather than
# through NumPy's BLAS: a multithreaded BLAS call between numba's parallel regions leaves its
# worker threads spinning on the cores numba's threads need. Measured on this 2-core machine
# with two OpenBLAS threads: numpy.linalg.qr between the sparse passes made a pass 3.8 ms
# instead of 0.4 ms, and a spectral-start fit of ml-latest-small took 115 ms instead of 38 ms.


@njit(cache=True)
def _gram(X: np.ndarray) -> np.ndarray:
    """``X^T X`` for a tall, thin ``X``."""
    n, p = X.shape
    G = np.zeros((p, p))
    for r in range(n):
        for a in range(p):
            xa = X[r, a]
            for c in range(a + 1):
                G[a, c] += xa * X[r, c]
    mirror_lower(G)
    return G


@njit(cache=True)
def _cross(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``X^T Y`` for two tall, thin blocks with the same number of rows, symmetrised.

    Used where ``X^T Y`` is known to be symmetric (``Qs^T A A^T Qs``); averaging with its
    transpose removes the rounding asymmetry before ``eigh``.
    """
    p = X.shape[1]
    G = np.zeros((p, p))
    for r in range(X.shape[0]):
        for a in range(p):
            xa = X[r, a]
            for c in range(p):
                G[a, c] += xa * Y[r, c]
    for a in range(p):
        for c in range(a):
            m = 0.5 * (G[a, c] + G[c, a])
            G[a, c] = m
            G[c, a] = m
    return G


@njit(cache=True, parallel=True)
def _times_small(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``X W`` for a tall ``X`` and a small ``W`` (rows in parallel)."""
    out = np.zeros((X.shape[0], W.shape[1]))
    for r in prange(X.shape[0]):
        for a in range(X.shape[1]):
            xa = X[r, a]
            for c in range(W.shape[1]):
                out[r, c] += xa * W[a, c]
    return out


@njit(cache=True)
def _cholesky_qr(X: np.ndarray, passes: int) -> bool:
    """Orthonormalise the columns of ``X`` in place by ``passes`` Cholesky-QR passes.

    One pass leaves an orthogonality error of about ``cond(X)^2`` times the machine epsilon;
    two passes (Cholesky-QR2) are orthonormal to rounding, which is checked (to 1e-8).
    Returns ``False`` when ``X`` is too close to rank deficient for it (a Cholesky pivot fails,
    or, with two passes, the result is not orthonormal); ``X`` is then overwritten with
    garbage.
    """
    p = X.shape[1]
    for _ in range(passes):
        G = _gram(X)
        if not cholesky_inplace(G):
            return False
        for r in range(X.shape[0]):
            solve_lower(G, X[r], X[r])
    if passes < 2:
        return True
    G = _gram(X)
    for a in range(p):
        for c in range(p):
            if abs(G[a, c] - (1.0 if a == c else 0.0)) > 1e-8:
                return False
    return True


def _orthonormal_columns(X: np.ndarray, passes: int = 2) -> np.ndarray:
    """A basis of the column space of ``X`` by Cholesky-QR, else Householder QR.

    ``passes=2`` (Cholesky-QR2) gives an orthonormal basis; ``passes=1`` a cheaper, nearly
    orthonormal one (see :func:`_cholesky_qr`).
    """
    Q = np.array(X, dtype=np.float64, order="C")
    if _cholesky_qr(Q, passes):
        return Q
    return np.ascontiguousarray(np.linalg.qr(X)[0])


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
    bu, bi = np.zeros(nu), np.zeros(ni)
    if biases:
        bias_passes(by_user.indptr, by_user.indices, by_user.data, by_item.indptr,
                    by_item.indices, by_item.data, mu, lambda_bias, lambda_bias, bu, bi, 2)
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

