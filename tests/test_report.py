"""Tests of the self-contained HTML report (bayesmf.report)."""

from __future__ import annotations

import base64
import io
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bayesmf import report as report_mod
from bayesmf.datasets import make_synthetic
from bayesmf.exceptions import BayesMFError
from bayesmf.models.gibbs import GibbsPMF
from bayesmf.models.pmf import PMF
from bayesmf.report import ReportWarning, write_report

# ArviZ's trace plots trigger a matplotlib 3.11 deprecation notice (not ours)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Passing a dict or None as alias_mapping:DeprecationWarning"
)


class _Collector(HTMLParser):
    """Collect tags with their attributes and the visible text of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> _Collector:
    c = _Collector()
    c.feed(path.read_text(encoding="utf-8"))
    return c


@pytest.fixture(scope="module")
def split():
    ratings, _ = make_synthetic(n_users=50, n_items=30, rank=2, density=0.35, random_state=3)
    mask = np.random.default_rng(1).random(ratings.nnz) < 0.8
    return ratings.take(mask), ratings.take(~mask)


@pytest.fixture(scope="module")
def fits(split):
    train, _ = split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLE's underdetermined rows
        return {
            "MAP": PMF(rank=2, random_state=0, max_iter=15).fit(train),
            "MLE <b>&": PMF(rank=2, method="mle", random_state=0, max_iter=15).fit(train),
            "Gibbs": GibbsPMF(rank=2, chains=2, draws=60, tune=30, thin=1, random_state=0,
                              progress=False).fit(train),
        }


#: a valid 1 x 1 PNG: the fast tests replace figure rendering (seconds per figure) by it
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _fast_img(fig_like, caption, width=None):
    report_mod._close(report_mod._as_figure(fig_like))
    data = base64.b64encode(TINY_PNG).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{report_mod._esc(caption)}">'
            f"<figcaption>{report_mod._esc(caption)}</figcaption></figure>")


@pytest.fixture(scope="module")
def written(fits, split, tmp_path_factory):
    """The report of MAP, MLE and Gibbs, built for real except that figures are not rendered."""
    _, test = split
    path = tmp_path_factory.mktemp("rep") / "sub" / "report.html"
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as record:
        mp.setattr(report_mod, "_img", _fast_img)
        warnings.simplefilter("always")
        out = write_report(fits, path, test=test, title="Report <i>x</i> & y")
    return out, [w for w in record if issubclass(w.category, ReportWarning)]


@pytest.fixture
def fast_figures(monkeypatch):
    monkeypatch.setattr(report_mod, "_img", _fast_img)


def test_report_is_one_self_contained_file(written):
    path, _ = written
    assert path.exists() and path.suffix == ".html"
    page = parse(path)
    srcs = [a.get("src") for t, a in page.tags if "src" in a]
    hrefs = [a.get("href") for t, a in page.tags if "href" in a]
    assert srcs, "the report has no images"
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    # links are in-page anchors only; no stylesheet or script is loaded from anywhere
    assert all(h.startswith("#") for h in hrefs)
    assert not any(t == "script" for t, _ in page.tags)
    assert not any(t == "link" for t, _ in page.tags)


@pytest.mark.slow
def test_embedded_images_are_valid_pngs(fits, split, tmp_path):
    """Real rendering: every figure of every section is a decodable PNG of a sensible size."""
    _, test = split
    path = write_report(fits, tmp_path / "real.html", test=test)
    page = parse(path)
    sizes, alts = [], []
    for tag, attrs in page.tags:
        if tag == "img":
            raw = base64.b64decode(attrs["src"].split(",", 1)[1], validate=True)
            with Image.open(io.BytesIO(raw)) as im:
                im.load()
                assert im.format == "PNG"
                sizes.append(im.size)
            alts.append(attrs["alt"])
    assert all(w > 50 and h > 50 for w, h in sizes)
    # data summary (2), optimiser traces (MAP, MLE), MAP: PPC + sd; Gibbs: trace, rank, PPC,
    # sd; calibration
    assert len(sizes) == 2 + 2 + 2 + 4 + 1
    assert any("Gibbs — Trace" in a for a in alts) and any("Calibration" in a or "coverage" in a
                                                           for a in alts)


def test_text_is_escaped(written):
    path, _ = written
    text = path.read_text(encoding="utf-8")
    assert "<i>x</i>" not in text and "Report &lt;i&gt;x&lt;/i&gt; &amp; y" in text
    assert "MLE <b>&" not in text and "MLE &lt;b&gt;&amp;" in text
    assert not any(t == "i" for t, _ in parse(path).tags)


def test_sections_and_data_summary_numbers(written, split):
    path, _ = written
    train, test = split
    text = path.read_text(encoding="utf-8")
    for anchor in ("data", "models", "convergence", "plots", "comparison", "calibration",
                   "recommendations"):
        assert f'<section id="{anchor}">' in text
    visible = " ".join(parse(path).text)
    assert f"{train.nnz:,}" in visible and f"{test.nnz:,}" in visible
    # the data summary table's density cell for the training set
    assert f"{train.density:.4g}" in visible


def test_point_fit_sections_show_notes_not_errors(written):
    path, warned = written
    visible = " ".join(parse(path).text)
    # a point fit has no draws: a note says so instead of R-hat / trace plots
    assert "is a point estimate (no draws)" in visible
    assert "not available for a point fit (no draws)" in visible
    # MLE has no predictive distribution: its PPC and intervals become notes, not failures
    assert re.search(r"MLE <b>& — Posterior predictive check[^.]*: not available", visible)
    assert "MLE <b>& gives no predictive uncertainty" in visible
    # the model section shows the constructor arguments and the MLE's underdetermined count
    assert "lambda_u" in visible and "underdetermined items" in visible


def test_bayesian_sections(written, fits, split):
    pytest.importorskip("bayesmf.diagnostics")
    pytest.importorskip("bayesmf.compare")
    from bayesmf.compare import compare

    path, warned = written
    assert warned == []  # every section built without an unexpected error
    text = path.read_text(encoding="utf-8")
    conv = text[text.index('<section id="convergence">'):text.index('<section id="plots">')]
    # the Gibbs convergence table: identifiable quantities with coloured verdicts, held-out
    # probe pairs, and the raw-factor R-hat shown only for contrast
    assert "Overall verdict" in conv and "sigma" in conv and "norm_U" in conv
    assert re.search(r'<td class="(ok|warn|bad)">(ok|warn|fail)</td>', conv)
    assert "pred_mean" in conv and "max_r_hat" in conv
    # the comparison table carries compare()'s numbers for every fit
    _, test = split
    table = compare(fits, test)
    comp = text[text.index('<section id="comparison">'):text.index('<section id="calibration">')]
    for name in ("MAP", "Gibbs"):
        assert report_mod._format_value(float(table.loc[name, "rmse"])) in comp


def test_failing_section_is_reported_and_report_still_written(fits, split, tmp_path, monkeypatch,
                                                             fast_figures):
    _, test = split

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(report_mod, "_comparison_section", boom)
    with pytest.warns(ReportWarning, match="comparison table: failed"):
        path = write_report(fits["MAP"], tmp_path / "r.html", test=test)
    text = path.read_text(encoding="utf-8")
    assert 'class="error">comparison table: failed with RuntimeError: simulated failure' in text
    assert "1 section(s) failed" in text
    # the other sections were still built
    assert text.count("data:image/png;base64,") >= 3 and '<section id="recommendations">' in text


def test_without_test_set_the_held_out_sections_say_so(fits, tmp_path, fast_figures):
    path = write_report([fits["MAP"], fits["MAP"]], tmp_path / "r.html")
    visible = " ".join(parse(path).text)
    assert "No held-out ratings were given" in visible
    # two fits of the same method get distinct names
    assert "MAP-2" in visible


def test_bad_input_is_a_clear_error(fits, split, tmp_path):
    _, test = split
    with pytest.raises(BayesMFError, match="not fitted"):
        write_report(PMF(rank=2), tmp_path / "r.html")
    with pytest.raises(BayesMFError, match="at least one fit"):
        write_report({}, tmp_path / "r.html")
    with pytest.raises(BayesMFError, match="test must be a Ratings"):
        write_report(fits["MAP"], tmp_path / "r.html", test=test.values)


def test_pick_users_is_deterministic_and_uses_raw_ids(split):
    train, _ = split
    picked = report_mod._pick_users(train, None, 2)
    assert picked == report_mod._pick_users(train, None, 2)
    counts = train.user_counts[train.user_index(picked)]
    assert len(picked) == 2 and counts[0] <= counts[1] and (counts > 0).all()
    assert report_mod._pick_users(train, ["a"], 2) == ["a"]


def test_as_figure_accepts_axes_and_arrays():
    from matplotlib.figure import Figure

    fig = Figure()
    axes = fig.subplots(1, 2)
    assert report_mod._as_figure(fig) is fig
    assert report_mod._as_figure(axes[0]) is fig
    assert report_mod._as_figure(axes) is fig
    with pytest.raises(TypeError):
        report_mod._as_figure("nope")


def test_verdict_cells_are_coloured():
    import pandas as pd

    html_text = report_mod._verdict_table(
        pd.DataFrame({"quantity": ["sigma", "mu"], "verdict": ["ok", "bad"]}))
    assert '<td class="ok">ok</td>' in html_text and '<td class="bad">bad</td>' in html_text


def test_report_main_fits_and_writes(tmp_path, capsys, fast_figures):
    out = tmp_path / "cli.html"
    rc = report_mod.report_main(["--data", "synthetic", "--methods", "map", "--rank", "2",
                                 "-o", str(out)])
    assert rc == 0 and out.exists()
    assert re.search(r'"report": ".*cli\.html"', capsys.readouterr().out)


def test_align_ratings_maps_raw_ids_and_drops_unknown(split):
    import pandas as pd

    from bayesmf.data import Ratings

    train, test = split
    df = test.to_frame().head(5)
    df = pd.concat([df, pd.DataFrame({"user": ["nobody"], "item": [df["item"].iloc[0]],
                                      "rating": [3.0]})], ignore_index=True)
    other = Ratings.from_frame(df)  # its own id maps, in another order
    aligned = report_mod.align_ratings(other, train)
    assert aligned.nnz == 5 and aligned.user_ids.equals(train.user_ids)
    back = aligned.to_frame()
    pd.testing.assert_frame_equal(back, test.to_frame().head(5), check_dtype=False)
    none = Ratings.from_frame(pd.DataFrame({"user": ["x"], "item": ["y"], "rating": [1.0]}))
    with pytest.raises(BayesMFError, match="none of the held-out ratings"):
        report_mod.align_ratings(none, train)


def test_report_main_on_a_saved_fit(fits, split, tmp_path, capsys, fast_figures):
    pytest.importorskip("bayesmf.io")
    from bayesmf.io import save

    _, test = split
    model = tmp_path / "map.nc"
    save(fits["MAP"], model)
    csv = tmp_path / "test.csv"
    test.to_frame().to_csv(csv, index=False)
    out = tmp_path / "saved.html"
    assert report_mod.report_main([str(model), "--test", str(csv), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    # the saved fit is named after its file; held-out sections are filled from --test
    assert "<h3>map</h3>" in text and "No held-out ratings" not in text
    visible = " ".join(parse(out).text)
    assert f"{test.nnz:,}" in visible
