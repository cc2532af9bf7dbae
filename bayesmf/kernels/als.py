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

from bayesmf.kernels._jit import serial_and_parallel
from bayesmf.kernels.linalg import (
    cholesky_inplace,
    cholesky_solve,
    latent_mean,
    ldl_solve,
    min_norm_solve,
    mirror_lower,
    row_normal_equations,
)

#: relative eigenvalue cut-off for the minimum-norm solve
RCOND = 1e-10

#: rows are split into this many chunks of balanced work for the parallel loop
N_CHUNKS = 64


@njit(cache=True, nogil=True, fastmath=True)
def _dual_ridge_solve(
    row: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    reg_inv: np.ndarray,
    zero_reg: bool,
    K: np.ndarray,
    alpha: np.ndarray,
    x: np.ndarray,
    work: np.ndarray,
) -> bool:
    """Solve a row with ``n < d`` ratings through its ``n x n`` dual system.

    Ridge (``reg > 0``): ``(D + Y^T Y) x = Y^T t`` has the solution ``x = D^-1 Y^T alpha`` with
    ``(I + Y D^-1 Y^T) alpha = t`` (push-through identity, ``D = diag(reg)``; ``reg_inv`` holds
    ``1 / reg``); a single rating has the closed form ``x = D^-1 y t / (1 + y^T D^-1 y)``.
    Minimum norm (``zero_reg``): ``x = Y^T alpha`` with ``(Y Y^T) alpha = t`` is ``pinv(Y) t``
    when ``Y`` has full row rank. Either way an ``n x n`` Cholesky instead of ``d x d``, and
    ``n^2 d`` work instead of ``n d^2``. Returns False if the dual system is not numerically
    positive definite (for ``zero_reg``: if a pivot falls below ``RCOND`` times the largest),
    and the caller falls back to the primal / eigen-decomposition path.
    """
    d = Y.shape[1]
    p0 = indptr[row]
    n = indptr[row + 1] - p0
    if n == 1 and not zero_reg:  # closed form: x = D^-1 y t / (1 + y^T D^-1 y)
        j = indices[p0]
        q = 1.0
        for a in range(d):
            q += Y[j, a] * Y[j, a] * reg_inv[a]
        t = (data[p0] - offset[j]) / q
        for a in range(d):
            x[a] = Y[j, a] * reg_inv[a] * t
        return True
    Kn = K[:n, :n]
    for q in range(n):
        jq = indices[p0 + q]
        alpha[q] = data[p0 + q] - offset[jq]
        for s in range(q + 1):
            js = indices[p0 + s]
            acc = 0.0
            if zero_reg:
                for a in range(d):
                    acc += Y[jq, a] * Y[js, a]
            else:
                for a in range(d):
                    acc += Y[jq, a] * Y[js, a] * reg_inv[a]
            Kn[q, s] = acc
            Kn[s, q] = acc
        if not zero_reg:
            Kn[q, q] += 1.0
    kmax = 0.0
    for q in range(n):
        kmax = max(kmax, Kn[q, q])
    an = work[:n]
    if not ldl_solve(Kn, alpha[:n], an, work[n:2 * n]):
        return False
    if zero_reg:
        for q in range(n):  # pivots of L D L^T: reject numerically rank-deficient rows
            if Kn[q, q] <= RCOND * kmax:
                return False
    for a in range(d):
        x[a] = 0.0
    for q in range(n):
        jq = indices[p0 + q]
        for a in range(d):
            x[a] += Y[jq, a] * an[q]
    if not zero_reg:
        for a in range(d):
            x[a] *= reg_inv[a]
    return True


@njit(cache=True)
def balanced_chunks(indptr: np.ndarray, n_chunks: int) -> np.ndarray:
    """Row boundaries splitting a CSR structure into ``<= n_chunks`` runs of similar work.

    Work per row is taken as ``count + 16`` (entries plus a fixed per-row solve cost).
    """
    n = indptr.shape[0] - 1
    total = indptr[n] + 16.0 * n
    bounds = np.empty(n_chunks + 1, dtype=np.int64)
    bounds[0] = 0
    m = 1
    r = 0
    for c in range(1, n_chunks):
        target = total * c / n_chunks
        while r < n and indptr[r] + 16.0 * r < target:
            r += 1
        if r > bounds[m - 1]:
            bounds[m] = r
            m += 1
    if bounds[m - 1] < n or m == 1:
        bounds[m] = n
        m += 1
    return bounds[:m].copy()


