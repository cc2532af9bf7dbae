"""Small Sphinx directives for the bayesmf docs: figures that may not exist yet, live CLI help.

``analysis-figures``
    Show what an analysis script wrote under ``docs/_static/analyses/<name>/`` (``--docs``):
    its ``results.json`` (run facts, the ``summary`` and every table stored as a list of
    records), any ``*.csv`` table, and every PNG figure. When nothing is there the page says how
    to produce it instead of failing the build, so the docs never show a figure or a number
    that was not produced by the analysis code. A ``--quick`` run is labelled as such.

``command-output``
    Run a ``bayesmf`` command (typically ``--help``) during the build and show its output, so the
    CLI page is always the CLI's real text.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

ANALYSES_DIR = Path("_static") / "analyses"
MAX_TABLE_ROWS = 60


def _caption(png: Path) -> str:
    """A caption for ``png``: the sidecar ``.txt`` file if any, else the file name made readable."""
    sidecar = png.with_suffix(".txt")
    if sidecar.is_file():
        text = " ".join(sidecar.read_text(encoding="utf-8").split())
        if text:
            return text
    return png.stem.replace("_", " ").replace("-", " ").strip().capitalize()


def find_analysis_files(srcdir: Path, name: str, suffix: str) -> list[Path]:
    """Files with ``suffix`` belonging to analysis ``name``, sorted, relative to ``srcdir``."""
    base = srcdir / ANALYSES_DIR
    found: set[Path] = set()
    folder = base / name
    if folder.is_dir():
        found.update(p for p in folder.rglob(f"*{suffix}") if p.is_file())
    found.update(p for p in base.glob(f"{name}*{suffix}") if p.is_file())
    return sorted(p.relative_to(srcdir) for p in found)


class AnalysisFigures(SphinxDirective):
    """``.. analysis-figures:: <name>`` with an optional ``:command:`` that reproduces them."""

    required_arguments = 1
    optional_arguments = 0
    has_content = False
    option_spec = {"command": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        srcdir = Path(self.env.srcdir)
        command = self.options.get("command", f"python analyses/{name}.py --docs")
        # rebuild this page when files appear or disappear
        self.env.note_dependency(str(srcdir / ANALYSES_DIR))
        pngs = find_analysis_files(srcdir, name, ".png")
        tables = find_analysis_files(srcdir, name, ".csv")
        results = find_analysis_files(srcdir, name, ".json")
        lines: list[str] = []
        if not pngs and not tables and not results:
            lines += [
                ".. note::",
                "",
                f"   The results of ``{name}`` are not part of this build. Produce them with",
                "",
                "   .. code-block:: bash",
                "",
                f"      {command}",
                "",
                "   and build the docs again: every figure and table the script writes under",
                f"   ``docs/_static/analyses/{name}/`` then appears here.",
                "",
            ]
        for result in results:
            lines += self._json_lines(srcdir / result, command, tables=False)
        for png in pngs:
            self.env.note_dependency(str(srcdir / png))
            lines += [
                f".. figure:: /{png.as_posix()}",
                "   :class: analysis-figure",
                "",
                f"   {_caption(srcdir / png)}",
                "",
            ]
        for result in results:
            lines += self._json_lines(srcdir / result, command, tables=True)
        for table in tables:
            lines += self._table_lines(srcdir / table)
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=f"<analysis-figures {name}>"), 0, container)
        return container.children

    def _json_lines(self, path: Path, command: str, tables: bool) -> list[str]:
        """The run facts (``tables=False``) or the result tables (``tables=True``) of a JSON."""
        self.env.note_dependency(str(path))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("cannot read %s: %s", path, exc, location=self.get_location())
            return []
        if not isinstance(data, dict):
            return []
        if tables:
            return self._json_tables(data)
        lines: list[str] = []
        facts = []
        for key in ("data", "seed", "elapsed_s"):
            if key in data and not isinstance(data[key], (dict, list)):
                facts.append(f"{key} = ``{_fmt(data[key])}``")
        if isinstance(data.get("data"), dict):
            facts += [f"{k} = ``{_fmt(v)}``" for k, v in data["data"].items()
                      if not isinstance(v, (dict, list))]
        env = data.get("environment")
        if isinstance(env, dict):
            facts.append(_rst_escape(", ".join(f"{k} {v}" for k, v in env.items())))
        lines += [f"*Results read from* ``{path.name}``: " + "; ".join(facts) + ".", ""]
        if data.get("quick"):
            lines += [
                ".. warning::",
                "",
                "   These results come from a ``--quick`` run (subsampled data, short grids),",
                "   meant for smoke tests. Run the script without ``--quick`` for real numbers:",
                "",
                f"   ``{command.replace(' --quick', '')}``",
                "",
            ]
        if isinstance(data.get("settings"), dict):
            settings = ", ".join(f"{k} = ``{_fmt(v)}``" for k, v in data["settings"].items())
            lines += [f"*Settings*: {settings}.", ""]
        return lines

    @staticmethod
    def _json_tables(data: dict) -> list[str]:
        lines: list[str] = []
        if isinstance(data.get("summary"), dict):
            rows = [{"quantity": k, "value": v} for k, v in data["summary"].items()
                    if not isinstance(v, (dict, list))]
            lines += _records_table("summary", rows)
        skip = {"summary", "settings", "environment", "figures", "data", "script"}
        for key, value in data.items():
            if key in skip:
                continue
            if _is_records(value):
                lines += _records_table(key.replace("_", " "), value)
            elif isinstance(value, dict):
                for sub, inner in value.items():
                    if _is_records(inner):
                        lines += _records_table(f"{key.replace('_', ' ')}: {sub}", inner)
        return lines

    def _table_lines(self, path: Path) -> list[str]:
        self.env.note_dependency(str(path))
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if len(rows) < 2:
            return []
        header, body = rows[0], rows[1:]
        truncated = len(body) > MAX_TABLE_ROWS
        body = body[:MAX_TABLE_ROWS]

        def cell(text: str) -> str:
            return _rst_escape(text) or " "

        lines = [
            f".. list-table:: {_rst_escape(path.stem.replace('_', ' '))} (``{path.name}``)",
            "   :header-rows: 1",
            "",
        ]
        for row in [header, *body]:
            row = row + [""] * (len(header) - len(row))
            lines.append(f"   * - {cell(row[0])}")
            lines += [f"     - {cell(c)}" for c in row[1 : len(header)]]
        lines.append("")
        if truncated:
            lines += [f"*(first {MAX_TABLE_ROWS} rows of {path.name})*", ""]
        return lines


def _fmt(value: object) -> str:
    """A table cell: floats to 4 significant digits, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value).replace("\n", " ").replace("`", "'")


