"""Log-density-and-gradient evaluations per second: fast numba Op vs the naive PyMC graph.

Both PMF models (same priors, non-centred, biases, rank 10) are built on ml-latest-small
(100,836 ratings) and compiled with PyMC's default backend through
``model.logp_dlogp_function()`` (what PyMC's NUTS calls once per leapfrog step). The two are timed
side by side, interleaved call by call (so both see the same machine load), on the same random
points; the speed-up is the ratio of their CPU time per call (``time.process_time``, robust to a
busy machine); wall-clock medians and minima are reported beside it. Optionally the numba backend (``mode="NUMBA"``, what nutpie compiles) is timed too.

Usage::

    python benchmarks/bench_nuts_logp.py [--rank 10] [--seconds 3] [--numba]

Writes ``benchmarks/results/bench_nuts_logp.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from bayesmf.datasets import load_ml_latest_small
from bayesmf.models.pymc_model import build_pmf_model


def _compile(model, mode=None):
    t0 = time.perf_counter()
    kwargs = {} if mode is None else {"mode": mode}
    fn = model.logp_dlogp_function(ravel_inputs=True, **kwargs)
    fn.set_extra_values({})
    return fn, time.perf_counter() - t0


def _points(model, fn, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    ip = model.initial_point()
    x0 = np.concatenate([np.ravel(ip[v.name]) for v in fn._grad_vars])
    return [x0 + 0.1 * rng.standard_normal(x0.shape) for _ in range(n)]


def _interleaved(
    fns: dict, points: list[np.ndarray], seconds: float
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per-call CPU seconds and wall seconds of every function, called in turn.

    Interleaving call by call makes the functions share the same machine load. CPU time
    (``time.process_time``; every backend here runs on one thread) is the primary measure: on a
    shared, oversubscribed machine a 2 ms call is often descheduled for a whole time slice,
    which inflates wall-clock medians of short calls far more than those of long ones.
    """
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn(points[0])  # warm
    t_end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < t_end or n < 5:
        x = points[n % len(points)]
        for name, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn(x)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
        n += 1
    return cpu, wall


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--numba", action="store_true", help="also time mode='NUMBA'")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_nuts_logp.json"))
    args = ap.parse_args(argv)

    ratings = load_ml_latest_small(titles=False)
    rng = np.random.default_rng(0)
    variants = {"fast": None, "naive": None}
    if args.numba:
        variants.update({"fast_numba": "NUMBA", "naive_numba": "NUMBA"})
    fns, compile_s, models = {}, {}, {}
    for name, mode in variants.items():
        lik = "fast" if name.startswith("fast") else "naive"
        models[name] = build_pmf_model(ratings, args.rank, biases=True, likelihood=lik)
        fns[name], compile_s[name] = _compile(models[name], mode)
        print(f"compiled {name:12s} in {compile_s[name]:.1f} s")

    pts = _points(models["fast"], fns["fast"], 8, rng)
    # same log density and gradient at the same points
    lf, gf = fns["fast"](pts[0])
    ln, gn = fns["naive"](pts[0])
    max_grad_diff = float(np.max(np.abs(gf - gn)))
    logp_diff = float(abs(lf - ln))
    print(f"logp fast={float(lf):.6f} naive={float(ln):.6f}  |dlogp diff|max={max_grad_diff:.2e}")

    cpu_calls: dict[str, list[float]] = {k: [] for k in fns}
    wall_calls: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(args.rounds):
        cpu, wall = _interleaved(fns, pts, args.seconds)
        for k in fns:
            cpu_calls[k].extend(cpu[k])
            wall_calls[k].extend(wall[k])
        print(
            f"round {r} (CPU ms per call): "
            + ", ".join(f"{k} {1e3 * np.mean(v):.2f}" for k, v in cpu.items())
        )
    # mean CPU time per call = total CPU seconds / calls (process_time ticks are coarse)
    med = {k: float(np.mean(v)) for k, v in cpu_calls.items()}
    wall_med = {k: float(np.median(v)) for k, v in wall_calls.items()}
    wall_min = {k: float(np.min(v)) for k, v in wall_calls.items()}
    result = {
        "benchmark": "bench_nuts_logp",
        "data": f"ml-latest-small ({ratings.nnz} ratings, {ratings.n_users} users, "
        f"{ratings.n_items} items)",
        "rank": args.rank,
        "biases": True,
        "parametrization": "noncentered",
        "n_params": int(pts[0].size),
        "cpu_ms_per_logp_dlogp": {k: 1e3 * v for k, v in med.items()},
        "grad_evals_per_cpu_second": {k: 1.0 / v for k, v in med.items()},
        "speedup_fast_vs_naive_default_backend": med["naive"] / med["fast"],
        "wall_ms_median": {k: 1e3 * v for k, v in wall_med.items()},
        "wall_ms_min": {k: 1e3 * v for k, v in wall_min.items()},
        "speedup_wall_median": wall_med["naive"] / wall_med["fast"],
        "speedup_wall_min": wall_min["naive"] / wall_min["fast"],
        "n_calls_each": len(cpu_calls["fast"]),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "compile_seconds": compile_s,
        "logp_abs_diff": logp_diff,
        "dlogp_max_abs_diff": max_grad_diff,
        "rounds": args.rounds,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    if args.numba:
        result["speedup_fast_vs_naive_numba_backend"] = med["naive_numba"] / med["fast_numba"]
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
