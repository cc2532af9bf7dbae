"""Speed, memory and calibration of bayesmf.predict (issue 4).

(a) Throughput of the predictive kernel on an ml-latest-small-sized posterior (610 users,
    9724 items, rank 10, float32 draws): pairs x draws per second for the mean/sd only, with
    the rating-level probabilities, with exact ETI quantiles, and everything; beside a naive
    NumPy version of the mean/sd (gather + einsum per draw) measured in the same run.
(b) Memory: peak RSS growth while predicting ``--pairs`` pairs from ``--draws`` draws, against
    the ``draws x pairs`` float64 matrix a non-streaming implementation would hold.
(c) ``--coverage``: 50% / 90% predictive-interval coverage on one 80/20 split of
    ml-latest-small for MAP (Laplace) and Gibbs (rank 10), through ``predictive_summary``.

Prints tables and writes ``benchmarks/results/bench_predict.json``.

Usage::

    python benchmarks/bench_predict.py [--pairs 1000000] [--draws 1000] [--coverage]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from bayesmf.kernels import predictive as pk


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_reset() -> None:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _normal32(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """float32 Normal draws without a float64 temporary of the full size."""
    out = np.empty(shape, dtype=np.float32)
    for s in range(shape[0]):
        rng.standard_normal(shape[1:], dtype=np.float32, out=out[s])
    out *= scale
    return out


def _posterior(S: int, k: int = 10, n_users: int = 610, n_items: int = 9724, seed: int = 0):
    rng = np.random.default_rng(seed)
    U = _normal32(rng, (S, n_users, k), 0.3)
    V = _normal32(rng, (S, n_items, k), 0.3)
    bu = _normal32(rng, (S, n_users), 0.3)
    bi = _normal32(rng, (S, n_items), 0.3)
    mu = 3.5 + 0.01 * rng.standard_normal(S)
    sigma = 0.8 + 0.01 * rng.random(S)
    return U, V, mu, bu, bi, sigma


def _run(post, u, i, levels: bool, eti: bool) -> tuple[float, float]:
    U, V, mu, bu, bi, sigma = post
    S, k, P = U.shape[0], U.shape[2], len(u)
    z1, z2 = np.zeros((1, k + 1)), np.zeros((1, k + 1, k + 1))
    edges = np.arange(0.75, 5.0, 0.5) if levels else np.zeros(0)
    qs = np.array([0.05, 0.95]) if eti else np.zeros(0)
    out = (np.empty(P), np.empty(P), np.empty((P, len(qs))), np.empty((P, 0, 2)),
           np.empty((P, len(edges))), np.empty(P))
    block = max(8, min(4096, 2_000_000 // S))
    t0, c0 = time.perf_counter(), time.process_time()
    pk.summarise_pairs(u, i, U, V, mu, bu, bi, sigma, z1, z2, z1, z2, np.zeros(0), 0, 0.0, 1.0,
                       1.0, S, edges, qs, np.zeros(0), np.uint64(1), np.zeros(0), block, *out)
    return time.perf_counter() - t0, time.process_time() - c0


def _naive_mean_sd(post, u, i) -> tuple[float, float]:
    U, V, mu, bu, bi, sigma = post
    t0, c0 = time.perf_counter(), time.process_time()
    s1 = np.zeros(len(u))
    s2 = np.zeros(len(u))
    for s in range(U.shape[0]):
        m = np.einsum("pk,pk->p", U[s][u], V[s][i], dtype=np.float64) + mu[s] + bu[s][u] + bi[s][i]
        s1 += m
        s2 += m * m
    mean = s1 / U.shape[0]
    _ = np.sqrt(s2 / U.shape[0] - mean**2 + np.mean(sigma**2))
    return time.perf_counter() - t0, time.process_time() - c0


def throughput(n_pairs: int, S: int) -> dict:
    post = _posterior(S)
    rng = np.random.default_rng(1)
    u = rng.integers(0, 610, n_pairs).astype(np.int64)
    i = rng.integers(0, 9724, n_pairs).astype(np.int64)
    _run(post, u[:64], i[:64], True, True)  # compile / load the cache
    rows = {}
    for label, lv, eti in (("mean_sd", False, False), ("levels", True, False),
                           ("eti", False, True), ("all", True, True)):
        wall, cpu = _run(post, u, i, lv, eti)
        rows[label] = {"wall_s": wall, "cpu_s": cpu,
                       "components_per_cpu_s": n_pairs * S / max(cpu, 1e-9)}
        print(f"  {label:8s} wall {wall:8.2f} s  cpu {cpu:8.2f} s  "
              f"{rows[label]['components_per_cpu_s'] / 1e6:8.1f} M pair-draws per cpu-s")
    wall, cpu = _naive_mean_sd(post, u, i)
    rows["naive_numpy_mean_sd"] = {"wall_s": wall, "cpu_s": cpu,
                                   "components_per_cpu_s": n_pairs * S / max(cpu, 1e-9)}
    print(f"  naive numpy mean/sd wall {wall:8.2f} s  cpu {cpu:8.2f} s")
    rows["speedup_mean_sd_cpu_vs_naive"] = cpu / max(rows["mean_sd"]["cpu_s"], 1e-9)
    return {"pairs": n_pairs, "draws": S, "rank": 10, **rows}


def memory(n_pairs: int, S: int) -> dict:
    post = _posterior(S, seed=2)
    rng = np.random.default_rng(3)
    u = rng.integers(0, 610, n_pairs).astype(np.int64)
    i = rng.integers(0, 9724, n_pairs).astype(np.int64)
    draws_mb = sum(a.nbytes for a in post) / 2**20
    outputs_mb = 8 * n_pairs * 4 / 2**20  # mean, sd, lower, upper
    _peak_reset()
    before = _rss_mb()
    wall, cpu = _run(post, u, i, False, True)
    peak = _hwm_mb()
    dense = 8 * n_pairs * S / 2**20
    print(f"  {n_pairs} pairs x {S} draws (mean, sd, 90% ETI): wall {wall:.1f} s, cpu {cpu:.1f} s; "
          f"RSS before the call {before:.0f} MB (posterior draws {draws_mb:.0f} MB), peak during "
          f"it {peak:.0f} MB (growth {peak - before:.0f} MB, outputs {outputs_mb:.0f} MB); a dense "
          f"draws x pairs float64 matrix would need {dense:.0f} MB")
    return {"pairs": n_pairs, "draws": S, "wall_s": wall, "cpu_s": cpu, "rss_before_mb": before,
            "posterior_mb": draws_mb, "peak_rss_during_mb": peak, "growth_mb": peak - before,
            "outputs_mb": outputs_mb, "dense_matrix_mb": dense}


def coverage() -> dict:
    from bayesmf.datasets import load_ml_latest_small
    from bayesmf.models.gibbs import GibbsPMF
    from bayesmf.models.pmf import PMF
    from bayesmf.predict import predictive_summary

    r = load_ml_latest_small()
    rng = np.random.default_rng(0)
    perm = rng.permutation(r.nnz)
    n = int(0.8 * r.nnz)
    train, test = r.take(np.sort(perm[:n])), r.take(np.sort(perm[n:]))
    out = {}
    for name, fit in (("map", PMF(rank=10, random_state=0)),
                      ("gibbs", GibbsPMF(rank=10, chains=2, draws=200, tune=100, random_state=0,
                                         progress=False))):
        fit.fit(train)
        t0 = time.perf_counter()
        s = predictive_summary(fit, test.users, test.items, probs=(0.5, 0.9), levels=False,
                               y=test.values)
        dt = time.perf_counter() - t0
        y = test.values
        cov = {f"coverage_{int(p * 100)}": float(np.mean((y >= s.intervals[p][0])
                                                         & (y <= s.intervals[p][1])))
               for p in (0.5, 0.9)}
        out[name] = {**cov, "rmse": float(np.sqrt(np.mean((r.scale.clip(s.mean) - y) ** 2))),
                     "lpd": float(np.mean(s.lpd)), "fit_s": float(fit.fit_time_),
                     "predict_s": dt, "n_test": int(test.nnz)}
        print(f"  {name:6s} {out[name]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--throughput-pairs", type=int, default=20_000)
    ap.add_argument("--coverage", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    path = Path(__file__).parent / "results" / "bench_predict.json"
    res: dict = json.loads(path.read_text()) if path.exists() else {}
    res["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                      "load_avg": os.getloadavg()}
    if not args.skip_throughput:
        print(f"(a) throughput, {args.throughput_pairs} pairs x {args.draws} draws")
        res["throughput"] = throughput(args.throughput_pairs, args.draws)
    if not args.skip_memory:
        print("(b) memory")
        res["memory"] = memory(args.pairs, args.draws)
    if args.coverage:
        print("(c) coverage on ml-latest-small, one 80/20 split (seed 0)")
        res["coverage"] = coverage()
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
