"""ALS vs SGD for MAP matrix factorization: the lecture's comparison table, measured.

The lecture's table says ALS converges "faster, more stable", SGD "slower, can oscillate"; ALS
"parallelises excellently", SGD "limited"; ALS has "few" hyperparameters, SGD "many (learning
rate, schedule)". This script measures those claims on one random hold-out split:

* each method's own penalised objective (ALS: ``SSE/2 + lambda/2 (||U||^2 + ||V||^2 + ||b||^2)``;
  SGD: the per-rating L2 of Funk SVD, ``1/2 sum (e^2 + lambda_ (|u|^2 + |v|^2 + b^2))``), the
  training RMSE and the test RMSE against sweeps (a sweep = one ALS pass over users then items,
  one SGD epoch over every rating) and against wall time;
* sweeps and seconds to get within 0.5% of the method's own best objective and within 0.005 of
  its best test RMSE, and how often the objective went up between sweeps (oscillation);
* the spread of the final test RMSE over a few SGD learning rates (ALS has none to tune);
* seconds per sweep with one thread and with every thread (parallel speed-up).

Per-sweep test RMSE comes from refitting with ``max_iter = s`` for checkpoint sweeps ``s``: a
seeded fit is deterministic, so this reproduces the long run's first ``s`` sweeps exactly (the
script checks that the training RMSE of each refit matches the long run's history).

Run::

    python analyses/als_vs_sgd.py
    python analyses/als_vs_sgd.py --quick --out /tmp/avs
"""

from __future__ import annotations

import sys
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
    print_table,
    quiet,
)

from bayesmf.models.pmf import PMF

NAME = "als_vs_sgd"


def parse_args(argv: Sequence[str] | None) -> Any:
    parser = base_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--lam", type=float, default=None,
                        help="ALS: lambda_u = lambda_v (default: PMF's default)")
    parser.add_argument("--lam-bias", type=float, default=None,
                        help="ALS: penalty on the biases (default: PMF's default)")
    parser.add_argument("--sgd-lambda", type=float, default=0.02,
                        help="SGD: per-rating L2 penalty lambda_ (default 0.02, as Funk SVD)")
    parser.add_argument("--als-sweeps", type=int, default=30)
    parser.add_argument("--sgd-sweeps", type=int, default=60)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="SGD learning rate of the main run (default: the estimator's)")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=None,
                        help="SGD learning rates of the sensitivity check")
    return parser.parse_args(argv)


def make(method: str, args: Any, sweeps: int, learning_rate: float | None = None) -> Any:
    """ALS (PMF MAP) or SGD estimator running exactly ``sweeps`` sweeps."""
    if method == "ALS":
        kw = {} if args.lam is None else {"lambda_u": args.lam, "lambda_v": args.lam}
        if args.lam_bias is not None:
            kw["lambda_bias"] = args.lam_bias
        # the lecture's comparison: both start from small random factors (SGD has no
        # spectral start, and PMF's default one would hand ALS a head start)
        return PMF(rank=args.rank, method="map", max_iter=sweeps, tol=1e-12, init="random",
                   random_state=args.seed, **kw)
    from bayesmf.models.sgd import SGDPMF

    kw = {} if learning_rate is None else {"lr": learning_rate}
    return SGDPMF(rank=args.rank, lambda_=args.sgd_lambda, n_epochs=sweeps, tol=1e-12,
                  random_state=args.seed, **kw)


def checkpoints(n: int) -> list[int]:
    pts = sorted({int(round(x)) for x in np.geomspace(1, n, 12)} | {1, 2, 3, n})
    return [p for p in pts if 1 <= p <= n]


def trajectory(method: str, args: Any, sweeps: int, train: Any, test: Any,
               learning_rate: float | None = None) -> tuple[pd.DataFrame, Any]:
    """Objective, train and test RMSE and elapsed seconds at checkpoint sweeps."""
    with quiet():
        long = make(method, args, sweeps, learning_rate).fit(train)
    hist = long.history_.set_index("sweep")
    rows = []
    for s in checkpoints(int(long.n_iter_)):
        with quiet():
            fit = make(method, args, s, learning_rate).fit(train)
        rows.append({
            "method": method, "sweep": s,
            "seconds": float(hist.loc[s, "seconds"]),
            "objective": float(fit.history_["objective"].iloc[-1]),
            "train_rmse": float(hist.loc[s, "train_rmse"]),
            "train_rmse_refit": float(np.sqrt(np.mean(
                (fit.predict_mean(train.users, train.items) - train.values) ** 2))),
            "test_rmse": clipped_rmse(fit, test),
        })
    return pd.DataFrame(rows), long


