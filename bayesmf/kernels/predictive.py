"""Posterior-predictive kernels (numba): Gaussian mixtures over posterior draws.

For one (user, item) pair and posterior draw ``s`` the predictive of a new rating is Normal with
mean ``m_s`` and variance ``v_s`` (observation noise ``sigma_s^2`` plus, for a cold-start side,
the variance of the unknown factor vector). Over the draws the predictive is the equal-weight
mixture ``(1/S) sum_s N(m_s, v_s)``; everything here summarises that mixture **exactly**:

- mean ``(1/S) sum m_s`` and variance ``var(m_s) + (1/S) sum v_s``;
- the probability of each rating level: the mixture mass between the midpoints of neighbouring
  levels (the end bins are open), no noise sampling;
- equal-tailed quantiles by solving the mixture CDF ``F(x) = q`` (safeguarded Newton);
- the log predictive density of an observed value (log-mean-exp over draws).

Highest-density intervals are taken from predictive draws, one noise draw per posterior draw,
with the same shortest-window rule as ArviZ's ``hdi``. The noise is a counter-based hash of
``(seed, pair, draw)`` so results do not depend on the thread schedule and
:func:`fill_draws` reproduces the very draws the HDI used.

A pair side with a negative index is *virtual*: its factor vector ``[v, bias]`` is not a
posterior draw but Gaussian with per-draw mean ``pop_mean[s]`` and covariance ``pop_cov[s]``
(the population prior for a cold-start id, or a fold-in posterior). Its contribution to the
latent mean is averaged in closed form and its covariance adds ``y^T C y`` to the variance
(for two virtual sides the product is moment-matched by a Normal).

Pairs are processed in blocks (parallel over blocks): the ``block x S`` component means and
variances of a block are built draw by draw (so one draw's factor matrices stay in cache), then
each pair is summarised. Memory is ``O(block * S)`` per thread whatever the number of pairs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def norm_cdf(z: float) -> float:
    """Standard Normal CDF."""
    return 0.5 * math.erfc(-z / _SQRT2)


@njit(cache=True, nogil=True)
def _splitmix64(x: np.uint64) -> np.uint64:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def hash_normal(seed: np.uint64, pair: int, draw: int) -> float:
    """A standard Normal variate that is a pure function of ``(seed, pair, draw)``.

    SplitMix64 hashing of the counter gives two uniforms, Box-Muller turns them into a Normal.
    """
    key = (
        np.uint64(seed)
        + np.uint64(pair) * np.uint64(0xD1B54A32D192ED03)
        + np.uint64(draw) * np.uint64(0xABC98388FB8FAC03)
    )
    a = _splitmix64(key)
    b = _splitmix64(a)
    u1 = (float(a >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)
    u2 = (float(b >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True, nogil=True)
def component(
    s: int,
    u: int,
    i: int,
    U: np.ndarray,
    V: np.ndarray,
    mu: np.ndarray,
    bu: np.ndarray,
    bi: np.ndarray,
    sigma: np.ndarray,
    upop_mean: np.ndarray,
    upop_cov: np.ndarray,
    ipop_mean: np.ndarray,
    ipop_cov: np.ndarray,
    extra: float,
    link: int,
    lo: float,
    span: float,
    noise_scale: float,
) -> tuple[float, float]:
    """Mean and variance of the predictive component of draw ``s`` for pair ``(u, i)``.

    Arrays with a leading axis of length 1 (biases, population parameters) are shared by all
    draws. ``u < 0`` / ``i < 0`` marks a virtual side (see the module docstring). ``extra`` is
    an additional latent variance (the Laplace variance of a MAP fit). ``link == 1`` is the
    logistic link ``lo + span * sigmoid(eta)`` (latent variance mapped by the delta method).
    """
    k = U.shape[2]
    sf = s if U.shape[0] > 1 else 0
    sb = s if bu.shape[0] > 1 else 0
    sc = s if bi.shape[0] > 1 else 0
    su = s if upop_mean.shape[0] > 1 else 0
    si = s if ipop_mean.shape[0] > 1 else 0
    eta = mu[s if mu.shape[0] > 1 else 0]
    veta = extra
    if u >= 0 and i >= 0:
        dot = 0.0
        for f in range(k):
            dot += float(U[sf, u, f]) * float(V[sf, i, f])
        eta += dot + bu[sb, u] + bi[sc, i]
    elif i >= 0:
        # virtual user, real item: y = [v_i, 1]
        m = upop_mean[su, k]
        q = upop_cov[su, k, k]
        for a in range(k):
            ya = float(V[sf, i, a])
            m += upop_mean[su, a] * ya
            q += 2.0 * ya * upop_cov[su, a, k]
            for c in range(k):
                q += ya * upop_cov[su, a, c] * float(V[sf, i, c])
        eta += m + bi[sc, i]
        veta += q
    elif u >= 0:
        # real user, virtual item: x = [u_u, 1]
        m = ipop_mean[si, k]
        q = ipop_cov[si, k, k]
        for a in range(k):
            xa = float(U[sf, u, a])
            m += ipop_mean[si, a] * xa
            q += 2.0 * xa * ipop_cov[si, a, k]
            for c in range(k):
                q += xa * ipop_cov[si, a, c] * float(U[sf, u, c])
        eta += m + bu[sb, u]
        veta += q
    else:
        # both virtual: moment-matched Normal for a.c + bias_u + bias_i
        m = upop_mean[su, k] + ipop_mean[si, k]
        q = upop_cov[su, k, k] + ipop_cov[si, k, k]
        for a in range(k):
            m += upop_mean[su, a] * ipop_mean[si, a]
            for c in range(k):
                q += upop_mean[su, a] * ipop_cov[si, a, c] * upop_mean[su, c]
                q += ipop_mean[si, a] * upop_cov[su, a, c] * ipop_mean[si, c]
                q += upop_cov[su, a, c] * ipop_cov[si, c, a]
        eta += m
        veta += q
    noise = noise_scale * sigma[s if sigma.shape[0] > 1 else 0]
    if link == 1:
        g = 1.0 / (1.0 + math.exp(-eta))
        dg = span * g * (1.0 - g)
        return lo + span * g, dg * dg * veta + noise * noise
    return eta, veta + noise * noise


@njit(cache=True, nogil=True)
def _draw_consts(
    s: int, U: np.ndarray, mu: np.ndarray, bu: np.ndarray, bi: np.ndarray, sigma: np.ndarray,
    noise_scale: float,
) -> tuple[int, int, int, float, float]:
    """Per-draw row indices (shared arrays have one row) and the noise variance."""
    noise = noise_scale * sigma[s if sigma.shape[0] > 1 else 0]
    return (
        s if U.shape[0] > 1 else 0,
        s if bu.shape[0] > 1 else 0,
        s if bi.shape[0] > 1 else 0,
        float(mu[s if mu.shape[0] > 1 else 0]),
        noise * noise,
    )


@njit(cache=True, nogil=True)
def mixture_cdf_pdf(m: np.ndarray, sd: np.ndarray, x: float) -> tuple[float, float]:
    """CDF and density at ``x`` of the equal-weight mixture of ``N(m_s, sd_s^2)``."""
    n = m.shape[0]
    F = 0.0
    f = 0.0
    for s in range(n):
        z = (x - m[s]) / sd[s]
        F += norm_cdf(z)
        f += _INV_SQRT_2PI * math.exp(-0.5 * z * z) / sd[s]
    return F / n, f / n


@njit(cache=True, nogil=True)
def mixture_quantile(m: np.ndarray, sd: np.ndarray, q: float, x0: float) -> float:
    """Solve ``F(x) = q`` for the Normal mixture by Newton steps kept inside a bracket.

    The bracket ``[min(m - 12 sd), max(m + 12 sd)]`` always holds the root; a Newton step that
    leaves the current bracket is replaced by bisection, so the iteration always converges.
    """
    n = m.shape[0]
    a = np.inf
    b = -np.inf
    for s in range(n):
        a = min(a, m[s] - 12.0 * sd[s])
        b = max(b, m[s] + 12.0 * sd[s])
    x = x0
    if not (a < x < b):
        x = 0.5 * (a + b)
    for _ in range(200):
        F, f = mixture_cdf_pdf(m, sd, x)
        g = F - q
        if abs(g) < 1e-12:
            return x
        if g < 0.0:
            a = x
        else:
            b = x
        if b - a <= 1e-13 * (1.0 + abs(x)):
            return 0.5 * (a + b)
        xn = x - g / f if f > 0.0 else 0.5 * (a + b)
        if not (a < xn < b):
            xn = 0.5 * (a + b)
        x = xn
    return x


@njit(cache=True, nogil=True)
def shortest_window(sorted_x: np.ndarray, prob: float) -> tuple[float, float]:
    """ArviZ's HDI rule on sorted draws: the narrowest window holding ``floor(prob * n)`` steps."""
    n = sorted_x.shape[0]
    inc = int(math.floor(prob * n))
    best = np.inf
    lo = sorted_x[0]
    hi = sorted_x[n - 1]
    for j in range(n - inc):
        w = sorted_x[j + inc] - sorted_x[j]
        if w < best:
            best = w
            lo = sorted_x[j]
            hi = sorted_x[j + inc]
    return lo, hi


