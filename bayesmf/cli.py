"""The ``bayesmf`` command line: ``demo``, ``fit``, ``evaluate``, ``predict`` and ``report``.

Every sub-command reads data through :func:`bayesmf.datasets.load` (a named source such as
``ml-latest-small``, ``ml-100k`` or ``toy``, a MovieLens directory, or a CSV file). Bad input
(an unknown source, a malformed split string, an unknown method or parameter) prints one line
``bayesmf: error: ...`` on stderr and exits with status 2, without a traceback.

Examples
--------
.. code-block:: console

    $ bayesmf demo                                   # offline, on the embedded ml-latest-small
    $ bayesmf evaluate --data ml-latest-small --method map,bias --split kfold:5 --json cv.json
    $ bayesmf fit --data toy --method map --rank 2 --out toy.nc
    $ bayesmf predict --model toy.nc --pairs pairs.csv --out predictions.csv
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError

PROG = "bayesmf"

# ============================================================================ estimators
#: method name -> (candidate modules, class name, fixed constructor arguments)
_MODELS: dict[str, tuple[tuple[str, ...], str, dict[str, Any]]] = {
    "map": (("bayesmf.models.pmf",), "PMF", {"method": "map"}),
    "mle": (("bayesmf.models.pmf",), "PMF", {"method": "mle"}),
    "sgd": (("bayesmf.models.sgd", "bayesmf.models.pmf"), "SGDPMF", {}),
    "logistic": (("bayesmf.models.logistic", "bayesmf.models.pmf"), "LogisticPMF", {}),
    "gibbs": (("bayesmf.models.gibbs",), "GibbsPMF", {}),
    "nuts": (("bayesmf.models.pymc_fit",), "NUTSPMF", {}),
    "advi": (("bayesmf.models.pymc_fit",), "ADVIPMF", {}),
}
_BASELINE_NAMES = (
    "uniform_random", "global_mean", "user_mean", "item_mean", "mean_of_means", "bias",
)
METHODS: tuple[str, ...] = tuple(_MODELS) + _BASELINE_NAMES


def _estimator_class(method: str) -> tuple[type, dict[str, Any]]:
    if method in _BASELINE_NAMES:
        from bayesmf.models.baselines import BASELINES

        return BASELINES[method], {}
    if method not in _MODELS:
        raise BayesMFError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    modules, name, fixed = _MODELS[method]
    for mod_name in modules:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as err:
            if err.name != mod_name:  # a missing dependency inside an existing module
                raise
            continue
        if hasattr(mod, name):
            return getattr(mod, name), dict(fixed)
    raise BayesMFError(f"method {method!r} is not available in this installation ({name} missing)")


def make_estimator(
    method: str, rank: int | None = None, seed: int | None = 0, params: dict[str, Any] | None = None
) -> Any:
    """Build an unfitted estimator from a CLI method name.

    Parameters
    ----------
    method : str
        One of :data:`METHODS` (``map``, ``mle``, ``sgd``, ``logistic``, ``gibbs``, ``nuts``,
        ``advi`` or a baseline such as ``bias``).
    rank : int, optional
        Number of factors (ignored by baselines).
    seed : int, optional
        ``random_state`` of the estimator, where it takes one.
    params : dict, optional
        Further constructor arguments (e.g. ``{"lambda_u": 5.0}``).

    Returns
    -------
    FitBase
        The estimator.

    Raises
    ------
    BayesMFError
        Unknown method or an argument the estimator does not take.
    """
    cls, kwargs = _estimator_class(method)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    if rank is not None and "rank" in accepted:
        kwargs["rank"] = rank
    if seed is not None and "random_state" in accepted:
        kwargs["random_state"] = seed
    for key, value in (params or {}).items():
        if key not in accepted:
            raise BayesMFError(
                f"method {method!r} ({cls.__name__}) has no parameter {key!r}; "
                f"it takes: {', '.join(sorted(accepted)) or 'none'}"
            )
        kwargs[key] = value
    return cls(**kwargs)


def _parse_methods(text: str) -> list[str]:
    methods = [m.strip().lower() for m in text.split(",") if m.strip()]
    if not methods:
        raise BayesMFError("--method is empty")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise BayesMFError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    return methods


def _parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """``["lambda_u=5", "biases=false"]`` -> ``{"lambda_u": 5, "biases": False}``."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise BayesMFError(f"--param expects KEY=VALUE, got {item!r}")
        raw = raw.strip()
        if raw in ("None", "none", "null"):
            value: Any = None
        elif raw in ("True", "False"):
            value = raw == "True"
        else:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        out[key] = value
    return out


