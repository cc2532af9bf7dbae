"""Speed of the Gibbs sampler (issue 3, "Speed").

(a) Rank 10, 200 sweeps on one 80/20 fold of ml-latest-small (``random_split`` seed 0),
    beside myFM (``MyFMRegressor(rank=10)``, ``n_iter=200``, one-hot user and item columns)
    in the same run when ``myfm`` is importable. Target: our time <= half of myFM's.
    Wall and CPU time are both reported: on a busy shared machine wall time is inflated by
    other processes, CPU time much less so.
(b) Full posterior of ml-latest-small (all ratings, rank 10, 4 chains): R-hat and bulk/tail
    ESS of the identifiable quantities (sigma, mu, loglik, the bias sds, ||U||_F, ||V||_F and the latent
    means of 10 probe pairs that are not in the data), then ``bayesmf.diagnostics.diagnose``
    with its defaults (its hyperparameter rows, the ten factor strengths and 100 more probe
    pairs, 50 rated and 50 unrated). Targets: R-hat < 1.01, bulk ESS > 400 on all of them, time < 60 s.

Prints tables and writes ``benchmarks/results/bench_gibbs.json``.

Usage::

    python benchmarks/bench_gibbs.py [--threads N] [--skip-myfm] [--skip-posterior]
                                     [--tune 200] [--draws 1500] [--thin auto] [--seed 0]
                                     [--overrelax A]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import arviz as az
import numba
import numpy as np
from _common import RESULTS, write_results

from bayesmf.datasets import load_ml_latest_small
from bayesmf.diagnostics import diagnose
from bayesmf.models.gibbs import GibbsPMF
from bayesmf.split import random_split


def _quiet(i, fm, hyper, history):  # noqa: ANN001 - myFM callback: no progress bar, never stop
    return False, None


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _one_hot(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int):
    import scipy.sparse as sps

    n = len(users)
    rows = np.repeat(np.arange(n), 2)
    cols = np.stack([users, n_users + items], axis=1).ravel()
    return sps.csr_matrix((np.ones(2 * n), (rows, cols)), shape=(n, n_users + n_items))


def bench_vs_myfm(threads: int | None, skip_myfm: bool, seed: int = 0) -> dict:
    r = load_ml_latest_small(titles=False)
    train, test = random_split(r, 0.2, random_state=seed)
    # warm the numba caches (compilation is not part of the sampler's time)
    GibbsPMF(rank=10, chains=1, tune=1, draws=1, progress=False, n_threads=threads).fit(train)
    out: dict = {"data": "ml-latest-small 80/20 random_split seed 0", "n_train": train.nnz,
                 "rank": 10, "sweeps": 200}

    def ours():
        return GibbsPMF(rank=10, chains=1, tune=50, draws=150, random_state=seed,
                        progress=False, n_threads=threads).fit(train, probe=test)

    g, wall, cpu = _timed(ours)
    rmse = float(np.sqrt(np.mean((g.probe_mean_ - test.values) ** 2)))
    out["gibbs"] = {"wall_s": wall, "cpu_s": cpu, "rmse": rmse, "n_threads": threads,
                    "note": "50 warm-up + 150 kept sweeps after an 5-sweep ALS start; "
                            "RMSE of the posterior mean over the 150 kept draws"}
    print("\n(a) rank 10, 200 sweeps, one 80/20 fold of ml-latest-small")
    print(f"{'':10s} {'wall s':>8s} {'cpu s':>8s} {'RMSE':>8s}")
    print(f"{'bayesmf':10s} {wall:8.2f} {cpu:8.2f} {rmse:8.4f}")
    if skip_myfm:
        return out
    try:
        import myfm
    except ImportError:
        out["myfm"] = "not installed"
        print("myFM not installed: pip install myfm")
        return out
    Xtr = _one_hot(train.users, train.items, r.n_users, r.n_items)
    Xte = _one_hot(test.users, test.items, r.n_users, r.n_items)

    def theirs():
        fm = myfm.MyFMRegressor(rank=10, random_seed=seed)
        fm.fit(Xtr, train.values, n_iter=200, n_kept_samples=150, callback=_quiet)
        return fm

    fm, wall_m, cpu_m = _timed(theirs)
    rmse_m = float(np.sqrt(np.mean((fm.predict(Xte) - test.values) ** 2)))
    out["myfm"] = {"wall_s": wall_m, "cpu_s": cpu_m, "rmse": rmse_m,
                   "version": getattr(myfm, "__version__", "?"),
                   "note": "MyFMRegressor(rank=10), n_iter=200, n_kept_samples=150"}
    out["ratio_wall"] = wall / wall_m
    out["ratio_cpu"] = cpu / cpu_m
    print(f"{'myFM':10s} {wall_m:8.2f} {cpu_m:8.2f} {rmse_m:8.4f}")
    print(f"ours / myFM: wall {out['ratio_wall']:.2f}, cpu {out['ratio_cpu']:.2f} (target <= 0.5)")
    return out


def _identifiable(g: GibbsPMF, pu: np.ndarray, pi: np.ndarray) -> dict[str, np.ndarray]:
    post = g.idata_.posterior
    q = {
        "sigma": post["sigma"].values,
        "mu": post["mu"].values,
        "loglik": g.idata_.sample_stats["loglik"].values,
        "sigma_user_bias": post["sigma_user_bias"].values,
        "sigma_item_bias": post["sigma_item_bias"].values,
        "norm_U": np.sqrt((post["U"].values.astype(np.float64) ** 2).sum(axis=(2, 3))),
        "norm_V": np.sqrt((post["V"].values.astype(np.float64) ** 2).sum(axis=(2, 3))),
    }
    lat = g.predict_draws(pu, pi)
    for j in range(len(pu)):
        q[f"pred_{j}"] = lat[:, :, j]
    return q


def bench_full_posterior(threads: int | None, tune: int, draws: int, seed: int = 0,
                         overrelax: float | None = None, thin: int | str = "auto",
                         budget_gb: float = 1.0, chain_seed: int = 0,
                         model_kwargs: dict | None = None) -> dict:
    r = load_ml_latest_small(titles=False)
    rng = np.random.default_rng(seed)
    seen = set(zip(r.users.tolist(), r.items.tolist(), strict=True))
    pu, pi = [], []
    while len(pu) < 10:  # probe pairs not in the data, users and items with some ratings
        u = int(rng.integers(r.n_users))
        i = int(rng.choice(r.items))
        if (u, i) not in seen:
            pu.append(u)
            pi.append(i)
    pu, pi = np.array(pu), np.array(pi)

    extra = dict(model_kwargs or {})  # other GibbsPMF settings (benchmarks/gibbs_mixing.py)
    if overrelax is not None:
        extra["overrelax"] = overrelax

    def fit():
        return GibbsPMF(rank=10, chains=4, tune=tune, draws=draws, thin=thin,
                        random_state=chain_seed,
                        progress=False, n_threads=threads,
                        memory_budget_bytes=int(budget_gb * 2**30),
                        check_convergence=False,  # timed: diagnose() runs after, below
                        **extra).fit(r)

    g, wall, cpu = _timed(fit)
    q = _identifiable(g, pu, pi)
    rows = {}
    for name, v in q.items():
        rows[name] = {
            "rhat": float(az.rhat(v)),
            "ess_bulk": float(az.ess(v, method="bulk")),
            "ess_tail": float(az.ess(v, method="tail")),
        }
    worst10 = max(x["rhat"] for x in rows.values())
    min10 = min(x["ess_bulk"] for x in rows.values())
    diag = diagnose(g)  # 50 rated + 50 unrated probe pairs, summarised per kind
    q = diag[diag["kind"] == "quantity"]
    diag_rows = {row.quantity: {"mean": float(row.mean), "sd": float(row.sd),
                                "rhat": float(row.r_hat), "ess_bulk": float(row.ess_bulk),
                                "ess_tail": float(row.ess_tail), "verdict": row.verdict,
                                "note": row.note}
                 for row in q.itertuples()}
    worst_rhat = max(worst10, float(q["r_hat"].max()))
    min_ess = min(min10, float(q["ess_bulk"].min()))
    out = {
        "data": "ml-latest-small (all 100,836 ratings)", "rank": 10, "chains": 4,
        "tune": tune, "draws": draws, "thin": g.thin_, "n_threads": threads,
        "chain_seed": chain_seed,
        "workers": g.workers_,
        "overrelax": g.overrelax, "wall_s": wall, "cpu_s": cpu,
        "memory_bytes_estimate": g.memory_bytes_, "diagnostics": rows,
        "max_rhat_10_probes": worst10, "min_ess_bulk_10_probes": min10,
        "diagnose_100_probes": diag_rows,
        "max_rhat": worst_rhat, "min_ess_bulk": min_ess,
        "targets_met": bool(worst_rhat < 1.01 and min_ess > 400 and wall < 60),
        "sigma_mean": g.sigma_,
    }
    print(f"\n(b) full posterior, ml-latest-small, rank 10, 4 chains x ({tune} + {draws}) sweeps, "
          f"thin {g.thin_}, {g.workers_} worker process(es), overrelax {g.overrelax}")
    print(f"time: wall {wall:.1f} s, cpu {cpu:.1f} s (target < 60 s)")
    print(f"{'quantity':15s} {'R-hat':>7s} {'ESS bulk':>9s} {'ESS tail':>9s}")
    for name, x in rows.items():
        print(f"{name:15s} {x['rhat']:7.4f} {x['ess_bulk']:9.0f} {x['ess_tail']:9.0f}")
    print(f"10 probes and the above: max R-hat {worst10:.4f}, min bulk ESS {min10:.0f}")
    print("diagnose() with its defaults (100 more probe pairs, 50 rated + 50 unrated):")
    for name, x in diag_rows.items():
        if name.startswith(("pred_mean", "factor_strength")):
            print(f"  {name:30s} R-hat {x['rhat']:7.4f}  bulk ESS {x['ess_bulk']:6.0f}  "
                  f"{x['verdict']}: {x['note']}")
    print(f"all: max R-hat {worst_rhat:.4f} (target < 1.01), min bulk ESS {min_ess:.0f} "
          "(target > 400)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None,
                    help="numba threads (default: numba's, all cores; 1 = serial kernels)")
    ap.add_argument("--skip-myfm", action="store_true")
    ap.add_argument("--skip-posterior", action="store_true")
    ap.add_argument("--tune", type=int, default=200)
    ap.add_argument("--draws", type=int, default=1500)
    ap.add_argument("--thin", default="auto",
                    help="thinning of part (b): an int or 'auto' (the GibbsPMF default)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the chains in part (b) (the probe pairs stay those of seed 0)")
    ap.add_argument("--budget-gb", type=float, default=1.0,
                    help="memory budget for the stored draws of part (b), GiB (default: "
                         "GibbsPMF's 1 GiB)")
    ap.add_argument("--overrelax", type=float, default=None,
                    help="GibbsPMF overrelax (default: the class default)")
    args = ap.parse_args()
    res: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "numba_threads": numba.get_num_threads(),
                    "load_avg_1min": os.getloadavg()[0]},
        "vs_myfm": bench_vs_myfm(args.threads, args.skip_myfm),
    }
    path = RESULTS / "bench_gibbs.json"
    if not args.skip_posterior:
        res["full_posterior"] = bench_full_posterior(args.threads, args.tune, args.draws,
                                                     overrelax=args.overrelax,
                                                     thin=args.thin if args.thin == 'auto' else int(args.thin),
                                                     budget_gb=args.budget_gb,
                                                     chain_seed=args.seed)
    elif path.exists():  # keep the previous run's part (b), marked as such
        old = json.loads(path.read_text())
        if "full_posterior" in old:
            res["full_posterior"] = dict(old["full_posterior"], from_previous_run=True)
    res["machine"]["load_avg_1min_end"] = os.getloadavg()[0]
    write_results("bench_gibbs", res)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
