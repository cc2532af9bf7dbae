"""Speed of the ALS solver (issue 2, "Speed").

(a) One ALS sweep (users then items) at rank 10 on ml-latest-small, against its FLOP floor
    (a single-threaded BLAS ``X^T X`` with ``X`` of shape (nnz, k): the same ``2 nnz k^2``
    multiply-adds as the two half-sweeps' Gram matrices) and against the naive per-row NumPy
    reference; serial and parallel kernels; wall and CPU time (CPU time of single-threaded code
    is what a busy shared machine inflates least).
(b) MAP to convergence on one 80/20 split of ml-latest-small, beside scikit-surprise's ``SVD``
    (default settings) on the same split in the same run, when surprise is importable: seven
    interleaved rounds, medians compared. Target: ours < 10 % of surprise's time.
(c) 10M synthetic ratings, rank 32, fit time (target < 60 s); ``--quick`` scales it to 1M.

Prints tables and writes ``benchmarks/results/bench_als.json``.

Usage::

    python benchmarks/bench_als.py [--quick] [--skip-large] [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

# the FLOP floor is timed with single-threaded BLAS, like the serial sweep it is compared with
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from _common import write_results

from bayesmf.datasets import load_ml_latest_small, make_synthetic  # noqa: E402
from bayesmf.kernels.als import als_half_sweep, als_half_sweep_reference  # noqa: E402
from bayesmf.models.pmf import PMF  # noqa: E402
from bayesmf.split import random_split  # noqa: E402


def _time(fn, repeats: int) -> dict[str, float]:
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {
        "wall_ms_min": 1e3 * min(wall),
        "wall_ms_median": 1e3 * float(np.median(wall)),
        "cpu_ms_min": 1e3 * min(cpu),
        "cpu_ms_median": 1e3 * float(np.median(cpu)),
    }


def bench_sweep(repeats: int, rank: int = 10) -> dict:
    r = load_ml_latest_small(titles=False)
    rng = np.random.default_rng(0)
    d = rank + 1  # factors + bias column, as PMF fits them
    Yu = rng.standard_normal((r.n_users, d))
    Yv = rng.standard_normal((r.n_items, d))
    Yu[:, -1] = Yv[:, -1] = 1.0
    ou, oi = rng.normal(size=r.n_users), rng.normal(size=r.n_items)
    reg = np.full(d, 15.0)
    bu, bi = r.by_user, r.by_item
    Xu, Xv = np.empty_like(Yu), np.empty_like(Yv)
    uu, ui = np.zeros(r.n_users, bool), np.zeros(r.n_items, bool)

    def sweep(parallel: bool):
        def run():
            als_half_sweep(bu.indptr, bu.indices, bu.data, Yv, oi, reg, Xu, uu, parallel=parallel)
            als_half_sweep(bi.indptr, bi.indices, bi.data, Yu, ou, reg, Xv, ui, parallel=parallel)
        return run

    def naive():
        als_half_sweep_reference(bu.indptr, bu.indices, bu.data, Yv, oi, reg)
        als_half_sweep_reference(bi.indptr, bi.indices, bi.data, Yu, ou, reg)

    X = rng.standard_normal((r.nnz, rank))

    def blas_floor():  # 2 * nnz * k^2 multiply-adds, the two half-sweeps' Gram matrices
        X.T @ X
        X.T @ X

    res = {
        "data": "ml-latest-small", "nnz": r.nnz, "rank": rank, "d_with_bias": d,
        "flop_floor_multiply_adds": 2 * r.nnz * rank * rank,
        "sweep_serial": _time(sweep(False), repeats),
        "sweep_parallel": _time(sweep(True), repeats),
        "floor_blas_XtX": _time(blas_floor, repeats),
        "naive_numpy_reference": _time(naive, max(2, repeats // 10)),
        "numba_threads": numba.get_num_threads(),
    }
    # CPU time of single-threaded code is what a shared, oversubscribed machine distorts least
    res["ratio_serial_cpu_to_blas_floor_cpu"] = (
        res["sweep_serial"]["cpu_ms_min"] / res["floor_blas_XtX"]["cpu_ms_min"]
    )
    res["ratio_serial_wall_to_blas_floor_wall"] = (
        res["sweep_serial"]["wall_ms_min"] / res["floor_blas_XtX"]["wall_ms_min"]
    )
    res["speedup_vs_naive_cpu"] = (
        res["naive_numpy_reference"]["cpu_ms_min"] / res["sweep_serial"]["cpu_ms_min"]
    )
    print("\n(a) one ALS sweep, rank 10 (+bias), ml-latest-small")
    print(f"{'':34s} {'wall min':>9s} {'wall med':>9s} {'cpu min':>9s} {'cpu med':>9s}  (ms)")
    for key in ("sweep_serial", "sweep_parallel", "floor_blas_XtX", "naive_numpy_reference"):
        t = res[key]
        print(f"{key:34s} {t['wall_ms_min']:9.2f} {t['wall_ms_median']:9.2f} "
              f"{t['cpu_ms_min']:9.2f} {t['cpu_ms_median']:9.2f}")
    print(f"serial sweep / BLAS floor: {res['ratio_serial_cpu_to_blas_floor_cpu']:.2f}x CPU, "
          f"{res['ratio_serial_wall_to_blas_floor_wall']:.2f}x wall (target <= 3); "
          f"{res['speedup_vs_naive_cpu']:.0f}x less CPU than the naive NumPy version")
    return res


def bench_vs_surprise(seed: int = 0, rounds: int = 7) -> dict:
    """MAP to convergence against surprise's SVD, in ``rounds`` interleaved rounds.

    Each round fits ours (spectral start, the default; then the random start) and surprise's
    SVD once, one after the other, so that a slow spell of the machine hits all of them; the
    medians over rounds are compared. This shared machine's speed drifts by tens of percent
    between seconds, which one fit each cannot separate from the methods.
    """
    r = load_ml_latest_small(titles=False)
    train, test = random_split(r, 0.2, random_state=seed)
    PMF(rank=10, max_iter=2, random_state=seed).fit(train)  # warm the numba caches
    PMF(rank=10, max_iter=2, random_state=seed, init="random").fit(train)
    out: dict = {"data": f"ml-latest-small 80/20 random_split seed {seed}", "rounds": rounds,
                 "models": {}}

    def rmse(pred):
        return float(np.sqrt(np.mean((np.clip(pred, 0.5, 5.0) - test.values) ** 2)))

    try:
        from surprise import SVD, Dataset, Reader
    except ImportError:
        print("(scikit-surprise not importable: comparison skipped)")
        trainset = None
    else:
        data = Dataset.load_from_df(train.to_frame(), Reader(rating_scale=(0.5, 5.0)))
        trainset = data.build_full_trainset()
    runs: dict[str, list] = {}

    def timed(name: str, fn) -> None:  # noqa: ANN001
        t0, c0 = time.perf_counter(), time.process_time()
        res = fn()
        runs.setdefault(name, []).append((time.perf_counter() - t0, time.process_time() - c0, res))

    ours = {"bayesmf MAP ALS tol=0.001": {"tol": 1e-3},
            "bayesmf MAP ALS tol=0.001, random start": {"tol": 1e-3, "init": "random"},
            "bayesmf MAP ALS tol=0.001, plain (accelerate=False)": {"tol": 1e-3,
                                                                   "accelerate": False}}
    for _ in range(rounds):
        for name, kw in ours.items():
            timed(name, lambda kw=kw: PMF(rank=10, max_iter=500, random_state=seed, **kw).fit(train))
        if trainset is not None:
            timed("surprise SVD (defaults)", lambda: SVD(random_state=seed).fit(trainset))
    timed("bayesmf MAP ALS tol=0.0001", lambda: PMF(rank=10, tol=1e-4, max_iter=500,
                                                     random_state=seed).fit(train))
    tf = test.to_frame()
    for name, rs in runs.items():
        wall = np.array([x[0] for x in rs])
        cpu = np.array([x[1] for x in rs])
        model = rs[-1][2]
        m = {"seconds": float(np.median(wall)), "seconds_min": float(wall.min()),
             "seconds_all": wall.tolist(), "cpu_seconds": float(np.median(cpu))}
        if name.startswith("surprise"):
            pred = np.array([model.predict(u, i).est
                             for u, i in zip(tf["user"], tf["item"], strict=True)])
        else:
            pred = model.predict_mean(test.users, test.items)
            m.update(sweeps=model.n_iter_, converged=model.converged_,
                     objective=float(model.history_["objective"].iloc[-1]))
        m["rmse"] = rmse(pred)
        out["models"][name] = m
    print(f"\n(b) MAP to convergence vs scikit-surprise SVD, same 80/20 split, medians of "
          f"{rounds} interleaved rounds")
    print(f"{'model':42s} {'wall s':>8s} {'min s':>8s} {'cpu s':>8s} {'sweeps':>7s} {'RMSE':>7s}")
    for name, m in out["models"].items():
        print(f"{name:42s} {m['seconds']:8.3f} {m['seconds_min']:8.3f} {m['cpu_seconds']:8.3f} "
              f"{str(m.get('sweeps', '')):>7s} {m['rmse']:7.4f}")
    if trainset is not None:
        ref = out["models"]["surprise SVD (defaults)"]
        mine = out["models"]["bayesmf MAP ALS tol=0.001"]
        out["fraction_of_surprise_time"] = mine["seconds"] / ref["seconds"]
        out["fraction_of_surprise_cpu_time"] = mine["cpu_seconds"] / ref["cpu_seconds"]
        per_round = [a[0] / b[0] for a, b in zip(runs["bayesmf MAP ALS tol=0.001"],
                                                 runs["surprise SVD (defaults)"], strict=True)]
        out["fraction_per_round"] = per_round
        out["fraction_random_start"] = (
            out["models"]["bayesmf MAP ALS tol=0.001, random start"]["seconds"] / ref["seconds"])
        print(f"ours (default tol) / surprise SVD, medians: {out['fraction_of_surprise_time']:.1%} "
              f"wall, {out['fraction_of_surprise_cpu_time']:.1%} CPU (target < 10%); per round "
              f"{min(per_round):.1%} to {max(per_round):.1%}; with init='random' "
              f"{out['fraction_random_start']:.1%}")
    return out


def bench_large(quick: bool) -> dict:
    n = 1_000_000 if quick else 10_000_000
    n_users, n_items = (20_000, 4_000) if quick else (120_000, 20_000)
    t0 = time.perf_counter()
    ratings, _ = make_synthetic(n_users=n_users, n_items=n_items, rank=32, n_ratings=n,
                                noise_sd=0.8, activity_exponent=0.5, random_state=0)
    gen = time.perf_counter() - t0
    PMF(rank=32, max_iter=1, random_state=0).fit(ratings.take(np.arange(1000)))  # warm caches
    c0 = time.process_time()
    fit = PMF(rank=32, random_state=0).fit(ratings)
    cpu = time.process_time() - c0
    res = {"fit_cpu_seconds": cpu,"n_ratings": ratings.nnz, "n_users": n_users, "n_items": n_items, "rank": 32,
           "generate_seconds": gen, "fit_seconds": fit.fit_time_, "sweeps": fit.n_iter_,
           "seconds_per_sweep": fit.fit_time_ / fit.n_iter_, "converged": fit.converged_,
           "train_rmse": float(fit.history_["train_rmse"].iloc[-1]), "target_seconds": 60,
           "quick": quick}
    print(f"\n(c) {ratings.nnz:,} synthetic ratings, rank 32: fit {fit.fit_time_:.1f} s "
          f"wall, {cpu:.1f} s CPU ({fit.n_iter_} sweeps, {res['seconds_per_sweep']:.2f} s/sweep, "
          f"converged={fit.converged_}); target < 60 s")
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1M ratings instead of 10M in (c)")
    ap.add_argument("--skip-large", action="store_true", help="skip (c)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds of (b)")
    ap.add_argument("--only-surprise", action="store_true", help="run (b) only, no JSON")
    args = ap.parse_args(argv)
    if args.only_surprise:
        return bench_vs_surprise(rounds=args.rounds)
    out = {
        "benchmark": "bench_als",
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sweep": bench_sweep(args.repeats),
        "vs_surprise": bench_vs_surprise(rounds=args.rounds),
    }
    if not args.skip_large:
        out["large"] = bench_large(args.quick)
    out["load_average_at_end"] = os.getloadavg()
    write_results("bench_als", out, default=float)
    return out


if __name__ == "__main__":
    main()