# ============================================================================ splits
@dataclass(frozen=True)
class SplitSpec:
    """A parsed ``--split`` string."""

    kind: str  # "random" | "user" | "kfold" | "movielens"
    value: float | None = None  # test fraction, ratings held out per user, or number of folds

    def describe(self) -> str:
        """The canonical string form."""
        if self.value is None:
            return self.kind
        v = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.kind}:{v}"


def parse_split(text: str, test_fraction: float = 0.2) -> SplitSpec:
    """Parse ``random[:FRACTION]``, ``user[:K]``, ``kfold[:K]`` or ``movielens``.

    Parameters
    ----------
    text : str
        The split string.
    test_fraction : float
        Held-out fraction for a bare ``random``.

    Returns
    -------
    SplitSpec

    Raises
    ------
    BayesMFError
        A malformed or out-of-range split string.
    """
    kind, sep, arg = str(text).strip().lower().partition(":")
    usage = "expected random[:FRACTION], user[:K], kfold[:K] or movielens"
    if kind == "movielens":
        if sep:
            raise BayesMFError(f"bad split {text!r}: movielens takes no argument; {usage}")
        return SplitSpec("movielens")
    if kind not in ("random", "user", "kfold"):
        raise BayesMFError(f"bad split {text!r}: {usage}")
    if sep and not arg:
        raise BayesMFError(f"bad split {text!r}: missing value after ':'; {usage}")
    if kind == "random":
        try:
            frac = float(arg) if sep else float(test_fraction)
        except ValueError:
            raise BayesMFError(f"bad split {text!r}: {arg!r} is not a fraction; {usage}") from None
        if not 0.0 < frac < 1.0:
            raise BayesMFError(f"bad split {text!r}: the test fraction must lie in (0, 1)")
        return SplitSpec("random", frac)
    try:
        k = int(arg) if sep else (5 if kind == "kfold" else 1)
    except ValueError:
        raise BayesMFError(f"bad split {text!r}: {arg!r} is not an integer; {usage}") from None
    if kind == "kfold" and k < 2:
        raise BayesMFError(f"bad split {text!r}: k-fold needs at least 2 folds")
    if kind == "user" and k < 1:
        raise BayesMFError(f"bad split {text!r}: hold out at least 1 rating per user")
    return SplitSpec(kind, float(k))


def make_folds(
    ratings: Ratings, spec: SplitSpec, seed: int | None, source: str | None = None
) -> list[tuple[Ratings, Ratings]]:
    """Turn a :class:`SplitSpec` into ``(train, test)`` pairs via :mod:`bayesmf.split`."""
    from bayesmf.split import make_splits

    if spec.kind == "random":
        return make_splits(ratings, "random", test_size=spec.value, random_state=seed)
    if spec.kind == "movielens":
        if source is None or not Path(source).expanduser().is_dir():
            raise BayesMFError(
                "--split movielens needs --data to be a MovieLens 100K directory holding "
                "u1.base .. u5.test"
            )
        return make_splits(ratings, "movielens", directory=Path(source).expanduser())
    return make_splits(ratings, spec.describe(), random_state=seed)


# ============================================================================ helpers
_COLUMN_GUESSES = {
    "user_col": ("userid", "user", "user_id"),
    "item_col": ("movieid", "item", "item_id", "itemid", "movie", "movie_id"),
    "rating_col": ("rating", "score", "value"),
}


