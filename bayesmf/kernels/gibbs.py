"""Conditional draws of Bayesian PMF (Salakhutdinov & Mnih, 2008): the maths of the Gibbs sampler.

Model (identity link)::

    R_ij ~ N(mu + b_i + c_j + u_i^T v_j, 1 / tau)
    u_i  ~ N(mu_U, Lambda_U^-1),   v_j ~ N(mu_V, Lambda_V^-1)
    b_i  ~ N(0, 1 / tau_b),        c_j ~ N(0, 1 / tau_c)

**Row draw.** Given everything else, a user's vector ``x = u_i`` (or ``(u_i, b_i)`` with the
bias appended: the item factors then get a trailing column of ones, exactly as in the ALS
kernel) is Gaussian with precision and mean

    P = P0 + tau * sum_j y_j y_j^T,        m = P^-1 (P0 m0 + tau * sum_j y_j (r_ij - offset_j))

where ``P0``/``m0`` is the prior (``blockdiag(Lambda_U, tau_b)``, ``(mu_U, 0)``). The sum is
the Gram matrix and right-hand side of :func:`bayesmf.kernels.linalg.row_normal_equations`,
the same function the ALS row solve uses (its mode is the MAP/ALS update). With ``P = L L^T``
the draw is ``x = L^-T (L^-1 b + z)``, ``z ~ N(0, I)``: mean ``P^-1 b``, covariance ``P^-1``.

**Hyperparameters.** Normal-Wishart (standard BPMF; ``mu0 = 0, beta0 = 2, W0 = I,
nu0 = rank``) or a diagonal prior ``u_i ~ N(0, diag(1/lambda))`` with Gamma on each
``lambda_a``; Gamma on ``tau`` and on the bias precisions; Normal on ``mu`` -- all conjugate,
see :func:`sample_normal_wishart`, :func:`sample_gamma_precision`, :func:`sample_global_mean`.

The standard normals are drawn by the caller from a NumPy ``Generator``, so a run is
reproducible bit for bit whatever the number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from scipy.linalg import solve_triangular

from bayesmf.kernels._jit import serial_and_parallel
from bayesmf.kernels.als import N_CHUNKS, ordered_chunks
from bayesmf.kernels.linalg import (
    _FAST,
    cholesky_inplace,
    mirror_lower,
    row_normal_equations,
    solve_lower,
    solve_upper_t,
)


@njit(cache=True, nogil=True, inline="always")
def row_posterior_precision(
    r: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    tau: float,
    prior_prec: np.ndarray,
    prior_shift: np.ndarray,
    A: np.ndarray,
    b: np.ndarray,
) -> None:
    """Row ``r``'s conditional precision ``P = tau * Gram + P0`` and ``h = tau * rhs + P0 m0``.

    The Gram matrix and right-hand side come from
    :func:`~bayesmf.kernels.linalg.row_normal_equations` (the ALS code). Only the lower
    triangle of ``A`` (and its diagonal) is written: all a Cholesky factorisation reads.
    """
    d = Y.shape[1]
    row_normal_equations(r, indptr, indices, data, Y, offset, A, b, False)
    for q in range(d):
        b[q] = tau * b[q] + prior_shift[q]
        for c in range(q + 1):
            A[q, c] = tau * A[q, c] + prior_prec[q, c]


@njit(cache=True, nogil=True)
def gibbs_row_draw(
    r: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    tau: float,
    prior_prec: np.ndarray,
    prior_shift: np.ndarray,
    z: np.ndarray,
    A: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    alpha: float = 0.0,
    x_old: np.ndarray | None = None,
) -> bool:
    """Draw row ``r``'s vector into ``x`` from its Gaussian full conditional.

    ``A`` (d x d) and ``b`` (d) are work arrays; ``z`` holds ``d`` standard normals.
    With ``alpha != 0`` the draw is *overrelaxed* (Adler 1981; Neal 1998):
    ``x = m + alpha (x_old - m) + sqrt(1 - alpha^2) L^-T z`` with ``m`` the conditional mean,
    ``x_old`` the current value and ``-1 < alpha < 1``. This is a Gaussian AR(1) whose
    stationary law is the conditional ``N(m, P^-1)`` and which is reversible with respect to
    it, so it leaves the posterior invariant like the plain draw (``alpha = 0``); with
    ``alpha < 0`` it suppresses the random walk of alternating between strongly coupled
    blocks (here ``U`` and ``V``).
    Returns ``False`` if the posterior precision is not numerically positive definite.
    """
    d = Y.shape[1]
    row_posterior_precision(r, indptr, indices, data, Y, offset, tau, prior_prec, prior_shift, A, b)
    if not cholesky_inplace(A):
        return False
    # mean P^-1 b = L^-T (L^-1 b); adding z before the back-substitution adds L^-T z,
    # whose covariance is L^-T L^-1 = P^-1.
    solve_lower(A, b, x)
    if alpha == 0.0 or x_old is None:
        for a in range(d):
            x[a] += z[a]
        solve_upper_t(A, x, x)
        return True
    # L^-T ((1 - alpha) L^-1 b + s z) + alpha x_old = m + alpha (x_old - m) + s L^-T z
    s = np.sqrt(1.0 - alpha * alpha)
    for a in range(d):
        x[a] = (1.0 - alpha) * x[a] + s * z[a]
    solve_upper_t(A, x, x)
    for a in range(d):
        x[a] += alpha * x_old[a]
    return True


def _gibbs_half_sweep_impl(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    tau: float,
    prior_prec: np.ndarray,
    prior_shift: np.ndarray,
    Z: np.ndarray,
    X_out: np.ndarray,
    alpha: float = 0.0,
) -> int:
    """Draw every row's vector from its Gaussian full conditional.

    Compiled twice: :func:`gibbs_half_sweep` (parallel over chunks of rows) and
    :func:`gibbs_half_sweep_serial` (one thread; the same draws, no thread start-up cost, for
    small problems).

    Parameters
    ----------
    indptr, indices, data : ndarray
        CSR structure of this side (see :class:`bayesmf.data.SparseRows`).
    Y : ndarray, shape (n_other, d)
        Current factors of the other side (trailing ones column when sampling a bias).
    offset : ndarray, shape (n_other,)
        Subtracted from each rating (global mean + the other side's bias).
    tau : float
        Noise precision ``1 / sigma^2``.
    prior_prec : ndarray, shape (d, d)
        Prior precision ``P0`` of a row vector.
    prior_shift : ndarray, shape (d,)
        ``P0 @ m0`` (prior precision times prior mean).
    Z : ndarray, shape (n_rows, d)
        Standard normal draws, one row per row vector.
    X_out : ndarray, shape (n_rows, d)
        Output draws; with ``alpha != 0`` it must hold the current values on entry.
    alpha : float
        Overrelaxation in ``(-1, 1)`` (see :func:`gibbs_row_draw`); 0: plain Gibbs draws.

    Returns
    -------
    int
        Number of rows whose posterior precision was not numerically positive definite
        (their draw is set to NaN); 0 in a healthy run.

    Notes
    -----
    Rows are split into chunks of balanced work (:func:`bayesmf.kernels.als.ordered_chunks`,
    as in the ALS kernel), each with its own work arrays.
    """
    d = Y.shape[1]
    failed = 0
    chunks = ordered_chunks(indptr, N_CHUNKS)
    for ch in prange(chunks.shape[0]):
        A = np.empty((d, d))
        b = np.empty(d)
        x = np.empty(d)
        for r in range(chunks[ch, 0], chunks[ch, 1]):
            if gibbs_row_draw(r, indptr, indices, data, Y, offset, tau, prior_prec, prior_shift,
                              Z[r], A, b, x, alpha, X_out[r]):
                for a in range(d):
                    X_out[r, a] = x[a]
            else:
                failed += 1
                for a in range(d):
                    X_out[r, a] = np.nan
    return failed


gibbs_half_sweep_serial, gibbs_half_sweep = serial_and_parallel(
    _gibbs_half_sweep_impl, "gibbs_half_sweep_serial", "gibbs_half_sweep", serial_nogil=True
)


@njit(cache=True, nogil=True, fastmath=_FAST)
def _cholesky_free_last_pivot(A: np.ndarray) -> bool:
    """Cholesky ``A = L L^T`` in place, except that the last pivot is left squared.

    The first ``d - 1`` columns of ``L`` are written as usual; ``A[d-1, d-1]`` becomes the
    Schur complement ``s2 = A[d-1, d-1] - sum_c L[d-1, c]^2`` (clamped at 0), i.e. the
    squared last pivot. Adding ``t`` to the last diagonal entry of ``A`` changes only that
    pivot (to ``sqrt(s2 + t)``), which is what lets the bias precision be redrawn between
    factorising and drawing. Returns ``False`` if a leading pivot is not positive.
    """
    d = A.shape[0]
    for j in range(d):
        s = A[j, j]
        for k in range(j):
            s -= A[j, k] * A[j, k]
        if j == d - 1:
            A[j, j] = s if s > 0.0 else 0.0
            return True
        if not s > 0.0:
            return False
        ljj = np.sqrt(s)
        inv = 1.0 / ljj  # one division per column instead of one per entry
        A[j, j] = ljj
        for i in range(j + 1, d):
            s = A[i, j]
            for k in range(j):
                s -= A[i, k] * A[j, k]
            A[i, j] = s * inv
    return True


def _gibbs_factorise_impl(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    Y: np.ndarray,
    offset: np.ndarray,
    tau: float,
    prior_prec: np.ndarray,
    prior_shift: np.ndarray,
    Z: np.ndarray,
    alpha: float,
    s2_out: np.ndarray,
    rr_out: np.ndarray,
    a_out: np.ndarray,
    g_out: np.ndarray,
) -> int:
    """First pass of a half-sweep with the bias precision collapsed: everything but the bias prior.

    For each row, builds ``P = tau * Gram + P0`` and ``h = tau * rhs + P0 m0`` from
    :func:`~bayesmf.kernels.linalg.row_normal_equations` with the bias slot of ``P0`` (the
    last coordinate) set to **zero**, and factorises it with
    :func:`_cholesky_free_last_pivot`: ``L = [[Lt, 0], [l^T, p]]``. Adding a bias precision
    ``t`` changes only the last pivot, ``p = sqrt(s2 + t)``, so the row's draw
    (:func:`gibbs_row_draw`: ``x = L^-T w`` with ``w = (1 - alpha) L^-1 h + sqrt(1 - alpha^2) z``,
    plus ``alpha`` times the current value) splits into a part that does not depend on ``t``
    and a scalar that does: ``x_last = w_last / p`` with
    ``w_last = (1 - alpha) rr / p + sqrt(1 - alpha^2) z_last``, and ``x_rest = a - x_last g``
    with ``a = Lt^-T w_rest`` and ``g = Lt^-T l``. This pass stores ``s2``,
    ``rr = h_last - l . (Lt^-1 h_rest)``, ``a`` and ``g`` (``2 d`` numbers a row rather than
    the ``d^2`` of ``L``); :func:`gibbs_draw_factorised` completes the draw for the ``t`` drawn
    in between. With the row's vector integrated out, its ratings contribute
    ``(log t - log(s2 + t) + rr^2 / (s2 + t)) / 2`` to the log density of ``t``
    (:func:`collapsed_precision_log_density`).

    Returns the number of rows whose leading block was not positive definite (NaN outputs).
    """
    d = Y.shape[1]
    m = d - 1
    sr = np.sqrt(1.0 - alpha * alpha)
    failed = 0
    chunks = ordered_chunks(indptr, N_CHUNKS)
    for ch in prange(chunks.shape[0]):
        A = np.empty((d, d))
        b = np.empty(d)
        y = np.empty(d)
        for r in range(chunks[ch, 0], chunks[ch, 1]):
            row_posterior_precision(r, indptr, indices, data, Y, offset, tau, prior_prec,
                                    prior_shift, A, b)
            if not _cholesky_free_last_pivot(A):
                failed += 1
                s2_out[r] = np.nan
                rr_out[r] = np.nan
                for q in range(m):
                    a_out[r, q] = np.nan
                    g_out[r, q] = np.nan
                continue
            # forward solve Lt y = h_rest, then rr = h_last - l . y
            rr = b[m]
            for q in range(m):
                t = b[q]
                for c in range(q):
                    t -= A[q, c] * y[c]
                y[q] = t / A[q, q]
                rr -= A[m, q] * y[q]
            s2_out[r] = A[m, m]
            rr_out[r] = rr
            # a = Lt^-T w_rest and g = Lt^-T l, by rows of Lt (contiguous reads)
            for q in range(m):
                a_out[r, q] = (1.0 - alpha) * y[q] + sr * Z[r, q]
                g_out[r, q] = A[m, q]
            for i in range(m - 1, -1, -1):
                inv = 1.0 / A[i, i]
                ai = a_out[r, i] * inv
                gi = g_out[r, i] * inv
                a_out[r, i] = ai
                g_out[r, i] = gi
                for c in range(i):
                    a_out[r, c] -= A[i, c] * ai
                    g_out[r, c] -= A[i, c] * gi
    return failed


def _gibbs_draw_factorised_impl(
    s2: np.ndarray,
    rr: np.ndarray,
    a: np.ndarray,
    g: np.ndarray,
    tau_last: float,
    Z: np.ndarray,
    X_out: np.ndarray,
    alpha: float = 0.0,
) -> None:
    """Second pass: complete every row's draw for bias precision ``tau_last``.

    ``s2, rr, a, g`` come from :func:`gibbs_factorise` (which also used ``Z`` and ``alpha``);
    the result is exactly :func:`gibbs_row_draw`'s draw with the bias prior precision
    ``tau_last`` (plain, or overrelaxed with ``alpha``: ``X_out`` holds the current values
    on entry). ``O(d)`` work a row.
    """
    n, m = a.shape
    sr = np.sqrt(1.0 - alpha * alpha)
    for r in prange(n):
        p = np.sqrt(s2[r] + tau_last)
        x_last = ((1.0 - alpha) * rr[r] / p + sr * Z[r, m]) / p
        if alpha == 0.0:
            for q in range(m):
                X_out[r, q] = a[r, q] - x_last * g[r, q]
            X_out[r, m] = x_last
        else:
            for q in range(m):
                X_out[r, q] = a[r, q] - x_last * g[r, q] + alpha * X_out[r, q]
            X_out[r, m] = x_last + alpha * X_out[r, m]


gibbs_factorise_serial, gibbs_factorise = serial_and_parallel(
    _gibbs_factorise_impl, "gibbs_factorise_serial", "gibbs_factorise", serial_nogil=True
)
gibbs_draw_factorised_serial, gibbs_draw_factorised = serial_and_parallel(
    _gibbs_draw_factorised_impl, "gibbs_draw_factorised_serial", "gibbs_draw_factorised",
    serial_nogil=True,
)


def row_conditional_reference(
    Yr: np.ndarray,
    t: np.ndarray,
    tau: float,
    prior_prec: np.ndarray,
    prior_mean: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form mean and covariance of one row's full conditional (slow NumPy reference).

    Parameters
    ----------
    Yr : ndarray, shape (n_obs, d)
        The other side's vectors of the row's ratings.
    t : ndarray, shape (n_obs,)
        The row's ratings minus their offsets.
    tau : float
        Noise precision.
    prior_prec, prior_mean : ndarray
        Gaussian prior of the row vector.

    Returns
    -------
    mean : ndarray, shape (d,)
    cov : ndarray, shape (d, d)
    """
    P = prior_prec + tau * Yr.T @ Yr
    cov = np.linalg.inv(P)
    mean = cov @ (prior_prec @ prior_mean + tau * Yr.T @ t)
    return mean, cov


def _residual_sums_impl(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    bu: np.ndarray,
    bi: np.ndarray,
    k: int,
) -> tuple[float, float]:
    """Sum and sum of squares of ``e = r - b_u - c_i - u^T v`` (the residual without ``mu``).

    ``U``/``V`` may carry extra trailing columns (the bias slot): only the first ``k`` are
    used. Compiled twice: :func:`residual_sums` (parallel reduction) and
    :func:`residual_sums_serial` (one thread).
    """
    s1 = 0.0
    s2 = 0.0
    for p in prange(users.shape[0]):
        u = users[p]
        i = items[p]
        e = values[p] - bu[u] - bi[i]
        for a in range(k):
            e -= U[u, a] * V[i, a]
        s1 += e
        s2 += e * e
    return s1, s2


residual_sums_serial, residual_sums = serial_and_parallel(
    _residual_sums_impl, "residual_sums_serial", "residual_sums", serial_nogil=True
)


@njit(cache=True, nogil=True)
def mean_and_scatter(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means ``xbar`` and scatter matrix ``sum_i (x_i - xbar)(x_i - xbar)^T`` of ``X``.

    Two passes over the rows (means, then centred products), without the centred copy of
    ``X`` that NumPy would make; ``X`` may be a strided view (the factor columns of a
    ``[factors, bias]`` array).
    """
    n, k = X.shape
    xbar = np.zeros(k)
    for r in range(n):
        for a in range(k):
            xbar[a] += X[r, a]
    if n > 0:
        for a in range(k):
            xbar[a] /= n
    S = np.zeros((k, k))
    c = np.empty(k)
    for r in range(n):
        for a in range(k):
            c[a] = X[r, a] - xbar[a]
        for a in range(k):
            ca = c[a]
            for b in range(a + 1):
                S[a, b] += ca * c[b]
    mirror_lower(S)
    return xbar, S


@njit(cache=True, nogil=True)
def gram_and_cross(Y: np.ndarray, c: np.ndarray, ones: bool) -> tuple[np.ndarray, np.ndarray]:
    """``Ya^T Ya`` and ``Ya^T c`` for ``Ya = Y`` or, with ``ones``, ``Ya = [Y, 1]``.

    One pass over the rows; ``Y`` and ``c`` may be strided views, and the augmented matrix is
    never built.
    """
    n, k = Y.shape
    m = k + 1 if ones else k
    G = np.zeros((m, m))
    h = np.zeros(m)
    y = np.ones(m)
    for r in range(n):
        for a in range(k):
            y[a] = Y[r, a]
        cr = c[r]
        for a in range(m):
            ya = y[a]
            h[a] += ya * cr
            for b in range(a + 1):
                G[a, b] += ya * y[b]
    mirror_lower(G)
    return G, h


@njit(cache=True, nogil=True)
def transform_rows(X: np.ndarray, M: np.ndarray, k: int) -> None:
    """``x_r[:k] <- M x_r[:k]`` for every row of ``X``, in place (the group moves' ``U T^T``)."""
    t = np.empty(k)
    for r in range(X.shape[0]):
        for a in range(k):
            s = 0.0
            for b in range(k):
                s += M[a, b] * X[r, b]
            t[a] = s
        for a in range(k):
            X[r, a] = t[a]


@njit(cache=True, nogil=True)
def shift_rows(X: np.ndarray, w: np.ndarray, Y: np.ndarray, delta: float, k: int) -> None:
    """The translation move in place: ``x_r[:k] += w`` and ``y_j[k] -= y_j[:k] . w + delta``."""
    for r in range(X.shape[0]):
        for a in range(k):
            X[r, a] += w[a]
    for j in range(Y.shape[0]):
        s = delta
        for a in range(k):
            s += Y[j, a] * w[a]
        Y[j, k] -= s


def sample_wishart(rng: np.random.Generator, scale: np.ndarray, df: float) -> np.ndarray:
    """One draw of ``Wishart(scale, df)`` (mean ``df * scale``) by the Bartlett decomposition."""
    k = scale.shape[0]
    L = np.linalg.cholesky(scale)
    A = np.zeros((k, k))
    A[np.diag_indices(k)] = np.sqrt(rng.chisquare(df - np.arange(k)))
    low = np.tril_indices(k, -1)
    A[low] = rng.standard_normal(len(low[0]))
    LA = L @ A
    return LA @ LA.T


def sample_normal_wishart(
    rng: np.random.Generator,
    X: np.ndarray,
    mu0: np.ndarray,
    beta0: float,
    W0_inv: np.ndarray,
    nu0: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``(mu, Lambda)`` from their Normal-Wishart posterior given the rows of ``X``.

    Prior: ``Lambda ~ Wishart(W0, nu0)``, ``mu | Lambda ~ N(mu0, (beta0 Lambda)^-1)``;
    likelihood ``x_i ~ N(mu, Lambda^-1)``. Posterior (Salakhutdinov & Mnih 2008, eq. 14):
    ``beta* = beta0 + N``, ``nu* = nu0 + N``, ``mu* = (beta0 mu0 + N xbar) / beta*``,
    ``W*^-1 = W0^-1 + N S + beta0 N / beta* (mu0 - xbar)(mu0 - xbar)^T`` with
    ``S`` the (biased) sample covariance.

    Returns
    -------
    mu : ndarray, shape (k,)
    Lambda : ndarray, shape (k, k)
    """
    N = X.shape[0]
    xbar, S_N = mean_and_scatter(X)  # S_N = N * S
    beta_n = beta0 + N
    nu_n = nu0 + N
    mu_n = (beta0 * mu0 + N * xbar) / beta_n
    dm = mu0 - xbar
    Wn_inv = W0_inv + S_N + (beta0 * N / beta_n) * np.outer(dm, dm)
    Wn_inv = 0.5 * (Wn_inv + Wn_inv.T)
    Wn = np.linalg.inv(Wn_inv)
    Wn = 0.5 * (Wn + Wn.T)
    Lam = sample_wishart(rng, Wn, nu_n)
    # mu ~ N(mu_n, (beta_n Lam)^-1): mu = mu_n + L^-T z / sqrt(beta_n) with Lam = L L^T
    L = np.linalg.cholesky(Lam)
    z = rng.standard_normal(len(mu_n))
    mu = mu_n + solve_triangular(L, z, lower=True, trans="T") / np.sqrt(beta_n)
    return mu, Lam


def sample_gamma_precision(
    rng: np.random.Generator, sum_sq: np.ndarray | float, n: int, shape0: float, rate0: float
) -> np.ndarray | float:
    """Precision of zero-mean Gaussians from its Gamma posterior.

    Prior ``lambda ~ Gamma(shape0, rate0)``; given ``n`` values with sum of squares
    ``sum_sq``, ``lambda ~ Gamma(shape0 + n/2, rate0 + sum_sq/2)`` (vectorised over
    ``sum_sq``).
    """
    shape = shape0 + 0.5 * n
    rate = rate0 + 0.5 * np.asarray(sum_sq, dtype=float)
    out = rng.gamma(shape, 1.0 / rate)
    return out


def sample_global_mean(
    rng: np.random.Generator, sum_e: float, n: int, tau: float, mean0: float, sd0: float,
    alpha: float = 0.0, current: float | None = None,
) -> float:
    """Global mean ``mu`` from its Normal posterior.

    Prior ``mu ~ N(mean0, sd0^2)``; ``e_p = r_p - (everything but mu)`` ~ ``N(mu, 1/tau)``.
    With ``alpha != 0`` and the ``current`` value given, an overrelaxed update
    ``m + alpha (current - m) + sqrt(1 - alpha^2) sd z`` (leaves the conditional invariant).
    """
    prec = tau * n + 1.0 / sd0**2
    mean = (tau * sum_e + mean0 / sd0**2) / prec
    if alpha == 0.0 or current is None:
        return float(mean + rng.standard_normal() / np.sqrt(prec))
    # overrelaxed (Adler 1981): reversible with respect to N(mean, 1/prec)
    return float(mean + alpha * (current - mean)
                 + math.sqrt(1.0 - alpha * alpha) * rng.standard_normal() / np.sqrt(prec))


def overrelaxed_score(rng: np.random.Generator, q: float, alpha: float) -> float:
    """New normal score ``alpha q + sqrt(1 - alpha^2) z`` of a copula-overrelaxed update.

    For a scalar with a continuous conditional CDF ``F``, let ``q = Phi^-1(F(x))``; the new
    value ``F^-1(Phi(q'))`` with ``q' = alpha q + sqrt(1 - alpha^2) z`` is a Gaussian AR(1)
    in the normal-score scale, reversible with respect to ``N(0, 1)`` and so, mapped back
    through ``F``, with respect to the conditional (a copula version of Adler's
    overrelaxation). A current value further than 8 sd in the tail (``|q| > 8``, or not
    finite: probability < 1e-15 at stationarity, seen only in the first sweeps after the
    start) gets an independent draw ``q' = z`` instead.
    """
    z = rng.standard_normal()
    if alpha == 0.0 or not abs(q) <= 8.0:
        return float(z)
    return float(alpha * q + math.sqrt(1.0 - alpha * alpha) * z)


def sample_gamma_overrelaxed(rng: np.random.Generator, x: float, shape: float, rate: float,
                             alpha: float) -> float:
    """Overrelaxed update of ``x ~ Gamma(shape, rate)`` (see :func:`overrelaxed_score`).

    Tail probabilities are taken from the nearer tail (``gammainc``/``gammaincc`` and their
    inverses), so values far from the median do not round to a CDF of 0 or 1.
    """
    from scipy.special import gammainc, gammaincc, gammainccinv, gammaincinv, ndtr, ndtri

    if alpha == 0.0:
        return float(rng.gamma(shape, 1.0 / rate))
    lower = float(gammainc(shape, rate * x))
    q = float(ndtri(lower)) if lower < 0.5 else -float(ndtri(float(gammaincc(shape, rate * x))))
    qn = overrelaxed_score(rng, q, alpha)
    if qn < 0.0:
        return float(gammaincinv(shape, float(ndtr(qn)))) / rate
    return float(gammainccinv(shape, float(ndtr(-qn)))) / rate


def _sample_exp_cosh(rng: np.random.Generator, omega: float) -> float:
    """One draw of ``y`` with density proportional to ``exp(-omega cosh y)`` (exact rejection).

    ``|y|`` is drawn from a two-piece envelope of ``exp(-omega (cosh x - 1))`` on ``x >= 0``:
    the Gaussian ``exp(-omega x^2 / 2)`` on ``[0, x*]`` (``cosh x - 1 >= x^2/2``) and the
    tangent exponential at ``x*`` beyond (log-concavity). Acceptance is above 0.78 for every
    ``omega``.
    """
    from scipy.special import ndtr, ndtri

    if omega < 0.3:
        xs = float(np.arcsinh(1.0 / omega))
    else:
        xs = float(max(np.arcsinh(1.0 / omega), 1.0 / np.sqrt(omega)))
    sq = np.sqrt(omega)
    p_half = float(ndtr(xs * sq)) - 0.5
    m1 = np.sqrt(2.0 * np.pi / omega) * p_half
    g_xs = np.exp(-omega * (np.cosh(xs) - 1.0))
    rate = omega * np.sinh(xs)
    m2 = g_xs / rate
    while True:
        if rng.random() * (m1 + m2) < m1:
            x = float(ndtri(0.5 + rng.random() * p_half)) / sq
            log_acc = -omega * (np.cosh(x) - 1.0 - 0.5 * x * x)
        else:
            x = xs + rng.exponential(1.0 / rate)
            log_acc = -omega * (np.cosh(x) - np.cosh(xs)) + rate * (x - xs)
        if np.log(rng.random()) <= log_acc:
            return x if rng.random() < 0.5 else -x


def sample_gig0(rng: np.random.Generator, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Draw from ``GIG(0, a, b)``: density proportional to ``s^-1 exp(-(a s + b / s) / 2)``.

    With ``s = sqrt(b/a) e^y``, ``y`` has density ``exp(-sqrt(ab) cosh y)``, sampled exactly by
    :func:`_sample_exp_cosh`. Vectorised over ``a`` and ``b``.
    """
    a_arr, b_arr = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    out = np.empty(a_arr.shape)
    flat_a, flat_b, flat_out = a_arr.ravel(), b_arr.ravel(), out.reshape(-1)
    for j in range(flat_a.size):
        omega = float(np.sqrt(flat_a[j] * flat_b[j]))
        y = _sample_exp_cosh(rng, omega)
        flat_out[j] = np.sqrt(flat_b[j] / flat_a[j]) * np.exp(y)
    return out


def sample_scale_move(
    rng: np.random.Generator, tr_u: np.ndarray | float, tr_v: np.ndarray | float
) -> np.ndarray:
    """Per-factor scales ``c`` of the move ``U[:, a] -> c_a U[:, a]``, ``V[:, a] -> V[:, a] / c_a``.

    The prior hyperparameters move with the factors (Normal-Wishart: ``mu_U -> D mu_U``,
    ``Lambda_U -> D^-1 Lambda_U D^-1`` with ``D = diag(c)``, the inverse on the item side;
    diagonal prior: ``lambda_u[a] -> lambda_u[a] / c_a^2``). The likelihood is invariant
    under this group, and ``c`` is drawn from its exact conditional (a generalised Gibbs step
    on the multiplicative group, Liu & Sabatti 2000): all powers of ``c_a`` from the
    Jacobians and densities cancel (prior mean ``mu0 = 0``, ``W0 = w0 I``), leaving
    independent ``c_a^2 ~ GIG(0, tr_v[a], tr_u[a])`` with, for Normal-Wishart,
    ``tr_u = diag(Lambda_U) / w0``, and for the diagonal Gamma(alpha, beta) prior,
    ``tr_u = 2 beta lambda_u`` (likewise ``tr_v``).

    This moves along the direction the plain Gibbs sweep explores slowest: the balance of
    scale between the user and item sides together with their prior precisions.
    """
    return np.sqrt(sample_gig0(rng, tr_v, tr_u))


def translation_move(
    rng: np.random.Generator,
    mu: float,
    bias: np.ndarray,
    tau_b: float,
    mean0: float,
    sd0: float,
) -> float:
    """Shift ``delta`` of the move ``mu -> mu + delta``, ``bias -> bias - delta``.

    The likelihood only sees ``mu + b_u``, so the move is drawn from its exact conditional:
    ``delta ~ N(m, 1/P)`` with ``P = 1/sd0^2 + n tau_b`` and
    ``m = ((mean0 - mu)/sd0^2 + tau_b sum(bias)) / P``. It removes the slow mixing of
    ``mu`` against the biases.
    """
    prec = 1.0 / sd0**2 + bias.shape[0] * tau_b
    mean = ((mean0 - mu) / sd0**2 + tau_b * float(bias.sum())) / prec
    return float(mean + rng.standard_normal() / np.sqrt(prec))


def shear_moves(
    rng: np.random.Generator,
    prec_u: np.ndarray,
    prec_v: np.ndarray,
    w0: float,
) -> np.ndarray:
    """Draw a product of shears ``A`` for the move ``u -> A u``, ``v -> A^-T v`` (Normal-Wishart).

    For each ordered pair ``a != b``, ``A_ab = I + t e_a e_b^T`` leaves ``u^T v`` unchanged;
    the hyperparameters move with it (``Lambda_U -> A^-T Lambda_U A^-1``,
    ``Lambda_V -> A Lambda_V A^T``, ``mu_U -> A mu_U``, ``mu_V -> A^-T mu_V``). With
    ``W0 = w0 I`` and ``mu0 = 0`` every determinant is 1 and ``t`` is Gaussian:
    precision ``(Lambda_U[a,a] + Lambda_V[b,b]) / w0``, mean
    ``(Lambda_U[a,b] - Lambda_V[a,b]) / (Lambda_U[a,a] + Lambda_V[b,b])``. The conditional
    only involves the hyperparameters, so the shears are composed on ``k x k`` matrices and
    the caller applies the product once.

    Returns
    -------
    A : ndarray, shape (k, k)
        The composed transform (apply ``U <- U A^T``, ``V <- V A^-1``, ``mu_U <- A mu_U``,
        ``mu_V <- A^-T mu_V``, ``Lambda_U <- A^-T Lambda_U A^-1``,
        ``Lambda_V <- A Lambda_V A^T``).
    """
    k = prec_u.shape[0]
    z = rng.standard_normal((k, k))
    return _compose_shears(np.ascontiguousarray(prec_u, dtype=np.float64),
                           np.ascontiguousarray(prec_v, dtype=np.float64), float(w0), z)


@njit(cache=True)
def _compose_shears(prec_u: np.ndarray, prec_v: np.ndarray, w0: float, z: np.ndarray) -> np.ndarray:
    """Numba body of :func:`shear_moves` (``z``: one standard normal per ordered pair)."""
    k = prec_u.shape[0]
    Lu = prec_u.copy()
    Lv = prec_v.copy()
    A = np.eye(k)
    for a in range(k):
        for b in range(k):
            if a == b:
                continue
            s = Lu[a, a] + Lv[b, b]
            t = (Lu[a, b] - Lv[a, b]) / s + z[a, b] * np.sqrt(w0 / s)
            # Lambda_U <- A^-T Lambda_U A^-1 with A^-1 = I - t e_a e_b^T
            for i in range(k):
                Lu[i, b] -= t * Lu[i, a]
            for i in range(k):
                Lu[b, i] -= t * Lu[a, i]
            # Lambda_V <- A Lambda_V A^T with A = I + t e_a e_b^T
            for i in range(k):
                Lv[a, i] += t * Lv[b, i]
            for i in range(k):
                Lv[i, a] += t * Lv[i, b]
            # compose: A <- A_ab @ A
            for i in range(k):
                A[a, i] += t * A[b, i]
    return A


def factor_shift_move(
    rng: np.random.Generator,
    prior_prec: np.ndarray,
    prior_lin: np.ndarray,
    Y: np.ndarray,
    other_bias: np.ndarray,
    tau_b: float,
    alpha: float = 0.0,
) -> np.ndarray:
    """Shift ``w`` of the move ``u_i -> u_i + w`` (all rows), ``c_j -> c_j - w^T v_j``.

    ``(u_i + w)^T v_j + c_j - w^T v_j = u_i^T v_j + c_j``: the likelihood is invariant, and
    ``w`` is Gaussian given the rest (a generalised Gibbs step on the translation group).
    The log-density of ``w`` is ``-w^T P0 w / 2 + w^T l0 - tau_b ||c - Y w||^2 / 2`` where
    ``(P0, l0)`` comes from the factor prior: Normal-Wishart, with ``mu_U`` moving along,
    ``P0 = beta0 Lambda_U``, ``l0 = -beta0 Lambda_U mu_U``; diagonal prior ``P0 = n Lambda_U``,
    ``l0 = -Lambda_U sum_i u_i``.

    Parameters
    ----------
    prior_prec, prior_lin : ndarray
        ``P0`` (k x k) and ``l0`` (k).
    Y : ndarray, shape (n_other, k)
        The other side's factors.
    other_bias : ndarray, shape (n_other,)
        The other side's biases ``c``.
    tau_b : float
        Prior precision of the other side's biases.
    alpha : float
        Overrelaxation in ``(-1, 1)``: the shift is ``(1 - alpha) m + sqrt(1 - alpha^2) e``
        (``m`` the conditional mean, ``e`` its Gaussian noise), an overrelaxed step along the
        orbit whose current point is ``w = 0`` (see :func:`gibbs_row_draw`); 0: exact draw.

    Returns
    -------
    ndarray, shape (k,)
    """
    G, h = gram_and_cross(Y, other_bias, False)
    return _shift_from_gram(rng, prior_prec, prior_lin, G, h, tau_b, alpha)


def _shift_from_gram(
    rng: np.random.Generator,
    prior_prec: np.ndarray,
    prior_lin: np.ndarray,
    G: np.ndarray,
    h: np.ndarray,
    tau_b: float,
    alpha: float,
) -> np.ndarray:
    """:func:`factor_shift_move` given ``G = Y^T Y`` and ``h = Y^T c``."""
    P = prior_prec + tau_b * G
    lin = prior_lin + tau_b * h
    L = np.linalg.cholesky(0.5 * (P + P.T))
    mean = solve_triangular(L, solve_triangular(L, lin, lower=True), lower=True, trans="T")
    noise = solve_triangular(L, rng.standard_normal(len(lin)), lower=True, trans="T")
    if alpha == 0.0:
        return mean + noise
    return (1.0 - alpha) * mean + np.sqrt(1.0 - alpha * alpha) * noise


def factor_mean_shift_move(
    rng: np.random.Generator,
    prior_prec: np.ndarray,
    prior_lin: np.ndarray,
    Y: np.ndarray,
    other_bias: np.ndarray,
    tau_b: float,
    mu: float,
    mean0: float,
    sd0: float,
    alpha: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Joint shift ``(w, delta)``: ``u_i -> u_i + w``, ``mu -> mu + delta``, ``c_j -> c_j - w.v_j - delta``.

    ``mu + delta + c_j - w^T v_j - delta + (u_i + w)^T v_j = mu + c_j + u_i^T v_j``: the
    likelihood is invariant, and ``(w, delta)`` is drawn from its exact (Gaussian) conditional
    on this translation group (Liu & Sabatti 2000; unit Jacobian). It is
    :func:`factor_shift_move` with the other side's factors augmented by a column of ones
    and the prior of ``mu`` (``N(mean0, sd0^2)``) contributing precision ``1/sd0^2`` and
    linear term ``(mean0 - mu)/sd0^2`` for ``delta``.

    Why jointly: the biases' prior pins their mean near 0 (``sd(mean c) = sigma_c/sqrt(n)``),
    so a shift of the factor mean whose effect on ``w.v_j`` is nearly constant over ``j``
    (the factor means carry part of the global level, ``mean_U . mean_V``) is blocked
    unless ``mu`` takes up the constant. Drawn separately (shift, then ``mu`` against the
    biases) the global level ``mu`` vs ``mean_U . mean_V`` random-walks in steps of
    ``sigma_b / sqrt(n)``; drawn jointly it moves in one step.

    Parameters
    ----------
    prior_prec, prior_lin : ndarray
        ``P0`` (k x k) and ``l0`` (k) of the factor-prior term, as in :func:`factor_shift_move`.
    Y : ndarray, shape (n_other, k)
        The other side's factors.
    other_bias : ndarray, shape (n_other,)
        The other side's biases ``c``.
    tau_b : float
        Prior precision of the other side's biases.
    mu : float
        Current global mean.
    mean0, sd0 : float
        Normal prior of ``mu``.
    alpha : float
        Overrelaxation (see :func:`factor_shift_move`).

    Returns
    -------
    w : ndarray, shape (k,)
    delta : float
    """
    k = prior_prec.shape[0]
    P0 = np.zeros((k + 1, k + 1))
    P0[:k, :k] = prior_prec
    P0[k, k] = 1.0 / sd0**2
    l0 = np.empty(k + 1)
    l0[:k] = prior_lin
    l0[k] = (mean0 - mu) / sd0**2
    G, h = gram_and_cross(Y, other_bias, True)  # of [Y, 1], without building it
    x = _shift_from_gram(rng, P0, l0, G, h, tau_b, alpha)
    return x[:k], float(x[k])


def collapsed_precision_log_density(x: float, s2: np.ndarray, rr: np.ndarray, shape0: float,
                                    rate0: float) -> float:
    """Log density (up to a constant) of ``x = log(t)``, a bias precision with biases integrated out.

    ``t ~ Gamma(shape0, rate0)`` and each group (a user or an item) contributes
    ``(x - log(s2_g + t) + rr_g^2 / (s2_g + t)) / 2``: the log marginal likelihood of its
    ratings under ``b_g ~ N(0, 1/t)`` (and, from :func:`gibbs_factorise`, with the group's
    factor vector integrated out too), as a function of ``t``. ``s2_g`` is the precision the
    ratings alone give the bias and ``rr_g / s2_g`` their estimate of it; a group without
    ratings has ``s2_g = rr_g = 0`` and contributes nothing.
    """
    t = math.exp(x)
    return float(shape0 * x - rate0 * t + 0.5 * (s2.shape[0] * x + _collapsed_sum(t, s2, rr)))


@njit(cache=True, nogil=True, fastmath=True)
def _collapsed_sum(t: float, s2: np.ndarray, rr: np.ndarray) -> float:
    """``sum_g (rr_g^2 / (s2_g + t) - log(s2_g + t))`` in one pass, without temporaries."""
    out = 0.0
    for g in range(s2.shape[0]):
        p = s2[g] + t
        out += rr[g] * rr[g] / p - math.log(p)
    return out


def sample_collapsed_precision(
    rng: np.random.Generator,
    s2: np.ndarray,
    rr: np.ndarray,
    t0: float,
    shape0: float,
    rate0: float,
    width: float = 1.0,
) -> float:
    """One slice-sampling update (Neal 2003) of a bias precision with the biases integrated out.

    The target is :func:`collapsed_precision_log_density` on ``log t`` (stepping out, then
    shrinkage; the update leaves the target invariant), started from ``t0``.

    Parameters
    ----------
    s2, rr : ndarray
        Per-group statistics (see :func:`collapsed_precision_log_density`).
    t0 : float
        Current precision.
    shape0, rate0 : float
        Gamma prior of the precision.

    Returns
    -------
    float
        The new precision.
    """
    x0 = float(np.log(t0))

    def logf(x: float) -> float:
        return collapsed_precision_log_density(x, s2, rr, shape0, rate0)

    level = logf(x0) - rng.exponential()
    left = x0 - width * rng.random()
    right = left + width
    for _ in range(50):
        if logf(left) < level:
            break
        left -= width
    for _ in range(50):
        if logf(right) < level:
            break
        right += width
    x = x0
    if np.isfinite(level):
        for _ in range(200):  # shrinkage converges to x0, which is always accepted
            x = left + (right - left) * rng.random()
            if logf(x) >= level:
                break
            if x < x0:
                left = x
            else:
                right = x
        else:
            x = x0
    return float(np.exp(x))
