"""Figures for fits (matplotlib and ArviZ); every function returns a ``matplotlib.figure.Figure``.

- :func:`plot_trace`: trace or rank plots of the identifiable hyperparameters (never raw factors).
- :func:`plot_energy`: ArviZ energy plot (NUTS only).
- :func:`plot_ppc`: posterior predictive check -- observed rating histogram against the
  predictive probability of every rating level.
- :func:`plot_calibration`: nominal against empirical coverage of central predictive intervals
  on held-out ratings, one line per fit.
- :func:`plot_sd_vs_count`: predictive sd against the number of training ratings of the user.
"""

from __future__ import annotations

from typing import Any

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from bayesmf._validation import as_rng, check_positive_int
from bayesmf.data import Ratings
from bayesmf.diagnostics import identifiable_draws
from bayesmf.exceptions import BayesMFError
from bayesmf.predict import _lookup, predictive_parts, predictive_summary

__all__ = ["plot_trace", "plot_energy", "plot_ppc", "plot_calibration", "plot_sd_vs_count"]

TRACE_VARS = ("mu", "sigma", "sigma_user_bias", "sigma_item_bias", "sum_sigma_u2",
              "sum_sigma_v2", "norm_U", "norm_V", "loglik")


def _figure_of(axes: Any) -> Figure:
    return np.asarray(axes).ravel()[0].figure