def _load(source: str, columns: dict[str, str | None] | None = None) -> Ratings:
    """Load SOURCE; for a CSV file, find the user / item / rating columns by common names."""
    from bayesmf.datasets import load

    kwargs = {k: v for k, v in (columns or {}).items() if v}
    path = Path(str(source)).expanduser()
    if path.is_file():
        missing = [k for k in _COLUMN_GUESSES if k not in kwargs]
        if missing:
            try:
                header = list(pd.read_csv(path, nrows=0).columns)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
                    OSError) as err:
                raise BayesMFError(f"cannot read {source}: {err}") from None
            lower = {str(c).lower(): c for c in header}
            for key in missing:
                hit = next((lower[n] for n in _COLUMN_GUESSES[key] if n in lower), None)
                if hit is not None:
                    kwargs[key] = hit
        return load(str(path), **kwargs)
    if kwargs:
        raise BayesMFError("--user-col/--item-col/--rating-col apply to a CSV file --data only")
    return load(source)


def _columns(args: argparse.Namespace) -> dict[str, str | None]:
    return {"user_col": args.user_col, "item_col": args.item_col, "rating_col": args.rating_col}


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _write_json(path: str, payload: dict[str, Any]) -> None:
    p = Path(path).expanduser()
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(_jsonable(payload), indent=2, default=str) + "\n")


def _metrics_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    frame = pd.DataFrame(rows)
    cols = [c for c in columns if c in frame.columns]
    frame = frame[cols]
    fmts: dict[str, Callable[[Any], str]] = {c: _fmt for c in cols if c != "method"}
    if "n_cold" in fmts:
        fmts["n_cold"] = lambda v: _fmt(v, 1)
    return frame.to_string(index=False, formatters=fmts, na_rep="-")


_TABLE_COLUMNS = ("method", "rmse", "mae", "coverage_50", "coverage_90", "width_90", "lpd",
                  "crps", "fit_time")


