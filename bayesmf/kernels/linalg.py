"""Small dense linear-algebra kernels (numba) shared by the ALS solver and the Gibbs sampler.

The matrices here are ``d x d`` with ``d`` the rank (plus one with a bias column), typically
5..50. For such sizes a hand-written Cholesky beats a LAPACK call on per-call overhead, and it
can run inside a ``prange`` loop without the GIL.

Every function works in place on preallocated arrays and returns nothing but a success flag,
so the callers control all allocation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: fast-math flags that allow reassociation and fused multiply-adds but keep NaN/inf semantics,
#: so the positive-definiteness test ``not s > 0`` still catches NaN
_FAST = {"contract", "arcp", "reassoc"}


@njit(cache=True, nogil=True, inline="always")
def mirror_lower(A: np.ndarray) -> None:
    """Copy the strict lower triangle of the square ``A`` onto its upper triangle, in place.

    The accumulation loops here fill only the lower triangle of a symmetric matrix (half the
    work); this completes it for code that reads whole rows or columns.
    """
    for a in range(A.shape[0]):
        for c in range(a):
            A[c, a] = A[a, c]


@njit(cache=True, nogil=True, fastmath=True)
def row_normal_equations(
    row: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    A: np.ndarray,
    b: np.ndarray,
    mirror: bool = True,
) -> None:
    """Overwrite ``A`` and ``b`` with the Gram matrix and right-hand side of one CSR row.

    ``A = sum_j y_j y_j^T`` and ``b = sum_j y_j (r_j - offset[j])`` over the entries ``j`` of
    row ``row``; ``y_j = Y[indices[p]]``. This is the only place the per-row Gram matrix is
    built: the ALS row solve and the Gibbs row draw both start from it. Only the lower
    triangle is accumulated (``nnz * d * (d + 1) / 2`` multiply-adds), eight entries at a
    time (fewer loads and stores of ``A``), then mirrored.

    Parameters
    ----------
    row : int
        Row of the CSR structure (a user for the user half-sweep).
    indptr, indices, data : ndarray
        CSR structure of the ratings grouped by this side.
    Y : ndarray, shape (n_other, d)
        Factors of the other side (with a trailing column of ones when fitting a bias).
    offset : ndarray, shape (n_other,)
        Per-column amount subtracted from each rating (global mean + other side's bias).
    A : ndarray, shape (d, d)
        Output Gram matrix.
    b : ndarray, shape (d,)
        Output right-hand side.
    mirror : bool
        Copy the lower triangle into the upper one (``False``: only the lower triangle and
        the diagonal of ``A`` are written, enough for a Cholesky factorisation).
    """
    d = Y.shape[1]
    for a in range(d):
        b[a] = 0.0
        for c in range(a + 1):
            A[a, c] = 0.0
    p = indptr[row]
    end = indptr[row + 1]
    # eight entries at a time: each load/store of A carries eight multiply-adds
    while p + 8 <= end:
        j0 = indices[p]
        j1 = indices[p + 1]
        j2 = indices[p + 2]
        j3 = indices[p + 3]
        j4 = indices[p + 4]
        j5 = indices[p + 5]
        j6 = indices[p + 6]
        j7 = indices[p + 7]
        t0 = data[p] - offset[j0]
        t1 = data[p + 1] - offset[j1]
        t2 = data[p + 2] - offset[j2]
        t3 = data[p + 3] - offset[j3]
        t4 = data[p + 4] - offset[j4]
        t5 = data[p + 5] - offset[j5]
        t6 = data[p + 6] - offset[j6]
        t7 = data[p + 7] - offset[j7]
        for a in range(d):
            y0 = Y[j0, a]
            y1 = Y[j1, a]
            y2 = Y[j2, a]
            y3 = Y[j3, a]
            y4 = Y[j4, a]
            y5 = Y[j5, a]
            y6 = Y[j6, a]
            y7 = Y[j7, a]
            b[a] += y0 * t0 + y1 * t1 + y2 * t2 + y3 * t3 + y4 * t4 + y5 * t5 + y6 * t6 + y7 * t7
            for c in range(a + 1):
                A[a, c] += (
                    y0 * Y[j0, c] + y1 * Y[j1, c] + y2 * Y[j2, c] + y3 * Y[j3, c]
                    + y4 * Y[j4, c] + y5 * Y[j5, c] + y6 * Y[j6, c] + y7 * Y[j7, c]
                )
        p += 8
    while p < end:
        j = indices[p]
        t = data[p] - offset[j]
        for a in range(d):
            ya = Y[j, a]
            b[a] += ya * t
            for c in range(a + 1):
                A[a, c] += ya * Y[j, c]
        p += 1
    if mirror:
        mirror_lower(A)


@njit(cache=True, nogil=True, fastmath=_FAST)
def cholesky_inplace(A: np.ndarray) -> bool:
    """Overwrite the lower triangle of ``A`` with its Cholesky factor ``L`` (``A = L L^T``).

    Returns ``False`` (leaving ``A`` partly overwritten) if ``A`` is not numerically positive
    definite. The strict upper triangle is zeroed on success.
    """
    d = A.shape[0]
    for j in range(d):
        s = A[j, j]
        for k in range(j):
            s -= A[j, k] * A[j, k]
        if not s > 0.0:
            return False
        ljj = np.sqrt(s)
        A[j, j] = ljj
        for i in range(j + 1, d):
            s = A[i, j]
            for k in range(j):
                s -= A[i, k] * A[j, k]
            A[i, j] = s / ljj
    for i in range(d):
        for j in range(i + 1, d):
            A[i, j] = 0.0
    return True


@njit(cache=True, nogil=True, fastmath=_FAST)
def solve_lower(L: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """Solve ``L y = b`` by forward substitution (``out`` may alias ``b``)."""
    d = L.shape[0]
    for i in range(d):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * out[k]
        out[i] = s / L[i, i]


@njit(cache=True, nogil=True, fastmath=_FAST)
def solve_upper_t(L: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """Solve ``L^T x = b`` by back substitution (``out`` may alias ``b``)."""
    d = L.shape[0]
    for i in range(d - 1, -1, -1):
        s = b[i]
        for k in range(i + 1, d):
            s -= L[k, i] * out[k]
        out[i] = s / L[i, i]


@njit(cache=True, nogil=True, fastmath=_FAST)
def cholesky_solve(L: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """Solve ``L L^T x = b`` given the Cholesky factor ``L`` (``out`` may alias ``b``)."""
    solve_lower(L, b, out)
    solve_upper_t(L, out, out)


@njit(cache=True, nogil=True, fastmath=_FAST)
def min_norm_solve(A: np.ndarray, b: np.ndarray, out: np.ndarray, rcond: float) -> int:
    """Minimum-norm least-squares solution ``x = pinv(A) b`` of a symmetric PSD system.

    With ``A = Y^T Y`` and ``b = Y^T r`` this is exactly ``pinv(Y) r``, the minimum-norm
    solution of the (possibly underdetermined) least-squares problem ``Y x ~ r``.
    Eigenvalues below ``rcond * max(eigenvalue)`` are treated as zero.

    Returns
    -------
    int
        The numerical rank of ``A``.
    """
    d = A.shape[0]
    w, Q = np.linalg.eigh(A)
    wmax = 0.0
    for i in range(d):
        if w[i] > wmax:
            wmax = w[i]
    for i in range(d):
        out[i] = 0.0
    rank = 0
    if wmax <= 0.0:
        return 0
    for i in range(d):
        if w[i] > rcond * wmax:
            rank += 1
            s = 0.0
            for a in range(d):
                s += Q[a, i] * b[a]
            s /= w[i]
            for a in range(d):
                out[a] += Q[a, i] * s
    return rank


@njit(cache=True, nogil=True, fastmath=_FAST)
def ldl_solve(A: np.ndarray, b: np.ndarray, x: np.ndarray, dinv: np.ndarray) -> bool:
    """Solve the symmetric positive definite system ``A x = b`` by ``A = L D L^T`` in place.

    Square-root free and with one reciprocal per pivot (multiplications instead of
    divisions), which shortens the dependency chain that bounds small solves: ~25 % faster than
    :func:`cholesky_inplace` + :func:`cholesky_solve` at ``d = 11``. Overwrites the lower
    triangle of ``A`` with the unit factor ``L`` (diagonal: ``D``) and ``dinv`` with ``1 / D``.
    ``x`` must not alias ``b``.

    Returns
    -------
    bool
        False if a pivot is not positive (``A`` not numerically positive definite); ``x`` is
        then undefined.
    """
    n = A.shape[0]
    for j in range(n):
        s = A[j, j]
        for k in range(j):
            lk = A[j, k]
            s -= lk * lk * A[k, k]
        if not s > 0.0:
            return False
        A[j, j] = s
        r = 1.0 / s
        dinv[j] = r
        for i in range(j + 1, n):
            t = A[i, j]
            for k in range(j):
                t -= A[i, k] * A[j, k] * A[k, k]
            A[i, j] = t * r
    for i in range(n):
        t = b[i]
        for k in range(i):
            t -= A[i, k] * x[k]
        x[i] = t
    for i in range(n):
        x[i] *= dinv[i]
    for i in range(n - 1, -1, -1):
        t = x[i]
        for k in range(i + 1, n):
            t -= A[k, i] * x[k]
        x[i] = t
    return True


@njit(cache=True, nogil=True, inline="always")
def latent_mean(
    u: int, i: int, U: np.ndarray, V: np.ndarray, mu: float, bu: np.ndarray, bi: np.ndarray
) -> float:
    """The PMF latent mean ``mu + bu[u] + bi[i] + U[u] . V[i]`` of one (user, item) pair."""
    s = mu + bu[u] + bi[i]
    for a in range(U.shape[1]):
        s += U[u, a] * V[i, a]
    return s
