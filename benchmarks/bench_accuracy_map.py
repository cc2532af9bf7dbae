"""Accuracy of MAP (ALS, rank 10, with biases) on ml-latest-small, 5-fold random KFold, seed 0.

Prints a table of per-fold and mean RMSE (predictions clipped to the 0.5..5 scale) and writes
``benchmarks/results/bench_accuracy_map.json``. When scikit-surprise is importable, its
``BaselineOnly`` and ``SVD`` (default settings, ``random_state=0``) run on the *same* folds
(``bayesmf.split.kfold(ratings, 5, random_state=0)``).

Target (issue 2): MAP with biases RMSE <= 0.865; reference measured here: surprise BaselineOnly
0.873, SVD 0.877.

Usage::

    python benchmarks/bench_accuracy_map.py [--folds 5] [--rank 10]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from _common import write_results

from bayesmf.datasets import load_ml_latest_small
from bayesmf.models.pmf import PMF
from bayesmf.split import kfold

TARGET = 0.865


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(p)) ** 2)))


def _surprise_models() -> dict:
    try:
        from surprise import SVD, BaselineOnly
    except ImportError:
        return {}
    return {
        "surprise BaselineOnly": lambda: BaselineOnly(verbose=False),
        "surprise SVD": lambda: SVD(random_state=0),
    }


def _run_surprise(make, train, test) -> tuple[float, float]:
    from surprise import Dataset, Reader

    reader = Reader(rating_scale=(train.scale.min, train.scale.max))
    data = Dataset.load_from_df(train.to_frame(), reader)
    trainset = data.build_full_trainset()
    t0 = time.perf_counter()
    algo = make()
    algo.fit(trainset)
    elapsed = time.perf_counter() - t0
    tf = test.to_frame()
    pred = np.array(
        [algo.predict(u, i, clip=True).est for u, i in zip(tf["user"], tf["item"], strict=True)]
    )
    return _rmse(test.values, pred), elapsed


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    ratings = load_ml_latest_small(titles=False)
    models: dict = {f"MAP ALS rank {args.rank} + biases": None}
    models.update(_surprise_models())
    rmse: dict[str, list[float]] = {m: [] for m in models}
    secs: dict[str, list[float]] = {m: [] for m in models}
    iters: list[int] = []
    map_name = next(iter(models))
    for f, (train, test) in enumerate(kfold(ratings, args.folds, random_state=args.seed)):
        fit = PMF(rank=args.rank, method="map", random_state=args.seed).fit(train)
        pred = train.scale.clip(fit.predict_mean(test.users, test.items))
        rmse[map_name].append(_rmse(test.values, pred))
        secs[map_name].append(fit.fit_time_)
        iters.append(fit.n_iter_)
        for name, make in models.items():
            if make is None:
                continue
            r, s = _run_surprise(make, train, test)
            rmse[name].append(r)
            secs[name].append(s)
        print(f"fold {f + 1}/{args.folds}: " + ", ".join(f"{m}={v[-1]:.4f}" for m, v in rmse.items()),
              flush=True)

    print()
    print(f"{'model':36s} {'mean RMSE':>10s} {'sd':>7s} {'fit s/fold':>11s}")
    for m in models:
        print(f"{m:36s} {np.mean(rmse[m]):10.4f} {np.std(rmse[m]):7.4f} {np.mean(secs[m]):11.3f}")
    map_mean = float(np.mean(rmse[map_name]))
    print(f"\nMAP target <= {TARGET}: {'PASS' if map_mean <= TARGET else 'FAIL'} ({map_mean:.4f}); "
          f"mean sweeps {np.mean(iters):.1f}")
    if not _surprise_models():
        print("(scikit-surprise not importable: reference models skipped)")

    defaults = PMF().get_params()
    out = {
        "benchmark": "bench_accuracy_map",
        "data": "ml-latest-small",
        "scheme": f"bayesmf.split.kfold(n_splits={args.folds}, random_state={args.seed})",
        "rank": args.rank,
        "pmf_params": {k: v for k, v in defaults.items() if k != "random_state"} | {"rank": args.rank},
        "target_rmse": TARGET,
        "map_mean_rmse": map_mean,
        "map_pass": map_mean <= TARGET,
        "map_mean_sweeps": float(np.mean(iters)),
        "models": {
            m: {"rmse_per_fold": rmse[m], "mean_rmse": float(np.mean(rmse[m])),
                "fit_seconds_per_fold": secs[m]}
            for m in models
        },
        "machine": platform.platform(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_results("bench_accuracy_map", out)
    return out


if __name__ == "__main__":
    main()