def sweep_table(long: Any, method: str) -> pd.DataFrame:
    h = long.history_[["sweep", "objective", "train_rmse", "seconds"]].copy()
    h.insert(0, "method", method)
    return h


def convergence_summary(method: str, hist: pd.DataFrame, traj: pd.DataFrame) -> dict[str, Any]:
    obj = hist["objective"].to_numpy()
    first = int(np.flatnonzero(obj <= obj.min() * 1.005)[0])
    inc = np.diff(obj) > 1e-9 * np.abs(obj[:-1])
    rm = traj["test_rmse"].to_numpy()
    near = int(np.flatnonzero(rm <= rm.min() + 0.005)[0])
    return {
        "method": method,
        "sweeps_run": int(hist["sweep"].iloc[-1]),
        "sweeps_to_objective_0.5pct": int(hist["sweep"].iloc[first]),
        "seconds_to_objective_0.5pct": float(hist["seconds"].iloc[first]),
        "sweeps_to_test_rmse_0.005": int(traj["sweep"].iloc[near]),
        "seconds_to_test_rmse_0.005": float(traj["seconds"].iloc[near]),
        "seconds_per_sweep": float(hist["seconds"].iloc[-1] / hist["sweep"].iloc[-1]),
        "objective_increases": int(inc.sum()),
        "final_objective": float(obj[-1]),
        "final_test_rmse": float(traj["test_rmse"].iloc[-1]),
        "best_test_rmse": float(traj["test_rmse"].min()),
    }


def thread_speedup(method: str, args: Any, train: Any, sweeps: int = 6) -> dict[str, Any]:
    """Median seconds per sweep with one numba thread vs every thread."""
    import numba

    full = numba.config.NUMBA_NUM_THREADS
    out: dict[str, Any] = {"method": method, "threads": full}
    try:
        for label, n in (("one_thread", 1), ("all_threads", full)):
            numba.set_num_threads(n)
            with quiet():
                make(method, args, 1).fit(train)  # warm (compile) at this thread count
                fit = make(method, args, sweeps).fit(train)
            per = np.diff(np.concatenate([[0.0], fit.history_["seconds"].to_numpy()]))
            out[f"seconds_per_sweep_{label}"] = float(np.median(per[1:] if len(per) > 1 else per))
    finally:
        numba.set_num_threads(full)
    out["speedup"] = out["seconds_per_sweep_one_thread"] / out["seconds_per_sweep_all_threads"]
    return out


def plot(traj: pd.DataFrame, hists: pd.DataFrame, out: Output) -> None:
    fig, axes = figure(11, 7.2, ncols=2, nrows=2)
    colors = {"ALS": "C0", "SGD": "C1"}
    for method, d in hists.groupby("method"):
        obj = d["objective"].to_numpy()
        gap = (obj - obj.min()) / obj.min()
        keep = gap > 0  # the best sweep itself has no gap to draw on a log scale
        axes[0, 0].plot(d["sweep"][keep], gap[keep], "-o", ms=3, color=colors[method],
                        label=method)
        axes[0, 1].plot(d["seconds"][keep], gap[keep], "-o", ms=3, color=colors[method],
                        label=method)
    for method, d in traj.groupby("method"):
        axes[1, 0].plot(d["sweep"], d["test_rmse"], "-o", ms=3, color=colors[method],
                        label=method)
        axes[1, 1].plot(d["seconds"], d["test_rmse"], "-o", ms=3, color=colors[method],
                        label=method)
    for ax in axes[0]:
        ax.set_yscale("log")
        ax.set_ylabel("(objective - own best) / own best")
    for ax in axes[1]:
        ax.set_ylabel("test RMSE")
    for ax in axes[:, 0]:
        ax.set_xlabel("sweep (ALS: users+items; SGD: one epoch)")
    for ax in axes[:, 1]:
        ax.set_xlabel("wall time (s)")
    for ax in axes.flat:
        ax.legend(frameon=False)
    fig.suptitle("ALS vs SGD: objective and test RMSE against sweeps and wall time")
    out.figure(fig, "objective_and_rmse.png")


