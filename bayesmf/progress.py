"""A tiny progress-bar helper shared by every module (rich-based, silent when not interactive).

Long-running loops (ALS sweeps, sampler chains, cross-validation folds, downloads) wrap their
iterations in :func:`track` or :func:`progress_bar`. A bar is drawn on stderr only when stderr is
a terminal, or when forced (``enabled=True`` or the environment variable ``BAYESMF_PROGRESS=1``);
``BAYESMF_PROGRESS=0`` silences every bar. Otherwise (pipes, CI logs, pytest) nothing is printed,
so progress never pollutes captured output.

Examples
--------
>>> from bayesmf.progress import track
>>> total = 0
>>> for x in track(range(3), "summing", enabled=False):
...     total += x
>>> total
3
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

ENV_VAR = "BAYESMF_PROGRESS"


def progress_enabled(enabled: bool | None = None) -> bool:
    """Decide whether to draw a progress bar.

    Parameters
    ----------
    enabled : bool or None
        ``True`` forces a bar, ``False`` suppresses it; ``None`` (default) draws one only when
        stderr is a terminal. The environment variable ``BAYESMF_PROGRESS`` (``"0"`` or ``"1"``)
        overrides ``None``.

    Returns
    -------
    bool
    """
    if enabled is not None:
        return bool(enabled)
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return False
    if env in ("1", "true", "yes", "on"):
        return True
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or exotic streams
        return False


class _NullBar:
    """The do-nothing bar used when progress is disabled."""

    def advance(self, n: float = 1) -> None:
        """Ignore an advance."""

    def update(self, **kwargs: Any) -> None:
        """Ignore an update."""


class _RichBar:
    """A handle on one rich task: ``advance(n)`` and ``update(description=..., total=...)``."""

    def __init__(self, progress: Any, task_id: Any) -> None:
        self._progress = progress
        self._task = task_id

    def advance(self, n: float = 1) -> None:
        """Move the bar forward by ``n`` steps (or bytes)."""
        self._progress.advance(self._task, n)

    def update(self, **kwargs: Any) -> None:
        """Change the description, total or completed count of the bar."""
        self._progress.update(self._task, **kwargs)


def _make_progress(unit: str, transient: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    if unit == "bytes":
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        ]
    else:
        columns = [
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
    return Progress(*columns, console=console, transient=transient)


@contextmanager
def progress_bar(
    total: float | None,
    description: str = "",
    *,
    enabled: bool | None = None,
    unit: str = "steps",
    transient: bool = True,
) -> Iterator[_RichBar | _NullBar]:
    """Context manager yielding a bar with ``advance(n)`` and ``update(**kw)``.

    Parameters
    ----------
    total : float or None
        Number of steps (or bytes with ``unit="bytes"``); ``None`` for an open-ended bar.
    description : str
        Label shown left of the bar.
    enabled : bool or None
        See :func:`progress_enabled`.
    unit : {"steps", "bytes"}
        ``"bytes"`` shows transferred size and speed (for downloads).
    transient : bool
        Remove the bar from the terminal when done.

    Yields
    ------
    bar
        An object with ``advance(n=1)`` and ``update(**kwargs)``; a silent no-op when disabled.
    """
    if not progress_enabled(enabled):
        yield _NullBar()
        return
    progress = _make_progress(unit, transient)
    with progress:
        task = progress.add_task(description, total=total)
        yield _RichBar(progress, task)


def track(
    iterable: Iterable[T],
    description: str = "",
    *,
    total: float | None = None,
    enabled: bool | None = None,
    transient: bool = True,
) -> Iterator[T]:
    """Iterate over ``iterable``, advancing a progress bar by one per item.

    Parameters
    ----------
    iterable : iterable
        The items to yield unchanged.
    description : str
        Label shown left of the bar.
    total : float, optional
        Number of items; defaults to ``len(iterable)`` when available.
    enabled : bool or None
        See :func:`progress_enabled`.
    transient : bool
        Remove the bar from the terminal when done.

    Yields
    ------
    object
        The items of ``iterable``.
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if not progress_enabled(enabled):
        yield from iterable
        return
    with progress_bar(total, description, enabled=True, transient=transient) as bar:
        for item in iterable:
            yield item
            bar.advance(1)


class LazyBar:
    """A progress bar that appears only once a loop has run for ``after`` seconds.

    For loops whose length is unknown in advance or usually short (solver sweeps that stop
    at convergence): a fit that finishes within ``after`` seconds draws nothing, a longer one
    gets a bar from then on. Use as a context manager; call :meth:`advance` once per step.

    Parameters
    ----------
    total : float or None
        Upper bound on the steps (e.g. ``max_iter``).
    description : str
        Label shown left of the bar.
    enabled : bool or None
        See :func:`progress_enabled`.
    after : float
        Seconds before the bar appears.

    Examples
    --------
    >>> with LazyBar(10, "ALS", enabled=False) as bar:
    ...     for _ in range(10):
    ...         bar.advance(description="ALS sweep")
    >>> bar.steps
    10
    """

    def __init__(self, total: float | None, description: str = "", *,
                 enabled: bool | None = None, after: float = 1.0) -> None:
        import time

        self._clock = time.perf_counter
        self.total = total
        self.description = description
        self.show = progress_enabled(enabled)
        self.after = float(after)
        self.steps = 0
        self._t0 = self._clock()
        self._cm: Any = None
        self._bar: Any = None

    def __enter__(self) -> LazyBar:
        self._t0 = self._clock()
        return self

    def advance(self, n: int = 1, description: str | None = None) -> None:
        """Count ``n`` steps (and relabel the bar), starting the bar once ``after`` has passed."""
        self.steps += n
        if description is not None:
            self.description = description
        if not self.show:
            return
        if self._bar is None and self._clock() - self._t0 >= self.after:
            self._cm = progress_bar(self.total, self.description, enabled=True)
            self._bar = self._cm.__enter__()
            self._bar.update(completed=self.steps)
            return
        if self._bar is not None:
            self._bar.update(completed=self.steps, description=self.description)

    def __exit__(self, *exc: object) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)
            self._cm = None
            self._bar = None
