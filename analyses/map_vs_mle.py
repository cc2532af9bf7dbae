"""MAP vs MLE: why the Gaussian prior matters on sparse rating data.

Fits PMF by alternating least squares as maximum likelihood (``method="mle"``, no penalty) and
as MAP (ridge penalties) on the same random hold-out split and measures

1. train and test RMSE as the rank grows (1..50): MLE's training error keeps falling while its
   test error climbs — it overfits, and beyond a user's or item's rating count its row system is
   underdetermined (solved by minimum norm; the count of such rows is recorded);
2. train and test RMSE of MAP as the penalty ``lambda = lambda_u = lambda_v`` varies
   (``lambda = sigma^2 / sigma_u^2``), from nearly-MLE to heavily shrunk;
3. test RMSE by user activity and by item activity (number of training ratings): the gap
   between MLE and MAP is largest for the sparse rows — the sparsity argument for MAP.

Run::

    python analyses/map_vs_mle.py                 # ml-latest-small, a few minutes
    python analyses/map_vs_mle.py --quick --out /tmp/mvm
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
    activity_buckets,
    base_parser,
    clipped_rmse,
    data_facts,
    figure,
    holdout_split,
    load_data,
    log_rank_axis,
    print_table,
    quiet,
    train_rmse,
)

from bayesmf.models.pmf import PMF

NAME = "map_vs_mle"
RANKS = (1, 2, 3, 5, 10, 20, 30, 50)
QUICK_RANKS = (1, 3, 8)
LAMBDAS = (0.01, 0.1, 0.3, 1.0, 3.0, 8.0, 20.0, 50.0, 150.0)
QUICK_LAMBDAS = (0.1, 3.0, 30.0)
USER_EDGES = (0, 20, 35, 70, 150, 400, float("inf"))
ITEM_EDGES = (-1, 0, 2, 5, 10, 30, 100, float("inf"))


def parse_args(argv: Sequence[str] | None) -> Any:
    parser = base_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=None,
                        help=f"ranks of the rank sweep (default {' '.join(map(str, RANKS))})")
    parser.add_argument("--lambdas", type=float, nargs="+", default=None,
                        help="penalties of the lambda sweep")
    parser.add_argument("--lambda-rank", type=int, default=10,
                        help="rank of the lambda sweep and of the activity breakdown")
    parser.add_argument("--max-iter", type=int, default=25, help="ALS sweeps per fit")
    return parser.parse_args(argv)


def fit_pmf(train: Any, rank: int, method: str, seed: int, max_iter: int, **kw: Any) -> tuple[Any, float]:
    """Fit PMF and return it with its wall time."""
    t0 = time.perf_counter()
    with quiet():
        fit = PMF(rank=rank, method=method, max_iter=max_iter, random_state=seed, **kw).fit(train)
    return fit, time.perf_counter() - t0


def rank_sweep(train: Any, test: Any, ranks: Sequence[int], seed: int, max_iter: int) -> pd.DataFrame:
    rows = []
    for k in ranks:
        for method in ("mle", "map"):
            fit, secs = fit_pmf(train, k, method, seed, max_iter)
            rows.append({
                "rank": k, "method": method.upper(), "lambda_u": float(fit.lambda_u_),
                "lambda_v": float(fit.lambda_v_),
                "train_rmse": train_rmse(fit, train), "test_rmse": clipped_rmse(fit, test),
                "underdetermined_users": int(fit.underdetermined_users_),
                "underdetermined_items": int(fit.underdetermined_items_),
                "sweeps": int(fit.n_iter_), "seconds": secs,
            })
    return pd.DataFrame(rows)


def lambda_sweep(train: Any, test: Any, lambdas: Sequence[float], rank: int, seed: int,
                 max_iter: int) -> pd.DataFrame:
    rows = []
    for lam in lambdas:
        fit, secs = fit_pmf(train, rank, "map", seed, max_iter, lambda_u=lam, lambda_v=lam)
        rows.append({"lambda": lam, "rank": rank, "train_rmse": train_rmse(fit, train),
                     "test_rmse": clipped_rmse(fit, test), "seconds": secs})
    return pd.DataFrame(rows)


def activity_breakdown(fits: dict[str, Any], train: Any, test: Any) -> dict[str, pd.DataFrame]:
    """Test RMSE of each fit by the training activity of the test rating's user and item."""
    out = {}
    for side, counts, idx, edges in (
        ("user", train.user_counts, test.users, USER_EDGES),
        ("item", train.item_counts, test.items, ITEM_EDGES),
    ):
        bucket, labels = activity_buckets(counts[idx], edges)
        rows = []
        preds = {name: test.scale.clip(f.predict_mean(test.users, test.items))
                 if test.scale is not None else f.predict_mean(test.users, test.items)
                 for name, f in fits.items()}
        for b, label in enumerate(labels):
            mask = bucket == b
            if not mask.any():
                continue
            row: dict[str, Any] = {f"{side}_ratings": label, "n_test": int(mask.sum()),
                                   f"n_{side}s": int(len(np.unique(idx[mask])))}
            for name, p in preds.items():
                row[f"rmse_{name}"] = float(np.sqrt(np.mean((p[mask] - test.values[mask]) ** 2)))
            rows.append(row)
        out[side] = pd.DataFrame(rows)
    return out


