"""Small argument checks shared by estimators (each raises a clear :class:`BayesMFError`)."""

from __future__ import annotations

import numbers

import numpy as np

from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError, DataError, NotFittedError


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int, raising if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise BayesMFError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` as a bool, raising if it is not ``True``/``False`` (NumPy's included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise BayesMFError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_nonnegative_int(value: object, name: str) -> int:
    """Return ``value`` as an int, raising if it is not an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise BayesMFError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def check_nonnegative_float(value: object, name: str) -> float:
    """Return ``value`` as a float, raising if it is negative, NaN or not a number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BayesMFError(f"{name} must be a non-negative number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise BayesMFError(f"{name} must be a finite non-negative number, got {value!r}")
    return v


def check_positive_float(value: object, name: str) -> float:
    """Return ``value`` as a float, raising if it is not a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BayesMFError(f"{name} must be a positive number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise BayesMFError(f"{name} must be a finite positive number, got {value!r}")
    return v


def check_probability(value: object, name: str) -> float:
    """Return ``value`` as a float strictly inside (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BayesMFError(f"{name} must be a number in (0, 1), got {value!r}")
    v = float(value)
    if not (0.0 < v < 1.0):
        raise BayesMFError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return v


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise BayesMFError(f"{name} must be one of {choices}, got {value!r}")
    return str(value)


def check_fitted(estimator: object, attribute: str) -> None:
    """Raise :class:`NotFittedError` if ``estimator`` lacks the fitted ``attribute``."""
    if getattr(estimator, attribute, None) is None:
        raise NotFittedError(
            f"This {type(estimator).__name__} is not fitted yet; call fit(ratings) first."
        )


def as_rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Turn ``random_state`` into a NumPy ``Generator``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    raise BayesMFError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")


def check_ratings(ratings: object) -> Ratings:
    """Raise a clear :class:`DataError` unless ``ratings`` is a non-empty :class:`Ratings`."""
    if not isinstance(ratings, Ratings):
        raise DataError(
            f"fit expects a bayesmf.Ratings object, got {type(ratings).__name__}; "
            "build one with Ratings.from_frame(df, ...)"
        )
    if ratings.nnz == 0:
        raise DataError("cannot fit on an empty set of ratings")
    return ratings
