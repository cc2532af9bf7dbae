"""Compare fits on held-out ratings: one table across methods, and ArviZ LOO.

:func:`compare` scores every fit on the same test set through :mod:`bayesmf.predict` (so MLE,
MAP, SGD, baselines, Gibbs, NUTS and ADVI are scored the same way) with the metric functions of
:mod:`bayesmf.evaluate`:

- ``rmse``, ``mae`` of the predictive mean clipped to the rating scale;
- ``lpd``: mean held-out log predictive density per rating -- for draws, the log-mean-exp over
  posterior draws of ``N(y | m_s, sigma_s^2)``; for MAP the Gaussian ``N(y | mean, laplace +
  sigma^2)``;
- ``coverage_<p>`` and ``width_<p>`` of the central ``p`` intervals (exact mixture quantiles);
- ``crps``: for draws, the sample CRPS of one posterior-predictive draw per posterior draw
  (``crps_from_draws``); for a Gaussian predictive, the closed form (``crps_gaussian``);
- ``fit_time`` (``fit.fit_time_``) and ``ess_per_sec``: the smallest bulk ESS over the
  identifiable quantities of :func:`~bayesmf.diagnostics.diagnose` divided by the fit time.

Fits without a predictive distribution (MLE, SGD) get NaN in the uncertainty columns.

:func:`loo_compare` builds a ``log_likelihood`` group (training ratings, on a thinned set of
draws and optionally a subsample of ratings, so it fits in memory) and hands it to
``arviz.compare``.
"""

from __future__ import annotations

import warnings
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayesmf._validation import as_rng, check_positive_int, check_probability
from bayesmf.data import Ratings
from bayesmf.evaluate import (
    coverage,
    crps_from_draws,
    crps_gaussian,
    mae,
    mean_interval_width,
    rmse,
)
from bayesmf.exceptions import BayesMFError
from bayesmf.predict import (
    PredictiveParts,
    _cold_mask,
    _fill,
    _lookup,
    _seed,
    predictive_parts,
    predictive_summary,
)

__all__ = ["compare", "loo_compare", "log_likelihood_draws"]


def _prob_key(p: float) -> str:
    return f"{100.0 * p:g}"


def _test_indices(parts: PredictiveParts, test: Ratings) -> tuple[np.ndarray, np.ndarray]:
    r = parts.ratings
    if (r.user_ids is test.user_ids or r.user_ids.equals(test.user_ids)) and (
        r.item_ids is test.item_ids or r.item_ids.equals(test.item_ids)
    ):
        return test.users.astype(np.int64), test.items.astype(np.int64)
    return _lookup(r, test.user_ids[test.users], test.item_ids[test.items])