def _fit_quietly(est: Any, train: Ratings) -> tuple[Any, float, list[str]]:
    """Fit, timing it and collecting warnings (e.g. MLE's underdetermined rows) as text."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(train)
    elapsed = time.perf_counter() - t0
    msgs = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
    return est, float(getattr(est, "fit_time_", elapsed) or elapsed), msgs


# ============================================================================ demo
def _pick_user(train: Ratings, user: str | None) -> Any:
    if user is not None:
        for candidate in (user, _try_int(user)):
            if candidate is not None and train.user_index([candidate])[0] >= 0:
                return candidate
        raise BayesMFError(f"user {user!r} is not in the data")
    counts = train.user_counts
    active = np.flatnonzero(counts > 0)
    order = active[np.argsort(counts[active], kind="stable")]
    return train.user_ids[order[len(order) // 2]]


def _try_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _format_recommendations(recs: pd.DataFrame) -> str:
    cols = [c for c in ("item", "title", "mean", "lower", "upper") if c in recs.columns]
    view = recs[cols].copy()
    if "title" in view:
        view["title"] = view["title"].astype(str).str.slice(0, 50)
    return view.to_string(index=False, formatters={c: _fmt for c in ("mean", "lower", "upper")})


def cmd_demo(args: argparse.Namespace) -> int:
    """``bayesmf demo``: baselines, MLE and MAP on ml-latest-small; table and top-5."""
    from bayesmf.datasets import load_ml_latest_small
    from bayesmf.evaluate import evaluate, warm_up
    from bayesmf.progress import track

    out_dir = Path(args.out).expanduser() if args.out else None
    t_start = time.perf_counter()
    ratings = load_ml_latest_small()
    max_iter = None
    if args.quick:  # a small, fast slice for tests: the 100 most active users, few sweeps
        keep_users = np.argsort(-ratings.user_counts, kind="stable")[:100]
        ratings = ratings.take(np.isin(ratings.users, keep_users))
        max_iter = 5
    folds = make_folds(ratings, SplitSpec("random", 0.2), args.seed)
    train, test = folds[0]
    print(f"data: {ratings.name}: {train.nnz} training / {test.nnz} held-out ratings, "
          f"{int((ratings.user_counts > 0).sum())} users, {int((ratings.item_counts > 0).sum())} "
          f"items (random 80/20 split, seed {args.seed})")

    user = _pick_user(train, args.user)  # fail on a bad --user before fitting
    methods = list(_BASELINE_NAMES) + ["mle", "map"]
    fits: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for method in track(methods, "fitting"):
        params = {"max_iter": max_iter} if (max_iter and method in ("map", "mle")) else None
        est = make_estimator(method, rank=args.rank, seed=args.seed, params=params)
        warm_up(est, train)  # kernel loading is a one-time cost, not part of fit_time
        est, fit_time, msgs = _fit_quietly(est, train)
        notes.extend(f"{method}: {m}" for m in msgs)
        fits[method] = est
        rows.append({"method": method, **evaluate(est, test), "fit_time": fit_time})
    print()
    print("held-out accuracy and calibration (coverage/width of central predictive intervals;")
    print("'-' = the method gives no intervals):")
    print(_metrics_table(rows, _TABLE_COLUMNS))
    for note in notes:
        print(f"note: {note}")

    recs = fits["map"].recommend(user, n=5)
    n_rated = int(train.user_counts[train.user_index([user])[0]])
    print()
    print(f"top-5 recommendations (MAP, rank {args.rank}) for user {user} "
          f"({n_rated} training ratings):")
    print(_format_recommendations(recs))

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(out_dir / "comparison.csv", index=False)
        recs.to_csv(out_dir / "recommendations.csv", index=False)
        _write_json(str(out_dir / "demo.json"), {
            "data": ratings.name, "seed": args.seed, "rank": args.rank, "n_train": train.nnz,
            "n_test": test.nnz, "metrics": rows, "user": str(user),
            "recommendations": recs.to_dict(orient="records"),
        })
        print(f"\nwrote {out_dir / 'comparison.csv'}, {out_dir / 'recommendations.csv'}, "
              f"{out_dir / 'demo.json'}")
    # ---- report hook (bayesmf.report, issue 5): --report PATH, or OUT/report.html with --out
    report_path = args.report or (str(out_dir / "report.html") if out_dir and not args.no_report
                                  else None)
    if report_path:
        _demo_report(fits, report_path, train, test)
    print(f"\ndone in {time.perf_counter() - t_start:.1f} s")
    return 0


def _demo_report(fits: dict[str, Any], path: str, train: Ratings, test: Ratings) -> None:
    try:
        from bayesmf.report import write_report
    except ImportError:
        print("note: bayesmf.report is not available; no report written", file=sys.stderr)
        return
    chosen = {name.upper(): fits[name] for name in ("map", "mle", "bias") if name in fits}
    out = write_report(chosen, path, test=test, train=train, title="bayesmf demo")
    print(f"wrote report {out}")


# ============================================================================ fit
def cmd_fit(args: argparse.Namespace) -> int:
    """``bayesmf fit``: fit one method on all of SOURCE and save it."""
    methods = _parse_methods(args.method)
    if len(methods) != 1:
        raise BayesMFError("bayesmf fit takes exactly one --method")
    params = _parse_params(args.param)
    est = make_estimator(methods[0], rank=args.rank, seed=args.seed, params=params)
    ratings = _load(args.data, _columns(args))
    est, fit_time, msgs = _fit_quietly(est, ratings)
    for m in msgs:
        print(f"note: {m}", file=sys.stderr)
    from bayesmf.evaluate import mae, rmse

    pred = est.predict_mean(ratings.users, ratings.items)
    summary = {
        "method": methods[0], "data": ratings.name, "n_ratings": ratings.nnz,
        "n_users": ratings.n_users, "n_items": ratings.n_items, "fit_time": fit_time,
        "train_rmse": rmse(ratings.values, pred), "train_mae": mae(ratings.values, pred),
        "params": est.get_params(),
    }
    if args.out:
        try:
            from bayesmf.io import save
        except ImportError:
            raise BayesMFError("saving needs bayesmf.io, which is not available") from None
        save(est, args.out)
        summary["model_file"] = str(args.out)
    print(json.dumps(_jsonable(summary), indent=2, default=str))
    return 0


# ============================================================================ evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    """``bayesmf evaluate``: held-out metrics of one or more methods over a split scheme."""
    from bayesmf.evaluate import cross_validate, summarize_cv

    methods = _parse_methods(args.method)
    params = _parse_params(args.param)
    spec = parse_split(args.split, args.test_fraction)
    _check_params(methods, params)  # fail fast, before loading anything
    ratings = _load(args.data, _columns(args))
    folds = make_folds(ratings, spec, args.seed, source=args.data)
    tables = []
    for m in methods:
        factory = _factory(m, args.rank, args.seed, params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            tables.append(cross_validate(factory, ratings, scheme=folds))
    results = pd.concat(tables, ignore_index=True)
    summary = summarize_cv(results)
    print(f"data: {ratings.name} ({ratings.nnz} ratings); split: {spec.describe()} "
          f"({len(folds)} fold{'s' if len(folds) > 1 else ''}), seed {args.seed}")
    rows = []
    for method, row in summary.iterrows():
        rows.append({"method": method,
                     **{c[:-5]: row[c] for c in summary.columns if c.endswith("_mean")}})
    print(_metrics_table(rows, _TABLE_COLUMNS + ("n_cold",)))
    if args.json:
        payload = {
            "data": ratings.name, "split": spec.describe(), "seed": args.seed, "rank": args.rank,
            "methods": methods, "params": params, "n_folds": len(folds),
            "summary": {m: {c: row[c] for c in summary.columns} for m, row in summary.iterrows()},
            "folds": results.to_dict(orient="records"),
        }
        _write_json(args.json, payload)
        print(f"wrote {args.json}")
    return 0


def _accepted(method: str) -> set[str]:
    cls, _ = _estimator_class(method)
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def params_for(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The ``--param`` entries that ``method``'s estimator takes (methods share one flag)."""
    accepted = _accepted(method)
    return {k: v for k, v in params.items() if k in accepted}