def plot_learning_rates(df: pd.DataFrame, als_rmse: float, out: Output) -> None:
    fig, ax = figure(6.0, 3.6)
    ax.plot(df["learning_rate"], df["final_test_rmse"], "-o", color="C1", label="SGD")
    ax.axhline(als_rmse, color="C0", label="ALS (no learning rate)")
    ax.set_xscale("log")
    ax.set_xlabel("SGD learning rate")
    ax.set_ylabel("test RMSE after the run")
    ax.set_title("Sensitivity to the learning rate")
    ax.legend(frameon=False)
    out.figure(fig, "sgd_learning_rate.png")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Output(NAME, args)
    ratings = load_data(args)
    train, test = holdout_split(ratings, args.test_fraction, args.seed)
    als_sweeps = min(args.als_sweeps, 8) if args.quick else args.als_sweeps
    sgd_sweeps = min(args.sgd_sweeps, 12) if args.quick else args.sgd_sweeps

    # warm the numba kernels so that compile time is not charged to the first method
    with quiet():
        make("ALS", args, 1).fit(train)
        make("SGD", args, 1, args.learning_rate).fit(train)

    traj_als, als = trajectory("ALS", args, als_sweeps, train, test)
    traj_sgd, sgd = trajectory("SGD", args, sgd_sweeps, train, test, args.learning_rate)
    traj = pd.concat([traj_als, traj_sgd], ignore_index=True)
    hists = pd.concat([sweep_table(als, "ALS"), sweep_table(sgd, "SGD")], ignore_index=True)
    summary = pd.DataFrame([convergence_summary("ALS", sweep_table(als, "ALS"), traj_als),
                            convergence_summary("SGD", sweep_table(sgd, "SGD"), traj_sgd)])
    reproducible = bool(np.allclose(traj["train_rmse"], traj["train_rmse_refit"], rtol=1e-6))

    lrs = args.learning_rates
    if lrs is None:
        base = float(sgd.lr)
        lrs = [base / 3, base, base * 3] if not args.quick else [base / 3, base * 3]
    lr_rows = []
    for lr in lrs:
        with quiet():
            fit = make("SGD", args, sgd_sweeps, lr).fit(train)
        lr_rows.append({"learning_rate": lr, "final_test_rmse": clipped_rmse(fit, test),
                        "final_objective": float(fit.history_["objective"].iloc[-1]),
                        "finite": bool(np.isfinite(fit.U_).all())})
    lr_df = pd.DataFrame(lr_rows)

    threads = pd.DataFrame([thread_speedup("ALS", args, train), thread_speedup("SGD", args, train)])

    table = pd.DataFrame([
        {"aspect": "convergence: sweeps to within 0.5% of own best objective",
         "ALS": summary.loc[0, "sweeps_to_objective_0.5pct"],
         "SGD": summary.loc[1, "sweeps_to_objective_0.5pct"]},
        {"aspect": "convergence: sweeps to within 0.005 of best test RMSE",
         "ALS": summary.loc[0, "sweeps_to_test_rmse_0.005"],
         "SGD": summary.loc[1, "sweeps_to_test_rmse_0.005"]},
        {"aspect": "convergence: seconds to within 0.005 of best test RMSE",
         "ALS": summary.loc[0, "seconds_to_test_rmse_0.005"],
         "SGD": summary.loc[1, "seconds_to_test_rmse_0.005"]},
        {"aspect": "stability: sweeps where the objective went up",
         "ALS": summary.loc[0, "objective_increases"], "SGD": summary.loc[1, "objective_increases"]},
        {"aspect": "parallelisation: speed-up all threads vs one",
         "ALS": threads.loc[0, "speedup"], "SGD": threads.loc[1, "speedup"]},
        {"aspect": "hyperparameters: test RMSE range over learning rates",
         "ALS": 0.0, "SGD": float(lr_df["final_test_rmse"].max() - lr_df["final_test_rmse"].min())},
        {"aspect": "accuracy: final test RMSE",
         "ALS": summary.loc[0, "final_test_rmse"], "SGD": summary.loc[1, "final_test_rmse"]},
    ])
    print_table(summary, "convergence summary")
    print_table(traj, "checkpoints (test RMSE from refits with max sweeps = checkpoint)")
    print_table(lr_df, "SGD learning-rate sensitivity")
    print_table(threads, "seconds per sweep, one thread vs all")
    print_table(table, "the lecture's ALS vs SGD table, measured")

    plot(traj, hists, out)
    plot_learning_rates(lr_df, float(summary.loc[0, "final_test_rmse"]), out)

    results = {
        "script": NAME,
        "seed": args.seed,
        "quick": bool(args.quick),
        "data": data_facts(train, test),
        "settings": {"rank": args.rank, "als_lambda_u": float(als.lambda_u_),
                     "als_lambda_v": float(als.lambda_v_),
                     "als_lambda_bias": float(als.lambda_bias_),
                     "als_sweeps": als_sweeps, "sgd_sweeps": sgd_sweeps,
                     "sgd_lambda": args.sgd_lambda, "sgd_learning_rate": float(sgd.lr)},
        "lecture_table": table,
        "summary": summary,
        "checkpoints": traj,
        "history": hists,
        "learning_rates": lr_df,
        "threads": threads,
        "refits_reproduce_history": reproducible,
    }
    return out.finish(results)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
