"""The documentation: Sphinx builds (HTML with warnings as errors, and the executed examples),
the key pages, and the small directives in ``docs/_ext/bayesmf_docs.py``.

The two full builds take about a minute or more each on a small machine, so they carry the
``slow`` marker (``python -m pytest -m slow tests/test_docs.py``); CI may instead run the same
commands as a separate step::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -b doctest docs docs/_build/doctest

They build from a copy of ``docs/`` in a temporary directory, so they do not race with a build
in the working tree. The fast tests below check the directives and the API module list.
"""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

sphinx = pytest.importorskip("sphinx", reason="the docs extras are not installed")
pytest.importorskip("pydata_sphinx_theme", reason="the docs extras are not installed")
pytest.importorskip("numpydoc", reason="the docs extras are not installed")
pytest.importorskip("myst_parser", reason="the docs extras are not installed")

sys.path.insert(0, str(DOCS / "_ext"))
import bayesmf_docs  # noqa: E402

KEY_PAGES = [
    "index",
    "getting_started",
    "model",
    "inference",
    "diagnostics",
    "cold_start",
    "cli",
    "analyses",
    "conventions",
    "api/index",
]


def _api_modules() -> list[str]:
    """``API_MODULES`` from docs/conf.py, read without executing conf.py."""
    tree = ast.parse((DOCS / "conf.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "API_MODULES" for t in targets):
                return [name for name, _ in ast.literal_eval(node.value)]
    raise AssertionError("API_MODULES not found in docs/conf.py")


def _module_file(name: str) -> Path:
    rel = Path(*name.split("."))
    return ROOT / rel.with_suffix(".py")


def _copy_docs(dest: Path) -> Path:
    """Copy docs/ (and the repository files it includes) under ``dest``; return the copy."""
    src = dest / "docs"
    shutil.copytree(
        DOCS, src, ignore=shutil.ignore_patterns("_build", "generated", "__pycache__")
    )
    shutil.copy(ROOT / "CONVENTIONS.md", dest / "CONVENTIONS.md")  # docs/conventions.md
    return src


def _sphinx(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


# ---------------------------------------------------------------------------- fast checks
def test_every_public_module_file_is_in_the_api_reference():
    listed = set(_api_modules())
    public = {
        "bayesmf." + ".".join(p.relative_to(ROOT / "bayesmf").with_suffix("").parts)
        for p in list((ROOT / "bayesmf").glob("*.py")) + list((ROOT / "bayesmf/models").glob("*.py"))
        if not p.name.startswith("_")
    }
    internal = {"bayesmf.progress", "bayesmf.models.idata", "bayesmf.models.gibbs_chain"}
    missing = sorted(public - listed - internal)
    assert not missing, f"add these modules to API_MODULES in docs/conf.py: {missing}"


def test_rst_escape_keeps_cells_literal():
    from docutils.core import publish_doctree

    assert bayesmf_docs._rst_escape("rmse_map") == "rmse\\_map"
    assert bayesmf_docs._rst_escape("-1.5") == "\\-1.5"
    assert bayesmf_docs._rst_escape("") == ""
    # a negative number in a list-table cell must stay a number, not become a nested list
    lines = bayesmf_docs._records_table("t", [{"a_b": -1.25, "c": "x*y"}])
    tree = publish_doctree("\n".join(lines), settings_overrides={"report_level": 5})
    text = tree.astext()
    assert "-1.25" in text and "x*y" in text and "a_b" in text
    assert not list(tree.findall(lambda n: n.tagname == "bullet_list"))


def test_fmt_rounds_floats_and_blanks_missing():
    assert bayesmf_docs._fmt(0.123456) == "0.1235"
    assert bayesmf_docs._fmt(None) == ""
    assert bayesmf_docs._fmt(True) == "True"
    assert bayesmf_docs._fmt([1.0, 0.5]) == "[1, 0.5]"


def test_records_table_shape_and_truncation():
    rows = [{"rank": r, "rmse": 1.0 / r} for r in range(1, bayesmf_docs.MAX_TABLE_ROWS + 6)]
    lines = bayesmf_docs._records_table("sweep", rows)
    assert sum(1 for line in lines if line.startswith("   * - ")) == bayesmf_docs.MAX_TABLE_ROWS + 1
    assert any("first 60 of 65 rows" in line for line in lines)
    assert bayesmf_docs._is_records(rows)
    assert not bayesmf_docs._is_records([{"a": [1, 2]}])
    assert not bayesmf_docs._is_records([])


def test_find_analysis_files(tmp_path):
    base = tmp_path / "_static" / "analyses"
    (base / "map_vs_mle").mkdir(parents=True)
    (base / "map_vs_mle" / "b.png").write_bytes(b"\x89PNG")
    (base / "map_vs_mle" / "a.png").write_bytes(b"\x89PNG")
    (base / "map_vs_mle_extra.png").write_bytes(b"\x89PNG")
    (base / "sbc").mkdir()
    (base / "sbc" / "c.png").write_bytes(b"\x89PNG")
    found = bayesmf_docs.find_analysis_files(tmp_path, "map_vs_mle", ".png")
    assert [p.as_posix() for p in found] == [
        "_static/analyses/map_vs_mle/a.png",
        "_static/analyses/map_vs_mle/b.png",
        "_static/analyses/map_vs_mle_extra.png",
    ]
    assert bayesmf_docs.find_analysis_files(tmp_path, "als_vs_sgd", ".png") == []


def test_caption_from_sidecar_or_name(tmp_path):
    png = tmp_path / "rmse_vs_rank.png"
    assert bayesmf_docs._caption(png) == "Rmse vs rank"
    png.with_suffix(".txt").write_text("Test RMSE against the rank.\n")
    assert bayesmf_docs._caption(png) == "Test RMSE against the rank."


#: docutils messages that only mean "this is a Sphinx role/directive", which plain docutils lacks
_SPHINX_ONLY = (
    "Unknown interpreted text role",
    "Unknown directive type",
    "No role entry",
    "No directive entry",
    'Trying "',
)


def _public_docstrings(path: Path) -> Iterator[tuple[str, str]]:
    """(name, docstring) of a module, its public classes, functions and methods (no import)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    if doc:
        yield "<module>", doc
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            if doc:
                yield node.name, doc
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, ast.FunctionDef) and not sub.name.startswith("_"):
                        doc = ast.get_docstring(sub)
                        if doc:
                            yield f"{node.name}.{sub.name}", doc


@pytest.mark.parametrize("module", _api_modules())
def test_docstrings_render_without_rst_errors(module):
    """The API pages' docstrings, through numpydoc, parse as reStructuredText without errors.

    This is what fails the ``-W`` HTML build when a docstring has e.g. ``|x|`` in running text
    or a bad indentation; checked here per module, fast, without importing the module.
    """
    from docutils.core import publish_doctree
    from numpydoc.docscrape_sphinx import SphinxDocString

    path = _module_file(module)
    if not path.is_file():
        pytest.skip(f"{module} not written")
    problems = []
    for name, doc in _public_docstrings(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpydoc's "unknown section" notes
            rst = str(SphinxDocString(doc, config={"show_class_members": False}))
        stream = io.StringIO()
        publish_doctree(
            rst, settings_overrides={"warning_stream": stream, "report_level": 2, "halt_level": 5}
        )
        problems += [
            f"{path.relative_to(ROOT)} ({name}): {line}"
            for line in stream.getvalue().splitlines()
            if line.startswith("<string>") and not any(s in line for s in _SPHINX_ONLY)
        ]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------- full builds
@pytest.fixture(scope="module")
def html_build(tmp_path_factory):
    work = tmp_path_factory.mktemp("docs_html")
    src = _copy_docs(work)
    # one analysis with results, to check the figure/table path end to end
    demo = src / "_static" / "analyses" / "zz_docs_test"
    demo.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([1, 7], [0.95, -0.5])
    fig.savefig(demo / "zz_docs_test_figure.png")
    plt.close(fig)
    (demo / "results.json").write_text(
        json.dumps(
            {
                "script": "zz_docs_test",
                "seed": 3,
                "quick": True,
                "summary": {"best_rank": 7},
                "rank_sweep": [{"rank": 1, "test_rmse": 0.95}, {"rank": 7, "test_rmse": -0.5}],
            }
        )
    )
    (src / "zz_docs_test.md").write_text(
        "---\norphan: true\n---\n# Test\n\n```{eval-rst}\n.. analysis-figures:: zz_docs_test\n```\n\n"
        "```{eval-rst}\n.. analysis-figures:: not_run_yet\n```\n"
    )
    out = work / "html"
    proc = _sphinx("-W", "--keep-going", "-b", "html", str(src), str(out))
    return proc, out


@pytest.mark.slow
def test_html_build_has_no_warnings(html_build):
    proc, _ = html_build
    assert proc.returncode == 0, proc.stdout[-4000:] + "\n" + proc.stderr[-8000:]


@pytest.mark.slow
def test_key_pages_exist(html_build):
    _, out = html_build
    for page in KEY_PAGES:
        assert (out / f"{page}.html").is_file(), page
    model = (out / "model.html").read_text(encoding="utf-8")
    for phrase in ("ridge regression", "Normal–Wishart", "minimum-norm", "rotation"):
        assert phrase in model, phrase


@pytest.mark.slow
def test_api_pages_for_every_existing_module(html_build):
    _, out = html_build
    for name in _api_modules():
        if _module_file(name).is_file():
            assert (out / "api" / "generated" / f"{name}.html").is_file(), name


@pytest.mark.slow
def test_cli_page_shows_the_real_help(html_build):
    _, out = html_build
    if not _module_file("bayesmf.cli").is_file():
        pytest.skip("bayesmf.cli not written")
    cli = (out / "cli.html").read_text(encoding="utf-8")
    assert "usage: bayesmf demo" in cli
    assert "usage: bayesmf evaluate" in cli


@pytest.mark.slow
def test_analysis_results_render(html_build):
    _, out = html_build
    page = (out / "zz_docs_test.html").read_text(encoding="utf-8")
    assert "_images/zz_docs_test_figure.png" in page  # the figure is included
    assert (out / "_images" / "zz_docs_test_figure.png").is_file()
    assert "--quick" in page  # a quick run is labelled
    assert "0.95" in page and "-0.5" in page and "best_rank" in page
    assert "not part of this build" in page  # the missing analysis says how to produce it


@pytest.mark.slow
def test_doctest_build_passes(tmp_path):
    src = _copy_docs(tmp_path)
    out = tmp_path / "doctest"
    proc = _sphinx("-b", "doctest", str(src), str(out))
    report = (out / "output.txt").read_text(encoding="utf-8") if (out / "output.txt").exists() else ""
    assert proc.returncode == 0, report[-8000:] + proc.stderr[-4000:]
    assert "0 failures in tests" in report
    n_tests = int(report.split("Doctest summary")[1].split("tests")[0].split()[-1])
    assert n_tests >= 50  # the narrative pages really are executed