@njit(cache=True, inline="always")
def _pair_moments(
    s: int, uu: int, ii: int, sf: int, sb: int, sc: int, mus: float, nv: float, ex: float,
    U: np.ndarray, V: np.ndarray, mu: np.ndarray, bu: np.ndarray, bi: np.ndarray,
    sigma: np.ndarray, upop_mean: np.ndarray, upop_cov: np.ndarray, ipop_mean: np.ndarray,
    ipop_cov: np.ndarray, link: int, lo: float, span: float, noise_scale: float,
) -> tuple[float, float]:
    """Mean and variance of draw ``s``'s predictive component for one pair: the inline fast path
    for a known pair on the identity link (constants from :func:`_draw_consts`), else
    :func:`component`."""
    if uu >= 0 and ii >= 0 and link == 0:
        m = mus + bu[sb, uu] + bi[sc, ii]
        for f in range(U.shape[2]):
            m += float(U[sf, uu, f]) * float(V[sf, ii, f])
        return m, ex + nv
    return component(s, uu, ii, U, V, mu, bu, bi, sigma, upop_mean, upop_cov, ipop_mean,
                     ipop_cov, ex, link, lo, span, noise_scale)


@njit(parallel=True, cache=True)
def summarise_pairs(
    users: np.ndarray,
    items: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: np.ndarray,
    bu: np.ndarray,
    bi: np.ndarray,
    sigma: np.ndarray,
    upop_mean: np.ndarray,
    upop_cov: np.ndarray,
    ipop_mean: np.ndarray,
    ipop_cov: np.ndarray,
    extra: np.ndarray,
    link: int,
    lo: float,
    span: float,
    noise_scale: float,
    n_draws: int,
    edges: np.ndarray,
    qs: np.ndarray,
    hdi_probs: np.ndarray,
    seed: np.uint64,
    y: np.ndarray,
    block: int,
    out_mean: np.ndarray,
    out_sd: np.ndarray,
    out_q: np.ndarray,
    out_hdi: np.ndarray,
    out_cdf: np.ndarray,
    out_lpd: np.ndarray,
) -> None:
    """Summarise the predictive mixture of every pair.

    Parameters
    ----------
    users, items : int64 arrays (P,)
        Indices of the pairs; negative = virtual side.
    U, V, mu, bu, bi, sigma, upop_mean, upop_cov, ipop_mean, ipop_cov, link, lo, span, noise_scale
        See :func:`component`; ``U`` is ``(S or 1, n_users, k)``.
    extra : (P,) or (0,)
        Extra latent variance per pair (empty for none).
    n_draws : int
        Number of mixture components ``S``.
    edges : (L-1,)
        Inner bin edges of the rating levels; ``out_cdf[p, j] = F(edges[j])``.
    qs : (nq,)
        Quantile levels for ``out_q``.
    hdi_probs : (nh,)
        HDI probabilities for ``out_hdi[p, h, 0:2]`` (from predictive draws; needs S >= 2).
    seed : uint64
        Seed of the noise draws used for the HDI.
    y : (P,) or (0,)
        Observed values for ``out_lpd`` (log predictive density).
    block : int
        Pairs per work block.
    """
    P = users.shape[0]
    S = n_draws
    nq = qs.shape[0]
    nh = hdi_probs.shape[0]
    ne = edges.shape[0]
    has_extra = extra.shape[0] > 0
    has_y = y.shape[0] > 0
    n_blocks = (P + block - 1) // block
    for bidx in prange(n_blocks):
        start = bidx * block
        stop = min(P, start + block)
        nb = stop - start
        M = np.empty((nb, S))
        SD = np.empty((nb, S))
        for s in range(S):
            sf, sb, sc, mus, nv = _draw_consts(s, U, mu, bu, bi, sigma, noise_scale)
            for j in range(nb):
                p = start + j
                ex = extra[p] if has_extra else 0.0
                m, v = _pair_moments(s, users[p], items[p], sf, sb, sc, mus, nv, ex, U, V, mu,
                                     bu, bi, sigma, upop_mean, upop_cov, ipop_mean, ipop_cov,
                                     link, lo, span, noise_scale)
                M[j, s] = m
                SD[j, s] = math.sqrt(max(v, 1e-300))
        buf = np.empty(S)
        for j in range(nb):
            p = start + j
            m = M[j]
            sd = SD[j]
            tot = 0.0
            for s in range(S):
                tot += m[s]
            mean = tot / S
            acc = 0.0
            for s in range(S):
                d = m[s] - mean
                acc += d * d + sd[s] * sd[s]
            var = acc / S
            out_mean[p] = mean
            out_sd[p] = math.sqrt(var)
            for e in range(ne):
                out_cdf[p, e] = mixture_cdf_pdf(m, sd, edges[e])[0]
            for t in range(nq):
                # start from the Normal approximation (probit via a rational approximation)
                x0 = mean + math.sqrt(var) * _probit(qs[t])
                out_q[p, t] = mixture_quantile(m, sd, qs[t], x0)
            if nh > 0:
                for s in range(S):
                    buf[s] = m[s] + sd[s] * hash_normal(seed, p, s)
                srt = np.sort(buf)
                for h in range(nh):
                    a, b = shortest_window(srt, hdi_probs[h])
                    out_hdi[p, h, 0] = a
                    out_hdi[p, h, 1] = b
            if has_y:
                mx = -np.inf
                for s in range(S):
                    z = (y[p] - m[s]) / sd[s]
                    buf[s] = -0.5 * z * z - math.log(sd[s]) - 0.5 * _LOG_2PI
                    mx = max(mx, buf[s])
                acc = 0.0
                for s in range(S):
                    acc += math.exp(buf[s] - mx)
                out_lpd[p] = mx + math.log(acc / S)


