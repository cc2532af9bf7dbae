"""Held-out evaluation: metric functions, ``evaluate`` for one fit, and ``cross_validate``.

Layered like arviz-stats: plain NumPy metric functions on arrays first (:func:`rmse`,
:func:`mae`, :func:`coverage`, :func:`mean_interval_width`, :func:`crps_gaussian`,
:func:`crps_from_draws`, :func:`log_predictive_density_gaussian`,
:func:`log_predictive_density_from_draws`), then the fit-level wrappers :func:`evaluate` (one fit,
one test set, a dict of numbers) and :func:`cross_validate` (any estimator over a split scheme, a
tidy DataFrame).

Every metric function checks its inputs: arrays of different lengths, empty arrays and NaN or
infinite values raise a :class:`~bayesmf.exceptions.BayesMFError` naming the argument.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from bayesmf._validation import check_probability
from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError, DataError

__all__ = [
    "rmse",
    "mae",
    "coverage",
    "mean_interval_width",
    "crps_gaussian",
    "crps_from_draws",
    "log_predictive_density_gaussian",
    "log_predictive_density_from_draws",
    "gaussian_interval",
    "evaluate",
    "cross_validate",
    "summarize_cv",
    "warm_up",
]

_REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------------- input checks
def _as_vector(x: Any, name: str, allow_nan: bool = False) -> np.ndarray:
    """Return ``x`` as a 1-d float array, raising a clear error on bad input."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{name} must be an array of numbers ({err})") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise BayesMFError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise BayesMFError(f"{name} is empty: nothing to evaluate")
    if not allow_nan:
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataError(
                f"{name} has {int(bad.sum())} NaN or infinite value(s) "
                f"(first at position {int(np.flatnonzero(bad)[0])})"
            )
    return arr


def _vectors(**arrays: Any) -> list[np.ndarray]:
    """Check several arrays at once: 1-d, non-empty, finite, equal lengths."""
    out = [_as_vector(v, k) for k, v in arrays.items()]
    lengths = {k: len(v) for k, v in zip(arrays, out, strict=True)}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise BayesMFError(f"length mismatch: {desc}")
    return out


