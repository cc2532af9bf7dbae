"""Simulation-based calibration (Talts et al. 2018) of the Gibbs, NUTS and ADVI posteriors.

For each method, ``--reps`` times: draw PMF parameters from the prior, simulate ratings, fit, and
rank the true value of each rotation-invariant quantity (noise sd, global mean, ``||U||_F``,
``||V||_F``, latent means of a few fixed pairs) among ``L`` posterior draws. A calibrated
sampler gives uniform ranks; the rank histograms and a chi-square uniformity test per quantity
show it. The engine is :mod:`bayesmf.sbc`; this script adds NUTS and ADVI ``fit_fn`` s on the
same model (the PyMC model is the Gibbs sampler's ``hyperprior="diagonal"`` model, with the same
prior constants).

ADVI is *expected* to fail: mean-field variational posteriors are too narrow, which shows as a
U-shaped histogram (true values in the tails of the approximation) and tiny p-values. The script
reports that rather than hiding it: see ``tail_share`` (share of ranks in the outer 10% of the
range; 0.10 when calibrated).

Run::

    python analyses/sbc.py                       # Gibbs 200 reps; NUTS, ADVI --pymc-reps
    python analyses/sbc.py --quick --out /tmp/sbc
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from typing import Any

import numpy as np
import pandas as pd
from _common import Output, base_parser, figure, print_table, quiet

from bayesmf import sbc

NAME = "sbc"
METHODS = ("Gibbs", "NUTS", "ADVI")


def parse_args(argv: Sequence[str] | None) -> Any:
    parser = base_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--reps", type=int, default=200, help="replications for Gibbs")
    parser.add_argument("--pymc-reps", type=int, default=25,
                        help="replications for NUTS and ADVI (each compiles a PyMC model)")
    parser.add_argument("--n-draws", type=int, default=99, help="L, draws ranked against")
    parser.add_argument("--advi-steps", type=int, default=5000)
    return parser.parse_args(argv)


def pymc_priors(setup: sbc.SBCSetup) -> Any:
    """The PyMC model's prior constants equal to the simulator's (diagonal hyperprior)."""
    from bayesmf.models.pymc_model import PMFPriors

    names = {f.name for f in fields(PMFPriors)}
    return PMFPriors(**{k: v for k, v in asdict(setup.priors).items() if k in names})


def nuts_fit_fn(setup: sbc.SBCSetup, n_draws: int, quick: bool) -> Callable[[Any, int], Any]:
    from bayesmf.models.pymc_fit import NUTSPMF

    priors = pymc_priors(setup)
    tune = 100 if quick else 500
    thin = 2

    def fit(ratings: Any, seed: int) -> Any:
        with quiet():
            return NUTSPMF(rank=setup.rank, biases=setup.biases, chains=1, draws=n_draws * thin,
                           tune=tune, thin=thin, store="float64", priors=priors,
                           random_state=seed, progress=False, cores=1).fit(ratings).idata_

    return fit


def advi_fit_fn(setup: sbc.SBCSetup, n_draws: int, steps: int) -> Callable[[Any, int], Any]:
    from bayesmf.models.pymc_fit import ADVIPMF

    priors = pymc_priors(setup)

    def fit(ratings: Any, seed: int) -> Any:
        with quiet():
            return ADVIPMF(rank=setup.rank, biases=setup.biases, n_steps=steps, draws=n_draws,
                           store="float64", priors=priors, random_state=seed,
                           progress=False).fit(ratings).idata_

    return fit


def tail_share(ranks: np.ndarray, n_draws: int) -> float:
    """Share of ranks in the outer 10% of ``0..n_draws`` (0.10 when uniform)."""
    lo = np.floor(0.05 * (n_draws + 1))
    hi = n_draws - lo
    return float(np.mean((ranks < lo) | (ranks > hi)))


def plot_bins(n_reps: int, n_draws: int) -> int:
    """Histogram bins: a divisor of ``n_draws + 1``, about ``n_reps / 3`` (2..20)."""
    target = int(np.clip(n_reps // 3, 2, 20))
    divisors = [b for b in range(2, 21) if (n_draws + 1) % b == 0] or [1]
    return min(divisors, key=lambda b: (abs(b - target), b))


def plot_histograms(results: dict[str, Any], out: Output) -> None:
    methods = list(results)
    quantities = list(next(iter(results.values())).ranks.columns)
    fig, axes = figure(2.3 * len(quantities), 2.0 * len(methods) + 0.6,
                       ncols=len(quantities), nrows=len(methods))
    axes = np.atleast_2d(axes)
    for r, method in enumerate(methods):
        res = results[method]
        for c, q in enumerate(quantities):
            ax = axes[r, c]
            n = len(res.ranks)
            counts = res.histogram(q, bins=plot_bins(n, res.n_draws))
            ax.bar(np.arange(len(counts)), counts, width=1.0, color=f"C{r}", edgecolor="white")
            # 99% band of a bin count under uniformity (binomial)
            p = 1.0 / len(counts)
            from scipy import stats

            lo, hi = stats.binom.ppf([0.005, 0.995], n, p)
            ax.axhspan(lo, hi, color="grey", alpha=0.25, lw=0)
            ax.set_xticks([])
            pval = float(res.tests.loc[q, "p_value"])
            ax.set_title(f"{q}\np={pval:.2g}", fontsize=8)
            if c == 0:
                ax.set_ylabel(method)
    fig.suptitle("SBC rank histograms (grey: 99% band of a bin count for a calibrated sampler; "
                 "p: chi-square uniformity test)")
    out.figure(fig, "rank_histograms.png")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Output(NAME, args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    setup = sbc.SBCSetup()
    n_draws = 19 if args.quick else args.n_draws
    reps = {"Gibbs": 20 if args.quick else args.reps}
    for m in ("NUTS", "ADVI"):
        reps[m] = 4 if args.quick else args.pymc_reps
    simulate = lambda rng: sbc.simulate_pmf_prior(setup, rng)  # noqa: E731
    fit_fns = {
        "Gibbs": lambda: sbc.gibbs_fit_fn(setup, n_draws=n_draws, tune=50 if args.quick else 100),
        "NUTS": lambda: nuts_fit_fn(setup, n_draws, args.quick),
        "ADVI": lambda: advi_fit_fn(setup, n_draws, 1000 if args.quick else args.advi_steps),
    }
    res: dict[str, Any] = {}
    rows = []
    for method in methods:
        t0 = time.perf_counter()
        res[method] = sbc.run_sbc(fit_fns[method](), simulate, n_reps=reps[method],
                                  n_draws=n_draws, pairs=setup.pairs, random_state=args.seed)
        secs = time.perf_counter() - t0
        for q, t in res[method].tests.iterrows():
            rows.append({"method": method, "quantity": q, "reps": reps[method],
                         "chi2": t["chi2"], "bins": int(t["bins"]), "p_value": t["p_value"],
                         "tail_share": tail_share(res[method].ranks[q].to_numpy(), n_draws)})
        print(f"{method}: {reps[method]} replications in {secs:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    print_table(table, "SBC uniformity tests (chi-square on binned ranks)")
    summary = (table.groupby("method", sort=False)
               .agg(min_p_value=("p_value", "min"), mean_tail_share=("tail_share", "mean"),
                    reps=("reps", "first"))
               .reset_index())
    summary["calibrated_at_1pct"] = summary["min_p_value"] * len(
        table["quantity"].unique()) > 0.01  # Bonferroni over quantities
    print_table(summary, "per method (calibrated: Bonferroni-adjusted min p > 0.01)")
    plot_histograms(res, out)
    results = {
        "script": NAME,
        "seed": args.seed,
        "quick": bool(args.quick),
        "setup": {"n_users": setup.n_users, "n_items": setup.n_items, "rank": setup.rank,
                  "density": setup.density, "biases": setup.biases,
                  "hyperprior": setup.hyperprior, "priors": asdict(setup.priors),
                  "pairs": [list(p) for p in setup.pairs]},
        "n_draws": n_draws,
        "tests": table,
        "summary": summary,
        "ranks": {m: r.ranks for m, r in res.items()},
        "seconds": {m: r.seconds for m, r in res.items()},
    }
    return out.finish(results)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
