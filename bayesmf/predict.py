"""Predicted ratings with uncertainty for any bayesmf fit.

Three layers, as in arviz-stats:

1. NumPy/numba kernels on arrays (:mod:`bayesmf.kernels.predictive`): exact summaries of the
   Gaussian mixture over posterior draws.
2. :class:`PredictiveParts` (the arrays of a fit in one shape, whatever the method) and the
   array-level :func:`predictive_summary` / :func:`predict_draws` (an ``xarray.DataArray`` with
   dims ``chain, draw, pair``).
3. The user-facing :func:`predict` and :func:`recommend`, which speak raw ids and DataFrames.

What "the predictive" is, per kind of fit
-----------------------------------------
- **Bayesian fits** (Gibbs, NUTS, ADVI: ``fit.idata_``): for posterior draw ``s`` a new rating is
  ``N(m_s, sigma_s^2)`` with ``m_s = mu + b_u + c_i + u.v`` (through the link for a logistic
  fit), so the posterior predictive is the mixture ``(1/S) sum_s N(m_s, sigma_s^2)``. Its mean is
  ``avg m_s``, its variance ``var(m_s) + avg sigma_s^2`` (observation noise included), level
  probabilities are the mixture mass of each level's bin (bins end at the midpoints between
  levels, the end bins are open) and equal-tailed (``"eti"``) intervals solve the mixture CDF
  exactly. ``"hdi"`` intervals use ArviZ's shortest-window rule on predictive draws (one noise
  draw per posterior draw, seeded by ``random_state``).
- **MAP** (``PMF(method="map")``): ``N(mean, laplace_var + sigma^2)`` from the conditional Laplace
  approximation (:meth:`~bayesmf.models.pmf.PMF.laplace_var`).
- **MLE and SGD** fits have no posterior: ``sd``, ``lower``, ``upper`` and the level
  probabilities are NaN and ``DataFrame.attrs["note"]`` says so (``require_uncertainty=True``
  raises instead).
- **Baselines** describe their own predictive (``predict_sd`` / ``predict_interval``), used as is.

Cold start
----------
A user (item) id that is unknown or has no training rating is *cold*: its factor vector and
bias are not estimated, so the prediction integrates them over the population distribution
(per draw: the hierarchical prior ``N(mu_u, Lambda_u^-1)`` / ``N(0, diag sigma_u^2)`` and
``N(0, sigma_user_bias^2)``; for point fits the empirical mean and covariance of the fitted
rows). The interval is correspondingly wide and the row is flagged in ``cold_user`` /
``cold_item``. Unknown ids never raise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats

from bayesmf._validation import as_rng, check_choice, check_positive_int, check_probability
from bayesmf.data import Ratings, RatingScale
from bayesmf.exceptions import BayesMFError, NotFittedError
from bayesmf.kernels import predictive as pk

__all__ = [
    "PredictiveParts",
    "predictive_parts",
    "predictive_summary",
    "predict",
    "predict_draws",
    "recommend",
    "level_columns",
]

INTERVALS = ("eti", "hdi")
RECOMMEND_BY = ("mean", "lower", "thompson")


# ============================================================================ fit -> arrays
@dataclass
class PredictiveParts:
    """Everything the predictive kernels need from a fit, in one shape for every method.

    Attributes
    ----------
    method : str
        ``fit.method`` (``"gibbs"``, ``"map"``, ...).
    kind : {"draws", "laplace", "point", "native"}
        Posterior draws, MAP with a Laplace variance, a point fit without uncertainty, or a
        fit that describes its own predictive (the baselines).
    U, V : ndarray, shape (S, n_users, k), (S, n_items, k)
        Factor draws (``S = 1`` for point fits); float32 or float64, never copied.
    mu, sigma : ndarray, shape (S,)
        Global mean and noise sd per draw.
    user_bias, item_bias : ndarray, shape (S or 1, n)
        Biases per draw (a single row of zeros without biases).
    n_chain, n_draw : int
        ``S = n_chain * n_draw``.
    link : int
        0 identity, 1 logistic (``lo + span * sigmoid(eta)``).
    lo, span : float
        Rating scale minimum and range (used by the logistic link).
    noise_scale : float
        Factor turning ``sigma`` into rating units (``span`` for a logistic fit, whose noise
        lives on the ``[0, 1]`` scale as in the PMF paper; else 1).
    ratings : Ratings
        The training data (id maps, counts, scale, titles).
    """

    fit: Any
    method: str
    kind: str
    ratings: Ratings
    U: np.ndarray | None = None
    V: np.ndarray | None = None
    mu: np.ndarray | None = None
    sigma: np.ndarray | None = None
    user_bias: np.ndarray | None = None
    item_bias: np.ndarray | None = None
    n_chain: int = 1
    n_draw: int = 1
    link: int = 0
    lo: float = 0.0
    span: float = 1.0
    noise_scale: float = 1.0
    _pop: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def n_samples(self) -> int:
        """Number of mixture components ``S``."""
        return self.n_chain * self.n_draw

    @property
    def has_uncertainty(self) -> bool:
        """Whether the fit gives a predictive distribution (not just a mean)."""
        return self.kind in ("draws", "laplace", "native")

    @property
    def rank(self) -> int:
        """Number of factors ``k``."""
        assert self.U is not None
        return int(self.U.shape[2])

    def population(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-draw mean ``(S or 1, k+1)`` and covariance ``(S or 1, k+1, k+1)`` of ``[v, bias]``.

        The distribution of a cold user's (``side="user"``) or item's vector: the hierarchical
        prior of a Bayesian fit, or the empirical distribution of the fitted rows of a point fit.
        """
        if side not in self._pop:
            self._pop[side] = _population(self, side)
        return self._pop[side]