def _crps_draws(
    parts: PredictiveParts, u: np.ndarray, i: np.ndarray, y: np.ndarray, max_draws: int,
    random_state: Any,
) -> float:
    """Mean sample CRPS over pairs, streaming pairs in chunks (bounded memory)."""
    um, im, _, _ = _cold_mask(parts, u, i)
    sub = _thin_parts(parts, max_draws)
    seed = _seed(random_state)
    S = sub.n_samples
    step = max(1, 4_000_000 // S)
    total = 0.0
    for start in range(0, len(u), step):
        sl = slice(start, start + step)
        draws = _fill(sub, um[sl], im[sl], True, seed)
        total += float(crps_from_draws(y[sl], draws, reduce="sum"))
    return total / len(u)


def _thin_parts(parts: PredictiveParts, max_draws: int) -> PredictiveParts:
    """Evenly thinned copy of draw-based parts (at most ``max_draws`` draws in all)."""
    S = parts.n_samples
    if S <= max_draws:
        return parts
    step = -(-parts.n_draw // max(1, max_draws // parts.n_chain))
    keep = (np.arange(parts.n_chain)[:, None] * parts.n_draw
            + np.arange(0, parts.n_draw, step)[None, :]).ravel()
    n_draw = len(range(0, parts.n_draw, step))

    def take(a: np.ndarray) -> np.ndarray:
        return a[keep] if a.shape[0] == S else a

    new = PredictiveParts(parts.fit, parts.method, parts.kind, parts.ratings, take(parts.U),
                          take(parts.V), take(parts.mu), take(parts.sigma),
                          take(parts.user_bias), take(parts.item_bias), parts.n_chain, n_draw,
                          parts.link, parts.lo, parts.span, parts.noise_scale)
    for side in ("user", "item"):
        if side in parts._pop:
            m, c = parts._pop[side]
            new._pop[side] = (take(m), take(c))
    return new


def _ess_per_sec(fit: Any, fit_time: float) -> float:
    from bayesmf.diagnostics import diagnose

    try:
        diag = diagnose(fit)
    except BayesMFError:
        return float("nan")
    q = diag[diag["kind"] == "quantity"]
    if q.empty or not np.isfinite(fit_time) or fit_time <= 0:
        return float("nan")
    return float(q["ess_bulk"].min() / fit_time)


def compare(
    fits: dict[str, Any],
    test: Ratings,
    prob: float | tuple[float, ...] = (0.5, 0.9),
    crps_max_draws: int = 1000,
    ess: bool = True,
    random_state: Any = 0,
) -> pd.DataFrame:
    """Score several fits on the same held-out ratings.

    Parameters
    ----------
    fits : dict of str -> FitBase
        Fitted estimators by label.
    test : Ratings
        Held-out ratings (a split of the training data, or any Ratings matched by raw id).
    prob : float or tuple of float
        Interval probabilities for ``coverage_<p>`` / ``width_<p>`` columns.
    crps_max_draws : int
        Posterior draws used for the sample CRPS (evenly thinned beyond this).
    ess : bool
        Compute ``ess_per_sec`` (runs :func:`~bayesmf.diagnostics.diagnose` per Bayesian fit).
    random_state : int, Generator or None
        Seed of the predictive noise draws behind the CRPS.

    Returns
    -------
    pandas.DataFrame
        Indexed by label; columns ``method, rmse, mae, lpd, coverage_<p>, width_<p>, crps,
        fit_time, ess_per_sec, n_test, n_cold``.

    Raises
    ------
    BayesMFError
        No fits, an empty test set, a bad probability.
    """
    if not isinstance(fits, dict) or not fits:
        raise BayesMFError("fits must be a non-empty dict of label -> fitted estimator")
    if not isinstance(test, Ratings):
        raise BayesMFError(f"test must be a Ratings object, got {type(test).__name__}")
    if test.nnz == 0:
        raise BayesMFError("the test set is empty: nothing to compare on")
    probs = (prob,) if isinstance(prob, (int, float)) else tuple(prob)
    probs = tuple(check_probability(p, "prob") for p in probs)
    crps_max_draws = check_positive_int(crps_max_draws, "crps_max_draws")
    y = test.values
    rows = []
    for label, fit in fits.items():
        parts = predictive_parts(fit)
        u, i = _test_indices(parts, test)
        summ = predictive_summary(fit, u, i, probs=probs, levels=False, y=y, parts=parts)
        sc = parts.ratings.scale
        mean = summ.mean if sc is None else sc.clip(summ.mean)
        row: dict[str, Any] = {"method": parts.method, "rmse": rmse(y, mean), "mae": mae(y, mean)}
        unc = summ.has_uncertainty and np.all(np.isfinite(summ.sd))
        row["lpd"] = float(np.mean(summ.lpd)) if (unc and summ.lpd is not None) else np.nan
        for p in probs:
            lo, hi = summ.intervals[p]
            ok = unc and np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))
            row[f"coverage_{_prob_key(p)}"] = coverage(y, lo, hi) if ok else np.nan
            row[f"width_{_prob_key(p)}"] = mean_interval_width(lo, hi) if ok else np.nan
        if not unc:
            row["crps"] = np.nan
        elif parts.kind == "draws":
            row["crps"] = _crps_draws(parts, u, i, y, crps_max_draws, random_state)
        elif getattr(fit, "predictive_is_gaussian", True) and np.all(summ.sd > 0):
            row["crps"] = float(crps_gaussian(y, summ.mean, summ.sd))
        else:
            row["crps"] = np.nan
        fit_time = float(getattr(fit, "fit_time_", np.nan))
        row["fit_time"] = fit_time
        row["ess_per_sec"] = _ess_per_sec(fit, fit_time) if (ess and parts.kind == "draws") \
            else np.nan
        row["n_test"] = int(test.nnz)
        row["n_cold"] = int(np.sum(summ.cold_user | summ.cold_item))
        rows.append(pd.Series(row, name=label))
    return pd.DataFrame(rows)


