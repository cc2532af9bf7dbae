"""Exception types raised by bayesmf.

Every error raised on bad user input is a subclass of :class:`BayesMFError`, which is itself a
``ValueError`` so that generic ``except ValueError`` handlers keep working.
"""

from __future__ import annotations


class BayesMFError(ValueError):
    """Base class for all bayesmf input and state errors."""


class DataError(BayesMFError):
    """Rating data is malformed: NaN, off-scale values, duplicates, missing columns, ..."""


class DatasetNotFoundError(DataError):
    """A dataset directory or file holds none of the expected files."""


class NotFittedError(BayesMFError, AttributeError):
    """An estimator was used before ``fit`` was called."""


class ModelFileError(BayesMFError):
    """A saved model file is truncated, foreign, or written by an incompatible version."""


class MemoryBudgetError(BayesMFError):
    """A requested fit would exceed the configured memory budget."""
