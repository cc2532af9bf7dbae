"""What storing posterior draws costs, and a budget check that runs before sampling.

Storing every draw of ``U`` and ``V`` costs ``chains x kept_draws x (n_users + n_items) x rank``
numbers, where ``kept_draws = draws // thin``. For ml-latest-small (610 users, 9,724 items) at
rank 10 that is 0.46 MB a draw in float32 (factors and biases), so 4 chains x 1,000 draws
would need 1.83 GB; with the default 1 GiB budget such a request is either thinned
automatically (``thin="auto"``, here to every 2nd draw: 0.91 GB) or refused with :class:`~bayesmf.exceptions.MemoryBudgetError` before any sampling starts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bayesmf.exceptions import MemoryBudgetError

#: default memory budget for stored draws: 1 GiB
DEFAULT_BUDGET_BYTES = 1 << 30


def kept_draws(draws: int, thin: int) -> int:
    """Number of draws kept per chain when every ``thin``-th of ``draws`` sweeps is stored."""
    return int(draws) // int(thin)


def per_draw_bytes(
    n_users: int, n_items: int, rank: int, dtype: Any = np.float32, biases: bool = True
) -> int:
    """Bytes stored for one posterior draw.

    Counts ``U`` and ``V`` (and the two bias vectors) in ``dtype``, and the hyperparameters
    (``mu_u``, ``mu_v``, ``Lambda_u``, ``Lambda_v``, ``sigma_u``, ``sigma_v``, scalars and the
    per-draw log-likelihood) in float64.
    """
    item = np.dtype(dtype).itemsize
    n = int(n_users) + int(n_items)
    big = n * int(rank) + (n if biases else 0)
    hyper = 2 * rank * rank + 4 * rank + 8
    return big * item + hyper * 8


def estimate_draws_bytes(
    n_users: int,
    n_items: int,
    rank: int,
    chains: int,
    draws: int,
    thin: int = 1,
    dtype: Any = np.float32,
    biases: bool = True,
) -> int:
    """Bytes needed to store the kept posterior draws of a PMF fit.

    Parameters
    ----------
    n_users, n_items, rank : int
        Model size.
    chains, draws, thin : int
        Sampler settings; ``draws // thin`` draws are kept per chain.
    dtype : numpy dtype
        Storage type of ``U``, ``V`` and the biases.
    biases : bool
        Whether bias vectors are stored.

    Returns
    -------
    int
        Estimated bytes.

    Examples
    --------
    >>> round(estimate_draws_bytes(610, 9724, 10, 4, 1000, 1) / 1e9, 2)
    1.83
    """
    n_kept = chains * kept_draws(draws, thin)
    return n_kept * per_draw_bytes(n_users, n_items, rank, dtype, biases)


def format_bytes(n: float) -> str:
    """Human-readable size, e.g. ``'1.5 GiB'``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def auto_thin(
    n_users: int,
    n_items: int,
    rank: int,
    chains: int,
    draws: int,
    budget_bytes: int,
    dtype: Any = np.float32,
    biases: bool = True,
) -> int:
    """Smallest thinning factor that keeps the stored draws within ``budget_bytes``.

    Raises
    ------
    MemoryBudgetError
        If even one kept draw per chain does not fit.
    """
    one = per_draw_bytes(n_users, n_items, rank, dtype, biases)
    max_kept = int(budget_bytes) // max(1, one * int(chains))
    if max_kept < 1:
        raise MemoryBudgetError(
            f"a single draw per chain needs {format_bytes(one * chains)}, over the memory budget "
            f"of {format_bytes(budget_bytes)}; lower chains or rank, or raise memory_budget_bytes"
        )
    return max(1, math.ceil(int(draws) / max_kept))


def check_memory_budget(
    nbytes: int, budget_bytes: int | None, what: str = "the posterior draws"
) -> None:
    """Raise :class:`MemoryBudgetError` if ``nbytes`` exceeds ``budget_bytes``.

    ``budget_bytes=None`` disables the check.
    """
    if budget_bytes is None:
        return
    if nbytes > budget_bytes:
        raise MemoryBudgetError(
            f"storing {what} needs about {format_bytes(nbytes)}, over the memory budget of "
            f"{format_bytes(budget_bytes)}. Thin the chains (thin=, or thin='auto'), keep fewer "
            f"draws or chains, store float32, or raise memory_budget_bytes."
        )
