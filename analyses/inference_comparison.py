"""Six ways to fit PMF on the same split: MLE, MAP, SGD, Gibbs, ADVI and NUTS.

Every method is fitted to the same training ratings and judged on the same held-out ratings
through :func:`bayesmf.compare.compare`: RMSE and MAE of the predictive mean, held-out log
predictive density, coverage and width of the 50% and 90% intervals, CRPS, fit time and
effective draws per second (Bayesian fits). A calibration curve (nominal vs empirical coverage of
central predictive intervals) is computed for every fit that has intervals.

NUTS is the expensive one, so the comparison runs on a random subset of users (``--users``,
default 120, with every rating they made; items kept when they have at least
``--min-item-ratings`` ratings in the subset) where all six methods are fitted. With ``--full``
the five other methods are also compared on the whole data set (a second table).

Run::

    python analyses/inference_comparison.py            # ml-latest-small subset, a few minutes
    python analyses/inference_comparison.py --full     # + the full-data table without NUTS
    python analyses/inference_comparison.py --quick --data synthetic --out /tmp/ic
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from _common import (
    Output,
    base_parser,
    data_facts,
    figure,
    holdout_split,
    print_table,
    quiet,
    subsample_users,
)

from bayesmf.data import Ratings

NAME = "inference_comparison"
METHODS = ("MLE", "MAP", "SGD", "Gibbs", "ADVI", "NUTS")
NOMINAL = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def parse_args(argv: Sequence[str] | None) -> Any:
    parser = base_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=5)
    parser.add_argument("--users", type=int, default=120,
                        help="users in the subset every method (NUTS included) is fitted on")
    parser.add_argument("--min-item-ratings", type=int, default=5,
                        help="keep items with at least this many ratings in the subset")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--full", action="store_true",
                        help="also compare the non-NUTS methods on the whole data set")
    parser.add_argument("--nuts-chains", type=int, default=2)
    parser.add_argument("--nuts-draws", type=int, default=300)
    parser.add_argument("--nuts-tune", type=int, default=300)
    parser.add_argument("--nuts-sampler", default="pymc", choices=("pymc", "nutpie"))
    parser.add_argument("--gibbs-chains", type=int, default=4)
    parser.add_argument("--gibbs-draws", type=int, default=400)
    parser.add_argument("--gibbs-tune", type=int, default=100)
    parser.add_argument("--advi-steps", type=int, default=10000)
    return parser.parse_args(argv)


def core_subset(ratings: Ratings, n_users: int, min_item: int, seed: int) -> Ratings:
    """Ratings of ``n_users`` random users, restricted to items rated ``min_item`` times."""
    sub = subsample_users(ratings, n_users, seed)
    if min_item <= 1:
        return sub
    keep = sub.item_counts[sub.items] >= min_item
    df = sub.to_frame().loc[keep]
    return Ratings.from_frame(df, scale=sub.scale, item_info=sub.item_info,
                              name=f"{ratings.name} ({n_users} users, items >= {min_item})")


def make_fit(method: str, args: Any, quick: bool) -> Any:
    """An unfitted estimator for ``method`` with this script's settings."""
    k, seed = args.rank, args.seed
    if method in ("MLE", "MAP"):
        from bayesmf.models.pmf import PMF

        return PMF(rank=k, method=method.lower(), random_state=seed)
    if method == "SGD":
        from bayesmf.models.sgd import SGDPMF

        return SGDPMF(rank=k, random_state=seed)
    if method == "Gibbs":
        from bayesmf.models.gibbs import GibbsPMF

        chains, draws, tune = ((1, 60, 30) if quick else
                               (args.gibbs_chains, args.gibbs_draws, args.gibbs_tune))
        # no end-of-fit check: the fit time is compared, and compare() diagnoses every fit
        return GibbsPMF(rank=k, chains=chains, draws=draws, tune=tune, thin=1,
                        random_state=seed, progress=False, check_convergence=False)
    if method == "ADVI":
        from bayesmf.models.pymc_fit import ADVIPMF

        return ADVIPMF(rank=k, n_steps=1500 if quick else args.advi_steps,
                       draws=100 if quick else 500, random_state=seed, progress=False)
    if method == "NUTS":
        from bayesmf.models.pymc_fit import NUTSPMF

        chains, draws, tune = ((1, 40, 40) if quick else
                               (args.nuts_chains, args.nuts_draws, args.nuts_tune))
        return NUTSPMF(rank=k, chains=chains, draws=draws, tune=tune,
                       nuts_sampler=args.nuts_sampler, random_state=seed, progress=False,
                       cores=min(chains, 2), check_convergence=False)
    raise ValueError(f"unknown method {method!r}")


def fit_all(methods: Sequence[str], train: Ratings, args: Any) -> tuple[dict[str, Any], dict]:
    fits, wall = {}, {}
    for method in methods:
        t0 = time.perf_counter()
        with quiet():
            fits[method] = make_fit(method, args, args.quick).fit(train)
        wall[method] = time.perf_counter() - t0
        print(f"  {method}: fitted in {wall[method]:.1f} s", flush=True)
    return fits, wall