@njit(cache=True)
def chunk_order(n_chunks: int) -> np.ndarray:
    """The order in which a ``prange`` loop should visit ``n_chunks`` chunks: bit-reversed.

    Numba's parallel loops split their iterations into one contiguous block per thread, so in
    index order a thread gets a contiguous run of chunks. :func:`balanced_chunks` only
    estimates the work of a row, and the estimate's error drifts along the rows (on
    ml-latest-small the later items are mostly rarely rated ones, whose small solves cost less
    than it assumes), which left one thread with clearly less work. In bit-reversed
    (van der Corput) order ``0, n/2, n/4, 3n/4, ...`` every contiguous block of the loop is
    spread evenly over the rows, whatever the number of threads (with two threads: the even
    chunks and the odd ones). On ml-latest-small the threaded item half-sweep took 1.65-1.70 ms
    instead of 2.1 ms. Rows are independent, so the results do not depend on the order.
    """
    bits = 0
    while (1 << bits) < n_chunks:
        bits += 1
    order = np.empty(n_chunks, dtype=np.int64)
    m = 0
    for i in range(1 << bits):
        rev = 0
        for b in range(bits):
            if i & (1 << b):
                rev |= 1 << (bits - 1 - b)
        if rev < n_chunks:
            order[m] = rev
            m += 1
    return order


@njit(cache=True)
def ordered_chunks(indptr: np.ndarray, n_chunks: int) -> np.ndarray:
    """The row chunks a parallel row kernel works through, in the order to visit them.

    :func:`balanced_chunks` boundaries visited in :func:`chunk_order`: row ``it`` of the
    result is the ``[start, end)`` of the chunk that iteration ``it`` of a ``prange`` loop
    takes, so every kernel splits and orders its rows the same way in one call.
    """
    bounds = balanced_chunks(indptr, n_chunks)
    order = chunk_order(bounds.shape[0] - 1)
    out = np.empty((order.shape[0], 2), dtype=np.int64)
    for it in range(order.shape[0]):
        out[it, 0] = bounds[order[it]]
        out[it, 1] = bounds[order[it] + 1]
    return out


def _als_half_sweep_impl(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    reg: np.ndarray,
    X_out: np.ndarray,
    underdetermined_out: np.ndarray,
    pred_out: np.ndarray,
    design_out: np.ndarray,
) -> None:
    """Body of :func:`als_half_sweep`, compiled twice (serial and parallel)."""
    d = Y.shape[1]
    any_zero_reg = False
    all_zero_reg = True
    for a in range(d):
        if reg[a] <= 0.0:
            any_zero_reg = True
        else:
            all_zero_reg = False
    do_pred = pred_out.shape[0] > 0
    n_design = design_out.shape[1] if design_out.shape[0] > 0 else 0
    reg_inv = np.zeros(d)
    if not any_zero_reg:
        for a in range(d):
            reg_inv[a] = 1.0 / reg[a]
    chunks = ordered_chunks(indptr, N_CHUNKS)
    for ch in prange(chunks.shape[0]):
        A = np.empty((d, d))
        b = np.empty(d)
        x = np.empty(d)
        work = np.empty(2 * d)
        for r in range(chunks[ch, 0], chunks[ch, 1]):
            count = indptr[r + 1] - indptr[r]
            fallback = any_zero_reg and count < d
            solved = False
            if count == 0 and not any_zero_reg:
                for a in range(d):  # no data: the ridge solution is the prior mean
                    x[a] = 0.0
                solved = True
            elif 0 < count < d and (all_zero_reg or not any_zero_reg):
                solved = _dual_ridge_solve(r, indptr, indices, data, Y, offset, reg_inv,
                                           all_zero_reg, A, b, x, work)
            if not solved and not fallback:
                row_normal_equations(r, indptr, indices, data, Y, offset, A, b)
                for a in range(d):
                    A[a, a] += reg[a]
                if ldl_solve(A, b, x, work):
                    solved = True
                else:
                    fallback = True
            if fallback and not solved:
                row_normal_equations(r, indptr, indices, data, Y, offset, A, b)
                for a in range(d):
                    A[a, a] += reg[a]
                min_norm_solve(A, b, x, RCOND)
            underdetermined_out[r] = fallback
            for a in range(d):
                X_out[r, a] = x[a]
            for a in range(n_design):
                design_out[r, a] = x[a]
            if do_pred:
                for p in range(indptr[r], indptr[r + 1]):
                    j = indices[p]
                    s = offset[j]
                    for a in range(d):
                        s += Y[j, a] * x[a]
                    pred_out[p] = s