def _posterior_of(fit: Any) -> Any:
    idata = getattr(fit, "idata_", None)
    if idata is None or not hasattr(idata, "posterior"):
        return None
    post = idata.posterior
    if "U" not in post or "V" not in post:
        return None
    return post


def _scale_params(fit: Any, ratings: Ratings) -> tuple[int, float, float, float]:
    link_name = getattr(fit, "link_", None)
    if link_name is None:
        idata = getattr(fit, "idata_", None)
        link_name = idata.attrs.get("link", "identity") if idata is not None else "identity"
    if link_name not in ("identity", "logistic"):
        raise BayesMFError(f"unknown link {link_name!r} on the fit")
    if link_name == "identity":
        return 0, 0.0, 1.0, 1.0
    if ratings.scale is None:
        raise BayesMFError("a logistic-link fit needs the rating scale of its training data")
    span = ratings.scale.span
    unit_noise = getattr(fit, "sigma_scale_", "unit") == "unit"
    return 1, ratings.scale.min, span, span if unit_noise else 1.0


def predictive_parts(fit: Any) -> PredictiveParts:
    """Collect a fit's arrays for prediction (no copies of the draws).

    Parameters
    ----------
    fit : FitBase
        Any fitted bayesmf estimator.

    Returns
    -------
    PredictiveParts

    Raises
    ------
    NotFittedError
        If the fit has no ``ratings_``.
    BayesMFError
        If a Bayesian fit holds no posterior draws (e.g. sampling was interrupted before the
        first draw), or a point fit lacks its factors.
    """
    ratings = getattr(fit, "ratings_", None)
    if ratings is None:
        raise NotFittedError(
            f"This {type(fit).__name__} is not fitted yet; call fit(ratings) first."
        )
    method = str(getattr(fit, "method", type(fit).__name__))
    post = _posterior_of(fit)
    if getattr(fit, "is_bayesian", False) and post is None:
        raise BayesMFError(
            f"{type(fit).__name__} holds no posterior draws (idata_ is missing or has no "
            "posterior U and V); refit it, or load a saved fit that has draws"
        )
    link, lo, span, noise_scale = _scale_params(fit, ratings)
    if post is not None:
        U = post["U"].values
        n_chain, n_draw = int(U.shape[0]), int(U.shape[1])
        S = n_chain * n_draw
        if S == 0:
            raise BayesMFError(f"{type(fit).__name__} holds zero posterior draws")
        U = np.ascontiguousarray(U.reshape(S, U.shape[2], U.shape[3]))
        V = post["V"].values
        V = np.ascontiguousarray(V.reshape(S, V.shape[2], V.shape[3]))
        if U.shape[1] != ratings.n_users or V.shape[1] != ratings.n_items:
            raise BayesMFError(
                "the posterior's user/item dimensions do not match the fit's training id maps"
            )
        mu = np.asarray(post["mu"].values, dtype=np.float64).reshape(S)
        sigma = np.asarray(post["sigma"].values, dtype=np.float64).reshape(S)
        bu = (
            np.ascontiguousarray(post["user_bias"].values.reshape(S, -1))
            if "user_bias" in post
            else np.zeros((1, ratings.n_users))
        )
        bi = (
            np.ascontiguousarray(post["item_bias"].values.reshape(S, -1))
            if "item_bias" in post
            else np.zeros((1, ratings.n_items))
        )
        return PredictiveParts(fit, method, "draws", ratings, U, V, mu, sigma, bu, bi,
                               n_chain, n_draw, link, lo, span, noise_scale)
    if getattr(fit, "U_", None) is None:
        if callable(getattr(fit, "predict_mean", None)):
            return PredictiveParts(fit, method, "native", ratings, link=link, lo=lo, span=span,
                                   noise_scale=noise_scale)
        raise BayesMFError(f"{type(fit).__name__} has neither factors nor a predict_mean method")
    U = np.asarray(fit.U_)[None]
    V = np.asarray(fit.V_)[None]
    ub = getattr(fit, "user_bias_", None)
    ib = getattr(fit, "item_bias_", None)
    bu = (np.zeros(ratings.n_users) if ub is None else np.asarray(ub, dtype=np.float64))[None]
    bi = (np.zeros(ratings.n_items) if ib is None else np.asarray(ib, dtype=np.float64))[None]
    mu = np.array([float(fit.mu_)])
    sig = float(getattr(fit, "sigma_", 0.0) or 0.0)
    sigma = np.array([sig])
    laplace = callable(getattr(fit, "laplace_var", None)) and method not in ("mle", "sgd")
    kind = "laplace" if laplace and sig > 0 else "point"
    return PredictiveParts(fit, method, kind, ratings, U, V, mu, sigma, bu, bi, 1, 1, link, lo,
                           span, noise_scale)


