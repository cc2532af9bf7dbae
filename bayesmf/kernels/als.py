"""Alternating least squares: closed-form (ridge) row solves for PMF.

For each row ``r`` (a user in the user half-sweep) the MAP update solves

    (sum_j y_j y_j^T + diag(reg)) x_r = sum_j y_j (r_j - offset_j)

where ``y_j`` are the other side's factors of the entries in the row. With Gaussian priors
``reg = sigma^2 / sigma_prior^2`` (``lambda_u`` for user factors); ``reg = 0`` gives the MLE,
whose rows with fewer ratings than unknowns are underdetermined and are solved with the
minimum-norm least-squares solution instead.

A bias term is fitted in the same solve by appending a column of ones to ``Y`` (the bias is
then the last coordinate of ``x_r``) and passing the other side's bias plus the global mean
as ``offset``.

:func:`als_half_sweep` is the fast kernel (numba, parallel over rows); :func:`als_half_sweep_reference`
is a slow, obviously-correct NumPy version used by the tests to check it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from bayesmf.kernels.linalg import (
    cholesky_inplace,
    cholesky_solve,
    min_norm_solve,
    row_normal_equations,
)

#: relative eigenvalue cut-off for the minimum-norm solve
RCOND = 1e-10


@njit(parallel=True, cache=True)
def als_half_sweep(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    reg: np.ndarray,
    X_out: np.ndarray,
    underdetermined_out: np.ndarray,
) -> None:
    """Solve every row's ridge system, writing the solutions into ``X_out``.

    Parameters
    ----------
    indptr, indices, data : ndarray
        CSR structure of this side (see :class:`bayesmf.data.SparseRows`).
    Y : ndarray, shape (n_other, d)
        Fixed factors of the other side.
    offset : ndarray, shape (n_other,)
        Subtracted from each rating before the solve.
    reg : ndarray, shape (d,)
        Diagonal ridge penalty per coordinate (0 for MLE).
    X_out : ndarray, shape (n_rows, d)
        Output solutions.
    underdetermined_out : ndarray of bool, shape (n_rows,)
        Set to True for rows solved by the minimum-norm fallback (fewer informative ratings
        than unknowns with no ridge penalty to make the system definite).
    """
    n = indptr.shape[0] - 1
    d = Y.shape[1]
    any_zero_reg = False
    for a in range(d):
        if reg[a] <= 0.0:
            any_zero_reg = True
    for r in prange(n):
        A = np.empty((d, d))
        b = np.empty(d)
        x = np.empty(d)
        row_normal_equations(r, indptr, indices, data, Y, offset, A, b)
        count = indptr[r + 1] - indptr[r]
        fallback = any_zero_reg and count < d
        if not fallback:
            for a in range(d):
                A[a, a] += reg[a]
            if cholesky_inplace(A):
                cholesky_solve(A, b, x)
            else:
                fallback = True
                row_normal_equations(r, indptr, indices, data, Y, offset, A, b)
                for a in range(d):
                    A[a, a] += reg[a]
        if fallback:
            min_norm_solve(A, b, x, RCOND)
        underdetermined_out[r] = fallback
        for a in range(d):
            X_out[r, a] = x[a]


def als_half_sweep_reference(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    reg: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Slow NumPy reference of :func:`als_half_sweep` (one ``lstsq`` / ``solve`` per row).

    Returns
    -------
    X : ndarray, shape (n_rows, d)
    underdetermined : ndarray of bool, shape (n_rows,)
    """
    n = len(indptr) - 1
    d = Y.shape[1]
    X = np.zeros((n, d))
    under = np.zeros(n, dtype=bool)
    for r in range(n):
        sl = slice(indptr[r], indptr[r + 1])
        Yr = Y[indices[sl]]
        t = data[sl] - offset[indices[sl]]
        if np.any(reg <= 0) and Yr.shape[0] < d:
            # min-norm solution of the (penalised) least squares problem
            A = Yr.T @ Yr + np.diag(reg)
            X[r] = np.linalg.pinv(A, rcond=RCOND, hermitian=True) @ (Yr.T @ t)
            under[r] = True
        else:
            X[r] = np.linalg.solve(Yr.T @ Yr + np.diag(reg), Yr.T @ t)
    return X, under


@njit(parallel=True, cache=True)
def predict_observed(
    users: np.ndarray,
    items: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[p] = mu + bu[u] + bi[i] + U[u] . V[i]`` for each pair ``p = (users[p], items[p])``."""
    k = U.shape[1]
    for p in prange(users.shape[0]):
        u = users[p]
        i = items[p]
        s = mu + bu[u] + bi[i]
        for a in range(k):
            s += U[u, a] * V[i, a]
        out[p] = s
