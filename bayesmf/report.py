"""A self-contained HTML diagnostic report for one fit or a set of fits.

:func:`write_report` writes a single HTML file with inline CSS and every figure embedded as a
base64 PNG ``data:`` URI, so the file can be mailed, archived or opened from disk with no
network and no JavaScript. It collects, for each fit:

* a data summary (users, items, ratings, density, rating histogram, user activity);
* the model and its settings (constructor arguments, fit time, convergence of the optimiser);
* the convergence table with a verdict per quantity (:func:`bayesmf.diagnostics.diagnose`);
* the diagnostic plots (:mod:`bayesmf.plots`): trace/rank plots of hyperparameters, energy
  (NUTS), posterior predictive check against the observed histogram, calibration, and
  predictive sd against user activity;
* the comparison table across fits on held-out data (:func:`bayesmf.compare.compare`);
* example recommendations with intervals (:func:`bayesmf.predict.recommend`).

Each section is built independently: a section that a fit does not support (an MLE fit has no
intervals, a point fit has no draws) shows a visible note instead, and an unexpected failure in
one section is reported in that section (and as a :class:`ReportWarning`) without losing the
rest of the report.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import io
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmf._validation import check_positive_int
from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError

__all__ = ["ReportWarning", "write_report", "report_main", "build_report_parser"]

#: figure resolution of embedded PNGs (dots per inch)
_DPI = 90

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1f2328;
background:#fafafa;line-height:1.45}
main{max-width:1150px;margin:0 auto;padding:1.2em 2em 3em;background:#fff}
h1{font-size:1.7em;border-bottom:2px solid #3b6ea5;padding-bottom:.2em}
h2{font-size:1.35em;margin-top:2em;border-bottom:1px solid #d0d7de;padding-bottom:.15em}
h3{font-size:1.1em;margin-top:1.4em}
table.tbl{border-collapse:collapse;font-size:.86em;margin:.6em 0}
table.tbl th,table.tbl td{border:1px solid #d0d7de;padding:.25em .55em;text-align:right}
table.tbl th{background:#f0f3f6}
table.tbl td:first-child,table.tbl th:first-child{text-align:left}
.note{background:#fff8c5;border-left:4px solid #d4a72c;padding:.4em .8em;margin:.6em 0}
.error{background:#ffebe9;border-left:4px solid #cf222e;padding:.4em .8em;margin:.6em 0}
.ok{color:#1a7f37;font-weight:600}.warn{color:#9a6700;font-weight:600}
.bad{color:#cf222e;font-weight:600}
figure{display:inline-block;margin:.5em 1em .8em 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eaeef2}
figcaption{font-size:.82em;color:#57606a;max-width:560px}
nav ul{columns:2;font-size:.92em}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
dl.params{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;font-size:.86em}
dl.params dt{font-weight:600}dl.params dd{margin:0}
footer{margin-top:3em;font-size:.8em;color:#57606a}
.model{display:flex;flex-wrap:wrap;gap:.5em 3em;align-items:flex-start}
.model p{margin:.2em 0}
"""


class ReportWarning(UserWarning):
    """A report section failed unexpectedly; the report was still written."""


# ---------------------------------------------------------------------------------- html helpers
def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _note(text: str, kind: str = "note") -> str:
    return f'<div class="{kind}">{_esc(text)}</div>'


def _format_value(value: Any, thousands: bool = False) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}" if thousands else str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "—"
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(value)


def _table(df: pd.DataFrame, index: bool = True, max_rows: int = 200,
           thousands: bool = False) -> str:
    """Render a DataFrame as an escaped HTML table with compact number formatting."""
    if len(df) > max_rows:
        df = df.head(max_rows)
    shown = df.copy()
    for col in shown.columns:
        if shown[col].dtype.kind in "fiub":
            shown[col] = [_format_value(v, thousands) for v in shown[col].to_numpy()]
    return shown.to_html(escape=True, index=index, border=0, classes="tbl", na_rep="—")


