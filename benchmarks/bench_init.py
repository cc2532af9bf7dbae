"""Which starting point reaches convergence in fewer ALS sweeps: random or spectral?

``PMF(init=...)`` chooses where the sweeps start. This script fits MAP (rank as given, the
default penalties, ``tol=1e-3``, Anderson acceleration on) from both starts over several
seeds on each dataset and reports the sweeps to convergence, the final objective (its gap to
the best objective any fit of that dataset reached) and, for the real data, the held-out RMSE:

* ml-latest-small, three 80/20 ``random_split`` folds (seeds 0, 1, 2), rank 10, 8 seeds each;
* 1M synthetic ratings (20,000 users x 4,000 items, noise 0.8, data seed 0): rank 32 with
  power-law activity (exponent 0.5), rank 32 with even activity, rank 10 with power-law
  activity, each fitted at its true rank, 6 seeds each.

One seed is not enough to compare the two: on the rank-32 power-law set the random start
converged in 7 sweeps from seed 0 and in 18-26 from seeds 1-5.

Prints a table and writes ``benchmarks/results/bench_init.json``. Takes about 3 minutes here.

Usage::

    python benchmarks/bench_init.py [--seeds-ml 8] [--seeds-synthetic 6] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import write_results

from bayesmf.datasets import load_ml_latest_small, make_synthetic
from bayesmf.models.pmf import PMF
from bayesmf.split import random_split

INITS = ("random", "spectral")


def compare(name: str, train, rank: int, seeds: int, test=None) -> dict:  # noqa: ANN001
    """Fit both starts from ``seeds`` seeds; sweeps, objectives, seconds (and test RMSE)."""
    PMF(rank=rank, max_iter=2, progress=False).fit(train)  # load the kernels before timing
    PMF(rank=rank, max_iter=2, progress=False, init="spectral").fit(train)
    fits: dict[str, list[dict]] = {init: [] for init in INITS}
    for s in range(seeds):
        for init in INITS:  # interleaved, so a slow spell of the machine hits both
            m = PMF(rank=rank, init=init, random_state=s, progress=False).fit(train)
            row = {"seed": s, "sweeps": m.n_iter_, "converged": bool(m.converged_),
                   "objective": float(m.history_["objective"].iloc[-1]),
                   "seconds": float(m.fit_time_)}
            if test is not None:
                pred = np.clip(m.predict_mean(test.users, test.items), 0.5, 5.0)
                row["test_rmse"] = float(np.sqrt(np.mean((pred - test.values) ** 2)))
            fits[init].append(row)
    best = min(r["objective"] for rows in fits.values() for r in rows)
    out = {"data": name, "rank": rank, "nnz": train.nnz, "best_objective": best, "inits": {}}
    for init, rows in fits.items():
        sweeps = [r["sweeps"] for r in rows]
        gaps = [r["objective"] - best for r in rows]
        summary = {"sweeps": sweeps, "mean_sweeps": float(np.mean(sweeps)),
                   "mean_objective_gap": float(np.mean(gaps)),
                   "max_objective_gap": float(np.max(gaps)),
                   "median_seconds": float(np.median([r["seconds"] for r in rows])),
                   "fits": rows}
        if test is not None:
            summary["mean_test_rmse"] = float(np.mean([r["test_rmse"] for r in rows]))
        out["inits"][init] = summary
        rmse = f"{summary['mean_test_rmse']:.4f}" if test is not None else "-"
        print(f"{name:34s} {init:8s} {str(sweeps):34s} {summary['mean_sweeps']:5.1f} "
              f"{summary['mean_objective_gap']:9.1f} {summary['max_objective_gap']:9.1f} "
              f"{summary['median_seconds']:8.3f} {rmse:>8s}", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds-ml", type=int, default=8)
    ap.add_argument("--seeds-synthetic", type=int, default=6)
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    print(f"{'data':34s} {'init':8s} {'sweeps to tol 1e-3 (per seed)':34s} {'mean':>5s} "
          f"{'mean gap':>9s} {'max gap':>9s} {'median s':>8s} {'test RMSE':>8s}")
    results = []
    r = load_ml_latest_small(titles=False)
    for fold in (0, 1, 2):
        train, test = random_split(r, 0.2, random_state=fold)
        results.append(compare(f"ml-latest-small 80/20 fold {fold}", train, 10, args.seeds_ml,
                               test))
    if not args.skip_synthetic:
        for rank, expo in ((32, 0.5), (32, 0.0), (10, 0.5)):
            data, _ = make_synthetic(n_users=20_000, n_items=4_000, rank=rank,
                                     n_ratings=1_000_000, noise_sd=0.8,
                                     activity_exponent=expo, random_state=0)
            label = f"synthetic 1M rank {rank} activity {expo}"
            results.append(compare(label, data, rank, args.seeds_synthetic))
    out = {"benchmark": "bench_init", "tol": 1e-3, "results": results,
           "seconds": time.perf_counter() - t0}
    path = write_results("bench_init", out)
    print(f"wrote {path} ({out['seconds']:.0f} s)")
    return out


if __name__ == "__main__":
    main()