def _broadcast_scale(value: Any, n: int, name: str) -> np.ndarray:
    """A scalar or length-``n`` array of positive numbers (predictive sds)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    arr = _as_vector(arr, name)
    if len(arr) != n:
        raise BayesMFError(f"length mismatch: {name} has {len(arr)}, y has {n}")
    if np.any(arr <= 0):
        raise BayesMFError(f"{name} must be positive, found {int(np.sum(arr <= 0))} value(s) <= 0")
    return arr


def _reduce(values: np.ndarray, reduce: str) -> float | np.ndarray:
    if reduce == "mean":
        return float(values.mean())
    if reduce == "sum":
        return float(values.sum())
    if reduce == "none":
        return values
    raise BayesMFError(f"reduce must be one of {_REDUCTIONS}, got {reduce!r}")


# ---------------------------------------------------------------------------- point metrics
def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error.

    Parameters
    ----------
    y_true, y_pred : array_like of float
        Observed and predicted ratings, same length.

    Returns
    -------
    float

    Examples
    --------
    >>> rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])  # sqrt(4 / 3)
    1.1547005383792515
    """
    y, p = _vectors(y_true=y_true, y_pred=y_pred)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error.

    Parameters
    ----------
    y_true, y_pred : array_like of float
        Observed and predicted ratings, same length.

    Returns
    -------
    float

    Examples
    --------
    >>> mae([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
    1.0
    """
    y, p = _vectors(y_true=y_true, y_pred=y_pred)
    return float(np.mean(np.abs(y - p)))


# ---------------------------------------------------------------------------- intervals
def coverage(y_true: Any, lower: Any, upper: Any) -> float:
    """Fraction of observations inside their interval ``[lower, upper]`` (ends included).

    Parameters
    ----------
    y_true, lower, upper : array_like of float
        Observations and interval bounds, same length; ``lower <= upper`` required.

    Returns
    -------
    float
        Empirical coverage in [0, 1].

    Examples
    --------
    >>> coverage([1.0, 2.0, 3.0, 4.0], [0.0, 2.5, 2.0, 4.0], [2.0, 3.0, 4.0, 5.0])
    0.75
    """
    y, lo, hi = _vectors(y_true=y_true, lower=lower, upper=upper)
    _check_ordered(lo, hi)
    return float(np.mean((y >= lo) & (y <= hi)))


def mean_interval_width(lower: Any, upper: Any) -> float:
    """Mean of ``upper - lower``.

    Parameters
    ----------
    lower, upper : array_like of float
        Interval bounds, same length, ``lower <= upper``.

    Returns
    -------
    float

    Examples
    --------
    >>> mean_interval_width([0.0, 1.0], [1.0, 4.0])
    2.0
    """
    lo, hi = _vectors(lower=lower, upper=upper)
    _check_ordered(lo, hi)
    return float(np.mean(hi - lo))


def _check_ordered(lo: np.ndarray, hi: np.ndarray) -> None:
    bad = lo > hi
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise BayesMFError(
            f"{int(bad.sum())} interval(s) have lower > upper, e.g. position {k}: "
            f"[{lo[k]}, {hi[k]}]"
        )


def gaussian_interval(mean: Any, sd: Any, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Central ``prob`` interval of a Normal(mean, sd) predictive.

    Parameters
    ----------
    mean : array_like of float
        Predictive means.
    sd : float or array_like of float
        Predictive standard deviations (> 0).
    prob : float
        Interval probability in (0, 1).

    Returns
    -------
    lower, upper : numpy.ndarray

    Examples
    --------
    >>> lo, hi = gaussian_interval([0.0], 1.0, 0.95)
    >>> round(float(hi[0]), 4)
    1.96
    """
    prob = check_probability(prob, "interval probability")
    m = _as_vector(mean, "mean")
    s = _broadcast_scale(sd, len(m), "sd")
    z = stats.norm.ppf(0.5 + prob / 2.0)
    return m - z * s, m + z * s


# ---------------------------------------------------------------------------- proper scores
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def crps_gaussian(y: Any, mean: Any, sd: Any, reduce: str = "mean") -> float | np.ndarray:
    """Continuous ranked probability score of a Normal predictive, in closed form.

    ``CRPS(N(m, s^2), y) = s * (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi))`` with
    ``z = (y - m) / s`` (Gneiting & Raftery 2007). Lower is better; it has the units of the
    ratings and reduces to the absolute error as ``s -> 0``.

    Parameters
    ----------
    y, mean : array_like of float
        Observations and predictive means, same length.
    sd : float or array_like of float
        Predictive standard deviations (> 0).
    reduce : {"mean", "sum", "none"}
        Average, total, or the per-observation array.

    Returns
    -------
    float or numpy.ndarray

    Examples
    --------
    >>> round(crps_gaussian([0.0], [0.0], 1.0), 6)  # (sqrt(2) - 1) / sqrt(pi)
    0.233695
    """
    yv, m = _vectors(y=y, mean=mean)
    s = _broadcast_scale(sd, len(yv), "sd")
    z = (yv - m) / s
    score = s * (z * (2.0 * special.ndtr(z) - 1.0) + 2.0 * stats.norm.pdf(z) - _INV_SQRT_PI)
    return _reduce(score, reduce)


def _as_draws(draws: Any, n: int) -> np.ndarray:
    arr = np.asarray(draws, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise BayesMFError(f"draws must have shape (n_draws, n_obs), got shape {arr.shape}")
    if arr.shape[1] != n:
        hint = " (transpose it: draws are along axis 0)" if arr.shape[0] == n else ""
        raise BayesMFError(
            f"draws must have shape (n_draws, {n}) to match y, got {arr.shape}{hint}"
        )
    if arr.shape[0] == 0:
        raise BayesMFError("draws is empty: need at least one draw")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"draws has {int((~np.isfinite(arr)).sum())} NaN or infinite value(s)")
    return arr


def crps_from_draws(y: Any, draws: Any, reduce: str = "mean") -> float | np.ndarray:
    """CRPS of a sample-based predictive, energy form ``E|X - y| - E|X - X'| / 2``.

    Both expectations are taken over the empirical distribution of the draws (the V-statistic,
    as in ``properscoring.crps_ensemble``). ``E|X - X'|`` is computed exactly in
    ``O(S log S)`` per observation from the sorted draws:
    ``sum_{i,j} |x_i - x_j| = 2 sum_i (2i - S - 1) x_(i)``.

    Parameters
    ----------
    y : array_like of float, shape (n,)
        Observations.
    draws : array_like of float, shape (n_draws, n)
        Predictive draws, draws along axis 0 (flatten chains first).
    reduce : {"mean", "sum", "none"}
        Average, total, or the per-observation array.

    Returns
    -------
    float or numpy.ndarray

    Examples
    --------
    >>> crps_from_draws([1.0], [[0.0], [2.0]])  # E|X-y| = 1, E|X-X'| = 1
    0.5
    """
    yv = _as_vector(y, "y")
    x = _as_draws(draws, len(yv))
    s = x.shape[0]
    term1 = np.mean(np.abs(x - yv[None, :]), axis=0)
    xs = np.sort(x, axis=0)
    w = (2.0 * np.arange(1, s + 1) - s - 1.0)[:, None]
    mean_abs_diff = 2.0 * np.sum(w * xs, axis=0) / (s * s)
    return _reduce(term1 - 0.5 * mean_abs_diff, reduce)


def log_predictive_density_gaussian(
    y: Any, mean: Any, sd: Any, reduce: str = "mean"
) -> float | np.ndarray:
    """Log density of the observations under Normal(mean, sd) predictives.

    Parameters
    ----------
    y, mean : array_like of float
        Observations and predictive means, same length.
    sd : float or array_like of float
        Predictive standard deviations (> 0).
    reduce : {"mean", "sum", "none"}
        Mean log density per observation (default), the total, or the per-observation array.

    Returns
    -------
    float or numpy.ndarray

    Examples
    --------
    >>> round(log_predictive_density_gaussian([0.0], [0.0], 1.0), 6)  # -log(2 pi) / 2
    -0.918939
    """
    yv, m = _vectors(y=y, mean=mean)
    s = _broadcast_scale(sd, len(yv), "sd")
    return _reduce(stats.norm.logpdf(yv, loc=m, scale=s), reduce)


def log_predictive_density_from_draws(
    y: Any, mean_draws: Any, sigma: Any, reduce: str = "mean"
) -> float | np.ndarray:
    """Held-out log predictive density ``log( (1/S) sum_s N(y | mean_s, sigma_s) )``.

    The log-mean-exp over posterior draws of the Gaussian likelihood, per observation.

    Parameters
    ----------
    y : array_like of float, shape (n,)
        Observations.
    mean_draws : array_like of float, shape (n_draws, n)
        Latent predicted means per draw (draws along axis 0).
    sigma : float or array_like
        Noise sd: a scalar, one per draw ``(n_draws,)``, or ``(n_draws, n)``.
    reduce : {"mean", "sum", "none"}
        Mean per observation (default), total, or the per-observation array.

    Returns
    -------
    float or numpy.ndarray

    Examples
    --------
    >>> round(log_predictive_density_from_draws([0.0], [[0.0], [0.0]], 1.0), 6)
    -0.918939
    """
    yv = _as_vector(y, "y")
    mu = _as_draws(mean_draws, len(yv))
    sig = np.asarray(sigma, dtype=np.float64)
    if sig.ndim == 1:
        if len(sig) != mu.shape[0]:
            raise BayesMFError(
                f"sigma has {len(sig)} values but there are {mu.shape[0]} draws"
            )
        sig = sig[:, None]
    try:
        sig = np.broadcast_to(sig, mu.shape)
    except ValueError:
        raise BayesMFError(
            f"sigma of shape {np.shape(sigma)} does not fit draws of shape {mu.shape}"
        ) from None
    if not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise BayesMFError("sigma must be finite and positive")
    logp = stats.norm.logpdf(yv[None, :], loc=mu, scale=sig)
    lpd = special.logsumexp(logp, axis=0) - math.log(mu.shape[0])
    return _reduce(lpd, reduce)


# ---------------------------------------------------------------------------- fit level
def _prob_key(prob: float) -> str:
    return f"{100.0 * prob:g}"


def _map_to_training(fit: Any, test: Ratings) -> tuple[Ratings, np.ndarray, np.ndarray]:
    """Indices of the test pairs in the fit's training id maps (-1 = unknown id)."""
    train = getattr(fit, "ratings_", None)
    if train is None:
        from bayesmf._validation import check_fitted

        check_fitted(fit, "ratings_")
    if train.user_ids is test.user_ids or train.user_ids.equals(test.user_ids):
        u = test.users.astype(np.int64)
    else:
        u = train.user_index(test.user_ids[test.users]).astype(np.int64)
    if train.item_ids is test.item_ids or train.item_ids.equals(test.item_ids):
        i = test.items.astype(np.int64)
    else:
        i = train.item_index(test.item_ids[test.items]).astype(np.int64)
    return train, u, i


def evaluate(
    fit: Any,
    test: Ratings,
    interval_prob: float | Sequence[float] = (0.5, 0.9),
    clip: bool = True,
) -> dict[str, float | int]:
    """Held-out accuracy and calibration of a fitted estimator.

    Parameters
    ----------
    fit : FitBase
        A fitted estimator (baseline, point fit or Bayesian fit).
    test : Ratings
        Held-out ratings. A split of the training data (``Ratings.take``) shares its id maps;
        otherwise test pairs are matched to the training data by raw id.
    interval_prob : float or sequence of float
        Probabilities of the central predictive intervals to score (default 50% and 90%).
    clip : bool
        Clip point predictions to the rating scale before scoring (as recommenders do).

    Returns
    -------
    dict
        ``rmse``, ``mae`` (of the predictive mean, clipped to the scale when ``clip``); when the
        fit gives a predictive distribution: ``coverage_<p>`` and ``width_<p>`` for each interval
        probability (e.g. ``coverage_50``, ``width_90``), ``lpd`` (mean held-out log predictive
        density per rating: the log-mean-exp over posterior draws for a Bayesian fit) and, when
        the predictive is a single Normal (MAP's Laplace approximation, the Gaussian
        baselines), ``crps`` (mean closed-form CRPS); always ``n_test`` and ``n_cold`` (test
        pairs whose user or item is unknown or has no training rating).

    Notes
    -----
    The predictive comes from :func:`bayesmf.predict.predictive_summary`, so every method is
    scored the same way. A fit without a predictive distribution (MLE, SGD) gets point
    metrics only. Cold pairs are predicted from the population, as in
    :func:`bayesmf.predict.predict`, and included in every metric.

    Examples
    --------
    >>> from bayesmf.datasets import load_toy
    >>> from bayesmf.models.baselines import GlobalMeanBaseline
    >>> toy = load_toy()
    >>> train, test = toy.take(toy.users != 1), toy.take(toy.users == 1)
    >>> res = evaluate(GlobalMeanBaseline().fit(train), test)
    >>> round(res["rmse"], 4), res["n_test"], res["n_cold"]
    (1.7017, 3, 3)
    """
    if not isinstance(test, Ratings):
        raise BayesMFError(f"test must be a Ratings object, got {type(test).__name__}")
    if test.nnz == 0:
        raise BayesMFError("the test set is empty: nothing to evaluate")
    probs = _as_probs(interval_prob)
    train, u, i = _map_to_training(fit, test)

    from bayesmf.predict import predictive_parts, predictive_summary

    parts = predictive_parts(fit)
    y = test.values
    summ = predictive_summary(fit, u, i, probs=probs, levels=False, y=y, parts=parts)
    mean = summ.mean
    if clip and train.scale is not None:
        mean = train.scale.clip(mean)
    out: dict[str, float | int] = {"rmse": rmse(y, mean), "mae": mae(y, mean)}
    if summ.has_uncertainty:
        for p in probs:
            lo, hi = summ.intervals[p]
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                out[f"coverage_{_prob_key(p)}"] = coverage(y[ok], lo[ok], hi[ok])
                out[f"width_{_prob_key(p)}"] = mean_interval_width(lo[ok], hi[ok])
        if summ.lpd is not None and np.all(np.isfinite(summ.lpd)):
            out["lpd"] = float(np.mean(summ.lpd))
        gaussian = parts.kind == "laplace" or (
            parts.kind == "native" and getattr(fit, "predictive_is_gaussian", True)
        )
        sd = np.asarray(summ.sd, dtype=np.float64)
        if gaussian and np.all(np.isfinite(sd) & (sd > 0)):
            out["crps"] = float(crps_gaussian(y, summ.mean, sd))
    out["n_test"] = int(test.nnz)
    out["n_cold"] = int(np.sum(summ.cold_user | summ.cold_item))
    return out


def _as_probs(interval_prob: float | Sequence[float] | None) -> tuple[float, ...]:
    if interval_prob is None:
        return ()
    if isinstance(interval_prob, (int, float, np.floating)):
        interval_prob = (interval_prob,)
    return tuple(check_probability(p, "interval_prob") for p in interval_prob)


# ---------------------------------------------------------------------------- cross-validation
def _clone(estimator: Any, **overrides: Any) -> Any:
    """A fresh, unfitted estimator with ``estimator``'s arguments (some replaced)."""
    return type(estimator)(**{**estimator.get_params(), **overrides})


#: constructor arguments that bound the work of a fit; :func:`warm_up` caps them
_WORK_CAPS = {"max_iter": 30, "n_iter": 30, "n_epochs": 5}


def warm_up(estimator: Any, ratings: Ratings, n_ratings: int = 20_000,
            random_state: Any = 0) -> bool:
    """Fit a throw-away copy of ``estimator`` on a slice of ``ratings`` before a timed fit.

    The compiled numba kernels of the point estimators are loaded from numba's cache on the
    first call in a process, which costs 0.2-0.4 s: more than a whole MAP fit of
    ml-latest-small (about 0.05 s). A table of fit times in which the first fit carries that
    one-time cost misleads, so :func:`cross_validate` and the CLI's ``demo`` and ``evaluate``
    call this first. The copy is fitted on ``n_ratings`` ratings drawn at random, with its
    iteration count capped (``max_iter``/``n_iter`` 30, ``n_epochs`` 5), which runs the
    same kernels (threaded and accelerated paths included) at a small cost. Warnings of the
    copy's fit are suppressed; ``estimator`` itself is not touched.

    Bayesian estimators are not warmed: their one-time costs (PyMC's compilation of a model
    for the data at hand) belong to each fit, and a throw-away MCMC run is not cheap.

    Parameters
    ----------
    estimator : FitBase
        The estimator that is about to be timed (it needs ``get_params``).
    ratings : Ratings
        Its training data (a slice of it is used).
    n_ratings : int
        Size of the slice.
    random_state : int, Generator or None
        Seed of the slice.

    Returns
    -------
    bool
        Whether a warm-up fit ran.
    """
    if getattr(estimator, "is_bayesian", False) or not hasattr(estimator, "get_params"):
        return False
    params = estimator.get_params()
    overrides: dict[str, Any] = {name: min(params[name], cap) for name, cap in _WORK_CAPS.items()
                                 if isinstance(params.get(name), int)}
    if "progress" in params:
        overrides["progress"] = False
    if ratings.nnz > n_ratings:
        rng = np.random.default_rng(random_state)
        ratings = ratings.take(np.sort(rng.choice(ratings.nnz, n_ratings, replace=False)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _clone(estimator, **overrides).fit(ratings)
    return True


def _estimator_factory(make_estimator: Any) -> Callable[[], Any]:
    if hasattr(make_estimator, "get_params") and hasattr(make_estimator, "fit"):
        return lambda: _clone(make_estimator)
    if callable(make_estimator):
        return make_estimator
    raise BayesMFError(
        "make_estimator must be an estimator (with get_params and fit) or a callable "
        f"returning one, got {type(make_estimator).__name__}"
    )


def _folds(
    ratings: Ratings, scheme: str | Iterable[tuple[Ratings, Ratings]], random_state: Any
) -> list[tuple[Ratings, Ratings]]:
    """Resolve a split scheme string (via :mod:`bayesmf.split`) or accept explicit folds."""
    if isinstance(scheme, str):
        from bayesmf import split as split_mod

        return list(split_mod.make_splits(ratings, scheme, random_state=random_state))
    folds = list(scheme)
    for k, fold in enumerate(folds):
        if not (isinstance(fold, tuple) and len(fold) == 2):
            raise BayesMFError(f"fold {k} must be a (train, test) pair of Ratings")
    return folds


def cross_validate(
    make_estimator: Any,
    ratings: Ratings,
    scheme: str | Iterable[tuple[Ratings, Ratings]] = "kfold:5",
    random_state: Any = 0,
    metrics: Sequence[str] | None = None,
    interval_prob: float | Sequence[float] = (0.5, 0.9),
    progress: bool = True,
    warm: bool = True,
) -> pd.DataFrame:
    """Fit and evaluate an estimator on every fold of a split scheme.

    Parameters
    ----------
    make_estimator : FitBase or callable
        An estimator instance (cloned for each fold from ``get_params()``, so the instance
        itself is never fitted) or a zero-argument callable returning a fresh estimator.
    ratings : Ratings
        The full data set.
    scheme : str or iterable of (train, test)
        A split scheme of :func:`bayesmf.split.make_splits` (``"kfold:5"``, ``"random"``,
        ``"user:K"``) or explicit ``(train, test)`` pairs of Ratings (e.g. the MovieLens
        folds from :func:`bayesmf.split.movielens_folds`).
    random_state : int, Generator or None
        Seed of the split.
    metrics : sequence of str, optional
        Keep only these metric columns (names as returned by :func:`evaluate`);
        default all.
    interval_prob : float or sequence of float
        Interval probabilities passed to :func:`evaluate`.
    progress : bool
        Show a progress bar over folds when stderr is a terminal.
    warm : bool
        Before the first fold, fit a throw-away copy on a slice of its training data
        (:func:`warm_up`) so that the first fold's ``fit_time`` does not include loading the
        compiled kernels.

    Returns
    -------
    pandas.DataFrame
        One row per fold: ``fold``, ``method``, ``n_train``, ``n_test``, ``fit_time``,
        ``eval_time``, then the metric columns. See :func:`summarize_cv` for mean and sd.
    """
    if not isinstance(ratings, Ratings):
        raise BayesMFError(f"ratings must be a Ratings object, got {type(ratings).__name__}")
    factory = _estimator_factory(make_estimator)
    folds = _folds(ratings, scheme, random_state)
    if not folds:
        raise BayesMFError("the split scheme produced no folds")
    from bayesmf.progress import track

    rows: list[dict[str, Any]] = []
    for k, (train, test) in enumerate(
        track(folds, "cross-validation", enabled=None if progress else False)
    ):
        est = factory()
        if k == 0 and warm:
            warm_up(est, train)
        t0 = time.perf_counter()
        est.fit(train)
        fit_time = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = evaluate(est, test, interval_prob=interval_prob)
        eval_time = time.perf_counter() - t0
        if metrics is not None:
            unknown = [m for m in metrics if m not in scores]
            if unknown:
                raise BayesMFError(
                    f"unknown metric(s) {unknown} for {type(est).__name__}; "
                    f"available: {sorted(scores)}"
                )
            scores = {m: scores[m] for m in metrics}
        rows.append(
            {
                "fold": k,
                "method": getattr(est, "method", type(est).__name__),
                "n_train": int(train.nnz),
                "n_test": int(test.nnz),
                "fit_time": float(getattr(est, "fit_time_", fit_time) or fit_time),
                "eval_time": eval_time,
                **{m: v for m, v in scores.items() if m != "n_test"},
            }
        )
    return pd.DataFrame(rows)


def summarize_cv(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation across folds of every numeric column of a CV table.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`cross_validate` (possibly several concatenated, grouped by ``method``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``method``, columns ``<metric>_mean`` and ``<metric>_sd``.
    """
    numeric = [
        c for c in results.columns
        if c not in ("fold", "method") and pd.api.types.is_numeric_dtype(results[c])
    ]
    grouped = results.groupby("method", sort=False)[numeric]
    mean = grouped.mean().add_suffix("_mean")
    sd = grouped.std(ddof=1).add_suffix("_sd")
    cols = [c for m in numeric for c in (f"{m}_mean", f"{m}_sd")]
    return pd.concat([mean, sd], axis=1)[cols]