def _verdict_table(df: pd.DataFrame) -> str:
    """A table whose ``verdict`` column (if any) is coloured by its value."""
    body = _table(df)
    if "verdict" not in df.columns:
        return body
    for value in pd.unique(df["verdict"].astype(str)):
        low = value.lower()
        cls = "ok" if low in ("ok", "good", "pass", "converged") else (
            "bad" if low in ("bad", "fail", "failed", "not converged", "diverged") else "warn"
        )
        cell = f"<td>{_esc(value)}</td>"
        body = body.replace(cell, f'<td class="{cls}">{_esc(value)}</td>')
    return body


def _params(d: Mapping[str, Any]) -> str:
    rows = "".join(f"<dt>{_esc(k)}</dt><dd><code>{_esc(_short(v))}</code></dd>" for k, v in d.items())
    return f'<dl class="params">{rows}</dl>'


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------- figure helpers
def _as_figure(obj: Any) -> Any:
    """Return the matplotlib Figure behind a Figure, Axes, array of Axes or plot object."""
    from matplotlib.figure import Figure

    if isinstance(obj, Figure):
        return obj
    if isinstance(obj, tuple) and obj and isinstance(obj[0], Figure):
        return obj[0]
    if isinstance(obj, np.ndarray) and obj.size:
        obj = obj.flat[0]
    for attr in ("figure", "fig", "get_figure"):
        got = getattr(obj, attr, None)
        if callable(got):
            got = got()
        if isinstance(got, Figure):
            return got
    raise TypeError(f"cannot find a matplotlib figure in a {type(obj).__name__}")


def _img(fig_like: Any, caption: str, width: int | None = None) -> str:
    """Embed a figure as a base64 PNG ``<figure>`` and close it."""
    fig = _as_figure(fig_like)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    finally:
        _close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    w = f' width="{int(width)}"' if width else ""
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(caption)}"{w}>'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _close(fig: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def _new_figure(width: float = 6.0, height: float = 3.6) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


