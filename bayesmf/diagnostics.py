"""Convergence diagnostics through ArviZ, on quantities the PMF posterior identifies.

Why not R-hat on the raw factors
--------------------------------
The likelihood of PMF depends on ``U`` and ``V`` only through ``U V^T``: for any orthogonal
``R`` (a rotation, a sign flip of one factor, a permutation of factors) ``(U R, V R)`` fits
the data exactly as well, and the isotropic priors (Normal-Wishart, ``N(0, s^2 I)``) are
unchanged too. The posterior therefore has a continuum of equivalent modes, and two chains
that explore *the same* predictive distribution can sit in differently rotated copies of it.
R-hat on an entry ``U[u, f]`` then compares different coordinates and reports non-convergence
(``>> 1.01``) although every prediction agrees; conversely a single chain drifting slowly
along the rotation is harmless. :func:`raw_factor_rhat` computes this misleading number so it
can be shown; :func:`diagnose` instead checks quantities that are invariant to ``R``:

- hyperparameters: ``mu``, the noise ``sigma``, the bias scales, ``sum_f sigma_u[f]^2``
  (= ``tr(Lambda_u^-1)`` for Normal-Wishart) and ``||mu_u||``;
- ``||U||_F`` and ``||V||_F`` per draw;
- the factor strengths: the ``k`` singular values of ``U V^T`` per draw, largest first
  (:func:`factor_strength`), how much each component contributes to the predictions;
- the training log-likelihood per draw (``sample_stats.loglik``);
- the predicted latent means ``u.v + biases`` of a probe set of pairs: by default half
  rated (training) pairs and half *unrated* ones, the pairs a recommender predicts, whose
  mean no rating of their own pins down.

Pair means are the slowest quantities to converge. In one Gibbs run on ml-latest-small
(rank 10, 4 chains x 1500 draws, thin 3, ``random_state=5``) every hyperparameter, norm and
the log-likelihood had R-hat <= 1.0065 and bulk ESS >= 988, while 4 of 100 rated and 4 of
100 unrated probe pairs got ``warn`` (R-hat up to 1.032 and 1.019): chains sit at different
levels of a few pairs' means for thousands of sweeps. A few probes catch that only by luck, so
:func:`diagnose` checks 100 by default and reports the worst of each kind.

Each gets R-hat (rank-normalised split R-hat), bulk and tail ESS and the MCSE of the mean, and
a verdict: ``ok`` when R-hat < 1.01 and both ESS > 400, ``warn`` when R-hat < 1.05 and bulk
ESS > 100, else ``fail``. Sampler rows follow: divergences, BFMI and tree depth for NUTS, the
ELBO trace for ADVI.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayesmf._validation import as_rng, check_positive_int
from bayesmf.exceptions import BayesMFError
from bayesmf.predict import predict_draws, predictive_parts

__all__ = ["diagnose", "identifiable_draws", "raw_factor_rhat", "verdict", "elbo_trace",
           "check_convergence", "convergence_message", "factor_strength"]

RHAT_OK = 1.01
RHAT_WARN = 1.05
ESS_OK = 400.0
ESS_WARN = 100.0
#: verdicts from best to worst
VERDICT_ORDER = {"ok": 0, "warn": 1, "fail": 2}


def verdict(r_hat: float, ess_bulk: float, ess_tail: float) -> str:
    """``"ok"`` / ``"warn"`` / ``"fail"`` from R-hat and ESS (thresholds in the module doc)."""
    if not np.isfinite(r_hat):
        return "fail"
    if r_hat < RHAT_OK and ess_bulk > ESS_OK and ess_tail > ESS_OK:
        return "ok"
    if r_hat < RHAT_WARN and ess_bulk > ESS_WARN:
        return "warn"
    return "fail"


def _posterior(fit: Any) -> xr.Dataset:
    parts = predictive_parts(fit)
    if parts.kind != "draws":
        raise BayesMFError(
            f"diagnose needs posterior draws; {type(fit).__name__} (method {parts.method!r}) "
            "is a point fit"
        )
    post = fit.idata_.posterior
    if post.sizes["chain"] * post.sizes["draw"] < 4:
        raise BayesMFError("diagnose needs at least 4 posterior draws")
    return post


def _default_probe(fit: Any, n_probe: int, random_state: Any) -> pd.DataFrame:
    """Half rated pairs (random training ratings), half unrated pairs.

    Unrated pairs -- a user with ratings and an item drawn by popularity, the pair not in the
    training data -- are what a recommender predicts; no rating of their own pins their mean.
    """
    r = fit.ratings_
    rng = as_rng(random_state)
    n_rated = min(n_probe - n_probe // 2, r.nnz)
    idx = rng.choice(r.nnz, size=n_rated, replace=False)
    users, items = list(r.users[idx]), list(r.items[idx])
    kinds = ["rated"] * n_rated
    seen = set(zip(r.users.tolist(), r.items.tolist(), strict=True))
    active = np.flatnonzero(r.user_counts > 0)
    picked: set[tuple[int, int]] = set()
    tries = 0
    while len(users) < n_probe and tries < 50 * n_probe:  # a dense matrix may have few gaps
        tries += 1
        u = int(rng.choice(active))
        i = int(r.items[rng.integers(r.nnz)])
        if (u, i) not in seen and (u, i) not in picked:
            picked.add((u, i))
            users.append(u)
            items.append(i)
            kinds.append("unrated")
    return pd.DataFrame({"user": r.user_ids[np.asarray(users, dtype=np.int64)],
                         "item": r.item_ids[np.asarray(items, dtype=np.int64)],
                         "kind": kinds})


def identifiable_draws(
    fit: Any, probe_pairs: pd.DataFrame | None = None, n_probe: int = 100, random_state: Any = 0
) -> xr.Dataset:
    """Per-draw rotation-invariant quantities of a Bayesian fit, as an ``xarray.Dataset``.

    Parameters
    ----------
    fit : FitBase
        A fit with posterior draws.
    probe_pairs : pandas.DataFrame, optional
        ``user``, ``item`` columns (raw ids) whose predicted latent means are tracked (an
        optional ``kind`` column is appended to each label); default: ``n_probe`` pairs, half
        random training ratings (``rated``) and half pairs not in the training data
        (``unrated``: a user with ratings, an item drawn by popularity).
    n_probe : int
        Size of the default probe set.
    random_state : int, Generator or None
        Seed of the default probe set.

    Returns
    -------
    xarray.Dataset
        Variables with dims ``(chain, draw)`` (and ``probe`` for ``pred_mean``,
        ``component`` for ``factor_strength``).
    """
    post = _posterior(fit)
    n_probe = check_positive_int(n_probe, "n_probe")
    out: dict[str, xr.DataArray] = {}
    for name in ("mu", "sigma", "sigma_user_bias", "sigma_item_bias"):
        if name in post:
            out[name] = post[name].astype(np.float64)
    for side in ("u", "v"):
        if f"sigma_{side}" in post:
            out[f"sum_sigma_{side}2"] = (post[f"sigma_{side}"].astype(np.float64) ** 2).sum(
                [d for d in post[f"sigma_{side}"].dims if d not in ("chain", "draw")])
        if f"mu_{side}" in post:
            m = post[f"mu_{side}"].astype(np.float64)
            out[f"norm_mu_{side}"] = np.sqrt((m**2).sum("factor"))
    factors = {name: post[name].transpose("chain", "draw", ...) for name in ("U", "V")}
    chain_draw = {"chain": factors["U"]["chain"].values, "draw": factors["U"]["draw"].values}
    for name, x in factors.items():
        flat = np.ascontiguousarray(x.values).reshape(x.shape[0], x.shape[1], -1)
        # float64 accumulation without a float64 copy of every draw of the factors
        sq = np.einsum("cdi,cdi->cd", flat, flat, dtype=np.float64)
        out[f"norm_{name}"] = xr.DataArray(np.sqrt(sq), dims=("chain", "draw"), coords=chain_draw)
    out["factor_strength"] = xr.DataArray(
        factor_strength(factors["U"].values, factors["V"].values),
        dims=("chain", "draw", "component"),
        coords={**chain_draw, "component": np.arange(1, factors["U"].shape[-1] + 1)},
    )
    stats = getattr(fit.idata_, "sample_stats", None)
    if stats is not None and "loglik" in stats:
        out["loglik"] = stats["loglik"].astype(np.float64)
    pairs = _default_probe(fit, n_probe, random_state) if probe_pairs is None else probe_pairs
    d = predict_draws(fit, pairs[["user", "item"]])
    kinds = pairs["kind"].tolist() if "kind" in pairs else [""] * len(pairs)
    labels = [f"{u}|{i}" + (f" {kind}" if kind else "")
              for u, i, kind in zip(d["user"].values, d["item"].values, kinds, strict=True)]
    out["pred_mean"] = xr.DataArray(
        d.values, dims=("chain", "draw", "probe"),
        coords={"chain": post["chain"].values, "draw": post["draw"].values, "probe": labels},
        attrs={"kind": kinds},  # rated / unrated / "" per probe, for the summary rows
    )
    ds = xr.Dataset({k: v.reset_coords(drop=True) if isinstance(v, xr.DataArray) else v
                     for k, v in out.items()})
    return ds


def factor_strength(U: np.ndarray, V: np.ndarray, block: int = 64) -> np.ndarray:
    """Singular values of ``U_t V_t^T`` for every draw ``t``, largest first.

    They are what the factors put into the predictions, one number per component: invariant
    to any invertible ``(U, V) -> (U T, V T^-T)``, not only to rotations, so they are
    identified whatever the hyperprior. The square roots of the eigenvalues of
    ``S G_v S``, where ``G_u = U^T U``, ``G_v = V^T V`` and ``S = G_u^(1/2)``; the Gram
    matrices are accumulated in float64, ``block`` draws at a time.

    Parameters
    ----------
    U, V : ndarray, shapes (chains, draws, n_users, k) and (chains, draws, n_items, k)
        Factor draws (any float dtype).
    block : int
        Draws converted to float64 at once (bounds the temporary memory).

    Returns
    -------
    ndarray, shape (chains, draws, k)
    """
    chains, draws, _, k = U.shape
    out = np.empty((chains, draws, k))
    for c in range(chains):
        for t0 in range(0, draws, block):
            t1 = min(t0 + block, draws)
            Uc = U[c, t0:t1].astype(np.float64)
            Vc = V[c, t0:t1].astype(np.float64)
            Gu = np.matmul(np.swapaxes(Uc, 1, 2), Uc)
            Gv = np.matmul(np.swapaxes(Vc, 1, 2), Vc)
            w, Q = np.linalg.eigh(Gu)
            S = np.matmul(Q * np.sqrt(np.clip(w, 0.0, None))[:, None, :], np.swapaxes(Q, 1, 2))
            ev = np.linalg.eigvalsh(np.matmul(np.matmul(S, Gv), S))
            out[c, t0:t1] = np.sqrt(np.clip(ev, 0.0, None))[:, ::-1]
    return out


def _flatten(ds: xr.Dataset) -> list[tuple[str, str, xr.DataArray]]:
    rows = []
    for name, da in ds.data_vars.items():
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra:
            rows.append((name, name, da))
        else:
            stacked = da.stack(_q=extra)
            for j in range(stacked.sizes["_q"]):
                label = stacked["_q"].values[j]
                label = label if isinstance(label, str) else ",".join(map(str, np.atleast_1d(label)))
                rows.append((f"{name}[{label}]", name, stacked.isel(_q=j)))
    return rows


def elbo_trace(fit: Any) -> np.ndarray | None:
    """The ELBO (or loss) trace of an ADVI fit, wherever the fit keeps it; else ``None``."""
    tr = getattr(fit, "elbo_", None)
    idata = getattr(fit, "idata_", None)
    if tr is None and idata is not None:
        if "elbo" in idata.groups():
            grp = idata.elbo
            tr = next(iter(grp.data_vars.values())).values if grp.data_vars else None
        elif "elbo" in idata.attrs:
            tr = idata.attrs["elbo"]
    if tr is None:
        return None
    tr = np.asarray(tr, dtype=np.float64).reshape(-1)
    return tr[np.isfinite(tr)] if tr.size else None


def _sampler_rows(fit: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    idata = fit.idata_
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and "diverging" in stats:
        div = stats["diverging"].values.astype(bool)
        n, frac = int(div.sum()), float(div.mean())
        rows.append({"quantity": "divergences", "kind": "sampler", "value": n,
                     "verdict": "ok" if n == 0 else ("warn" if frac <= 0.01 else "fail"),
                     "note": f"{frac:.2%} of draws diverged"})
    if stats is not None and "energy" in stats:
        bfmi = np.atleast_1d(az.bfmi(idata))
        rows.append({"quantity": "bfmi_min", "kind": "sampler", "value": float(bfmi.min()),
                     "verdict": "ok" if bfmi.min() >= 0.3 else "warn",
                     "note": "per-chain BFMI: " + ", ".join(f"{b:.2f}" for b in bfmi)})
    if stats is not None and ("tree_depth" in stats or "reached_max_treedepth" in stats):
        note = ""
        if "tree_depth" in stats:
            td = stats["tree_depth"].values
            note = f"mean depth {td.mean():.2f}, max {int(td.max())}"
        if "reached_max_treedepth" in stats:
            frac = float(stats["reached_max_treedepth"].values.astype(bool).mean())
        else:
            frac = float(np.mean(stats["tree_depth"].values >= 10))
        rows.append({"quantity": "max_treedepth_hits", "kind": "sampler", "value": frac,
                     "verdict": "ok" if frac == 0 else ("warn" if frac < 0.05 else "fail"),
                     "note": note})
    tr = elbo_trace(fit)
    if tr is not None and tr.size >= 20:
        w = max(1, tr.size // 20)
        last, prev = tr[-w:].mean(), tr[-2 * w:-w].mean()
        rel = abs(last - prev) / max(abs(last), 1e-300)
        rows.append({"quantity": "elbo_rel_change", "kind": "sampler", "value": float(rel),
                     "verdict": "ok" if rel < 1e-3 else ("warn" if rel < 1e-2 else "fail"),
                     "note": f"final ELBO trace value {last:.6g} over {tr.size} iterations; "
                             "relative change between the last two 5% windows"})
    return rows


def diagnose(
    fit: Any,
    probe_pairs: pd.DataFrame | None = None,
    n_probe: int = 100,
    random_state: Any = 0,
    per_pair: bool = False,
) -> pd.DataFrame:
    """Convergence table of a Bayesian fit on identifiable quantities.

    Parameters
    ----------
    fit : FitBase
        A fit with posterior draws (Gibbs, NUTS, ADVI).
    probe_pairs : pandas.DataFrame, optional
        Pairs (raw ids) whose predicted means are checked; default ``n_probe`` pairs, half
        random training ratings and half unrated pairs (see :func:`identifiable_draws`).
    n_probe : int
        Size of the default probe set. Pair means are the slowest quantities to converge and
        a slow one is rare (a few in a hundred, see the module docstring), so the default
        checks 100.
    random_state : int, Generator or None
        Seed of the default probe set.
    per_pair : bool
        One row per probe pair (True), or (default) one summary row per kind of pair
        (``rated`` / ``unrated``, or all given pairs): the worst R-hat, the smallest ESS,
        the largest MCSE, the median posterior sd, the worst verdict, in ``value`` the number
        of pairs not ``ok``, and the worst pair named in ``note``.

    Returns
    -------
    pandas.DataFrame
        One row per quantity: ``quantity, kind, group, mean, sd, r_hat, ess_bulk, ess_tail,
        mcse_mean, value, verdict, note``. ``kind`` is ``"quantity"`` for the R-hat/ESS rows
        and ``"sampler"`` for divergences / BFMI / tree depth / ELBO rows (their number is in
        ``value``). ``attrs["verdict"]`` is the worst verdict.

    Raises
    ------
    BayesMFError
        For a point fit or a posterior with fewer than 4 draws.

    Notes
    -----
    See the module docstring for why raw factor entries are not diagnosed.
    """
    ds = identifiable_draws(fit, probe_pairs, n_probe, random_state)
    arviz_log = logging.getLogger("arviz")
    level = arviz_log.level
    arviz_log.setLevel(logging.ERROR)  # single-chain (ADVI) shape warnings: see the note column
    try:
        rhat = az.rhat(ds)
        ess_b = az.ess(ds, method="bulk")
        ess_t = az.ess(ds, method="tail")
        mcse = az.mcse(ds)
    finally:
        arviz_log.setLevel(level)
    note = ""
    if getattr(fit, "method", "") == "advi":
        note = ("iid draws of the variational approximation: R-hat/ESS measure Monte Carlo "
                "error only; convergence is the ELBO row")
    elif ds.sizes["chain"] == 1:
        note = "single chain: split R-hat only"
    rows: list[dict[str, Any]] = []
    for (label, group, da), (_, _, rh), (_, _, eb), (_, _, et), (_, _, mc) in zip(
        _flatten(ds), _flatten(rhat), _flatten(ess_b), _flatten(ess_t), _flatten(mcse),
        strict=True,
    ):
        r_hat, b, t = float(rh), float(eb), float(et)
        rows.append({
            "quantity": label, "kind": "quantity", "group": group,
            "mean": float(da.mean()), "sd": float(da.std()),
            "r_hat": r_hat, "ess_bulk": b, "ess_tail": t, "mcse_mean": float(mc),
            "value": np.nan, "verdict": verdict(r_hat, b, t), "note": note,
        })
    if not per_pair:
        pm = ds["pred_mean"]
        kind_of = dict(zip((f"pred_mean[{lab}]" for lab in pm["probe"].values),
                           pm.attrs["kind"], strict=True))
        rows = _summarise_pairs(rows, kind_of)
    for row in _sampler_rows(fit):
        rows.append({"group": row["quantity"], "mean": np.nan, "sd": np.nan, "r_hat": np.nan,
                     "ess_bulk": np.nan, "ess_tail": np.nan, "mcse_mean": np.nan, **row})
    df = pd.DataFrame(rows, columns=["quantity", "kind", "group", "mean", "sd", "r_hat",
                                     "ess_bulk", "ess_tail", "mcse_mean", "value", "verdict",
                                     "note"])
    df.attrs["verdict"] = max(df["verdict"], key=VERDICT_ORDER.__getitem__) if len(df) else "ok"
    return df


def check_convergence(fit: Any, stacklevel: int = 2) -> pd.DataFrame | None:
    """Run :func:`diagnose` on a multi-chain fit and warn when it is not ``ok``.

    Called at the end of ``GibbsPMF.fit`` and ``NUTSPMF.fit`` (their ``check_convergence``
    argument), like PyMC's own check but on the identifiable quantities. The warning names
    how many quantities missed the ``ok`` thresholds and the worst of them.

    Parameters
    ----------
    fit : FitBase
        A fit with posterior draws.
    stacklevel : int
        Passed to :func:`warnings.warn` (2: the caller of this function).

    Returns
    -------
    pandas.DataFrame or None
        The :func:`diagnose` table, or None for a single chain (split R-hat alone is too weak
        a check to warn on).
    """
    if fit.idata_.posterior.sizes["chain"] < 2:
        return None
    table = diagnose(fit)
    message = convergence_message(table, type(fit).__name__)
    if message is not None:
        warnings.warn(message, RuntimeWarning, stacklevel=stacklevel + 1)
    return table


def convergence_message(table: pd.DataFrame, name: str) -> str | None:
    """The warning :func:`check_convergence` emits for a :func:`diagnose` table (None if all ok).

    It counts the rows that are not ``ok``, names the worst (the pair itself for a pair
    summary row) and gives advice: a longer run, unless only pair means missed -- then the
    chains agree on every global quantity, and the pairs are ones a rank-k fit can explain in
    more than one way, which a longer run may not settle (docs/diagnostics.md).

    Parameters
    ----------
    table : pandas.DataFrame
        A :func:`diagnose` table (summary rows for the pairs).
    name : str
        The estimator's name, to start the message.

    Returns
    -------
    str or None
    """
    bad = table[table["verdict"] != "ok"]
    if not len(bad):
        return None
    worst = max(bad.itertuples(), key=lambda r: (VERDICT_ORDER[r.verdict],
                                                 r.kind == "quantity",
                                                 np.nan_to_num(r.r_hat)))
    if worst.group == "pred_mean":  # name the pair, not the summary row
        of_n, pair = worst.note.split(";")[0].split(": ", 1)
        what = f"{pair}, the {of_n}"
    elif worst.kind == "quantity":
        what = f"{worst.quantity} (R-hat {worst.r_hat:.3f}, bulk ESS {worst.ess_bulk:.0f})"
    else:
        what = f"{worst.quantity} = {worst.value:g}" + (f" ({worst.note})" if worst.note
                                                     else "")
    if (bad["group"] == "pred_mean").all():
        advice = (
            "Every other quantity is ok: the chains agree on the hyperparameters, the "
            "log-likelihood and the factor strengths but not on these pairs, which a rank-k "
            "fit can explain with more than one structure in its weakest factors (a longer "
            "run may not settle it; more chains average over it; see docs/diagnostics.md). "
            "Treat those pairs' means and sds with care"
        )
    else:
        advice = "Run more or longer chains"
    return (f"{name}: {len(bad)} of {len(table)} checks are not ok (quantities need R-hat < "
            f"{RHAT_OK} and bulk and tail ESS > {ESS_OK:.0f}); worst [{worst.verdict}]: "
            f"{what}. {advice}; the table is in diagnostics_ (bayesmf.diagnose).")


def _summarise_pairs(rows: list[dict[str, Any]],
                     kind_of: dict[str, str]) -> list[dict[str, Any]]:
    """Replace the per-pair ``pred_mean`` rows by one worst-case row per kind of pair.

    ``kind_of`` maps a row's ``quantity`` to its pair's kind (``rated``, ``unrated`` or ``""``).
    """
    pairs = [r for r in rows if r["group"] == "pred_mean"]
    out = [r for r in rows if r["group"] != "pred_mean"]
    for kind in dict.fromkeys(kind_of[r["quantity"]] for r in pairs):
        group = [r for r in pairs if kind_of[r["quantity"]] == kind]
        worst = max(group, key=lambda r: (VERDICT_ORDER[r["verdict"]], r["r_hat"]))
        n_warn = sum(r["verdict"] == "warn" for r in group)
        n_fail = sum(r["verdict"] == "fail" for r in group)
        count = f"{len(group)} pair{'s' if len(group) != 1 else ''}"
        name = f"{kind}: {count}" if kind else count
        note = (f"worst of {len(group)} pairs: {worst['quantity']} (R-hat {worst['r_hat']:.3f}, "
                f"bulk ESS {worst['ess_bulk']:.0f}); {n_warn} warn, {n_fail} fail")
        if worst["note"]:
            note = f"{note}; {worst['note']}"
        out.append({
            "quantity": f"pred_mean[{name}]", "kind": "quantity", "group": "pred_mean",
            "mean": np.nan, "sd": float(np.median([r["sd"] for r in group])),
            "r_hat": max(r["r_hat"] for r in group),
            "ess_bulk": min(r["ess_bulk"] for r in group),
            "ess_tail": min(r["ess_tail"] for r in group),
            "mcse_mean": max(r["mcse_mean"] for r in group),
            "value": float(n_warn + n_fail), "verdict": worst["verdict"], "note": note,
        })
    return out


def raw_factor_rhat(fit: Any) -> pd.DataFrame:
    """R-hat of every raw entry of ``U`` and ``V`` -- shown only to explain why it is not used.

    The PMF posterior is invariant to ``(U, V) -> (U R, V R)`` for orthogonal ``R`` (rotations,
    sign flips, factor permutations), so chains may settle in differently rotated but
    equivalent copies of the posterior. Raw-entry R-hat then signals non-convergence that no
    prediction can see; :func:`diagnose` checks invariant quantities instead.

    Parameters
    ----------
    fit : FitBase
        A fit with posterior draws.

    Returns
    -------
    pandas.DataFrame
        One row per factor matrix (``U``, ``V``): ``max_r_hat``, ``median_r_hat`` and
        ``frac_above_1.01`` over its entries.
    """
    post = _posterior(fit)
    rows = []
    for name in ("U", "V"):
        rh = az.rhat(post[[name]].astype(np.float64))[name].values.ravel()
        rh = rh[np.isfinite(rh)]
        rows.append({"variable": name, "max_r_hat": float(rh.max()),
                     "median_r_hat": float(np.median(rh)),
                     "frac_above_1.01": float(np.mean(rh > RHAT_OK))})
    return pd.DataFrame(rows)