def _is_records(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(row, dict) for row in value)
        and all(not isinstance(v, (dict, list)) for row in value for v in row.values())
    )


def _rst_escape(text: str) -> str:
    """Escape inline markup so a table cell shows exactly ``text``."""
    text = " ".join(str(text).split())
    for ch in "\\*`|_[]":
        text = text.replace(ch, "\\" + ch)
    if text and text[0] in "-+#:":
        text = "\\" + text
    return text


def _records_table(title: str, rows: list[dict]) -> list[str]:
    """A ``list-table`` of a list of flat dicts (a DataFrame stored as records)."""
    if not rows:
        return []
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    shown = rows[:MAX_TABLE_ROWS]
    lines = [f".. list-table:: {_rst_escape(title)}", "   :header-rows: 1", ""]
    lines.append(f"   * - {_rst_escape(header[0])}")
    lines += [f"     - {_rst_escape(h)}" for h in header[1:]]
    for row in shown:
        cells = [_rst_escape(_fmt(row.get(h))) or " " for h in header]
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {c}" for c in cells[1:]]
    lines.append("")
    if len(rows) > len(shown):
        lines += [f"*(first {len(shown)} of {len(rows)} rows)*", ""]
    return lines


class CommandOutput(SphinxDirective):
    """``.. command-output:: bayesmf fit --help``: run it at build time and show the output."""

    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {"timeout": directives.positive_int}

    def run(self) -> list[nodes.Node]:
        argv = shlex.split(self.arguments[0])
        if not argv or argv[0] != "bayesmf":
            raise self.error("command-output only runs 'bayesmf ...' commands")
        if importlib.util.find_spec("bayesmf.cli") is None:
            para = nodes.paragraph(
                text=f"(The output of `{self.arguments[0]}` appears here once bayesmf.cli exists.)"
            )
            return [nodes.note("", para)]
        code = "import sys; from bayesmf.cli import main; sys.exit(main(sys.argv[1:]))"
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code, *argv[1:]],
                capture_output=True,
                text=True,
                timeout=self.options.get("timeout", 120),
                env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1"},
            )
        except subprocess.TimeoutExpired:
            logger.warning("command %r timed out", self.arguments[0], location=self.get_location())
            return []
        if proc.returncode != 0:
            logger.warning(
                "command %r exited with %d: %s",
                self.arguments[0],
                proc.returncode,
                proc.stderr.strip()[-2000:],
                location=self.get_location(),
            )
        text = f"$ {self.arguments[0]}\n{proc.stdout.rstrip()}"
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app: Sphinx) -> dict:
    app.add_directive("analysis-figures", AnalysisFigures)
    app.add_directive("command-output", CommandOutput)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
