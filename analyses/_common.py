"""Shared plumbing of the analyses scripts: arguments, data and split, tables, figures, JSON.

Every script in ``analyses/`` takes the same core arguments::

    --data SOURCE   dataset source for bayesmf.datasets.load (default ml-latest-small)
    --seed N        seed of the split and of every fit (default 0)
    --out DIR       where the PNG figures and the results JSON go (default out/analyses/<name>)
    --quick         a small, fast run (used by the tests)
    --docs          also copy the figures into docs/_static/analyses/<name>/

and exposes ``main(argv) -> dict`` returning the results it wrote to JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmf.data import Ratings

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_STATIC = REPO_ROOT / "docs" / "_static" / "analyses"


def base_parser(name: str, description: str) -> argparse.ArgumentParser:
    """Argument parser with the options every analysis shares."""
    parser = argparse.ArgumentParser(prog=f"analyses/{name}.py", description=description)
    parser.add_argument("--data", default="ml-latest-small",
                        help="dataset source (bayesmf.datasets.load): ml-latest-small, ml-100k, "
                             "synthetic, a MovieLens directory or a CSV file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the fits")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output directory (default out/analyses/{name}, git-ignored)")
    parser.add_argument("--quick", action="store_true",
                        help="small fast run (subsampled data, short grids) for smoke tests")
    parser.add_argument("--docs", action="store_true",
                        help=f"also write the figures to docs/_static/analyses/{name}/")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="held-out share of the random split (default 0.2)")
    return parser


class Output:
    """Where a script writes: the output directory and, with ``--docs``, the docs folder."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.dir = Path(args.out) if args.out is not None else REPO_ROOT / "out" / "analyses" / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.docs_dir = DOCS_STATIC / name if getattr(args, "docs", False) else None
        if self.docs_dir is not None:
            self.docs_dir.mkdir(parents=True, exist_ok=True)
        self.figures: list[str] = []
        self.dpi = 60 if getattr(args, "quick", False) else 110
        self.started = time.perf_counter()

    def figure(self, fig: Any, filename: str) -> Path:
        """Save a matplotlib figure as PNG (and to the docs folder with ``--docs``)."""
        path = self.dir / filename
        fig.savefig(path, dpi=self.dpi, bbox_inches="tight")
        if self.docs_dir is not None:
            fig.savefig(self.docs_dir / filename, dpi=self.dpi, bbox_inches="tight")
        self.figures.append(filename)
        import matplotlib.pyplot as plt

        plt.close(fig)
        return path

    def write_json(self, results: dict[str, Any]) -> Path:
        """Write ``results.json`` (with run metadata added) and return its path."""
        results = dict(results)
        results.setdefault("script", self.name)
        results["figures"] = list(self.figures)
        results["elapsed_s"] = round(time.perf_counter() - self.started, 3)
        results["environment"] = environment()
        path = self.dir / "results.json"
        path.write_text(json.dumps(to_jsonable(results), indent=2, allow_nan=False) + "\n",
                        encoding="utf-8")
        if self.docs_dir is not None:
            (self.docs_dir / "results.json").write_text(path.read_text(encoding="utf-8"),
                                                        encoding="utf-8")
        return path

    def finish(self, results: dict[str, Any]) -> dict[str, Any]:
        """Write ``results.json`` (:meth:`write_json`), say where, and return ``results``."""
        path = self.write_json(results)
        print(f"\nwrote {path} and {len(self.figures)} figures to {self.dir}")
        return results


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with every result."""
    import os

    try:
        from importlib.metadata import version

        ver = version("bayesmf")
    except Exception:  # noqa: BLE001
        ver = "unknown"
    return {"bayesmf": ver, "python": platform.python_version(), "numpy": np.__version__,
            "cpus": os.cpu_count(), "machine": platform.machine()}


def to_jsonable(obj: Any) -> Any:
    """Convert numpy / pandas values to JSON-safe Python (NaN and inf become None)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return to_jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, pd.Series):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ------------------------------------------------------------------------------------ data
def load_data(args: argparse.Namespace, quick_users: int = 150) -> Ratings:
    """Load ``--data``; with ``--quick`` keep only ``quick_users`` random users."""
    from bayesmf.datasets import load

    ratings = load(args.data)
    if args.quick:
        ratings = subsample_users(ratings, quick_users, args.seed)
    return ratings


def subsample_users(ratings: Ratings, n_users: int, seed: int) -> Ratings:
    """Ratings of ``n_users`` users drawn at random (id maps restricted to what remains)."""
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(ratings.user_counts > 0)
    if len(active) <= n_users:
        return ratings
    keep = np.zeros(ratings.n_users, dtype=bool)
    keep[rng.choice(active, size=n_users, replace=False)] = True
    sub = ratings.to_frame().loc[keep[ratings.users]]
    return Ratings.from_frame(sub, scale=ratings.scale, item_info=ratings.item_info,
                              name=f"{ratings.name} ({n_users} users)")


def holdout_split(ratings: Ratings, test_fraction: float, seed: int) -> tuple[Ratings, Ratings]:
    """Random hold-out split (shared id maps) via :mod:`bayesmf.split`."""
    from bayesmf import split

    return split.random_split(ratings, test_size=test_fraction, random_state=seed)


def data_facts(train: Ratings, test: Ratings) -> dict[str, Any]:
    """Sizes of a split, for the results JSON."""
    return {
        "name": train.name,
        "n_users": train.n_users,
        "n_items": train.n_items,
        "n_train": train.nnz,
        "n_test": test.nnz,
        "density": (train.nnz + test.nnz) / max(1, train.n_users * train.n_items),
    }


# -------------------------------------------------------------------------------- metrics
def clipped_rmse(fit: Any, test: Ratings) -> float:
    """RMSE of the fit's mean prediction clipped to the rating scale."""
    pred = fit.predict_mean(test.users, test.items)
    if test.scale is not None:
        pred = test.scale.clip(pred)
    return float(np.sqrt(np.mean((pred - test.values) ** 2)))


def train_rmse(fit: Any, train: Ratings) -> float:
    """RMSE on the training ratings (unclipped predictions, the fitted objective's residuals)."""
    pred = fit.predict_mean(train.users, train.items)
    return float(np.sqrt(np.mean((pred - train.values) ** 2)))


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the expected warnings of deliberately bad fits (e.g. MLE's underdetermined rows)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def print_table(df: pd.DataFrame, title: str, floatfmt: str = "{:.4g}") -> None:
    """Print a DataFrame as a plain-text table under a title."""
    print(f"\n== {title} ==")
    with pd.option_context("display.width", 160, "display.max_columns", 30,
                           "display.float_format", floatfmt.format):
        print(df.to_string(index=False))


def activity_buckets(counts: np.ndarray, edges: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """Bucket index of each count for right-closed bins ``(e_k, e_{k+1}]`` and their labels."""
    edges = list(edges)
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if math.isinf(hi):
            labels.append(f">{lo}")
        elif hi == lo + 1:
            labels.append(f"{hi}")
        else:
            labels.append(f"{lo + 1}-{hi}")
    idx = np.searchsorted(np.asarray(edges[1:], dtype=float), counts, side="left")
    return idx, labels


def figure(width: float = 6.4, height: float = 4.0, ncols: int = 1,
           nrows: int = 1) -> tuple[Any, Any]:
    """A new pyplot figure (Agg backend) and its axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained")
    return fig, axes


def log_rank_axis(ax: Any, ranks: Sequence[int]) -> None:
    """Log-scale x axis labelled with the ranks themselves (no 10^x minor labels)."""
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(list(ranks), [str(r) for r in ranks])
