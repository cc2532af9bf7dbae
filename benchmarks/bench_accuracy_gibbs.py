"""Accuracy of the Gibbs sampler (issue 3, "Accuracy").

5-fold random KFold (``bayesmf.split.kfold``, seed 0) on ml-latest-small, rank 10 with biases:

- RMSE and MAE of the posterior-mean predictions (the latent mean averaged over the kept
  draws, accumulated on the fly through ``fit(..., probe=test)``). Target RMSE <= 0.845
  (myFM rank 10 measured 0.853 here).
- Coverage of the central 50% and 90% posterior predictive intervals of held-out ratings,
  from the draws *including the noise* (each draw adds ``N(0, sigma_draw^2)``). Targets:
  45-55% and 88-92%.
- Optionally myFM (rank 10, 200 iterations) on the same folds in the same run.

Prints a table and writes ``benchmarks/results/bench_accuracy_gibbs.json``.

Usage::

    python benchmarks/bench_accuracy_gibbs.py [--chains 2] [--tune 100] [--draws 300]
                                              [--threads N] [--myfm] [--folds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from _common import write_results

from bayesmf.datasets import load_ml_latest_small
from bayesmf.models.gibbs import GibbsPMF
from bayesmf.split import kfold


def _quiet(i, fm, hyper, history):  # noqa: ANN001 - myFM callback: no progress bar, never stop
    return False, None


def _coverage(g: GibbsPMF, test, seed: int) -> dict[str, float]:
    """Coverage of central predictive intervals (draws + noise) on held-out ratings."""
    out: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    n = test.nnz
    step = 5000
    hits = {0.5: 0, 0.9: 0}
    for start in range(0, n, step):
        sl = slice(start, start + step)
        pred = g.predict_draws(test.users[sl], test.items[sl], noise=True, random_state=rng)
        pred = pred.reshape(-1, pred.shape[-1])
        for level in hits:
            lo, hi = np.quantile(pred, [(1 - level) / 2, (1 + level) / 2], axis=0)
            y = test.values[sl]
            hits[level] += int(np.sum((y >= lo) & (y <= hi)))
    for level, h in hits.items():
        out[f"coverage_{int(level * 100)}"] = h / n
    return out


def _myfm_fold(train, test, r, seed: int) -> dict:
    import myfm
    import scipy.sparse as sps

    def onehot(x):
        m = len(x.users)
        rows = np.repeat(np.arange(m), 2)
        cols = np.stack([x.users, r.n_users + x.items], axis=1).ravel()
        return sps.csr_matrix((np.ones(2 * m), (rows, cols)), shape=(m, r.n_users + r.n_items))

    t0 = time.perf_counter()
    fm = myfm.MyFMRegressor(rank=10, random_seed=seed)
    fm.fit(onehot(train), train.values, n_iter=200, n_kept_samples=150, callback=_quiet)
    pred = fm.predict(onehot(test))
    return {"rmse": float(np.sqrt(np.mean((pred - test.values) ** 2))),
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--tune", type=int, default=100)
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--folds", type=int, default=5, help="run only the first N of the 5 folds")
    ap.add_argument("--myfm", action="store_true", help="also fit myFM on each fold")
    args = ap.parse_args()

    r = load_ml_latest_small(titles=False)
    rows = []
    for k, (train, test) in enumerate(kfold(r, 5, random_state=0)):
        if k >= args.folds:
            break
        t0 = time.perf_counter()
        g = GibbsPMF(rank=10, biases=True, chains=args.chains, tune=args.tune, draws=args.draws,
                     random_state=k, progress=False, n_threads=args.threads,
                     check_convergence=False).fit(train, probe=test)
        secs = time.perf_counter() - t0
        err = g.probe_mean_ - test.values
        row = {
            "fold": k,
            "n_test": test.nnz,
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err))),
            "rmse_clipped": float(np.sqrt(np.mean(
                (np.clip(g.probe_mean_, r.scale.min, r.scale.max) - test.values) ** 2))),
            "sigma": g.sigma_,
            "seconds": secs,
        }
        row.update(_coverage(g, test, seed=k))
        if args.myfm:
            try:
                row["myfm"] = _myfm_fold(train, test, r, seed=k)
            except ImportError:
                row["myfm"] = "not installed"
        rows.append(row)
        extra = f"  myFM {row['myfm']['rmse']:.4f}" if isinstance(row.get("myfm"), dict) else ""
        print(f"fold {k}: RMSE {row['rmse']:.4f} (clipped {row['rmse_clipped']:.4f}) "
              f"MAE {row['mae']:.4f}  cover50 {row['coverage_50']:.3f} "
              f"cover90 {row['coverage_90']:.3f}  {secs:.1f} s{extra}", flush=True)

    def mean(key):
        return float(np.mean([x[key] for x in rows]))

    summary = {
        "rmse": mean("rmse"), "rmse_clipped": mean("rmse_clipped"), "mae": mean("mae"),
        "coverage_50": mean("coverage_50"), "coverage_90": mean("coverage_90"),
        "seconds_per_fold": mean("seconds"),
    }
    if rows and isinstance(rows[0].get("myfm"), dict):
        summary["myfm_rmse"] = float(np.mean([x["myfm"]["rmse"] for x in rows]))
    summary["targets"] = {
        "rmse<=0.845": summary["rmse"] <= 0.845,
        "coverage_90_in_88_92": 0.88 <= summary["coverage_90"] <= 0.92,
        "coverage_50_in_45_55": 0.45 <= summary["coverage_50"] <= 0.55,
    }
    print(f"\nmean over {len(rows)} fold(s): RMSE {summary['rmse']:.4f} (target <= 0.845), "
          f"MAE {summary['mae']:.4f}, coverage 50% {summary['coverage_50']:.3f} (45-55%), "
          f"90% {summary['coverage_90']:.3f} (88-92%)")
    if "myfm_rmse" in summary:
        print(f"myFM rank 10 RMSE {summary['myfm_rmse']:.4f}")
    res = {
        "data": "ml-latest-small, 5-fold random KFold seed 0 (bayesmf.split.kfold)",
        "model": {"rank": 10, "biases": True, "hyperprior": "normal-wishart",
                  "chains": args.chains, "tune": args.tune, "draws": args.draws},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "folds": rows, "summary": summary,
    }
    path = write_results("bench_accuracy_gibbs", res)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