@njit(cache=True)
def bias_passes(
    u_indptr: np.ndarray,
    u_indices: np.ndarray,
    u_data: np.ndarray,
    i_indptr: np.ndarray,
    i_indices: np.ndarray,
    i_data: np.ndarray,
    mu: float,
    lam_user: float,
    lam_item: float,
    bu: np.ndarray,
    bi: np.ndarray,
    n_pass: int,
) -> None:
    """Alternating ridge passes of the bias-only model, items first, updating ``bu, bi``.

    Each pass sets ``b_i = sum_u (r_ui - mu - b_u) / (lam_item + n_i)`` over the item's
    ratings and then ``b_u = sum_i (r_ui - mu - b_i) / (lam_user + n_u)``: the exact minimiser
    of ``sum (r - mu - b_u - b_i)^2 + lam_user ||b_u||^2 + lam_item ||b_i||^2`` in each block
    given the other. A row with no ratings and no penalty gets 0.
    """
    for _ in range(n_pass):
        _bias_pass(i_indptr, i_indices, i_data, mu, lam_item, bu, bi)
        _bias_pass(u_indptr, u_indices, u_data, mu, lam_user, bi, bu)


@njit(cache=True)
def _bias_pass(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    mu: float,
    lam: float,
    other: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[r] = sum_p (r_p - mu - other[j_p]) / (lam + n_r)`` over each CSR row (0 if empty
    and unpenalised): one side's half of :func:`bias_passes`."""
    for r in range(indptr.shape[0] - 1):
        s = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            s += data[p] - mu - other[indices[p]]
        n = indptr[r + 1] - indptr[r]
        out[r] = s / (lam + n) if lam + n > 0 else 0.0


_als_half_sweep_serial, _als_half_sweep_parallel = serial_and_parallel(
    _als_half_sweep_impl, "_als_half_sweep_serial", "_als_half_sweep_parallel"
)

_NO_PRED = np.empty(0)
_NO_DESIGN = np.empty((0, 0))

#: ``nnz * d^2`` from which :func:`als_half_sweep` runs in parallel by default
PARALLEL_MIN_WORK_ALS = 30_000_000


def als_half_sweep(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    reg: np.ndarray,
    X_out: np.ndarray,
    underdetermined_out: np.ndarray,
    parallel: bool | None = None,
    pred_out: np.ndarray | None = None,
    design_out: np.ndarray | None = None,
) -> None:
    """Solve every row's ridge system, writing the solutions into ``X_out``.

    Rows are processed in parallel in chunks of balanced work, with one set of work arrays
    per chunk (no per-row allocation). Each row builds its Gram matrix with
    :func:`~bayesmf.kernels.linalg.row_normal_equations` and solves it by Cholesky; a row with
    fewer ratings than unknowns and a positive penalty uses the equivalent, smaller dual system
    (:func:`_dual_ridge_solve`).

    Parameters
    ----------
    indptr, indices, data : ndarray
        CSR structure of this side (see :class:`bayesmf.data.SparseRows`).
    Y : ndarray, shape (n_other, d)
        Fixed factors of the other side (C-contiguous float64).
    offset : ndarray, shape (n_other,)
        Subtracted from each rating before the solve.
    reg : ndarray, shape (d,)
        Diagonal ridge penalty per coordinate (0 for MLE).
    X_out : ndarray, shape (n_rows, d)
        Output solutions.
    underdetermined_out : ndarray of bool, shape (n_rows,)
        Set to True for rows solved by the minimum-norm fallback (fewer informative ratings
        than unknowns with no ridge penalty to make the system definite).
    parallel : bool or None
        Run the rows on all numba threads (True), on one (False), or decide from the amount of
        work (None: parallel from ``nnz * d^2 >= PARALLEL_MIN_WORK_ALS``). On a small problem
        or a busy machine the serial loop avoids thread start-up and scheduling stalls.
    pred_out : ndarray, shape (nnz,), optional
        If given, also write the fitted value of every entry in CSR order,
        ``pred_out[p] = offset[j] + Y[j] . X_out[r]`` (the model's prediction of rating ``p``
        after this half-sweep), while the rows are still in cache.
    design_out : ndarray, shape (n_rows, d), optional
        If given, also write the first ``d - 1`` coordinates of each solution (the factors)
        into it, leaving its last column alone: the design matrix of the next half-sweep, whose
        last column is the ones that multiply the bias.
    """
    d = Y.shape[1]
    if parallel is None:
        parallel = int(indptr[-1]) * d * d >= PARALLEL_MIN_WORK_ALS
    fn = _als_half_sweep_parallel if parallel else _als_half_sweep_serial
    if pred_out is None:
        pred_out = _NO_PRED
    elif pred_out.shape[0] != indices.shape[0]:
        raise ValueError("pred_out must have one entry per stored rating")
    design = design_columns(design_out, X_out.shape, "X_out")
    fn(indptr, indices, data, Y, offset, reg, X_out, underdetermined_out, pred_out, design)


def design_columns(design_out: np.ndarray | None, shape: tuple[int, ...], like: str) -> np.ndarray:
    """The factor columns of a design matrix a kernel should also write, checked.

    ``design_out`` (optional, same shape as the solutions ``like``) is the next half-sweep's
    design matrix: the kernel writes its first ``d - 1`` columns and leaves the last one, the
    ones that multiply the bias, alone. Returns that view, or an empty array for "none".
    """
    if design_out is None:
        return _NO_DESIGN
    if design_out.shape != shape:
        raise ValueError(f"design_out must have the shape of {like}")
    return design_out[:, : shape[1] - 1]


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


def _predict_observed_impl(users, items, U, V, mu, bu, bi, out):  # noqa: ANN001
    """Body of :func:`predict_observed`, compiled twice (serial and parallel)."""
    for p in prange(users.shape[0]):
        out[p] = latent_mean(users[p], items[p], U, V, mu, bu, bi)


_predict_observed_serial, _predict_observed_parallel = serial_and_parallel(
    _predict_observed_impl, "_predict_observed_serial", "_predict_observed_parallel",
    fastmath=True,
)


#: below this many multiply-adds the serial prediction loop beats thread start-up
PARALLEL_MIN_WORK = 4_000_000


def _predict_solutions_impl(users, items, Xu, Xv, k, mu, out):  # noqa: ANN001
    """Body of :func:`predict_solutions`, compiled twice (serial and parallel)."""
    biases = Xu.shape[1] > k
    for p in prange(users.shape[0]):
        u = users[p]
        i = items[p]
        s = mu
        if biases:
            s += Xu[u, k] + Xv[i, k]
        for a in range(k):
            s += Xu[u, a] * Xv[i, a]
        out[p] = s


_predict_solutions_serial, _predict_solutions_parallel = serial_and_parallel(
    _predict_solutions_impl, "_predict_solutions_serial", "_predict_solutions_parallel",
    fastmath=True,
)


def predict_solutions(
    users: np.ndarray,
    items: np.ndarray,
    Xu: np.ndarray,
    Xv: np.ndarray,
    k: int,
    mu: float,
    out: np.ndarray,
    parallel: bool | None = None,
) -> None:
    """``out[p] = mu + U[u] . V[i] (+ b_u + b_i)`` straight from the ALS solution rows.

    ``Xu`` and ``Xv`` are the solver's ``[factors, bias]`` rows: the first ``k`` columns are
    the factors and a ``k + 1``-th column, if present, the bias. Reading them in place avoids
    copying strided factor and bias views out first. ``parallel``: run on all numba threads
    (True), on one (False), or decide from the amount of work (None).
    """
    if Xu.shape[1] != Xv.shape[1] or not k <= Xu.shape[1] <= k + 1:
        raise ValueError("Xu and Xv must both have k or k + 1 columns")
    if parallel is None:
        parallel = users.shape[0] * max(1, k) >= PARALLEL_MIN_WORK
    if parallel:
        _predict_solutions_parallel(users, items, Xu, Xv, int(k), float(mu), out)
    else:
        _predict_solutions_serial(users, items, Xu, Xv, int(k), float(mu), out)


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
    """``out[p] = mu + bu[u] + bi[i] + U[u] . V[i]`` for each pair ``p = (users[p], items[p])``.

    Runs a serial numba loop for small inputs and a parallel one for large inputs.
    """
    if users.shape[0] * max(1, U.shape[1]) >= PARALLEL_MIN_WORK:
        _predict_observed_parallel(users, items, U, V, float(mu), bu, bi, out)
    else:
        _predict_observed_serial(users, items, U, V, float(mu), bu, bi, out)


@njit(parallel=True, cache=True)
def row_covariances(
    rows: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    reg: np.ndarray,
    scale: float,
    cov_out: np.ndarray,
) -> None:
    """Conditional (per-row) Laplace covariances ``scale * (Y_r^T Y_r + diag(reg))^-1``.

    For MAP with noise variance ``sigma^2`` pass ``scale = sigma^2``: ``cov_out[t]`` is then the
    covariance of the Gaussian conditional posterior of row ``rows[t]`` given the other side's
    factors ``Y`` -- the same system whose mode :func:`als_half_sweep` computes (and which a
    Gibbs step samples). A singular system (only possible with a zero penalty) gets the
    pseudo-inverse.

    Parameters
    ----------
    rows : ndarray of int, shape (m,)
        Which rows to compute.
    indptr, indices, data, Y, offset, reg
        As in :func:`als_half_sweep`.
    scale : float
        Multiplies the inverse (``sigma^2``).
    cov_out : ndarray, shape (m, d, d)
        Output covariances.
    """
    d = Y.shape[1]
    for t in prange(rows.shape[0]):
        A = np.empty((d, d))
        b = np.empty(d)
        x = np.empty(d)
        row_normal_equations(rows[t], indptr, indices, data, Y, offset, A, b)
        for a in range(d):
            A[a, a] += reg[a]
        B = A.copy()
        if cholesky_inplace(A):
            for c in range(d):
                for a in range(d):
                    b[a] = 0.0
                b[c] = 1.0
                cholesky_solve(A, b, x)
                for a in range(d):
                    cov_out[t, a, c] = scale * x[a]
        else:
            w, Q = np.linalg.eigh(B)
            wmax = max(w.max(), 0.0)
            for a in range(d):
                for c in range(d):
                    s = 0.0
                    for m in range(d):
                        if w[m] > RCOND * wmax:
                            s += Q[a, m] * Q[c, m] / w[m]
                    cov_out[t, a, c] = scale * s


@njit(parallel=True, cache=True)
def implicit_half_sweep(
    indptr: np.ndarray,
    indices: np.ndarray,
    conf: np.ndarray,
    Y: np.ndarray,
    YtY: np.ndarray,
    reg: float,
    X_out: np.ndarray,
) -> None:
    """One half-sweep of implicit-feedback ALS (Hu, Koren & Volinsky, 2008).

    Every row ``r`` solves ``(Y^T C_r Y + reg I) x_r = Y^T C_r p_r`` where the preference
    ``p = 1`` on the stored entries and 0 elsewhere, and the confidence ``c = conf[p]`` on the
    stored entries and 1 elsewhere. Using ``Y^T C_r Y = Y^T Y + sum_j (c_j - 1) y_j y_j^T``, only
    the stored entries are visited.

    Parameters
    ----------
    indptr, indices : ndarray
        CSR structure of the observed (user, item) pairs of this side.
    conf : ndarray, shape (nnz,)
        Confidence of each stored entry (e.g. ``1 + alpha * count``), in CSR order.
    Y : ndarray, shape (n_other, d)
        Fixed factors of the other side.
    YtY : ndarray, shape (d, d)
        ``Y.T @ Y``, computed once per half-sweep.
    reg : float
        Ridge penalty (> 0).
    X_out : ndarray, shape (n_rows, d)
        Output solutions.
    """
    d = Y.shape[1]
    chunks = ordered_chunks(indptr, N_CHUNKS)
    for ch in prange(chunks.shape[0]):
        A = np.empty((d, d))
        b = np.empty(d)
        x = np.empty(d)
        for r in range(chunks[ch, 0], chunks[ch, 1]):
            for a in range(d):
                b[a] = 0.0
                for c in range(d):
                    A[a, c] = YtY[a, c]
            for p in range(indptr[r], indptr[r + 1]):
                j = indices[p]
                cj = conf[p]
                w = cj - 1.0
                for a in range(d):
                    ya = Y[j, a]
                    b[a] += cj * ya
                    wa = w * ya
                    for c in range(a + 1):
                        A[a, c] += wa * Y[j, c]
            mirror_lower(A)
            for a in range(d):
                A[a, a] += reg
            if cholesky_inplace(A):
                cholesky_solve(A, b, x)
            else:  # not reachable with reg > 0 and conf >= 1, kept for safety
                for a in range(d):
                    x[a] = 0.0
            for a in range(d):
                X_out[r, a] = x[a]
