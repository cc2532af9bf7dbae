"""Rating data: raw id <-> index maps, the rating scale, and per-user / per-item sparse views.

A :class:`Ratings` object is the one currency every solver, split and evaluator in bayesmf
takes. It stores the observed triples as three parallel arrays (user index, item index, value)
together with the raw ids behind the indices, so results can always be reported in the user's
own ids. Splits of a :class:`Ratings` keep the *same* id maps (see :meth:`Ratings.take`), so a
training set and a test set index users and items identically; a user with no rating in the
training part simply has an empty row there.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from bayesmf.exceptions import DataError

DUPLICATE_POLICIES = ("error", "mean", "first", "last")


@dataclass(frozen=True)
class RatingScale:
    """A rating scale ``min..max`` with an optional step between levels.

    Parameters
    ----------
    min, max : float
        Smallest and largest possible rating.
    step : float or None
        Distance between rating levels (1 for MovieLens 100K, 0.5 for ml-latest-small);
        ``None`` for a continuous scale.

    Examples
    --------
    >>> s = RatingScale(0.5, 5.0, 0.5)
    >>> s.levels[:3]
    array([0.5, 1. , 1.5])
    >>> float(s.round(3.74))
    3.5
    """

    min: float
    max: float
    step: float | None = None

    def __post_init__(self) -> None:
        lo, hi = float(self.min), float(self.max)
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
            raise DataError(f"rating scale needs finite min < max, got min={self.min}, max={self.max}")
        if self.step is not None:
            st = float(self.step)
            if not np.isfinite(st) or st <= 0:
                raise DataError(f"rating scale step must be positive, got {self.step}")
            n = (hi - lo) / st
            if abs(n - round(n)) > 1e-9:
                raise DataError(
                    f"rating scale step {st} does not divide the range {lo}..{hi} into whole levels"
                )
            object.__setattr__(self, "step", st)
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", hi)

    @property
    def levels(self) -> np.ndarray:
        """All rating levels on the scale (requires a step)."""
        if self.step is None:
            raise DataError("a continuous rating scale (step=None) has no discrete levels")
        n = int(round((self.max - self.min) / self.step))
        return self.min + self.step * np.arange(n + 1)

    @property
    def span(self) -> float:
        """``max - min``."""
        return self.max - self.min

    def clip(self, x: np.ndarray | float) -> np.ndarray:
        """Clip values to ``[min, max]``."""
        return np.clip(x, self.min, self.max)

    def round(self, x: np.ndarray | float) -> np.ndarray:
        """Clip, then round to the nearest level (identity on a continuous scale)."""
        x = self.clip(x)
        if self.step is None:
            return x
        return self.min + self.step * np.round((x - self.min) / self.step)

    def off_scale(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of values outside the scale or between its levels."""
        values = np.asarray(values, dtype=float)
        bad = (values < self.min - 1e-9) | (values > self.max + 1e-9)
        if self.step is not None:
            k = (values - self.min) / self.step
            bad |= np.abs(k - np.round(k)) > 1e-6
        return bad

    def to_tuple(self) -> tuple[float, float, float | None]:
        """``(min, max, step)``, e.g. for storing in file attributes."""
        return (self.min, self.max, self.step)