def log_likelihood_draws(
    fit: Any, max_draws: int = 200, obs_idx: np.ndarray | None = None
) -> az.InferenceData:
    """Pointwise log-likelihood of the training ratings on a thinned set of draws.

    Parameters
    ----------
    fit : FitBase
        A fit with posterior draws.
    max_draws : int
        Keep at most this many draws in all (evenly thinned per chain).
    obs_idx : array of int, optional
        Positions of the training ratings to include (default all).

    Returns
    -------
    arviz.InferenceData
        Groups ``posterior`` (``mu``, ``sigma`` of the kept draws) and ``log_likelihood``
        with variable ``R (chain, draw, rating)``.
    """
    parts = predictive_parts(fit)
    if parts.kind != "draws":
        raise BayesMFError(f"{type(fit).__name__} has no posterior draws for LOO")
    sub = _thin_parts(parts, check_positive_int(max_draws, "max_draws"))
    r = parts.ratings
    idx = np.arange(r.nnz) if obs_idx is None else np.asarray(obs_idx, dtype=np.int64)
    m = _fill(sub, r.users[idx].astype(np.int64), r.items[idx].astype(np.int64), False,
              np.uint64(0))
    sig = (sub.noise_scale * sub.sigma).reshape(-1, 1)
    ll = -0.5 * ((r.values[idx][None, :] - m) / sig) ** 2 - np.log(sig) - 0.5 * np.log(2 * np.pi)
    shape = (sub.n_chain, sub.n_draw)
    coords = {"chain": np.arange(shape[0]), "draw": np.arange(shape[1]), "rating": idx}
    return az.InferenceData(
        posterior=xr.Dataset({"mu": (("chain", "draw"), sub.mu.reshape(shape)),
                              "sigma": (("chain", "draw"), sub.sigma.reshape(shape))},
                             coords={k: coords[k] for k in ("chain", "draw")}),
        log_likelihood=xr.Dataset({"R": (("chain", "draw", "rating"),
                                         ll.reshape(shape + (len(idx),)))}, coords=coords),
    )


def loo_compare(
    fits: dict[str, Any],
    max_draws: int = 200,
    max_obs: int | None = 20_000,
    random_state: Any = 0,
) -> pd.DataFrame:
    """``arviz.compare`` on PSIS-LOO of the training log-likelihood.

    Parameters
    ----------
    fits : dict of str -> FitBase
        Fits by label; those without posterior draws (point fits, baselines) are skipped and
        listed in ``attrs["skipped"]``. All fits must share the same training ratings.
    max_draws : int
        Draws kept per fit (evenly thinned) for the pointwise log-likelihood.
    max_obs : int or None
        Score a random subsample of this many training ratings (the same for every fit);
        ``None`` uses all. Memory is ``max_draws * max_obs`` floats per fit.
    random_state : int, Generator or None
        Seed of the subsample.

    Returns
    -------
    pandas.DataFrame
        ``arviz.compare``'s table (``rank, elpd_loo, p_loo, elpd_diff, weight, se, dse,
        warning, scale``), with ``attrs["n_obs"]`` and ``attrs["skipped"]``.
    """
    if not isinstance(fits, dict) or not fits:
        raise BayesMFError("fits must be a non-empty dict of label -> fitted estimator")
    usable = {k: f for k, f in fits.items() if predictive_parts(f).kind == "draws"}
    skipped = [k for k in fits if k not in usable]
    if len(usable) < 2:
        raise BayesMFError(
            f"loo_compare needs at least two fits with posterior draws; got {sorted(usable)} "
            f"(skipped point fits: {skipped})"
        )
    nnz = {f.ratings_.nnz for f in usable.values()}
    if len(nnz) != 1:
        raise BayesMFError("all fits must be trained on the same ratings to compare their LOO")
    n = nnz.pop()
    if max_obs is not None and n > max_obs:
        obs = np.sort(as_rng(random_state).choice(n, size=max_obs, replace=False))
    else:
        obs = np.arange(n)
    ll = {k: log_likelihood_draws(f, max_draws, obs) for k, f in usable.items()}
    with warnings.catch_warnings():
        # Pareto-k problems are reported in the table's "warning" column
        warnings.simplefilter("ignore")
        table = az.compare(ll, ic="loo")
    table.attrs["n_obs"] = int(len(obs))
    table.attrs["skipped"] = skipped
    return table