def _population(parts: PredictiveParts, side: str) -> tuple[np.ndarray, np.ndarray]:
    k = parts.rank
    S = parts.n_samples
    post = _posterior_of(parts.fit) if parts.kind == "draws" else None
    vec, name_mu, name_lam, name_sig, name_bsig, bias = (
        (parts.U, "mu_u", "Lambda_u", "sigma_u", "sigma_user_bias", parts.user_bias)
        if side == "user"
        else (parts.V, "mu_v", "Lambda_v", "sigma_v", "sigma_item_bias", parts.item_bias)
    )
    counts = parts.ratings.user_counts if side == "user" else parts.ratings.item_counts
    warm = counts > 0
    if post is not None and (name_lam in post or name_sig in post):
        mean = np.zeros((S, k + 1))
        cov = np.zeros((S, k + 1, k + 1))
        if name_mu in post:
            mean[:, :k] = np.asarray(post[name_mu].values, dtype=np.float64).reshape(S, k)
        if name_lam in post:
            lam = np.asarray(post[name_lam].values, dtype=np.float64).reshape(S, k, k)
            cov[:, :k, :k] = np.linalg.inv(lam)
        else:
            sd = np.asarray(post[name_sig].values, dtype=np.float64).reshape(S, -1)
            cov[:, np.arange(k), np.arange(k)] = np.broadcast_to(sd**2, (S, k))
        if bias.shape[0] > 1 or np.any(bias):
            if name_bsig in post:
                cov[:, k, k] = np.asarray(post[name_bsig].values, dtype=np.float64).reshape(S) ** 2
            else:
                b = bias.mean(axis=0)[warm] if warm.any() else np.zeros(1)
                mean[:, k] = b.mean()
                cov[:, k, k] = b.var()
        return mean, cov
    if parts.kind == "laplace":
        # MAP: the Gaussian prior the ridge penalties stand for, u ~ N(0, sigma^2 / lambda I)
        # (lambda = sigma^2 / sigma_prior^2), the same prior the fold-in posterior starts from.
        prior = _map_prior(parts, side)
        if prior is not None:
            return prior
    # empirical population of the fitted rows (point fits, or draws without hyperparameters)
    X = np.empty((int(warm.sum()), k + 1))
    if X.shape[0] == 0:
        return np.zeros((1, k + 1)), np.zeros((1, k + 1, k + 1))
    X[:, :k] = np.asarray(vec.mean(axis=0), dtype=np.float64)[warm]
    X[:, k] = np.asarray(bias.mean(axis=0), dtype=np.float64)[warm]
    mean = X.mean(axis=0)[None]
    cov = np.atleast_2d(np.cov(X, rowvar=False, bias=True))[None]
    return mean, cov


def _map_prior(parts: PredictiveParts, side: str) -> tuple[np.ndarray, np.ndarray] | None:
    fit = parts.fit
    suffix = "u" if side == "user" else "v"
    lam = float(getattr(fit, f"lambda_{suffix}_", getattr(fit, f"lambda_{suffix}", 0.0)) or 0.0)
    lam_b = float(getattr(fit, "lambda_bias_", getattr(fit, "lambda_bias", 0.0)) or 0.0)
    if lam <= 0:
        return None
    k = parts.rank
    var = float(np.asarray(parts.sigma).reshape(-1)[0]) ** 2
    cov = np.zeros((1, k + 1, k + 1))
    cov[0, np.arange(k), np.arange(k)] = var / lam
    bias = parts.user_bias if side == "user" else parts.item_bias
    if np.any(bias) and lam_b > 0:
        cov[0, k, k] = var / lam_b
    return np.zeros((1, k + 1)), cov


