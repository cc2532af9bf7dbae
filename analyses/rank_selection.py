"""Choosing the rank: held-out log density and LOO, and Bayesian averaging against overfitting.

For each rank ``k`` on one random hold-out split this script fits

* MAP (ALS) with a fixed penalty tuned for rank 10 (PMF's default ``lambda``) and with a weak
  penalty (``lambda = 1``): a point estimate must be re-tuned for every rank, and with
  too little shrinkage it overfits as ``k`` grows;
* the Gibbs posterior (BPMF), which learns the prior precisions from the data and averages
  predictions over draws,

and records the test RMSE, the held-out log predictive density (mean per rating; MAP through its
conditional Laplace predictive, Gibbs through the log-mean-exp over draws) and, for Gibbs, the
PSIS-LOO expected log density on a random subsample of the training ratings (ArviZ's ``loo``).
The rank each criterion picks is reported.

Run::

    python analyses/rank_selection.py
    python analyses/rank_selection.py --quick --out /tmp/rank
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
    clipped_rmse,
    data_facts,
    figure,
    holdout_split,
    load_data,
    log_rank_axis,
    print_table,
    quiet,
)

from bayesmf.models.pmf import DEFAULT_LAMBDA_U, PMF

NAME = "rank_selection"
RANKS = (2, 5, 10, 20, 30)
QUICK_RANKS = (1, 3, 8)


def parse_args(argv: Sequence[str] | None) -> Any:
    parser = base_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=None)
    parser.add_argument("--map-lambdas", type=float, nargs="+",
                        default=[DEFAULT_LAMBDA_U, 1.0],
                        help=f"penalties of the MAP fits (default {DEFAULT_LAMBDA_U:g} 1: "
                             "PMF's default and a weak one)")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=150)
    parser.add_argument("--tune", type=int, default=50)
    parser.add_argument("--loo-subsample", type=int, default=4000,
                        help="training ratings used for PSIS-LOO (memory: chains*draws*n)")
    return parser.parse_args(argv)


def heldout(fit: Any, test: Any) -> dict[str, float]:
    """Test RMSE and mean held-out log predictive density of a fit."""
    from bayesmf.predict import predictive_summary

    s = predictive_summary(fit, test.users, test.items, probs=(0.9,), levels=False,
                           y=test.values)
    lpd = float(np.mean(s.lpd)) if s.lpd is not None else float("nan")
    lo, hi = s.intervals[0.9]
    cover = float(np.mean((test.values >= lo) & (test.values <= hi))) if s.has_uncertainty \
        else float("nan")
    return {"test_rmse": clipped_rmse(fit, test), "test_lpd": lpd, "coverage_90": cover}


def loo_gibbs(fit: Any, train: Any, n_sub: int, seed: int) -> dict[str, float]:
    """PSIS-LOO elpd per rating on a random subsample of the training ratings."""
    import arviz as az

    from bayesmf.compare import log_likelihood_draws

    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(train.nnz, size=min(n_sub, train.nnz), replace=False))
    with quiet():
        res = az.loo(log_likelihood_draws(fit, max_draws=400, obs_idx=sub), pointwise=True)
    k = np.asarray(res.pareto_k)
    return {"loo_elpd": float(res.elpd_loo) / len(sub), "loo_se": float(res.se) / len(sub),
            "p_loo": float(res.p_loo), "pareto_k_over_0.7": float(np.mean(k > 0.7))}


def gibbs(rank: int, args: Any, train: Any) -> Any:
    from bayesmf.models.gibbs import GibbsPMF

    chains, draws, tune = args.chains, args.draws, args.tune
    if args.quick:
        chains, draws, tune = 1, min(draws, 40), min(tune, 20)
    with quiet():
        return GibbsPMF(rank=rank, chains=chains, draws=draws, tune=tune, thin=1,
                        random_state=args.seed, progress=False,
                        check_convergence=False).fit(train)


def plot(df: pd.DataFrame, out: Output) -> None:
    fig, axes = figure(13, 3.8, ncols=3)
    for label, d in df.groupby("model", sort=False):
        style = "-o" if label.startswith("Gibbs") else "--s"
        axes[0].plot(d["rank"], d["test_rmse"], style, ms=4, label=label)
        axes[1].plot(d["rank"], d["test_lpd"], style, ms=4, label=label)
        if d["loo_elpd"].notna().any():
            axes[2].errorbar(d["rank"], d["loo_elpd"], yerr=d["loo_se"], fmt="-o", ms=4,
                             label=label)
    axes[0].set_ylabel("test RMSE")
    axes[1].set_ylabel("held-out log density per rating")
    axes[2].set_ylabel("PSIS-LOO elpd per rating (train subsample)")
    for ax in axes:
        ax.set_xlabel("rank k")
        log_rank_axis(ax, sorted(df["rank"].unique()))
        ax.legend(frameon=False, fontsize=8)
    out.figure(fig, "rank_selection.png")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Output(NAME, args)
    ratings = load_data(args)
    train, test = holdout_split(ratings, args.test_fraction, args.seed)
    ranks = args.ranks or (QUICK_RANKS if args.quick else RANKS)
    rows = []
    for k in ranks:
        for lam in args.map_lambdas:
            t0 = time.perf_counter()
            with quiet():
                fit = PMF(rank=k, lambda_u=lam, lambda_v=lam, random_state=args.seed,
                          max_iter=10 if args.quick else 30).fit(train)
            rows.append({"model": f"MAP lambda={lam:g}", "rank": k,
                         "seconds": time.perf_counter() - t0, **heldout(fit, test),
                         "loo_elpd": np.nan, "loo_se": np.nan, "p_loo": np.nan,
                         "pareto_k_over_0.7": np.nan})
        t0 = time.perf_counter()
        g = gibbs(k, args, train)
        secs = time.perf_counter() - t0
        n_sub = min(args.loo_subsample, 500) if args.quick else args.loo_subsample
        rows.append({"model": "Gibbs (BPMF)", "rank": k, "seconds": secs, **heldout(g, test),
                     **loo_gibbs(g, train, n_sub, args.seed)})
        print(f"rank {k}: done ({secs:.1f} s Gibbs)", flush=True)
    df = pd.DataFrame(rows)
    print_table(df, "rank selection: held-out accuracy and log density")

    chosen = []
    for label, d in df.groupby("model", sort=False):
        row = {"model": label,
               "rank_by_test_lpd": int(d.loc[d["test_lpd"].idxmax(), "rank"]),
               "rank_by_test_rmse": int(d.loc[d["test_rmse"].idxmin(), "rank"]),
               "rmse_at_largest_rank": float(d.loc[d["rank"].idxmax(), "test_rmse"]),
               "rmse_best": float(d["test_rmse"].min())}
        row["rmse_increase_at_largest_rank"] = row["rmse_at_largest_rank"] - row["rmse_best"]
        if d["loo_elpd"].notna().any():
            row["rank_by_loo"] = int(d.loc[d["loo_elpd"].idxmax(), "rank"])
        chosen.append(row)
    chosen_df = pd.DataFrame(chosen)
    print_table(chosen_df, "rank chosen by each criterion; overfitting at the largest rank")
    plot(df, out)
    results = {
        "script": NAME,
        "seed": args.seed,
        "quick": bool(args.quick),
        "data": data_facts(train, test),
        "settings": {"ranks": list(ranks), "map_lambdas": args.map_lambdas,
                     "chains": 1 if args.quick else args.chains,
                     "draws": min(args.draws, 40) if args.quick else args.draws,
                     "tune": min(args.tune, 20) if args.quick else args.tune},
        "table": df,
        "chosen": chosen_df,
    }
    return out.finish(results)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