def calibration(fits: dict[str, Any], test: Ratings) -> pd.DataFrame:
    """Empirical coverage of central predictive intervals at each nominal probability."""
    from bayesmf.predict import predictive_summary

    rows = []
    for name, fit in fits.items():
        s = predictive_summary(fit, test.users, test.items, probs=NOMINAL, levels=False)
        if not s.has_uncertainty:
            continue
        for p in NOMINAL:
            lo, hi = s.intervals[p]
            rows.append({"method": name, "nominal": p,
                         "empirical": float(np.mean((test.values >= lo) & (test.values <= hi)))})
    return pd.DataFrame(rows, columns=["method", "nominal", "empirical"])


def nuts_facts(fit: Any) -> dict[str, Any]:
    summary = dict(getattr(fit, "summary_", {}) or {})
    return {k: summary.get(k) for k in ("n_divergent", "divergent_fraction", "mean_tree_depth",
                                        "max_tree_depth", "sampling_seconds")}


def compare_table(fits: dict[str, Any], test: Ratings, wall: dict[str, float]) -> pd.DataFrame:
    from bayesmf.compare import compare

    table = compare(fits, test)
    table = table.rename(columns={"method": "estimator"})
    table.index.name = "method"
    table = table.reset_index()
    table["wall_seconds"] = [wall.get(str(m), np.nan) for m in table["method"]]
    return table


def loo_table(fits: dict[str, Any]) -> pd.DataFrame | None:
    """``arviz.compare`` on PSIS-LOO among the fits with draws (None with fewer than two)."""
    from bayesmf.compare import loo_compare

    bayes = {k: f for k, f in fits.items() if getattr(f, "is_bayesian", False)}
    if len(bayes) < 2:
        return None
    with quiet():
        table = loo_compare(bayes, max_draws=200, max_obs=5000)
    table.index.name = "method"
    return table.reset_index()


def plot_calibration(cal: pd.DataFrame, out: Output, name: str) -> None:
    fig, ax = figure(5.2, 5.0)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":", label="perfect")
    for method, d in cal.groupby("method", sort=False):
        ax.plot(d["nominal"], d["empirical"], "-o", ms=4, label=method)
    ax.set_xlabel("nominal probability of the central interval")
    ax.set_ylabel("share of held-out ratings inside")
    ax.set_title("Calibration of predictive intervals")
    ax.legend(frameon=False)
    out.figure(fig, name)


def plot_bars(table: pd.DataFrame, out: Output, name: str) -> None:
    """One dot per method and metric (methods without the metric, e.g. MLE's lpd, are left out)."""
    cols = [c for c in ("rmse", "lpd", "coverage_90", "fit_time") if c in table.columns]
    if not cols:
        return
    fig, axes = figure(3.4 * len(cols), 3.4, ncols=len(cols))
    axes = np.atleast_1d(axes)
    methods = table["method"].astype(str).tolist()
    x = np.arange(len(methods))
    for ax, col in zip(axes, cols, strict=True):
        vals = table[col].astype(float).to_numpy()
        ok = np.isfinite(vals)
        ax.scatter(x[ok], vals[ok], c=[f"C{i}" for i in np.flatnonzero(ok)], s=40, zorder=3)
        for i in np.flatnonzero(~ok):
            ax.annotate("n/a", (x[i], 0.5), xycoords=("data", "axes fraction"), ha="center",
                        color="grey", fontsize=8)
        ax.set_xticks(x, methods, rotation=45)
        ax.set_xlim(-0.5, len(methods) - 0.5)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title({"rmse": "test RMSE", "lpd": "held-out log density / rating",
                      "coverage_90": "coverage of 90% intervals",
                      "fit_time": "fit time (s)"}[col])
        if col == "fit_time":
            ax.set_yscale("log")
        if col == "coverage_90":
            ax.axhline(0.9, color="grey", ls=":")
    out.figure(fig, name)


def run_block(label: str, ratings: Ratings, methods: Sequence[str], args: Any, out: Output,
              suffix: str) -> dict[str, Any]:
    train, test = holdout_split(ratings, args.test_fraction, args.seed)
    print(f"\n[{label}] {train.nnz} train / {test.nnz} test ratings, "
          f"{train.n_users} users x {train.n_items} items", flush=True)
    fits, wall = fit_all(methods, train, args)
    table = compare_table(fits, test, wall)
    print_table(table, f"{label}: comparison on held-out ratings")
    cal = calibration(fits, test)
    plot_calibration(cal, out, f"calibration{suffix}.png")
    plot_bars(table, out, f"comparison{suffix}.png")
    block = {"data": data_facts(train, test), "methods": list(methods), "table": table,
             "calibration": cal}
    loo = loo_table(fits)
    if loo is not None:
        print_table(loo, f"{label}: PSIS-LOO comparison (arviz.compare, training subsample)")
        block["loo"] = loo
    if "NUTS" in fits:
        block["nuts"] = nuts_facts(fits["NUTS"])
    return block


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Output(NAME, args)
    from bayesmf.datasets import load

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    ratings = load(args.data)
    if args.quick:
        args.rank = min(args.rank, 2)
    subset = core_subset(ratings, args.users, 1 if args.quick else args.min_item_ratings,
                         args.seed)
    results: dict[str, Any] = {
        "script": NAME, "seed": args.seed, "quick": bool(args.quick),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "subset": run_block("subset", subset, methods, args, out, ""),
    }
    if args.full and not args.quick:
        results["full"] = run_block("full data (no NUTS)", ratings,
                                    [m for m in methods if m != "NUTS"], args, out, "_full")
    return out.finish(results)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