def _check_params(methods: Sequence[str], params: dict[str, Any]) -> None:
    """Every ``--param`` key must be taken by at least one of the methods run."""
    taken = set().union(*(_accepted(m) for m in methods))
    unused = sorted(set(params) - taken)
    if unused:
        raise BayesMFError(
            f"--param {', '.join(unused)}: not a parameter of {', '.join(methods)} "
            f"(they take: {', '.join(sorted(taken)) or 'none'})"
        )


def _factory(method: str, rank: int, seed: int, params: dict[str, Any]) -> Callable[[], Any]:
    own = params_for(method, params)
    return lambda: make_estimator(method, rank=rank, seed=seed, params=own)


# ============================================================================ predict
def _read_pairs(path: str, fit: Any) -> pd.DataFrame:
    p = Path(path).expanduser()
    if not p.is_file():
        raise BayesMFError(f"pairs file {path!r} does not exist")
    try:
        frame = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise BayesMFError(f"cannot read pairs file {path!r}: {err}") from None
    lower = {c.lower(): c for c in frame.columns}
    ucol = next((lower[c] for c in ("user", "userid", "user_id") if c in lower), None)
    icol = next((lower[c] for c in ("item", "movieid", "item_id", "movie") if c in lower), None)
    if ucol is None or icol is None:
        raise BayesMFError(
            f"pairs file {path!r} needs a 'user' and an 'item' column; it has {list(frame.columns)}"
        )
    pairs = pd.DataFrame({"user": frame[ucol], "item": frame[icol]})
    train = fit.ratings_
    for col, ids in (("user", train.user_ids), ("item", train.item_ids)):
        try:
            pairs[col] = pairs[col].astype(ids.dtype)
        except (TypeError, ValueError):
            pass  # leave as read; unknown ids are flagged by predict
    return pairs


