"""Compile one kernel body twice, as a serial and a parallel numba function.

Several kernels come in two builds: a parallel one (``prange`` spreads rows over threads) for
large problems and a serial one for small problems or busy machines, where thread start-up
costs more than it saves. Both are compiled from the same Python body; each copy gets its own
name so numba's on-disk cache keeps the two compilations apart.
"""

from __future__ import annotations

import types
from collections.abc import Callable

from numba import njit


def _renamed(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` under another name (numba caches compilations by qualified name)."""
    out = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    out.__qualname__ = name
    out.__doc__ = fn.__doc__
    return out


def serial_and_parallel(
    impl: Callable,
    serial_name: str,
    parallel_name: str,
    fastmath: bool = False,
    serial_nogil: bool = False,
) -> tuple[Callable, Callable]:
    """Compile ``impl`` as ``(serial, parallel)`` numba functions, both cached on disk.

    Parameters
    ----------
    impl : callable
        The kernel body (its ``prange`` loops run in parallel only in the parallel build).
    serial_name, parallel_name : str
        Names of the two compiled copies (also their numba cache keys).
    fastmath : bool
        Compile both with ``fastmath=True``.
    serial_nogil : bool
        Release the GIL in the serial build (for callers that run it from threads).
    """
    serial = njit(cache=True, fastmath=fastmath, nogil=serial_nogil)(_renamed(impl, serial_name))
    parallel = njit(parallel=True, cache=True, fastmath=fastmath)(_renamed(impl, parallel_name))
    return serial, parallel
