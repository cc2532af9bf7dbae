"""Sphinx configuration for the bayesmf documentation.

Build the site with warnings as errors and run the executable examples::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -b doctest docs docs/_build/doctest

The API reference (``api/index.rst``) is written here at configuration time from the list of
public modules in :data:`API_MODULES`: a module that cannot be imported is listed as missing on
the page instead of breaking the build, so the reference always matches the code that exists.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import os
import shutil
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))

# Headless plotting for anything executed during the build.
os.environ.setdefault("MPLBACKEND", "Agg")

import bayesmf  # noqa: E402

# -- project -------------------------------------------------------------------------------
project = "bayesmf"
author = "the bayesmf developers"
copyright = "2026, the bayesmf developers"
version = release = getattr(bayesmf, "__version__", "0.1.0")

# -- extensions ----------------------------------------------------------------------------
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "bayesmf_docs",
]

# MathJax from the local package when it is installed (the pages then render maths offline),
# otherwise from its CDN.
if importlib.util.find_spec("sphinx-mathjax-offline") is not None:
    extensions.append("sphinx-mathjax-offline")

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc / autosummary / numpydoc --------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # numpydoc's Parameters section already gives the types
autodoc_default_options = {"member-order": "bysource"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False

# -- doctest -------------------------------------------------------------------------------
# Only the explicit ``doctest`` blocks of the narrative pages are run by ``-b doctest``. The
# ``>>>`` examples inside module docstrings use their module's namespace and are not run here
# (``python -m pytest --doctest-modules bayesmf`` runs them).
doctest_test_doctest_blocks = ""
doctest_default_flags = (
    doctest.ELLIPSIS
    | doctest.NORMALIZE_WHITESPACE
    | doctest.IGNORE_EXCEPTION_DETAIL
    | doctest.DONT_ACCEPT_TRUE_FOR_1
)
doctest_global_setup = """
import os
os.environ.setdefault("MPLBACKEND", "Agg")
import numpy as np
import pandas as pd
np.set_printoptions(precision=4, suppress=True)
pd.set_option("display.width", 100)
"""

# -- figures executed during the build (matplotlib's plot directive) ------------------------
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 90)]
plot_rcparams = {"figure.max_open_warning": 0}
plot_pre_code = "import numpy as np\nimport matplotlib.pyplot as plt\n"

# -- HTML ----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"bayesmf {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
# no left sidebar on the narrative pages (the top bar lists them): wider maths
NARRATIVE_PAGES = [
    "index", "getting_started", "model", "inference", "diagnostics", "cold_start", "cli",
    "analyses", "conventions",
]
html_sidebars = {page: [] for page in NARRATIVE_PAGES}
html_context = {"default_mode": "light"}

# -- the API reference, generated from the modules that exist --------------------------------
#: (module, one-line description) in the order the reference lists them
API_MODULES: list[tuple[str, str]] = [
    ("bayesmf.data", "Ratings: id maps, rating scale, sparse per-user / per-item views"),
    ("bayesmf.datasets", "Embedded ml-latest-small, MovieLens readers, synthetic data, toy data"),
    ("bayesmf.split", "Random, per-user, k-fold and MovieLens canonical splits"),
    ("bayesmf.models.base", "What every estimator shares: parameters, predict, recommend, save"),
    ("bayesmf.models.pmf", "MLE and MAP point fits by alternating least squares"),
    ("bayesmf.models.sgd", "PMF by stochastic gradient descent"),
    ("bayesmf.models.logistic", "PMF with a logistic link"),
    ("bayesmf.models.baselines", "Mean and bias baselines"),
    ("bayesmf.models.implicit", "Implicit-feedback matrix factorization by ALS (Hu et al. 2008)"),
    ("bayesmf.models.gibbs", "Bayesian PMF by Gibbs sampling (Normal-Wishart hyperpriors)"),
    ("bayesmf.models.pymc_model", "The PMF model as a PyMC graph"),
    ("bayesmf.models.pymc_fit", "Full posterior with PyMC: NUTS and ADVI"),
    ("bayesmf.memory", "What storing posterior draws costs, and the memory budget"),
    ("bayesmf.predict", "Predictions with uncertainty and top-N recommendations"),
    ("bayesmf.coldstart", "Folding in new users and items"),
    ("bayesmf.diagnostics", "Convergence diagnostics on identifiable quantities"),
    ("bayesmf.plots", "Diagnostic figures: traces, energy, PPC, calibration, sd vs activity"),
    ("bayesmf.compare", "One comparison table across fits"),
    ("bayesmf.evaluate", "Metrics and cross-validation"),
    ("bayesmf.io", "Save and load fits"),
    ("bayesmf.sbc", "Simulation-based calibration of the samplers"),
    ("bayesmf.report", "The self-contained HTML diagnostic report"),
    ("bayesmf.cli", "The ``bayesmf`` command"),
    ("bayesmf.exceptions", "Error types"),
]


def _importable(modules: list[tuple[str, str]]) -> tuple[list, list]:
    ok, missing = [], []
    for name, desc in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # the module itself does not exist
                missing.append((name, "not written yet"))
                continue
            missing.append((name, f"import failed: {exc}"))
            print(f"[bayesmf docs] cannot import {name}:\n{traceback.format_exc()}")
        except Exception as exc:  # a broken module must not hide silently
            missing.append((name, f"import failed: {type(exc).__name__}: {exc}"))
            print(f"[bayesmf docs] cannot import {name}:\n{traceback.format_exc()}")
        else:
            ok.append((name, desc))
    return ok, missing


def _top_level_lines(documented: set[str]) -> list[str]:
    """A table of the names ``import bayesmf`` offers, linked to where they are documented."""
    exports = getattr(bayesmf, "_EXPORTS", None)
    if not isinstance(exports, dict) or not exports:
        return []
    renamed = getattr(bayesmf, "_RENAMED", {})
    lines = [
        "The top-level namespace",
        "-----------------------",
        "",
        "``import bayesmf as bm`` gives these names directly (``bm.PMF``, ``bm.load_toy``, ...);",
        "each is documented in its module:",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - name",
        "     - defined in",
    ]
    for name in sorted(exports, key=str.lower):
        module = exports[name]
        if module not in documented:
            continue
        target = f"{module}.{renamed.get(name, name)}"
        lines += [f"   * - :py:obj:`{name} <{target}>`", f"     - :py:mod:`{module}`"]
    lines.append("")
    return lines


def write_api_index(path: Path = HERE / "api" / "index.rst") -> tuple[list, list]:
    """Write the API reference page for the importable public modules; return (ok, missing)."""
    ok, missing = _importable(API_MODULES)
    lines = [
        ".. This file is generated by docs/conf.py at build time; edit API_MODULES there.",
        "",
        "API reference",
        "=============",
        "",
        "The public modules of bayesmf. Every estimator follows the conventions described in",
        ":doc:`/inference`: the constructor only stores arguments, ``fit`` returns ``self`` and",
        "fitted attributes end in an underscore.",
        "",
        ".. autosummary::",
        "   :toctree: generated",

        "",
    ]
    lines += [f"   {name}" for name, _ in ok]
    lines.append("")
    lines += _top_level_lines({name for name, _ in ok})
    if missing:
        lines += [".. note::", "", "   Not in this build:", ""]
        lines += [f"   - ``{name}``: {why}" for name, why in missing]
        lines.append("")
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:  # keep mtimes stable for incremental builds
        path.write_text(text)
    return ok, missing


def _clear_generated(path: Path = HERE / "api" / "generated") -> None:
    """Remove autosummary's stubs so pages of renamed or deleted objects cannot linger."""
    if path.is_dir():
        shutil.rmtree(path)


_clear_generated()
API_OK, API_MISSING = write_api_index()