# ============================================================================ array level
def _block_size(n_pairs: int, n_samples: int) -> int:
    threads = max(1, int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1)))
    block = max(8, min(4096, 2_000_000 // max(1, n_samples)))
    per_thread = -(-n_pairs // (4 * threads))
    return max(1, min(block, per_thread))


def _inner_edges(ratings: Ratings) -> np.ndarray | None:
    sc = ratings.scale
    if sc is None or sc.step is None:
        return None
    levels = sc.levels
    return (levels[:-1] + levels[1:]) / 2.0


def level_columns(ratings: Ratings) -> list[str]:
    """Names of the level-probability columns (``p_0.5`` ... ``p_5.0``) for a rating scale."""
    sc = ratings.scale
    if sc is None or sc.step is None:
        return []
    return [f"p_{float(round(lv, 10))}" for lv in sc.levels]


def _cold_mask(parts: PredictiveParts, u: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, ...]:
    r = parts.ratings
    cold_u = u < 0
    cold_i = i < 0
    cold_u[~cold_u] = r.user_counts[u[~cold_u]] == 0
    cold_i[~cold_i] = r.item_counts[i[~cold_i]] == 0
    return np.where(cold_u, -1, u), np.where(cold_i, -1, i), cold_u, cold_i


def _kernel_args(
    parts: PredictiveParts,
    u: np.ndarray,
    i: np.ndarray,
    user_pop: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple:
    """Arguments of :func:`~bayesmf.kernels.predictive.component` for masked indices."""
    k = parts.rank
    zero_m, zero_c = np.zeros((1, k + 1)), np.zeros((1, k + 1, k + 1))
    if user_pop is not None:
        upm, upc = user_pop
    elif np.any(u < 0):
        upm, upc = parts.population("user")
    else:
        upm, upc = zero_m, zero_c
    ipm, ipc = parts.population("item") if np.any(i < 0) else (zero_m, zero_c)
    if parts.kind == "laplace":
        extra = np.asarray(parts.fit.laplace_var(u, i), dtype=np.float64).reshape(-1)
        extra = np.where(np.isfinite(extra), extra, 0.0)
    else:
        extra = np.zeros(0)
    return (
        parts.U, parts.V, parts.mu, parts.user_bias, parts.item_bias, parts.sigma,
        np.ascontiguousarray(upm, dtype=np.float64), np.ascontiguousarray(upc, dtype=np.float64),
        np.ascontiguousarray(ipm, dtype=np.float64), np.ascontiguousarray(ipc, dtype=np.float64),
        extra, parts.link, float(parts.lo), float(parts.span), float(parts.noise_scale),
    )


def _seed(random_state: Any) -> np.uint64:
    return np.uint64(as_rng(random_state).integers(0, 2**63 - 1))


@dataclass
class PredictiveSummary:
    """Array-level predictive summary of ``P`` pairs (see :func:`predictive_summary`)."""

    mean: np.ndarray
    sd: np.ndarray
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]
    level_probs: np.ndarray | None
    lpd: np.ndarray | None
    cold_user: np.ndarray
    cold_item: np.ndarray
    has_uncertainty: bool


def _native_summary(
    parts: PredictiveParts, u: np.ndarray, i: np.ndarray, probs: tuple[float, ...],
    edges: np.ndarray | None, y: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray | None, np.ndarray | None]:
    fit = parts.fit
    mean = np.asarray(fit.predict_mean(u, i), dtype=np.float64).reshape(-1)
    sd = (np.asarray(fit.predict_sd(u, i), dtype=np.float64).reshape(-1)
          if callable(getattr(fit, "predict_sd", None)) else np.full(len(u), np.nan))
    intervals = {}
    for p in probs:
        if callable(getattr(fit, "predict_interval", None)):
            lo, hi = fit.predict_interval(u, i, prob=p)
            intervals[p] = (np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
        else:
            z = stats.norm.ppf(0.5 + p / 2)
            intervals[p] = (mean - z * sd, mean + z * sd)
    gaussian = getattr(fit, "predictive_is_gaussian", True) and np.all(np.isfinite(sd) & (sd > 0))
    probs_out = None
    if edges is not None and gaussian:
        cdf = special.ndtr((edges[None, :] - mean[:, None]) / sd[:, None])
        probs_out = np.diff(np.concatenate([np.zeros((len(u), 1)), cdf, np.ones((len(u), 1))],
                                           axis=1), axis=1)
    lpd = None
    if y is not None and gaussian:
        lpd = stats.norm.logpdf(y, mean, sd)
    return mean, sd, intervals, probs_out, lpd


def predictive_summary(
    fit: Any,
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    probs: tuple[float, ...] = (0.9,),
    interval: str = "eti",
    levels: bool = True,
    y: np.ndarray | None = None,
    random_state: Any = 0,
    parts: PredictiveParts | None = None,
    user_pop: tuple[np.ndarray, np.ndarray] | None = None,
) -> PredictiveSummary:
    """Predictive mean, sd, intervals, level probabilities and log density for index pairs.

    The array-level workhorse behind :func:`predict`, :func:`~bayesmf.compare.compare` and the
    plots. No Python loop runs per pair or per draw: one parallel kernel streams over blocks of
    pairs, so memory stays ``O(block * S)`` per thread plus the outputs.

    Parameters
    ----------
    fit : FitBase
        A fitted estimator.
    user_idx, item_idx : array of int
        Indices in the fit's training id maps; ``-1`` for an unknown id (cold start).
    probs : tuple of float
        Interval probabilities, each in (0, 1).
    interval : {"eti", "hdi"}
        Equal-tailed (exact mixture quantiles) or highest-density (from predictive draws;
        equal to ETI for a single Normal).
    levels : bool
        Compute the probability of every rating level (needs a stepped scale).
    y : array of float, optional
        Observed ratings of the pairs: also return their log predictive density.
    random_state : int, Generator or None
        Seed of the noise draws behind ``"hdi"`` intervals.
    parts : PredictiveParts, optional
        Precomputed :func:`predictive_parts` of ``fit``.
    user_pop : (mean, cov), optional
        Distribution of the vector ``[u, b_u]`` used for every pair with ``user_idx == -1``
        (defaults to the population; :mod:`bayesmf.coldstart` passes a fold-in posterior).

    Returns
    -------
    PredictiveSummary
    """
    interval = check_choice(interval, "interval", INTERVALS)
    probs = tuple(check_probability(p, "prob") for p in probs)
    parts = predictive_parts(fit) if parts is None else parts
    u = np.asarray(user_idx, dtype=np.int64).reshape(-1)
    i = np.asarray(item_idx, dtype=np.int64).reshape(-1)
    r = parts.ratings
    if u.shape != i.shape:
        raise BayesMFError(f"user_idx and item_idx differ in length ({u.size} vs {i.size})")
    if u.size and (u.min() < -1 or u.max() >= r.n_users or i.min() < -1 or i.max() >= r.n_items):
        raise BayesMFError(
            f"indices must lie in -1..n-1 (n_users={r.n_users}, n_items={r.n_items}); "
            "use -1 for an unknown id"
        )
    if y is not None and np.size(y) != u.size:
        raise BayesMFError(f"y has {np.size(y)} values for {u.size} pairs")
    if user_pop is None:
        u, i, cold_u, cold_i = _cold_mask(parts, u, i)
    else:
        _, i, _, cold_i = _cold_mask(parts, np.zeros_like(u), i)
        u = np.full_like(u, -1)
        cold_u = np.zeros(len(u), dtype=bool)
    P = len(u)
    edges = _inner_edges(parts.ratings) if levels else None
    yv = None if y is None else np.asarray(y, dtype=np.float64).reshape(-1)
    if parts.kind == "native":
        mean, sd, intervals, lp, lpd = _native_summary(parts, u, i, probs, edges, yv)
        return PredictiveSummary(mean, sd, intervals, lp, lpd, cold_u, cold_i, True)

    S = parts.n_samples
    unc = parts.has_uncertainty
    use_hdi = interval == "hdi" and S >= 2
    qs = np.array([] if not unc or use_hdi else
                  [q for p in probs for q in ((1 - p) / 2, (1 + p) / 2)], dtype=np.float64)
    hdi_probs = np.array(probs if unc and use_hdi else [], dtype=np.float64)
    e = edges if (edges is not None and unc) else np.zeros(0)
    out_mean = np.empty(P)
    out_sd = np.empty(P)
    out_q = np.empty((P, len(qs)))
    out_hdi = np.empty((P, len(hdi_probs), 2))
    out_cdf = np.empty((P, len(e)))
    out_lpd = np.empty(P)
    y_arg = yv if (yv is not None and unc) else np.zeros(0)
    pk.summarise_pairs(
        u, i, *_kernel_args(parts, u, i, user_pop), S, e, qs, hdi_probs, _seed(random_state),
        y_arg, _block_size(P, S), out_mean, out_sd, out_q, out_hdi, out_cdf, out_lpd,
    )
    intervals: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    level_probs = None
    lpd = None
    if unc:
        for t, p in enumerate(probs):
            if use_hdi:
                intervals[p] = (out_hdi[:, t, 0].copy(), out_hdi[:, t, 1].copy())
            else:
                intervals[p] = (out_q[:, 2 * t].copy(), out_q[:, 2 * t + 1].copy())
        if edges is not None:
            cdf = np.concatenate([np.zeros((P, 1)), out_cdf, np.ones((P, 1))], axis=1)
            level_probs = np.clip(np.diff(cdf, axis=1), 0.0, 1.0)
        if yv is not None:
            lpd = out_lpd
    else:
        out_sd[:] = np.nan
        for p in probs:
            intervals[p] = (np.full(P, np.nan), np.full(P, np.nan))
    return PredictiveSummary(out_mean, out_sd, intervals, level_probs, lpd, cold_u, cold_i, unc)


# ============================================================================ user level
def _check_pairs(pairs: Any, user_col: str, item_col: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(pairs, Ratings):
        return (np.asarray(pairs.user_ids[pairs.users], dtype=object),
                np.asarray(pairs.item_ids[pairs.items], dtype=object))
    if not isinstance(pairs, pd.DataFrame):
        raise BayesMFError(
            f"pairs must be a pandas DataFrame with columns {user_col!r} and {item_col!r} "
            f"(or a Ratings object), got {type(pairs).__name__}"
        )
    missing = [c for c in (user_col, item_col) if c not in pairs.columns]
    if missing:
        raise BayesMFError(
            f"pairs is missing column(s) {missing}; it has {list(pairs.columns)}. "
            "Pass user_col= / item_col= to name yours."
        )
    if len(pairs) == 0:
        raise BayesMFError("the pair list is empty: nothing to predict")
    return pairs[user_col].to_numpy(), pairs[item_col].to_numpy()


def _clip_interval(
    scale: RatingScale | None, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Clip interval bounds to the rating scale: a rating cannot fall outside it, so clipping
    leaves the interval's coverage of on-scale ratings unchanged."""
    if scale is None:
        return lo, hi
    return scale.clip(lo), scale.clip(hi)


def _lookup(ratings: Ratings, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, ...]:
    u = np.asarray(ratings.user_index(pd.Index(users)), dtype=np.int64)
    i = np.asarray(ratings.item_index(pd.Index(items)), dtype=np.int64)
    return u, i


def _frame(
    parts: PredictiveParts,
    users: Any,
    items: Any,
    summ: PredictiveSummary,
    prob: float,
    round_: bool,
    levels: bool,
    user_col: str = "user",
    item_col: str = "item",
) -> pd.DataFrame:
    r = parts.ratings
    sc = r.scale
    lo, hi = _clip_interval(sc, *summ.intervals[prob])
    mean = summ.mean
    clipped = mean if sc is None else (sc.round(mean) if round_ else sc.clip(mean))
    cols: dict[str, Any] = {
        user_col: users,
        item_col: items,
        "mean": mean,
        "sd": summ.sd,
        "lower": lo,
        "upper": hi,
        "mean_clipped": clipped,
    }
    names = level_columns(r) if levels else []
    if names:
        lv = sc.levels
        if summ.level_probs is not None:
            cols["mode_level"] = lv[np.argmax(summ.level_probs, axis=1)]
            for j, name in enumerate(names):
                cols[name] = summ.level_probs[:, j]
        else:
            cols["mode_level"] = sc.round(mean)
            for name in names:
                cols[name] = np.nan
    else:
        cols["mode_level"] = sc.round(mean) if sc is not None and sc.step is not None else np.nan
    cols["cold_user"] = summ.cold_user
    cols["cold_item"] = summ.cold_item
    cols["method"] = parts.method
    df = pd.DataFrame(cols)
    df.attrs["prob"] = prob
    if not summ.has_uncertainty:
        df.attrs["note"] = (
            f"a {parts.method!r} fit is a point estimate with no posterior: sd, lower, upper "
            "and the level probabilities are NaN (use method='map' or a Bayesian fit)"
        )
    return df


def predict(
    fit: Any,
    pairs: pd.DataFrame | Ratings,
    prob: float = 0.9,
    interval: str = "eti",
    round: bool = False,
    levels: bool = True,
    user_col: str = "user",
    item_col: str = "item",
    require_uncertainty: bool = False,
    random_state: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Predict ratings with uncertainty for (user, item) pairs given by raw id.

    Parameters
    ----------
    fit : FitBase
        A fitted estimator (any method).
    pairs : pandas.DataFrame or Ratings
        One row per requested pair, with columns ``user_col`` and ``item_col`` holding raw ids.
    prob : float
        Probability of the predictive interval, in (0, 1).
    interval : {"eti", "hdi"}
        Equal-tailed interval (exact quantiles of the predictive mixture) or highest-density
        interval (ArviZ's rule on one predictive draw per posterior draw).
    round : bool
        Round ``mean_clipped`` to the nearest rating level (else only clip to the scale).
    levels : bool
        Add ``mode_level`` and the ``p_<level>`` columns (needs a stepped rating scale).
    user_col, item_col : str
        Column names of ``pairs`` (kept in the output).
    require_uncertainty : bool
        Raise for fits that have no predictive distribution (MLE, SGD) instead of
        returning NaN for ``sd``/``lower``/``upper``.
    random_state : int, Generator or None
        Seed of the noise draws behind ``"hdi"`` intervals (ETI needs none).

    Returns
    -------
    pandas.DataFrame
        Columns ``user, item, mean, sd, lower, upper, mean_clipped, mode_level, p_<level>...,
        cold_user, cold_item, method``; ``attrs["prob"]`` and, for a fit without uncertainty,
        ``attrs["note"]``. ``lower``/``upper`` are clipped to the rating scale when one is
        declared (``mean`` and ``sd`` are those of the unclipped predictive distribution).

    Raises
    ------
    BayesMFError
        Empty pair list, missing column, ``prob`` outside (0, 1), unknown ``interval``, a
        Bayesian fit without draws, or ``require_uncertainty`` on a point fit.
    NotFittedError
        If ``fit`` is not fitted.

    Notes
    -----
    Unknown ids never raise: they are predicted from the population (cold start) and flagged.
    """
    prob = check_probability(prob, "prob")
    interval = check_choice(interval, "interval", INTERVALS)
    users, items = _check_pairs(pairs, user_col, item_col)
    parts = predictive_parts(fit)
    if require_uncertainty and not parts.has_uncertainty:
        raise BayesMFError(
            f"a {parts.method!r} fit has no predictive uncertainty (no posterior, no Laplace "
            "approximation); fit method='map' or a Bayesian model for intervals"
        )
    u, i = _lookup(parts.ratings, users, items)
    summ = predictive_summary(fit, u, i, probs=(prob,), interval=interval, levels=levels,
                              random_state=random_state, parts=parts)
    return _frame(parts, users, items, summ, prob, round, levels, user_col, item_col)


def predict_draws(
    fit: Any,
    pairs: pd.DataFrame | Ratings,
    include_noise: bool = False,
    random_state: int | np.random.Generator | None = 0,
    user_col: str = "user",
    item_col: str = "item",
) -> xr.DataArray:
    """Posterior draws of the predicted rating of each pair.

    Parameters
    ----------
    fit : FitBase
        A Bayesian fit (``idata_`` with posterior draws).
    pairs : pandas.DataFrame or Ratings
        Pairs by raw id (as in :func:`predict`).
    include_noise : bool
        ``False``: the latent mean ``m_s`` of each draw (through the link). ``True``: one draw
        from the posterior predictive per posterior draw, ``m_s + sd_s * z`` with the same
        counter-based noise :func:`predict` uses for HDI intervals (same ``random_state``).
        For a cold side, ``m_s`` integrates the unknown vector over its population
        distribution and ``sd_s`` includes its variance.
    random_state : int, Generator or None
        Seed of the noise.

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, pair)``; coords ``pair`` (0..P-1) and ``user``, ``item`` (raw
        ids, along ``pair``), ``cold_user``, ``cold_item``.

    Raises
    ------
    BayesMFError
        If the fit has no posterior draws.

    Notes
    -----
    The result holds ``chains * draws * pairs`` float64 numbers (8 GB for 1M pairs x 1000
    draws); for summaries of many pairs use :func:`predict`, which streams.
    """
    users, items = _check_pairs(pairs, user_col, item_col)
    parts = predictive_parts(fit)
    if parts.kind != "draws":
        raise BayesMFError(
            f"predict_draws needs posterior draws, but {type(fit).__name__} "
            f"(method {parts.method!r}) is a point fit; use predict() instead"
        )
    u, i = _lookup(parts.ratings, users, items)
    u, i, cold_u, cold_i = _cold_mask(parts, u, i)
    out = _fill(parts, u, i, include_noise, _seed(random_state))
    S, P = out.shape
    return xr.DataArray(
        out.reshape(parts.n_chain, parts.n_draw, P),
        dims=("chain", "draw", "pair"),
        coords={
            "chain": np.arange(parts.n_chain),
            "draw": np.arange(parts.n_draw),
            "pair": np.arange(P),
            "user": ("pair", np.asarray(users)),
            "item": ("pair", np.asarray(items)),
            "cold_user": ("pair", cold_u),
            "cold_item": ("pair", cold_i),
        },
        name="rating_pred" if include_noise else "rating_mean",
        attrs={"include_noise": int(include_noise), "method": parts.method},
    )


def _fill(
    parts: PredictiveParts,
    u: np.ndarray,
    i: np.ndarray,
    include_noise: bool,
    seed: np.uint64,
    user_pop: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``(S, P)`` component means (plus noise) for masked indices."""
    S = parts.n_samples
    out = np.empty((S, len(u)))
    pk.fill_draws(u, i, *_kernel_args(parts, u, i, user_pop), bool(include_noise), seed, 0,
                  _block_size(len(u), S), out)
    return out


def recommend(
    fit: Any,
    user: Any,
    n: int = 10,
    by: str = "mean",
    prob: float = 0.9,
    exclude_seen: bool = True,
    random_state: int | np.random.Generator | None = None,
    include_cold_items: bool = False,
) -> pd.DataFrame:
    """Top-``n`` items for one user, ranked with their uncertainty.

    Parameters
    ----------
    fit : FitBase
        A fitted estimator.
    user : hashable
        Raw user id. An unknown id gets population (cold-start) predictions.
    n : int
        Number of items to return.
    by : {"mean", "lower", "thompson"}
        Rank by predictive mean, by the lower bound of the ``prob`` interval (a cautious
        recommender), or by Thompson sampling: one joint posterior draw of the latent means of
        all candidate items (Bayesian fits; MAP draws from its Laplace approximation).
    prob : float
        Interval probability of the ``lower`` / ``upper`` columns.
    exclude_seen : bool
        Drop items the user rated in the training data.
    random_state : int, Generator or None
        Seed of the Thompson draw.
    include_cold_items : bool
        Also rank items with no training rating (they get the population prediction).

    Returns
    -------
    pandas.DataFrame
        One row per recommended item, best first: ``rank, item, score, mean, sd, lower, upper``,
        ``title`` when the training data has item titles, and ``cold_user``.

    Raises
    ------
    BayesMFError
        Bad ``n``/``by``/``prob``; ``by="lower"``/``"thompson"`` on a fit without uncertainty.
    """
    n = check_positive_int(n, "n")
    by = check_choice(by, "by", RECOMMEND_BY)
    prob = check_probability(prob, "prob")
    parts = predictive_parts(fit)
    r = parts.ratings
    if by != "mean" and not parts.has_uncertainty:
        raise BayesMFError(
            f"by={by!r} needs predictive uncertainty, which a {parts.method!r} fit does not have"
        )
    u_idx = int(r.user_index([user])[0])
    cand = np.arange(r.n_items)
    if not include_cold_items:
        cand = cand[r.item_counts > 0]
    if exclude_seen and u_idx >= 0:
        bu = r.by_user
        seen = bu.indices[bu.indptr[u_idx]:bu.indptr[u_idx + 1]]
        cand = np.setdiff1d(cand, seen)
    if cand.size == 0:
        raise BayesMFError(f"user {user!r} has no unseen item left to recommend")
    uu = np.full(cand.size, u_idx, dtype=np.int64)
    # rank on the cheapest summary that decides the order, then add intervals for the top n
    if by == "lower":
        score = predictive_summary(fit, uu, cand, probs=(prob,), levels=False,
                                   parts=parts).intervals[prob][0]
    elif by == "mean":
        score = predictive_summary(fit, uu, cand, probs=(), levels=False, parts=parts).mean
    else:
        score = _thompson_scores(parts, uu, cand, random_state)
    top = np.argsort(-score, kind="stable")[:n]
    summ = predictive_summary(fit, uu[top], cand[top], probs=(prob,), levels=False, parts=parts)
    lo, hi = _clip_interval(r.scale, *summ.intervals[prob])
    out = pd.DataFrame({
        "rank": np.arange(1, top.size + 1),
        "item": r.item_ids[cand[top]],
        "score": score[top],
        "mean": summ.mean,
        "sd": summ.sd,
        "lower": lo,
        "upper": hi,
    })
    titles = r.item_titles(cand[top])
    if titles is not None:
        out["title"] = titles
    out["cold_user"] = bool(summ.cold_user[0])
    out.attrs["by"] = by
    out.attrs["user"] = user
    return out


def _thompson_scores(
    parts: PredictiveParts, u: np.ndarray, i: np.ndarray, random_state: Any
) -> np.ndarray:
    rng = as_rng(random_state)
    um, im, _, _ = _cold_mask(parts, u, i)
    if parts.kind == "draws":
        s = int(rng.integers(parts.n_samples))
        sub = PredictiveParts(
            parts.fit, parts.method, parts.kind, parts.ratings,
            parts.U[s:s + 1], parts.V[s:s + 1], parts.mu[s:s + 1], parts.sigma[s:s + 1],
            parts.user_bias[min(s, parts.user_bias.shape[0] - 1)][None],
            parts.item_bias[min(s, parts.item_bias.shape[0] - 1)][None],
            1, 1, parts.link, parts.lo, parts.span, parts.noise_scale,
        )
        if np.any(um < 0) or np.any(im < 0):
            for side in ("user", "item"):
                m, c = parts.population(side)
                j = min(s, m.shape[0] - 1)
                sub._pop[side] = (m[j:j + 1], c[j:j + 1])
        return _fill(sub, um, im, False, np.uint64(0))[0]
    if parts.kind != "laplace":
        raise BayesMFError(
            f"Thompson sampling needs a posterior over the latent means; a {parts.method!r} fit "
            "has none (use by='mean' or by='lower')"
        )
    summ = predictive_summary(parts.fit, u, i, probs=(), levels=False, parts=parts)
    noise = (parts.noise_scale * parts.sigma[0]) ** 2
    latent_sd = np.sqrt(np.maximum(summ.sd**2 - noise, 0.0))
    return summ.mean + latent_sd * rng.standard_normal(len(u))
