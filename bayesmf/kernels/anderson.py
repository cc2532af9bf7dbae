"""Anderson acceleration of a fixed-point iteration ``x -> g(x)`` (type II, short memory).

One ALS sweep is a map ``g`` from the current factors to the next ones, and plain ALS iterates
``x_(t+1) = g(x_t)``. Its tail converges linearly and slowly (on ml-latest-small the change
per sweep falls by only 10 to 13 % a sweep). Anderson acceleration (Walker & Ni, 2011) keeps
the last ``m`` differences of the residuals ``f = g(x) - x`` and of the outputs ``g(x)``
and extrapolates

    x_(t+1) = g(x_t) - sum_j gamma_j dG_j,   gamma = argmin || f_t - sum_j gamma_j dF_j ||,

a secant step that removes the slowest linear modes. The callers keep a safeguard (restart
from the plain output when the objective rises), so this module is only the arithmetic: two
fused passes over flat state vectors and a tiny least-squares solve. ``m`` is small (2 by
default), so the history costs ``2 m`` state-sized vectors.

* :func:`anderson_record` -- store the newest ``dF``/``dG`` columns and return the Gram row
  and right-hand side of the least-squares problem, in one pass.
* :func:`anderson_coefficients` -- solve the ``m x m`` normal equations.
* :func:`anderson_extrapolate` -- form ``x_(t+1)`` from ``g`` and the ``dG`` columns.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from bayesmf.kernels._jit import serial_and_parallel
from bayesmf.kernels.als import design_columns

#: the state vectors are split into this many contiguous chunks for the parallel passes
N_CHUNKS = 32

#: relative ridge added to the normal equations of the coefficients (guards near-collinear
#: history columns)
GAMMA_RIDGE = 1e-10


def _record_impl(
    x: np.ndarray,
    g: np.ndarray,
    f_prev: np.ndarray,
    g_prev: np.ndarray,
    dF: np.ndarray,
    dG: np.ndarray,
    slot: int,
    valid: np.ndarray,
    partial: np.ndarray,
) -> None:
    """Body of :func:`anderson_record`, compiled twice (serial and parallel).

    Each chunk first writes the new columns with scalar accumulators for their own products,
    then takes the products with each older column in a separate tight loop (so every loop
    vectorises, instead of one loop over an array of accumulators).
    """
    n = x.shape[0]
    m = dF.shape[0]
    n_chunks = partial.shape[0]
    for ch in prange(n_chunks):
        lo = n * ch // n_chunks
        hi = n * (ch + 1) // n_chunks
        if slot < 0:
            for p in range(lo, hi):
                f_prev[p] = g[p] - x[p]
                g_prev[p] = g[p]
            continue
        new_f = dF[slot]
        s_ff = 0.0
        s_fp = 0.0
        for p in range(lo, hi):
            fp = g[p] - x[p]
            df = fp - f_prev[p]
            new_f[p] = df
            dG[slot, p] = g[p] - g_prev[p]
            f_prev[p] = fp
            g_prev[p] = g[p]
            s_ff += df * df
            s_fp += df * fp
        partial[ch, slot] = s_ff
        partial[ch, m + slot] = s_fp
        for j in range(m):
            if j == slot or not valid[j]:
                continue
            old = dF[j]
            s_a = 0.0
            s_b = 0.0
            for p in range(lo, hi):
                s_a += old[p] * new_f[p]
                s_b += old[p] * f_prev[p]
            partial[ch, j] = s_a
            partial[ch, m + j] = s_b


_record_serial, _record_parallel = serial_and_parallel(
    _record_impl, "_anderson_record_serial", "_anderson_record_parallel", fastmath=True
)


def anderson_record(
    x: np.ndarray,
    g: np.ndarray,
    f_prev: np.ndarray,
    g_prev: np.ndarray,
    dF: np.ndarray,
    dG: np.ndarray,
    slot: int,
    valid: np.ndarray,
    parallel: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Record one step ``(x, g(x))`` of the iteration, in one pass over the state.

    Sets ``f = g - x``; unless ``slot < 0`` (the first step after a (re)start, which has no
    predecessor) writes ``dF[slot] = f - f_prev`` and ``dG[slot] = g - g_prev``; then
    overwrites ``f_prev, g_prev`` with ``f, g``.

    Parameters
    ----------
    x, g : ndarray, shape (n,)
        The iterate and the map's output at it.
    f_prev, g_prev : ndarray, shape (n,)
        The previous step's residual and output (updated in place).
    dF, dG : ndarray, shape (m, n)
        History columns (row ``slot`` is overwritten).
    slot : int
        History row receiving this step's differences, or ``-1`` for a (re)start.
    valid : ndarray of bool, shape (m,)
        Which history rows hold data (``valid[slot]`` must be True when ``slot >= 0``).
    parallel : bool
        Run on all numba threads.

    Returns
    -------
    gram_row : ndarray, shape (m,)
        ``dF[slot] . dF[j]`` for the valid ``j`` (zero elsewhere, and all zero for a restart).
    rhs : ndarray, shape (m,)
        ``dF[j] . f`` for the valid ``j``.
    """
    n = x.shape[0]
    m = dF.shape[0]
    for name, arr in (("g", g), ("f_prev", f_prev), ("g_prev", g_prev)):
        if arr.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if dG.shape != dF.shape or dF.shape[1] != n or valid.shape != (m,):
        raise ValueError("dF and dG must both have shape (m, n) and valid shape (m,)")
    if slot >= m or (slot >= 0 and not valid[slot]):
        raise ValueError(f"slot {slot} is not a valid history row of {m}")
    # the same chunks serial or threaded, so the sums (and the fit) do not depend on threads
    partial = np.zeros((N_CHUNKS, 2 * m))
    fn = _record_parallel if parallel else _record_serial
    fn(x, g, f_prev, g_prev, dF, dG, int(slot), valid, partial)
    sums = partial.sum(axis=0)
    return sums[:m], sums[m:]