def cmd_predict(args: argparse.Namespace) -> int:
    """``bayesmf predict``: predictions with uncertainty for (user, item) pairs."""
    model = Path(args.model).expanduser()
    if not model.is_file():
        raise BayesMFError(f"model file {args.model!r} does not exist")
    if not Path(args.pairs).expanduser().is_file():
        raise BayesMFError(f"pairs file {args.pairs!r} does not exist")
    try:
        from bayesmf.io import load as load_fit
    except ImportError:
        raise BayesMFError("loading a model needs bayesmf.io, which is not available") from None
    fit = load_fit(str(model))
    pairs = _read_pairs(args.pairs, fit)
    out = fit.predict(pairs, prob=args.prob)
    if args.out:
        Path(args.out).expanduser().parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(args.out, index=False)
        print(f"wrote {len(out)} predictions to {args.out}", file=sys.stderr)
    else:
        out.to_csv(sys.stdout, index=False)
    return 0


# ============================================================================ parser
def _add_column_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("CSV columns (default: found by name, e.g. userId/user, "
                             "movieId/item, rating)")
    g.add_argument("--user-col", default=None, help="user id column of a CSV --data")
    g.add_argument("--item-col", default=None, help="item id column of a CSV --data")
    g.add_argument("--rating-col", default=None, help="rating column of a CSV --data")


def build_parser() -> argparse.ArgumentParser:
    """The ``bayesmf`` argument parser with all sub-commands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bayesian probabilistic matrix factorization of rating data.",
    )
    try:
        from bayesmf import __version__ as version
    except ImportError:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as _dist_version

        try:
            version = _dist_version("bayesmf")
        except PackageNotFoundError:
            version = "unknown"
    parser.add_argument("--version", action="version", version=f"{PROG} {version}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    data_help = ("dataset: ml-latest-small (embedded), ml-100k, ml-1m, toy, synthetic, a MovieLens "
                 "directory, or a CSV file with user,item,rating columns")
    method_help = f"one of: {', '.join(METHODS)}"

    p = sub.add_parser("demo", help="fit baselines, MLE and MAP on ml-latest-small and compare")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the fits")
    p.add_argument("--rank", type=int, default=10, help="number of latent factors (default 10)")
    p.add_argument("--user", default=None, help="raw user id for the recommendations")
    p.add_argument("--out", default=None, help="directory for CSV/JSON results (and report.html)")
    p.add_argument("--report", default=None, metavar="PATH", help="write an HTML report here")
    p.add_argument("--no-report", action="store_true", help="no report.html in --out")
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fit", help="fit a model on a dataset and save it")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--method", required=True, help=method_help)
    p.add_argument("--rank", type=int, default=10, help="number of latent factors (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random_state of the fit")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="extra constructor argument, e.g. --param lambda_u=5 (repeatable)")
    p.add_argument("--out", default=None, help="model file to write (bayesmf.io format)")
    _add_column_options(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("evaluate", help="held-out metrics of methods over a split")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--method", default="map",
                   help=f"comma-separated methods ({', '.join(METHODS)})")
    p.add_argument("--rank", type=int, default=10, help="number of latent factors (default 10)")
    p.add_argument("--split", default="random",
                   help="random[:FRACTION] | user[:K] | kfold[:K] | movielens (default random)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="held-out fraction for --split random (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the fits")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="extra constructor argument (repeatable)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the metrics as JSON")
    _add_column_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict ratings with uncertainty from a saved model")
    p.add_argument("--model", required=True, help="model file written by 'bayesmf fit --out'")
    p.add_argument("--pairs", required=True, help="CSV with user and item columns")
    p.add_argument("--prob", type=float, default=0.9, help="interval probability (default 0.9)")
    p.add_argument("--out", default=None, help="output CSV (default: stdout)")
    p.set_defaults(func=cmd_predict)

    try:
        from bayesmf import report as report_mod
    except ImportError:
        report_mod = None
    if report_mod is not None and hasattr(report_mod, "build_report_parser"):
        p = sub.add_parser("report", help="write a self-contained HTML diagnostic report")
        report_mod.build_report_parser(p)
        p.set_defaults(func=report_mod.run_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bayesmf`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 on bad input (one line on stderr, no traceback),
        130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, argparse usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        return int(args.func(args) or 0)
    except (BayesMFError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