@dataclass(frozen=True)
class SparseRows:
    """A CSR view of the ratings grouped by user (or by item).

    ``indices[indptr[r]:indptr[r+1]]`` are the column indices (items for the per-user view)
    of row ``r`` and ``data`` the matching rating values; ``order`` maps each stored entry
    back to its position in the parent :class:`Ratings` arrays.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    order: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """Number of entries in each row."""
        return np.diff(self.indptr)


def _build_rows(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int) -> SparseRows:
    order = np.argsort(rows, kind="stable").astype(np.int64)
    counts = np.bincount(rows, minlength=n_rows)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return SparseRows(
        indptr=indptr,
        indices=np.ascontiguousarray(cols[order], dtype=np.int32),
        data=np.ascontiguousarray(vals[order], dtype=np.float64),
        order=order,
    )


class Ratings:
    """Observed ratings with raw-id maps, a rating scale and sparse row views.

    Build one with :meth:`from_frame` (or a loader in :mod:`bayesmf.datasets`) rather than
    calling the constructor directly.

    Parameters
    ----------
    users, items : array of int
        Contiguous user and item indices of each observation.
    values : array of float
        The rating of each observation.
    user_ids, item_ids : pandas.Index
        Raw ids; ``user_ids[k]`` is the raw id of user index ``k``.
    scale : RatingScale or None
        The declared rating scale, if any.
    item_info : pandas.DataFrame or None
        Optional item metadata (e.g. a ``title`` column) indexed by raw item id.
    name : str
        A label for the dataset, used in reports.
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        values: np.ndarray,
        user_ids: pd.Index,
        item_ids: pd.Index,
        scale: RatingScale | None = None,
        item_info: pd.DataFrame | None = None,
        name: str = "ratings",
    ) -> None:
        self.users = np.ascontiguousarray(users, dtype=np.int32)
        self.items = np.ascontiguousarray(items, dtype=np.int32)
        self.values = np.ascontiguousarray(values, dtype=np.float64)
        # Index objects are immutable: share them (a split's parts keep the very same maps)
        self.user_ids = user_ids if isinstance(user_ids, pd.Index) else pd.Index(user_ids)
        self.item_ids = item_ids if isinstance(item_ids, pd.Index) else pd.Index(item_ids)
        self.scale = scale
        self.item_info = item_info
        self.name = name
        if not (len(self.users) == len(self.items) == len(self.values)):
            raise DataError("users, items and values must have the same length")
        if len(self.users) and (
            self.users.min() < 0
            or self.users.max() >= len(self.user_ids)
            or self.items.min() < 0
            or self.items.max() >= len(self.item_ids)
        ):
            raise DataError("user/item indices fall outside the id maps")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        user_col: str = "user",
        item_col: str = "item",
        rating_col: str = "rating",
        scale: RatingScale | tuple | None = None,
        duplicates: str = "error",
        item_info: pd.DataFrame | None = None,
        name: str = "ratings",
        infer_scale: bool = False,
    ) -> Ratings:
        """Build :class:`Ratings` from a DataFrame of (user, item, rating) rows.

        Parameters
        ----------
        df : pandas.DataFrame
            One row per observed rating.
        user_col, item_col, rating_col : str
            Column names to read.
        scale : RatingScale, tuple (min, max, step) or None
            Declared scale. Values off the scale raise :class:`DataError`.
        duplicates : {"error", "mean", "first", "last"}
            What to do with repeated (user, item) pairs: raise (default), average them,
            or keep the first / last occurrence.
        item_info : pandas.DataFrame, optional
            Item metadata indexed by raw item id (e.g. with a ``title`` column).
        name : str
            Dataset label.
        infer_scale : bool
            If no scale is given, infer ``(min, max, step)`` from the data.

        Returns
        -------
        Ratings

        Raises
        ------
        DataError
            On a missing column, an empty table, non-numeric / NaN / infinite ratings,
            off-scale ratings, missing ids, or duplicate pairs under ``duplicates="error"``.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
        missing = [c for c in (user_col, item_col, rating_col) if c not in df.columns]
        if missing:
            raise DataError(
                f"missing column(s) {missing}; the table has columns {list(df.columns)}. "
                "Pass user_col=, item_col=, rating_col= to name yours."
            )
        if len(df) == 0:
            raise DataError("the ratings table is empty")
        if duplicates not in DUPLICATE_POLICIES:
            raise DataError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}")
        raw = df[rating_col]
        if pd.api.types.is_bool_dtype(raw.dtype):
            raise DataError(f"column {rating_col!r} holds booleans, not numeric ratings")
        values = pd.to_numeric(raw, errors="coerce")
        nonnum = values.isna() & raw.notna()
        if nonnum.any():
            bad = raw[nonnum].iloc[:3].tolist()
            raise DataError(
                f"column {rating_col!r} has {int(nonnum.sum())} non-numeric rating(s), e.g. {bad}"
            )
        values = values.to_numpy(dtype=float)
        if np.isnan(values).any():
            raise DataError(f"column {rating_col!r} has {int(np.isnan(values).sum())} NaN rating(s)")
        if np.isinf(values).any():
            raise DataError(f"column {rating_col!r} has {int(np.isinf(values).sum())} infinite rating(s)")
        for col in (user_col, item_col):
            if df[col].isna().any():
                raise DataError(f"column {col!r} has {int(df[col].isna().sum())} missing id(s)")
        if isinstance(scale, (tuple, list)):
            scale = RatingScale(*scale)
        elif scale is not None and not isinstance(scale, RatingScale):
            raise DataError(
                f"scale must be a RatingScale, a (min, max, step) tuple or None, got {scale!r}"
            )
        if scale is None and infer_scale:
            scale = infer_rating_scale(values)
        if scale is not None:
            off = scale.off_scale(values)
            if off.any():
                ex = np.unique(values[off])[:5].tolist()
                raise DataError(
                    f"{int(off.sum())} rating(s) are off the declared scale "
                    f"{scale.min}..{scale.max} step {scale.step}, e.g. {ex}"
                )
        frame = pd.DataFrame(
            {"u": df[user_col].to_numpy(), "i": df[item_col].to_numpy(), "r": values}
        )
        dup = frame.duplicated(["u", "i"], keep=False)
        if dup.any():
            n_pairs = int(frame[dup].drop_duplicates(["u", "i"]).shape[0])
            if duplicates == "error":
                ex = frame[dup].iloc[0]
                raise DataError(
                    f"{n_pairs} (user, item) pair(s) occur more than once, e.g. "
                    f"({ex['u']!r}, {ex['i']!r}); pass duplicates='mean', 'first' or 'last'"
                )
            if duplicates == "mean":
                frame = frame.groupby(["u", "i"], sort=False, as_index=False)["r"].mean()
            else:
                frame = frame.drop_duplicates(["u", "i"], keep=duplicates)
        user_codes, user_ids = pd.factorize(frame["u"], sort=True)
        item_codes, item_ids = pd.factorize(frame["i"], sort=True)
        return cls(
            users=user_codes,
            items=item_codes,
            values=frame["r"].to_numpy(dtype=float),
            user_ids=pd.Index(user_ids),
            item_ids=pd.Index(item_ids),
            scale=scale,
            item_info=item_info,
            name=name,
        )

    def to_frame(self, user_col: str = "user", item_col: str = "item", rating_col: str = "rating") -> pd.DataFrame:
        """Return the ratings as a DataFrame with raw ids."""
        return pd.DataFrame(
            {
                user_col: self.user_ids[self.users],
                item_col: self.item_ids[self.items],
                rating_col: self.values,
            }
        )

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        """Number of users in the id map (including users with no rating in this subset)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items in the id map."""
        return len(self.item_ids)

    @property
    def nnz(self) -> int:
        """Number of observed ratings."""
        return len(self.values)

    def __len__(self) -> int:
        return self.nnz

    def __repr__(self) -> str:
        sc = "" if self.scale is None else f", scale={self.scale.to_tuple()}"
        return (
            f"Ratings(name={self.name!r}, n_ratings={self.nnz}, n_users={self.n_users}, "
            f"n_items={self.n_items}{sc})"
        )

    @property
    def density(self) -> float:
        """Fraction of the user x item matrix that is observed."""
        return self.nnz / max(1, self.n_users * self.n_items)

    # ------------------------------------------------------------------ sparse views
    @cached_property
    def by_user(self) -> SparseRows:
        """CSR view: for each user, the items rated and the values."""
        return _build_rows(self.users, self.items, self.values, self.n_users)

    @cached_property
    def by_item(self) -> SparseRows:
        """CSR view: for each item, the users who rated it and the values."""
        return _build_rows(self.items, self.users, self.values, self.n_items)

    @property
    def user_counts(self) -> np.ndarray:
        """Ratings per user index."""
        return np.bincount(self.users, minlength=self.n_users)

    @property
    def item_counts(self) -> np.ndarray:
        """Ratings per item index."""
        return np.bincount(self.items, minlength=self.n_items)

    @property
    def global_mean(self) -> float:
        """Mean rating (raises on empty data)."""
        if self.nnz == 0:
            raise DataError("no ratings: the global mean is undefined")
        return float(self.values.mean())

    # ------------------------------------------------------------------ subsets and ids
    def take(self, index: np.ndarray) -> Ratings:
        """Return the subset of observations at ``index`` (positions or boolean mask).

        The subset keeps the full id maps, scale, item info and name, so indices agree
        between e.g. a training and a test split.
        """
        index = np.asarray(index)
        return Ratings(
            users=self.users[index],
            items=self.items[index],
            values=self.values[index],
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            scale=self.scale,
            item_info=self.item_info,
            name=self.name,
        )

    def with_values(self, values: np.ndarray) -> Ratings:
        """Return a copy with the same (user, item) pairs and new rating values."""
        values = np.asarray(values, dtype=float)
        if values.shape != self.values.shape:
            raise DataError("new values must match the number of ratings")
        return Ratings(self.users, self.items, values, self.user_ids, self.item_ids,
                       self.scale, self.item_info, self.name)

    def user_index(self, raw_ids: Iterable[Hashable]) -> np.ndarray:
        """Map raw user ids to indices; unknown ids map to -1."""
        return self.user_ids.get_indexer(_as_index(raw_ids))

    def item_index(self, raw_ids: Iterable[Hashable]) -> np.ndarray:
        """Map raw item ids to indices; unknown ids map to -1."""
        return self.item_ids.get_indexer(_as_index(raw_ids))

    def item_titles(self, item_index: np.ndarray) -> np.ndarray | None:
        """Titles for item indices if ``item_info`` has a ``title`` column, else ``None``."""
        if self.item_info is None or "title" not in self.item_info.columns:
            return None
        raw = self.item_ids[np.asarray(item_index)]
        return self.item_info["title"].reindex(raw).to_numpy()


def _as_index(raw_ids: Iterable[Hashable]) -> pd.Index:
    if isinstance(raw_ids, (pd.Index, pd.Series, np.ndarray)):
        return pd.Index(raw_ids)
    return pd.Index(list(raw_ids))


def infer_rating_scale(values: np.ndarray) -> RatingScale:
    """Infer ``(min, max, step)`` from observed values.

    The step is the largest of (1, 0.5, 0.25, 0.1) that puts every value on a level; if none
    does, the scale is continuous (``step=None``).
    """
    values = np.asarray(values, dtype=float)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise DataError("cannot infer a rating scale: all ratings are equal")
    for step in (1.0, 0.5, 0.25, 0.1):
        k = (values - lo) / step
        if np.all(np.abs(k - np.round(k)) < 1e-6) and abs((hi - lo) / step - round((hi - lo) / step)) < 1e-6:
            return RatingScale(lo, hi, step)
    return RatingScale(lo, hi, None)
