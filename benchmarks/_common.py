"""What the benchmark scripts share: where their JSON results go and how they are written.

The scripts run as ``python benchmarks/<name>.py``, so this module is importable beside them
(as ``analyses/_common.py`` is for the analyses).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, out: dict, **dumps: Any) -> Path:
    """Write ``out`` to ``benchmarks/results/<name>.json`` (indented) and return the path.

    ``dumps`` are passed on to :func:`json.dumps` (for example ``default=float``).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=2, **dumps))
    return path