@njit(cache=True, nogil=True)
def _probit(q: float) -> float:
    """Inverse standard Normal CDF (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)
    plow = 0.02425
    if q < plow:
        t = math.sqrt(-2.0 * math.log(q))
        return (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / (
            (((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1.0)
    if q > 1.0 - plow:
        t = math.sqrt(-2.0 * math.log(1.0 - q))
        return -(((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / (
            (((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1.0)
    r = q - 0.5
    t = r * r
    return (((((a[0] * t + a[1]) * t + a[2]) * t + a[3]) * t + a[4]) * t + a[5]) * r / (
        ((((b[0] * t + b[1]) * t + b[2]) * t + b[3]) * t + b[4]) * t + 1.0)


@njit(parallel=True, cache=True)
def fill_draws(
    users: np.ndarray,
    items: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: np.ndarray,
    bu: np.ndarray,
    bi: np.ndarray,
    sigma: np.ndarray,
    upop_mean: np.ndarray,
    upop_cov: np.ndarray,
    ipop_mean: np.ndarray,
    ipop_cov: np.ndarray,
    extra: np.ndarray,
    link: int,
    lo: float,
    span: float,
    noise_scale: float,
    include_noise: bool,
    seed: np.uint64,
    pair_offset: int,
    block: int,
    out: np.ndarray,
) -> None:
    """Write the component means (plus one noise draw each if ``include_noise``) to ``out[s, p]``.

    The noise of pair ``p`` and draw ``s`` is ``sd * hash_normal(seed, p + pair_offset, s)``, the
    same variate :func:`summarise_pairs` uses for its HDI.
    """
    P = users.shape[0]
    S = out.shape[0]
    has_extra = extra.shape[0] > 0
    n_blocks = (P + block - 1) // block
    for bidx in prange(n_blocks):
        start = bidx * block
        stop = min(P, start + block)
        for s in range(S):
            sf, sb, sc, mus, nv = _draw_consts(s, U, mu, bu, bi, sigma, noise_scale)
            for p in range(start, stop):
                ex = extra[p] if has_extra else 0.0
                m, v = _pair_moments(s, users[p], items[p], sf, sb, sc, mus, nv, ex, U, V, mu,
                                     bu, bi, sigma, upop_mean, upop_cov, ipop_mean, ipop_cov,
                                     link, lo, span, noise_scale)
                if include_noise:
                    m += math.sqrt(max(v, 0.0)) * hash_normal(seed, p + pair_offset, s)
                out[s, p] = m