# ------------------------------------------------------------------------------- section runner
class _Sections:
    """Collects named sections; runs each builder so that a failure stays local."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str, str]] = []
        self.problems: list[str] = []

    def add(self, anchor: str, title: str, body: str) -> None:
        self.parts.append((anchor, title, body))

    def guarded(self, label: str, builder: Callable[[], str]) -> str:
        """Run ``builder``; on error return a visible note (and warn if unexpected)."""
        try:
            return builder()
        except (BayesMFError, NotImplementedError, ModuleNotFoundError, ImportError) as exc:
            return _note(f"{label}: not available ({_describe(exc)})")
        except Exception as exc:  # noqa: BLE001 - one failing section must not lose the report
            msg = f"{label}: failed with {_describe(exc)}"
            self.problems.append(msg)
            warnings.warn(msg, ReportWarning, stacklevel=3)
            return _note(msg, kind="error")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------------------- fit inspection
def _normalise_fits(fits: Any) -> dict[str, Any]:
    if isinstance(fits, Mapping):
        out = {str(k): v for k, v in fits.items()}
    elif isinstance(fits, Sequence) and not isinstance(fits, str):
        out = {}
        for fit in fits:
            base = _fit_label(fit)
            name, k = base, 2
            while name in out:
                name, k = f"{base}-{k}", k + 1
            out[name] = fit
    else:
        out = {_fit_label(fits): fits}
    if not out:
        raise BayesMFError("write_report needs at least one fit")
    for name, fit in out.items():
        if not hasattr(fit, "ratings_"):
            raise BayesMFError(
                f"fit {name!r} ({type(fit).__name__}) is not fitted: call .fit(ratings) first"
            )
    return out


def _fit_label(fit: Any) -> str:
    return str(getattr(fit, "method", None) or type(fit).__name__).upper()


def _is_bayesian(fit: Any) -> bool:
    return bool(getattr(fit, "is_bayesian", False)) and getattr(fit, "idata_", None) is not None


def _method(fit: Any) -> str:
    return str(getattr(fit, "method", type(fit).__name__)).lower()


def _params_of(fit: Any) -> dict[str, Any]:
    getp = getattr(fit, "get_params", None)
    if callable(getp):
        try:
            return dict(getp())
        except Exception:  # noqa: BLE001 - fall back to nothing
            return {}
    return {}


# ------------------------------------------------------------------------------------ sections
def _ratings_row(label: str, r: Ratings) -> dict[str, Any]:
    vals = r.values
    return {
        "set": label,
        "ratings": r.nnz,
        "users (with ratings)": int((r.user_counts > 0).sum()),
        "items (with ratings)": int((r.item_counts > 0).sum()),
        "users in id map": r.n_users,
        "items in id map": r.n_items,
        "density": r.density,
        "mean rating": float(vals.mean()) if len(vals) else float("nan"),
        "sd rating": float(vals.std()) if len(vals) else float("nan"),
    }


def _data_section(train: Ratings, test: Ratings | None) -> str:
    rows = [_ratings_row("train", train)]
    if test is not None:
        rows.append(_ratings_row("test", test))
    df = pd.DataFrame(rows).set_index("set")
    scale = train.scale
    scale_txt = (
        "none declared" if scale is None
        else f"{scale.min:g} to {scale.max:g}" + (f", step {scale.step:g}" if scale.step else "")
    )
    out = [
        f"<p>Dataset <b>{_esc(train.name)}</b>; rating scale: {_esc(scale_txt)}.</p>",
        _table(df, thousands=True),
    ]
    out.append(_img(_rating_histogram(train, test), "Rating histogram (share of ratings per level)"))
    out.append(_img(_activity_histogram(train), "Ratings per user and per item (training set)"))
    return "".join(out)


def _level_edges(values: np.ndarray, scale: Any) -> np.ndarray:
    if scale is not None and scale.step:
        levels = scale.levels
        half = scale.step / 2
        return np.concatenate([levels - half, [levels[-1] + half]])
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    return np.linspace(lo, hi if hi > lo else lo + 1, 21)


def _rating_histogram(train: Ratings, test: Ratings | None) -> Any:
    fig = _new_figure(6.0, 3.2)
    ax = fig.add_subplot()
    edges = _level_edges(train.values, train.scale)
    centers = (edges[:-1] + edges[1:]) / 2
    width = np.diff(edges)
    sets = [("train", train.values)] + ([("test", test.values)] if test is not None else [])
    bw = width / (len(sets) + 0.5)
    for k, (label, vals) in enumerate(sets):
        counts, _ = np.histogram(vals, bins=edges)
        share = counts / max(1, counts.sum())
        ax.bar(centers - width / 2 + bw * (k + 0.75), share, width=bw, label=label)
    ax.set_xlabel("rating")
    ax.set_ylabel("share of ratings")
    ax.legend(frameon=False)
    return fig


def _activity_histogram(train: Ratings) -> Any:
    fig = _new_figure(7.0, 3.0)
    for k, (label, counts) in enumerate(
        (("ratings per user", train.user_counts), ("ratings per item", train.item_counts))
    ):
        ax = fig.add_subplot(1, 2, k + 1)
        c = counts[counts > 0]
        if len(c):
            bins = np.unique(np.geomspace(1, max(2, c.max() + 1), 25).round())
            ax.hist(c, bins=bins, color="C2" if k else "C0")
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("count")
    return fig


def _model_section(name: str, fit: Any, S: _Sections) -> str:
    facts: dict[str, Any] = {"class": type(fit).__name__, "method": _method(fit)}
    for attr, label in (
        ("fit_time_", "fit time (s)"),
        ("n_iter_", "sweeps / iterations"),
        ("converged_", "optimiser converged"),
        ("sigma_", "noise sd (sigma)"),
        ("link_", "link"),
        ("underdetermined_users_", "underdetermined users"),
        ("underdetermined_items_", "underdetermined items"),
        ("lambda_u_", "lambda_u used"),
        ("lambda_v_", "lambda_v used"),
        ("thin_", "thinning"),
    ):
        if hasattr(fit, attr):
            val = getattr(fit, attr)
            facts[label] = _format_value(val) if np.isscalar(val) else _short(val)
    summary = getattr(fit, "summary_", None)
    if isinstance(summary, Mapping):
        for key in ("n_divergent", "divergent_fraction", "mean_tree_depth", "max_tree_depth"):
            if key in summary:
                facts[key.replace("_", " ")] = _format_value(summary[key])
    idata = getattr(fit, "idata_", None)
    if idata is not None and hasattr(idata, "posterior"):
        post = idata.posterior
        facts["chains × draws"] = f"{post.sizes.get('chain', 1)} × {post.sizes.get('draw', 1)}"
    params = _params_of(fit)
    out = [f"<h3>{_esc(name)}</h3>", '<div class="model"><div><p>Fit:</p>', _params(facts),
           "</div><div><p>Constructor arguments:</p>",
           _params(params) if params else _note("none"), "</div>"]
    hist = getattr(fit, "history_", None)
    if isinstance(hist, pd.DataFrame) and len(hist) and "objective" in hist.columns:
        out.append(S.guarded(f"{name} optimiser trace", lambda: _img(
            _history_figure(hist, name), f"{name}: objective and train RMSE per sweep")))
    elbo = _elbo_trace(fit)
    if elbo is not None:
        out.append(S.guarded(f"{name} ELBO trace", lambda: _img(
            _elbo_figure(elbo, name), f"{name}: ELBO (negative loss) per ADVI step")))
    out.append("</div>")
    return "".join(out)


def _history_figure(hist: pd.DataFrame, name: str) -> Any:
    fig = _new_figure(7.0, 2.8)
    x = hist["sweep"] if "sweep" in hist.columns else np.arange(1, len(hist) + 1)
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(x, hist["objective"], marker=".")
    ax.set_xlabel("sweep")
    ax.set_ylabel("objective")
    ax.set_title(name, fontsize=9)
    if "train_rmse" in hist.columns:
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.plot(x, hist["train_rmse"], marker=".", color="C1")
        ax2.set_xlabel("sweep")
        ax2.set_ylabel("train RMSE")
    return fig


def _elbo_trace(fit: Any) -> np.ndarray | None:
    try:
        from bayesmf.diagnostics import elbo_trace
    except ImportError:
        return None
    elbo = elbo_trace(fit)
    if elbo is None:
        return None
    arr = np.asarray(elbo, dtype=float).ravel()
    return arr if arr.size else None


def _elbo_figure(elbo: np.ndarray, name: str) -> Any:
    fig = _new_figure(6.0, 2.8)
    ax = fig.add_subplot()
    ax.plot(np.arange(1, len(elbo) + 1), elbo, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("ELBO")
    ax.set_title(name, fontsize=9)
    return fig


def _diagnose_frame(result: Any) -> pd.DataFrame:
    """Accept what :func:`bayesmf.diagnostics.diagnose` returns: a DataFrame or an object with one."""
    if isinstance(result, pd.DataFrame):
        return result
    for attr in ("table", "summary", "frame"):
        got = getattr(result, attr, None)
        if callable(got):
            got = got()
        if isinstance(got, pd.DataFrame):
            return got
    if isinstance(result, Mapping):
        return pd.DataFrame(result)
    raise TypeError(f"diagnose returned a {type(result).__name__}, expected a DataFrame")


def _convergence_section(name: str, fit: Any, test: Ratings | None) -> str:
    if not _is_bayesian(fit):
        return _note(
            f"{name} is a point estimate (no draws): there is no R-hat or ESS. "
            "Its convergence is the optimiser trace in the model section."
        )
    from bayesmf import diagnostics

    kwargs: dict[str, Any] = {}
    if test is not None and test.nnz and _accepts(diagnostics.diagnose, "probe_pairs"):
        idx = np.random.default_rng(0).choice(test.nnz, size=min(100, test.nnz), replace=False)
        kwargs["probe_pairs"] = pd.DataFrame({"user": test.user_ids[test.users[idx]],
                                              "item": test.item_ids[test.items[idx]]})
    df = _diagnose_frame(diagnostics.diagnose(fit, **kwargs))
    overall = df.attrs.get("verdict")
    shown = df.drop(columns=[c for c in ("kind", "group") if c in df.columns])
    if "note" in shown.columns and not shown["note"].astype(str).str.len().any():
        shown = shown.drop(columns="note")
    out = []
    if overall is not None:
        cls = {"ok": "ok", "fail": "bad"}.get(str(overall), "warn")
        out.append(f'<p>Overall verdict: <span class="{cls}">{_esc(overall)}</span> '
                   "(ok: R-hat &lt; 1.01 and bulk/tail ESS &gt; 400).</p>")
    if "probe_pairs" in kwargs:
        out.append("<p>pred_mean row: the worst R-hat and smallest ESS over the predicted latent "
                   "means of held-out (user|item) pairs; the note names the worst pair.</p>")
    out.append(_verdict_table(shown.set_index("quantity") if "quantity" in shown else shown))
    raw = getattr(diagnostics, "raw_factor_rhat", None)
    n_chains = int(fit.idata_.posterior.sizes.get("chain", 1))
    if raw is not None and n_chains > 1:
        try:
            rf = raw(fit)
        except Exception as exc:  # noqa: BLE001 - an illustration only
            out.append(_note(f"raw-factor R-hat not computed ({_describe(exc)})"))
        else:
            out.append("<p>For contrast, R-hat on the raw factor entries (not used: chains may "
                       "sit in differently rotated but equivalent copies of the posterior):</p>")
            out.append(_table(rf, index=False))
    return "".join(out)


def _accepts(func: Callable[..., Any], arg: str) -> bool:
    import inspect

    try:
        return arg in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def _plot_fn(name: str) -> Callable[..., Any]:
    """A figure function of :mod:`bayesmf.plots` (NotImplementedError when it is missing)."""
    from bayesmf import plots

    func = getattr(plots, name, None)
    if func is None:
        raise NotImplementedError(f"bayesmf.plots has no {name}")
    return func


#: per-fit figures: (title, needs draws, NUTS only, builder(fit, test) -> figure)
_PER_FIT_PLOTS: tuple[tuple[str, bool, bool, Callable[[Any, Ratings | None], Any]], ...] = (
    ("Trace of the identifiable hyperparameters", True, False,
     lambda fit, test: _plot_fn("plot_trace")(fit, kind="trace")),
    ("Rank plot of the identifiable hyperparameters", True, False,
     lambda fit, test: _plot_fn("plot_trace")(fit, kind="rank")),
    ("Energy plot (NUTS)", True, True, lambda fit, test: _plot_fn("plot_energy")(fit)),
    ("Posterior predictive check vs the observed rating histogram (training ratings)", False,
     False, lambda fit, test: _plot_fn("plot_ppc")(fit)),
    ("Predictive sd against the user's number of training ratings", False, False,
     lambda fit, test: _plot_fn("plot_sd_vs_count")(fit, test)),
)


def _plots_section(name: str, fit: Any, test: Ratings | None, S: _Sections) -> str:
    out = [f"<h3>{_esc(name)}</h3>"]
    for title, needs_draws, nuts_only, builder in _PER_FIT_PLOTS:
        label = f"{name} — {title}"
        if nuts_only and _method(fit) != "nuts":
            continue
        if needs_draws and not _is_bayesian(fit):
            out.append(_note(f"{label}: not available for a point fit (no draws)."))
            continue

        def build(builder: Callable[..., Any] = builder, label: str = label) -> str:
            return _img(builder(fit, test), label)

        out.append(S.guarded(label, build))
    return "".join(out)


def _comparison_section(fits: dict[str, Any], test: Ratings | None) -> str:
    from bayesmf.compare import compare

    if test is None:
        return _note("No held-out ratings were given (test=None): no comparison table.")
    result = compare(fits, test)
    df = result if isinstance(result, pd.DataFrame) else _diagnose_frame(result)
    return _table(df) + (
        "<p>RMSE/MAE of the predictive mean; log density = held-out log predictive density "
        "(log-mean-exp over draws); coverage = share of held-out ratings inside the 50%/90% "
        "intervals; ESS/s = effective draws per second of fitting. Point fits without intervals "
        "show — for the interval columns.</p>"
    )


def _loo_section(fits: dict[str, Any]) -> str:
    bayes = {k: f for k, f in fits.items() if _is_bayesian(f)}
    if len(bayes) < 2:
        return ""
    from bayesmf.compare import loo_compare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's Pareto-k and shape notices
        table = loo_compare(bayes, max_draws=200, max_obs=5000)
    n_obs = table.attrs.get("n_obs")
    return (
        "<h3>PSIS-LOO on the training ratings (arviz.compare)</h3>"
        + _table(table)
        + f"<p>Expected log pointwise predictive density by Pareto-smoothed leave-one-out on "
        f"{_esc(n_obs if n_obs is not None else 'the')} training ratings (higher is better); "
        "point fits have no draws and are left out.</p>"
    )


def _calibration_section(fits: dict[str, Any], test: Ratings | None) -> str:
    if test is None:
        return _note("No held-out ratings were given (test=None): calibration needs them.")
    fig = _plot_fn("plot_calibration")(fits, test)
    return _img(fig, "Nominal vs empirical coverage of central predictive intervals on the "
                     "held-out ratings; the diagonal is perfect calibration.")


def _pick_users(train: Ratings, users: Sequence[Any] | None, n: int) -> list[Any]:
    if users is not None:
        return list(users)
    counts = train.user_counts
    active = np.flatnonzero(counts > 0)
    if not len(active):
        return []
    order = active[np.argsort(counts[active], kind="stable")]
    picks = [order[len(order) // 2]] if n == 1 else [order[len(order) // 4], order[-1 - len(order) // 10]]
    return [train.user_ids[int(i)] for i in picks[:n]]


def _recommend_section(fits: dict[str, Any], train: Ratings, users: Sequence[Any] | None,
                       n: int, S: _Sections) -> str:
    from bayesmf.predict import recommend

    picks = _pick_users(train, users, 2)
    if not picks:
        return _note("No users with training ratings to recommend for.")
    out = ["<p>Top unseen items by predictive mean; lower/upper bound the central 90% "
           "predictive interval of the rating (observation noise included).</p>"]
    for user in picks:
        idx = int(train.user_index([user])[0])
        n_rated = int(train.user_counts[idx]) if idx >= 0 else 0
        out.append(f"<h3>User {_esc(user)} ({n_rated} training ratings)</h3>")
        for name, fit in fits.items():
            def build(fit: Any = fit, user: Any = user, name: str = name) -> str:
                recs = recommend(fit, user, n=n, prob=0.9)
                cols = [c for c in ("item", "title", "mean", "mean_clipped", "sd", "lower",
                                    "upper", "mode_level", "cold_item") if c in recs.columns]
                note = ""
                if "sd" in recs.columns and len(recs) and recs["sd"].isna().all():
                    note = _note(f"{name} gives no predictive uncertainty (a point estimate "
                                 "without a Laplace approximation): intervals are shown as —.")
                return _table(recs[cols] if cols else recs, index=False) + note

            out.append(f"<p><b>{_esc(name)}</b></p>" + S.guarded(f"{name} recommendations", build))
    return "".join(out)


# ------------------------------------------------------------------------------------ main API
def write_report(
    fits: Any,
    path: str | Path,
    test: Ratings | None = None,
    train: Ratings | None = None,
    title: str = "bayesmf diagnostic report",
    users: Sequence[Any] | None = None,
    n_recommend: int = 5,
) -> Path:
    """Write a self-contained HTML diagnostic report for one or more fits.

    Parameters
    ----------
    fits : fit, sequence of fits, or dict of name -> fit
        Fitted bayesmf estimators (MLE, MAP, SGD, Gibbs, NUTS, ADVI ...). A dict gives the
        names used in the report; otherwise fits are named by their method.
    path : str or Path
        Where to write the ``.html`` file (parent directories are created).
    test : Ratings, optional
        Held-out ratings sharing the fits' id maps (e.g. the test part of a split); enables the
        comparison table, calibration and predictive-sd plots.
    train : Ratings, optional
        Training ratings for the data summary; defaults to the first fit's ``ratings_``.
    title : str
        The report's title.
    users : sequence of raw user ids, optional
        Users for the example recommendations; default: two users of lower-quartile and high
        activity in the training set.
    n_recommend : int
        Recommendations shown per user and fit.

    Returns
    -------
    Path
        The path of the written file.

    Notes
    -----
    Sections a fit does not support (e.g. intervals for MLE, trace plots for a point fit) are
    replaced by a visible note. An unexpected error inside a section is shown in that section
    and raised as a :class:`ReportWarning`; the report is still written.

    Examples
    --------
    >>> from bayesmf.report import write_report
    >>> write_report({"MAP": map_fit, "Gibbs": gibbs_fit}, "report.html", test=test)  # doctest: +SKIP
    """
    fit_map = _normalise_fits(fits)
    n_recommend = check_positive_int(n_recommend, "n_recommend")
    if train is None:
        train = next(iter(fit_map.values())).ratings_
    if not isinstance(train, Ratings):
        raise BayesMFError(f"train must be a Ratings object, got {type(train).__name__}")
    if test is not None and not isinstance(test, Ratings):
        raise BayesMFError(f"test must be a Ratings object, got {type(test).__name__}")
    path = Path(path)
    S = _Sections()

    S.add("data", "Data summary", S.guarded("data summary", lambda: _data_section(train, test)))
    S.add("models", "Models and settings",
          "".join(S.guarded(f"{n} settings", lambda n=n, f=f: _model_section(n, f, S))
                  for n, f in fit_map.items()))
    S.add("convergence", "Convergence",
          "<p>R-hat and ESS are computed on identifiable quantities only (hyperparameters, noise "
          "sd, factor norms, log-likelihood, predicted means of probe pairs): the raw factors U "
          "and V are identified only up to rotation and sign, so their R-hat would compare "
          "different rotations across chains.</p>"
          + "".join(f"<h3>{_esc(n)}</h3>" + S.guarded(
              f"{n} convergence", lambda n=n, f=f: _convergence_section(n, f, test))
              for n, f in fit_map.items()))
    S.add("plots", "Diagnostic plots",
          "".join(_plots_section(n, f, test, S) for n, f in fit_map.items()))
    S.add("comparison", "Comparison on held-out ratings",
          S.guarded("comparison table", lambda: _comparison_section(fit_map, test))
          + S.guarded("LOO comparison", lambda: _loo_section(fit_map)))
    S.add("calibration", "Calibration",
          S.guarded("calibration plot", lambda: _calibration_section(fit_map, test)))
    S.add("recommendations", "Example recommendations with intervals",
          S.guarded("recommendations",
                    lambda: _recommend_section(fit_map, train, users, n_recommend, S)))

    text = _render(title, S, fit_map)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _render(title: str, S: _Sections, fits: dict[str, Any]) -> str:
    try:
        from importlib.metadata import version

        ver = version("bayesmf")
    except Exception:  # noqa: BLE001 - not installed
        ver = "unknown"
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<li><a href="#{a}">{_esc(t)}</a></li>' for a, t, _ in S.parts)
    body = "".join(f'<section id="{a}"><h2>{_esc(t)}</h2>{b}</section>' for a, t, b in S.parts)
    problems = ""
    if S.problems:
        problems = _note(f"{len(S.problems)} section(s) failed; see the red notes below.", "error")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body><main>"
        f"<h1>{_esc(title)}</h1>"
        f"<p>Fits: {_esc(', '.join(fits))}. Generated {_esc(stamp)} by bayesmf {_esc(ver)}.</p>"
        f"{problems}<nav><ul>{nav}</ul></nav>{body}"
        "<footer>Self-contained report: all figures are embedded PNG images.</footer>"
        "</main></body></html>\n"
    )


# -------------------------------------------------------------------------------------- CLI
def build_report_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the ``bayesmf report`` arguments to ``parser`` (or a new parser) and return it.

    Two ways to use it:

    * ``bayesmf report --data SOURCE --methods map,gibbs -o report.html``: split SOURCE at random
      (``--test-fraction``, ``--seed``), fit the methods on the training part and report them with
      the held-out part;
    * ``bayesmf report FIT_FILE [FIT_FILE ...] [--test SOURCE] -o report.html``: report saved
      fits (``bayesmf fit --out``); ``--test`` gives held-out ratings, matched to the fits' ids.
    """
    if parser is None:
        parser = argparse.ArgumentParser(
            prog="bayesmf report",
            description="Write a self-contained HTML diagnostic report.",
        )
    parser.add_argument("fits", nargs="*", metavar="FIT_FILE",
                        help="saved fits (bayesmf fit --out) to report on; if none, --methods "
                             "are fitted on a split of --data")
    parser.add_argument("--data", default="ml-latest-small",
                        help="dataset source to split and fit when no FIT_FILE is given "
                             "(default: ml-latest-small)")
    parser.add_argument("--methods", default="map,mle",
                        help="comma-separated methods fitted when no FIT_FILE is given "
                             "(e.g. mle,map,sgd,gibbs,advi,nuts; default: map,mle)")
    parser.add_argument("--rank", type=int, default=10, help="rank of the fitted methods")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="held-out share of the random split (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the fits")
    parser.add_argument("--test", default=None, metavar="SOURCE",
                        help="held-out ratings for saved fits (dataset source or CSV); ratings "
                             "of users or items unknown to the fits are dropped")
    parser.add_argument("--title", default="bayesmf diagnostic report")
    parser.add_argument("-o", "--out", default="bayesmf-report.html", help="output HTML path")
    return parser


