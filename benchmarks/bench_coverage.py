"""Held-out calibration of the predictive intervals on ml-latest-small (issue 4, "Done means").

One seeded 80/20 random split; each method is fitted on the training part and scored through
the user-facing :func:`bayesmf.evaluate.evaluate` (the same predictive code as ``fit.predict``):
RMSE, coverage of the central 50% and 90% predictive intervals (observation noise included),
mean interval widths and held-out log predictive density. Targets: Gibbs 90% coverage in
[0.88, 0.92] and 50% coverage in [0.45, 0.55]; MAP's Laplace and ADVI's coverage are reported.

Usage::

    python benchmarks/bench_coverage.py [--seed 0] [--advi-steps 20000] [--skip-advi]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--gibbs-chains", type=int, default=4)
    ap.add_argument("--gibbs-draws", type=int, default=300)
    ap.add_argument("--advi-steps", type=int, default=20000)
    ap.add_argument("--advi-lr", type=float, default=0.01)
    ap.add_argument("--skip-advi", action="store_true")
    ap.add_argument("--json", type=Path, default=RESULTS / "bench_coverage.json")
    args = ap.parse_args()

    from bayesmf.datasets import load_ml_latest_small
    from bayesmf.evaluate import evaluate
    from bayesmf.models.gibbs import GibbsPMF
    from bayesmf.models.pmf import PMF
    from bayesmf.split import random_split

    ratings = load_ml_latest_small()
    train, test = random_split(ratings, test_size=0.2, random_state=args.seed)
    fits = {
        "map (Laplace)": PMF(rank=args.rank, random_state=args.seed),
        "gibbs": GibbsPMF(rank=args.rank, chains=args.gibbs_chains, draws=args.gibbs_draws,
                          random_state=args.seed, progress=False, check_convergence=False),
    }
    if not args.skip_advi:
        from bayesmf.models.pymc_fit import ADVIPMF

        fits["advi"] = ADVIPMF(rank=args.rank, n_steps=args.advi_steps,
                               learning_rate=args.advi_lr, draws=500,
                               random_state=args.seed, progress=False)
    rows = {}
    print(f"ml-latest-small, random 80/20 split seed {args.seed}: {train.nnz} train / "
          f"{test.nnz} test ratings, rank {args.rank}")
    print(f"{'method':15s} {'rmse':>7s} {'cov50':>7s} {'cov90':>7s} {'width50':>8s} "
          f"{'width90':>8s} {'lpd':>8s} {'fit_s':>7s}")
    for name, fit in fits.items():
        t0 = time.perf_counter()
        fit.fit(train)
        fit_s = time.perf_counter() - t0
        m = evaluate(fit, test)
        m["fit_seconds"] = fit_s
        rows[name] = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in m.items()}
        print(f"{name:15s} {m['rmse']:7.4f} {m['coverage_50']:7.3f} {m['coverage_90']:7.3f} "
              f"{m['width_50']:8.3f} {m['width_90']:8.3f} {m.get('lpd', float('nan')):8.4f} "
              f"{fit_s:7.1f}")
    g = rows["gibbs"]
    verdict = {
        "gibbs_90_in_[0.88,0.92]": 0.88 <= g["coverage_90"] <= 0.92,
        "gibbs_50_in_[0.45,0.55]": 0.45 <= g["coverage_50"] <= 0.55,
    }
    print("targets:", verdict)
    out = {"benchmark": "bench_coverage", "data": "ml-latest-small", "seed": args.seed,
           "split": "random 80/20", "n_train": train.nnz, "n_test": test.nnz,
           "rank": args.rank, "methods": rows, "targets_met": verdict,
           "machine": platform.platform(), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                         time.gmtime())}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