def plot_trace(fit: Any, var_names: list[str] | None = None, kind: str = "trace") -> Figure:
    """Trace (or rank) plots of a Bayesian fit's identifiable hyperparameters.

    Parameters
    ----------
    fit : FitBase
        A fit with posterior draws.
    var_names : list of str, optional
        Subset of :data:`TRACE_VARS` (names from :func:`bayesmf.diagnostics.identifiable_draws`).
    kind : {"trace", "rank"}
        ArviZ ``plot_trace`` with line traces or rank bars.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if kind not in ("trace", "rank"):
        raise BayesMFError(f"kind must be 'trace' or 'rank', got {kind!r}")
    ds = identifiable_draws(fit, n_probe=1)
    names = [v for v in (var_names or TRACE_VARS) if v in ds]
    if not names:
        raise BayesMFError(f"none of {var_names} is available; choose from {list(ds.data_vars)}")
    idata = az.convert_to_inference_data(ds[names])
    axes = az.plot_trace(idata, var_names=names, kind="rank_bars" if kind == "rank" else "trace",
                         compact=True)
    fig = _figure_of(axes)
    fig.suptitle(f"{getattr(fit, 'method', '')} posterior: identifiable quantities")
    return fig


def plot_energy(fit: Any) -> Figure:
    """ArviZ energy plot (marginal vs transition energy) of a NUTS fit.

    Raises
    ------
    BayesMFError
        If the fit has no ``sample_stats.energy`` (not NUTS).
    """
    idata = getattr(fit, "idata_", None)
    stats = getattr(idata, "sample_stats", None) if idata is not None else None
    if stats is None or "energy" not in stats:
        raise BayesMFError("plot_energy needs a NUTS fit (sample_stats.energy)")
    ax = az.plot_energy(idata)
    return _figure_of(ax)


def _pairs_sample(r: Ratings, max_pairs: int, random_state: Any) -> np.ndarray:
    idx = np.arange(r.nnz)
    if r.nnz > max_pairs:
        idx = np.sort(as_rng(random_state).choice(r.nnz, size=max_pairs, replace=False))
    return idx


def plot_ppc(
    fit: Any, ratings: Ratings | None = None, max_pairs: int = 5000, random_state: Any = 0
) -> Figure:
    """Posterior predictive check: observed rating histogram vs predictive level probabilities.

    For each observed (user, item) pair the predictive gives a probability per rating level;
    summed over pairs this is the expected histogram, drawn next to the observed counts.

    Parameters
    ----------
    fit : FitBase
        A fit with a predictive distribution.
    ratings : Ratings, optional
        Ratings to check (default the training data; pass a test set for a held-out check).
    max_pairs : int
        Random subsample of pairs used (both histograms use the same pairs).
    random_state : int, Generator or None
        Seed of the subsample.

    Returns
    -------
    matplotlib.figure.Figure
    """
    parts = predictive_parts(fit)
    r = parts.ratings if ratings is None else ratings
    sc = parts.ratings.scale
    if sc is None or sc.step is None:
        raise BayesMFError("plot_ppc needs a stepped rating scale")
    idx = _pairs_sample(r, check_positive_int(max_pairs, "max_pairs"), random_state)
    u, i = _lookup(parts.ratings, r.user_ids[r.users[idx]], r.item_ids[r.items[idx]])
    summ = predictive_summary(fit, u, i, probs=(0.5,), parts=parts)
    if summ.level_probs is None:
        raise BayesMFError(f"a {parts.method!r} fit has no predictive distribution to check")
    levels = sc.levels
    observed = np.array([np.sum(np.isclose(r.values[idx], lv)) for lv in levels])
    expected = summ.level_probs.sum(axis=0)
    sd = np.sqrt((summ.level_probs * (1 - summ.level_probs)).sum(axis=0))
    fig, ax = plt.subplots(figsize=(7, 4))
    w = 0.4 * sc.step
    ax.bar(levels - w / 2, observed, width=w, label="observed", color="0.6")
    ax.bar(levels + w / 2, expected, width=w, yerr=2 * sd, label="posterior predictive",
           color="C0", alpha=0.8)
    ax.set_xlabel("rating")
    ax.set_ylabel(f"count ({len(idx)} pairs)")
    ax.set_xticks(levels)
    ax.set_title(f"Posterior predictive check ({parts.method})")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_calibration(
    fits: Any, test: Ratings, probs: Any = None, max_pairs: int = 20000, random_state: Any = 0
) -> Figure:
    """Nominal vs empirical coverage of central predictive intervals on held-out ratings.

    Parameters
    ----------
    fits : FitBase or dict of str -> FitBase
        One fit or several by label (fits without uncertainty are skipped).
    test : Ratings
        Held-out ratings.
    probs : sequence of float, optional
        Nominal probabilities (default 0.1, 0.2, ..., 0.9, 0.95).
    max_pairs : int
        Random subsample of test ratings used.

    Returns
    -------
    matplotlib.figure.Figure
        One line per fit and the diagonal; ``fig.coverage`` holds ``{label: array}``.
    """
    if not isinstance(fits, dict):
        fits = {getattr(fits, "method", "fit"): fits}
    probs = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
                     if probs is None else probs, dtype=float)
    idx = _pairs_sample(test, check_positive_int(max_pairs, "max_pairs"), random_state)
    y = test.values[idx]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", label="ideal")
    cov: dict[str, np.ndarray] = {}
    for label, fit in fits.items():
        parts = predictive_parts(fit)
        if not parts.has_uncertainty:
            continue
        u, i = _lookup(parts.ratings, test.user_ids[test.users[idx]],
                       test.item_ids[test.items[idx]])
        summ = predictive_summary(fit, u, i, probs=tuple(probs), levels=False, parts=parts)
        c = np.array([np.mean((y >= summ.intervals[p][0]) & (y <= summ.intervals[p][1]))
                      for p in probs])
        cov[label] = c
        ax.plot(probs, c, marker="o", label=label)
    if not cov:
        raise BayesMFError("none of the fits has predictive intervals to calibrate")
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("empirical coverage on held-out ratings")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Interval calibration")
    ax.legend()
    fig.tight_layout()
    fig.coverage = cov  # type: ignore[attr-defined]
    return fig


def plot_sd_vs_count(
    fit: Any, pairs: Ratings | None = None, max_pairs: int = 20000, random_state: Any = 0
) -> Figure:
    """Predictive sd of each pair against the number of training ratings of its user.

    Parameters
    ----------
    fit : FitBase
        A fit with a predictive distribution.
    pairs : Ratings, optional
        Pairs to predict (default a sample of the training pairs); their values are unused.
    max_pairs : int
        Random subsample of pairs.

    Returns
    -------
    matplotlib.figure.Figure
        Scatter plot with the median sd per log-spaced bin of user counts.
    """
    parts = predictive_parts(fit)
    if not parts.has_uncertainty:
        raise BayesMFError(f"a {parts.method!r} fit has no predictive sd")
    r = parts.ratings if pairs is None else pairs
    idx = _pairs_sample(r, check_positive_int(max_pairs, "max_pairs"), random_state)
    u, i = _lookup(parts.ratings, r.user_ids[r.users[idx]], r.item_ids[r.items[idx]])
    summ = predictive_summary(fit, u, i, probs=(0.5,), levels=False, parts=parts)
    counts = np.where(u >= 0, parts.ratings.user_counts[np.maximum(u, 0)], 0)
    x = np.maximum(counts, 0.8)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(x, summ.sd, s=4, alpha=0.3, color="C0", label="pair")
    edges = np.unique(np.geomspace(0.8, max(2.0, x.max() * 1.01), 15))
    which = np.digitize(x, edges)
    mids, med = [], []
    for b in np.unique(which):
        sel = which == b
        mids.append(np.exp(np.mean(np.log(x[sel]))))
        med.append(np.median(summ.sd[sel]))
    ax.plot(mids, med, color="C3", marker="o", label="median per bin")
    ax.set_xscale("log")
    ax.set_xlabel("training ratings of the user (0 shown at 0.8)")
    ax.set_ylabel("predictive sd")
    ax.set_title(f"Uncertainty vs user activity ({parts.method})")
    ax.legend()
    fig.tight_layout()
    return fig
