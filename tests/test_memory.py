"""Cost of storing posterior draws, and the budget check."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmf.exceptions import MemoryBudgetError
from bayesmf.memory import (
    DEFAULT_BUDGET_BYTES,
    auto_thin,
    check_memory_budget,
    estimate_draws_bytes,
    format_bytes,
    kept_draws,
    per_draw_bytes,
)


def test_per_draw_bytes_by_hand():
    # U, V: (3 + 4) * 2 float32 = 56 B; biases 7 * 4 = 28 B; hyper (2*4 + 4*2 + 8) * 8 = 192 B
    assert per_draw_bytes(3, 4, 2, np.float32, True) == 56 + 28 + 192
    assert per_draw_bytes(3, 4, 2, np.float64, False) == 112 + 192


def test_estimate_scales_with_chains_and_kept_draws():
    one = per_draw_bytes(610, 9724, 10)
    assert estimate_draws_bytes(610, 9724, 10, 4, 1000, 1) == 4000 * one
    assert estimate_draws_bytes(610, 9724, 10, 4, 1000, 3) == 4 * 333 * one
    assert kept_draws(10, 4) == 2


def test_ml_latest_small_default_budget():
    """4 chains x 1000 draws at rank 10 would need > 1 GiB; auto thinning fits it under 1 GB."""
    full = estimate_draws_bytes(610, 9724, 10, 4, 1000, 1)
    assert full > DEFAULT_BUDGET_BYTES
    thin = auto_thin(610, 9724, 10, 4, 1000, DEFAULT_BUDGET_BYTES)
    assert thin == 2
    assert estimate_draws_bytes(610, 9724, 10, 4, 1000, thin) < 1e9
    with pytest.raises(MemoryBudgetError, match="GiB"):
        check_memory_budget(full, DEFAULT_BUDGET_BYTES)
    check_memory_budget(full, None)  # disabled


def test_auto_thin_impossible_budget():
    with pytest.raises(MemoryBudgetError, match="single draw"):
        auto_thin(610, 9724, 10, 4, 100, budget_bytes=1000)


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 2**30) == "3.0 GiB"
