"""Shared, cheap, session-scoped fixtures.

- ``toy_ratings``: the lecture's 3 x 5 example (11 ratings).
- ``small_synthetic``: ``(ratings, truth)`` from :func:`bayesmf.datasets.make_synthetic`,
  60 users x 40 items, rank 2, density 0.25 (600 ratings), scale 1..5 step 1, seed 0.
- ``small_synthetic_continuous``: the same model without rounding (``scale=None``).
- ``ml_small``: the embedded ml-latest-small (100,836 ratings; loads in ~0.1 s).

Fixtures are shared across tests: never mutate them (``Ratings.take`` / ``with_values`` copy).
"""

from __future__ import annotations

import pytest

from bayesmf.datasets import load_ml_latest_small, load_toy, make_synthetic


@pytest.fixture(scope="session")
def toy_ratings():
    return load_toy()


@pytest.fixture(scope="session")
def small_synthetic():
    return make_synthetic(n_users=60, n_items=40, rank=2, density=0.25, random_state=0)


@pytest.fixture(scope="session")
def small_synthetic_continuous():
    return make_synthetic(n_users=60, n_items=40, rank=2, density=0.25, scale=None,
                          random_state=0)


@pytest.fixture(scope="session")
def ml_small():
    return load_ml_latest_small()