def anderson_coefficients(gram: np.ndarray, rhs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Least-squares coefficients ``gamma`` from the normal equations of the valid rows.

    Solves ``(G + eps tr(G) I) gamma = rhs`` restricted to the valid history rows (``G`` the
    Gram matrix of the ``dF`` columns, ``eps = GAMMA_RIDGE``); invalid rows get 0. Returns all
    zeros (the plain step) if the system is singular or not finite.
    """
    m = gram.shape[0]
    gamma = np.zeros(m)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return gamma
    G = gram[np.ix_(idx, idx)].copy()
    G[np.diag_indices_from(G)] += GAMMA_RIDGE * max(float(np.trace(G)), np.finfo(float).tiny)
    try:
        sol = np.linalg.solve(G, rhs[idx])
    except np.linalg.LinAlgError:
        return gamma
    if np.all(np.isfinite(sol)):
        gamma[idx] = sol
    return gamma


def _extrapolate_impl(
    G: np.ndarray,
    dG: np.ndarray,
    gamma: np.ndarray,
    X_out: np.ndarray,
    design_out: np.ndarray,
) -> None:
    """Body of :func:`anderson_extrapolate`, compiled twice (serial and parallel)."""
    rows, d = G.shape
    m = dG.shape[0]
    n_design = design_out.shape[1] if design_out.shape[0] > 0 else 0
    for r in prange(rows):
        for a in range(d):
            s = G[r, a]
            for j in range(m):
                if gamma[j] != 0.0:  # unused rows may hold anything, even NaN
                    s -= gamma[j] * dG[j, r, a]
            X_out[r, a] = s
            if a < n_design:
                design_out[r, a] = s


_extrapolate_serial, _extrapolate_parallel = serial_and_parallel(
    _extrapolate_impl, "_anderson_extrapolate_serial", "_anderson_extrapolate_parallel",
    fastmath=True,
)

def anderson_extrapolate(
    G: np.ndarray,
    dG: np.ndarray,
    gamma: np.ndarray,
    X_out: np.ndarray,
    design_out: np.ndarray | None = None,
    parallel: bool = False,
) -> None:
    """``X_out = G - sum_j gamma_j dG[j]`` on a block of rows of the state.

    Parameters
    ----------
    G : ndarray, shape (rows, d)
        The map's output on this block.
    dG : ndarray, shape (m, rows, d)
        The history columns of this block (a reshaped view of the flat ``dG`` rows).
    gamma : ndarray, shape (m,)
        Coefficients (0 for the rows not in use).
    X_out : ndarray, shape (rows, d)
        The extrapolated iterate.
    design_out : ndarray, shape (rows, d), optional
        Also receives the first ``d - 1`` columns (the factors; its last column, the ones that
        multiply the bias in the ALS design matrix, is left alone).
    parallel : bool
        Run on all numba threads.
    """
    if dG.shape[1:] != G.shape or X_out.shape != G.shape or gamma.shape != (dG.shape[0],):
        raise ValueError("G, X_out, dG[j] and gamma must agree in shape")
    design = design_columns(design_out, G.shape, "G")
    fn = _extrapolate_parallel if parallel else _extrapolate_serial
    fn(G, dG, gamma, X_out, design)
