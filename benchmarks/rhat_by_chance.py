"""How often chains that mix perfectly still show R-hat >= 1.01 (what issue 3's target means).

The convergence target of issue 3 is R-hat < 1.01 and bulk ESS > 400 on every identifiable
quantity, and ``bayesmf.diagnostics.diagnose`` checks 100 probe pairs plus the hyperparameters.
R-hat is itself an estimate: with finitely many autocorrelated draws it exceeds 1.01 now and
then even when every chain samples the target exactly. This script measures how often, with
the shape of ``bench_gibbs.py`` (b): 4 chains x 500 kept draws, quantities drawn as
independent stationary AR(1) chains (exact N(0, 1) start, so there is no warm-up bias and no
chain is stuck) with the lag-1 correlation ``phi`` set to reach a range of bulk ESS. For each
``phi`` it reports the median bulk ESS, the share of single quantities with R-hat >= 1.01
(ArviZ's rank-normalised split R-hat, the one ``diagnose`` uses) and the probability that
the largest of ``--quantities`` of them is >= 1.01.

Prints a table and writes ``benchmarks/results/rhat_by_chance.json``.

Usage::

    python benchmarks/rhat_by_chance.py [--reps 100] [--quantities 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import arviz as az
import numpy as np
from _common import write_results

CHAINS, DRAWS = 4, 500
PHIS = (0.0, 0.3, 0.5, 0.6, 0.7)


def ar1_chains(rng: np.random.Generator, phi: float, n_q: int) -> np.ndarray:
    """``n_q`` independent quantities, each CHAINS stationary AR(1) chains of DRAWS draws."""
    e = rng.standard_normal((n_q, CHAINS, DRAWS))
    x = np.empty_like(e)
    x[..., 0] = e[..., 0]  # stationary start: marginal N(0, 1)
    scale = np.sqrt(1.0 - phi**2)
    for t in range(1, DRAWS):
        x[..., t] = phi * x[..., t - 1] + scale * e[..., t]
    return x


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=100, help="replications per phi")
    ap.add_argument("--quantities", type=int, default=100, help="quantities per replication")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    rows = []
    print(f"{CHAINS} chains x {DRAWS} draws, {args.quantities} quantities, {args.reps} "
          "replications per row; R-hat: ArviZ rank-normalised split R-hat")
    print(f"{'phi':>5s} {'bulk ESS':>9s} {'share >= 1.01':>14s} "
          f"{'P(max of ' + str(args.quantities) + ' >= 1.01)':>24s} {'median max':>11s}")
    for phi in PHIS:
        rhats, ess = [], []
        for rep in range(args.reps):
            x = ar1_chains(rng, phi, args.quantities)
            rhats.append([float(az.rhat(x[q])) for q in range(args.quantities)])
            if rep < 5:
                ess.extend(float(az.ess(x[q], method="bulk"))
                           for q in range(min(10, args.quantities)))
        r = np.array(rhats)
        row = {
            "phi": phi,
            "median_ess_bulk": float(np.median(ess)),
            "share_quantities_rhat_ge_1.01": float(np.mean(r >= 1.01)),
            "p_max_rhat_ge_1.01": float(np.mean(r.max(axis=1) >= 1.01)),
            "median_max_rhat": float(np.median(r.max(axis=1))),
        }
        rows.append(row)
        print(f"{phi:5.1f} {row['median_ess_bulk']:9.0f} {row['share_quantities_rhat_ge_1.01']:14.4f} "
              f"{row['p_max_rhat_ge_1.01']:24.2f} {row['median_max_rhat']:11.4f}")
    out = {"chains": CHAINS, "draws": DRAWS, "quantities": args.quantities, "reps": args.reps,
           "seed": args.seed, "arviz": az.__version__, "rows": rows,
           "seconds": time.perf_counter() - t0}
    path = write_results("rhat_by_chance", out)
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