def plot_rank(df: pd.DataFrame, out: Output) -> None:
    fig, (ax, ax2) = figure(10, 3.8, ncols=2)
    for method, color in (("MLE", "C3"), ("MAP", "C0")):
        d = df[df["method"] == method]
        ax.plot(d["rank"], d["train_rmse"], "--o", color=color, label=f"{method} train", ms=4)
        ax.plot(d["rank"], d["test_rmse"], "-o", color=color, label=f"{method} test", ms=4)
    ax.set_xlabel("rank k")
    ax.set_ylabel("RMSE")
    log_rank_axis(ax, sorted(df["rank"].unique()))
    ax.set_title("RMSE against rank")
    ax.legend(frameon=False)
    d = df[df["method"] == "MLE"]
    ax2.plot(d["rank"], d["underdetermined_users"], "-o", label="users", ms=4)
    ax2.plot(d["rank"], d["underdetermined_items"], "-s", label="items", ms=4)
    log_rank_axis(ax2, sorted(df["rank"].unique()))
    ax2.set_xlabel("rank k")
    ax2.set_ylabel("rows with fewer ratings than unknowns")
    ax2.set_title("MLE: underdetermined rows")
    ax2.legend(frameon=False)
    out.figure(fig, "rmse_vs_rank.png")


def plot_lambda(df: pd.DataFrame, mle_row: dict[str, float] | None, out: Output) -> None:
    fig, ax = figure(6.4, 3.8)
    ax.plot(df["lambda"], df["train_rmse"], "--o", color="C0", label="MAP train", ms=4)
    ax.plot(df["lambda"], df["test_rmse"], "-o", color="C0", label="MAP test", ms=4)
    if mle_row is not None:
        ax.axhline(mle_row["test_rmse"], color="C3", lw=1, label="MLE test (lambda = 0)")
    ax.set_xscale("log")
    ax.set_xlabel("lambda = lambda_u = lambda_v")
    ax.set_ylabel("RMSE")
    ax.set_title(f"MAP at rank {int(df['rank'].iloc[0])}: RMSE against the penalty")
    ax.legend(frameon=False)
    out.figure(fig, "rmse_vs_lambda.png")


def plot_activity(tables: dict[str, pd.DataFrame], out: Output) -> None:
    fig, axes = figure(11, 3.8, ncols=2)
    for ax, (side, df) in zip(axes, tables.items(), strict=True):
        cols = [c for c in df.columns if c.startswith("rmse_")]
        x = np.arange(len(df))
        w = 0.8 / max(1, len(cols))
        for j, c in enumerate(cols):
            ax.bar(x + (j - (len(cols) - 1) / 2) * w, df[c], width=w, label=c[5:],
                   color="C3" if "MLE" in c else "C0")
        ax.set_xticks(x, df[f"{side}_ratings"])
        ax.set_xlabel(f"training ratings of the {side}")
        ax.set_ylabel("test RMSE")
        ax.set_title(f"Error by {side} activity")
        ax.legend(frameon=False)
    out.figure(fig, "rmse_by_activity.png")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Output(NAME, args)
    ratings = load_data(args)
    train, test = holdout_split(ratings, args.test_fraction, args.seed)
    ranks = args.ranks or (QUICK_RANKS if args.quick else RANKS)
    lambdas = args.lambdas or (QUICK_LAMBDAS if args.quick else LAMBDAS)
    max_iter = min(args.max_iter, 10) if args.quick else args.max_iter
    lam_rank = min(args.lambda_rank, max(ranks))

    ranks_df = rank_sweep(train, test, ranks, args.seed, max_iter)
    print_table(ranks_df, "train / test RMSE against rank (MLE vs MAP)")
    lambdas_df = lambda_sweep(train, test, lambdas, lam_rank, args.seed, max_iter)
    print_table(lambdas_df, f"MAP at rank {lam_rank}: RMSE against lambda")

    fits = {m.upper(): fit_pmf(train, lam_rank, m, args.seed, max_iter)[0] for m in ("mle", "map")}
    activity = activity_breakdown(fits, train, test)
    for side, df in activity.items():
        print_table(df, f"rank {lam_rank}: test RMSE by {side} activity")

    mle_at = ranks_df[(ranks_df["method"] == "MLE") & (ranks_df["rank"] == lam_rank)]
    plot_rank(ranks_df, out)
    plot_lambda(lambdas_df, mle_at.iloc[0].to_dict() if len(mle_at) else None, out)
    plot_activity(activity, out)

    best_map = ranks_df[ranks_df["method"] == "MAP"]["test_rmse"].min()
    best_mle = ranks_df[ranks_df["method"] == "MLE"]["test_rmse"].min()
    results = {
        "script": NAME,
        "seed": args.seed,
        "quick": bool(args.quick),
        "data": data_facts(train, test),
        "settings": {"ranks": list(ranks), "lambdas": list(lambdas), "lambda_rank": lam_rank,
                     "map_lambda_u": float(fits["MAP"].lambda_u_),
                     "map_lambda_v": float(fits["MAP"].lambda_v_),
                     "map_lambda_bias": float(fits["MAP"].lambda_bias_),
                     "max_iter": max_iter, "test_fraction": args.test_fraction},
        "rank_sweep": ranks_df,
        "lambda_sweep": lambdas_df,
        "activity": {side: df for side, df in activity.items()},
        "summary": {
            "best_test_rmse_map": best_map,
            "best_test_rmse_mle": best_mle,
            "best_rank_map": int(ranks_df.loc[ranks_df[ranks_df["method"] == "MAP"]["test_rmse"].idxmin(), "rank"]),
            "best_rank_mle": int(ranks_df.loc[ranks_df[ranks_df["method"] == "MLE"]["test_rmse"].idxmin(), "rank"]),
            "best_lambda": float(lambdas_df.loc[lambdas_df["test_rmse"].idxmin(), "lambda"]),
            "max_underdetermined_items_mle": int(ranks_df["underdetermined_items"].max()),
            "max_underdetermined_users_mle": int(ranks_df["underdetermined_users"].max()),
        },
    }
    return out.finish(results)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