def report_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bayesmf report``; returns the exit status."""
    args = build_report_parser().parse_args(argv)
    return run_report(args)


def run_report(args: argparse.Namespace) -> int:
    """Run ``bayesmf report`` for parsed arguments (used by :mod:`bayesmf.cli`)."""
    # the CLI's loader: dataset names, MovieLens directories, CSVs with guessed column names
    from bayesmf.cli import _load as load

    fits: dict[str, Any] = {}
    if args.fits:
        from bayesmf.io import load as load_fit

        for file in args.fits:
            name, k = Path(file).stem, 2
            while name in fits:
                name, k = f"{Path(file).stem}-{k}", k + 1
            fits[name] = load_fit(file)
        train = next(iter(fits.values())).ratings_
        test = None if args.test is None else align_ratings(load(args.test), train)
    else:
        from bayesmf.cli import make_estimator
        from bayesmf.split import random_split

        ratings = load(args.data)
        train, test = random_split(ratings, test_size=args.test_fraction,
                                   random_state=args.seed)
        for method in (m.strip().lower() for m in args.methods.split(",") if m.strip()):
            est = make_estimator(method, rank=args.rank, seed=args.seed)
            if "progress" in est.get_params():
                est.set_params(progress=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # e.g. MLE's underdetermined rows
                fits[method.upper()] = est.fit(train)
    out = write_report(fits, args.out, test=test, train=train, title=args.title)
    print(json.dumps({"report": str(out)}))
    return 0


def align_ratings(ratings: Ratings, train: Ratings) -> Ratings:
    """Re-index ``ratings`` into ``train``'s id maps, dropping unknown users and items.

    Raises
    ------
    BayesMFError
        When no rating of ``ratings`` has both a known user and a known item.
    """
    u = train.user_index(ratings.user_ids[ratings.users])
    i = train.item_index(ratings.item_ids[ratings.items])
    keep = (u >= 0) & (i >= 0)
    if not keep.any():
        raise BayesMFError("none of the held-out ratings has a user and an item the fits know")
    return Ratings(u[keep], i[keep], ratings.values[keep], train.user_ids, train.item_ids,
                   scale=train.scale, item_info=train.item_info, name=f"{ratings.name} (held out)")
