"""Train / test splits of :class:`~bayesmf.data.Ratings`: random hold-out, per-user hold-out,
k-fold, and the MovieLens 100K canonical ``u1..u5`` folds.

Every split is built with :meth:`Ratings.take`, so the training and test parts share the full
user and item id maps (a user with all ratings in the test part has an empty training row and
is reported as cold). Positions keep their original order inside each part. A seeded split is
identical from run to run.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmf._validation import as_rng, check_nonnegative_int, check_positive_int, check_probability
from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError, DataError, DatasetNotFoundError

__all__ = ["SCHEMES", "kfold", "make_splits", "movielens_folds", "random_split", "user_split"]

#: Split schemes understood by :func:`make_splits`.
SCHEMES = ("random", "random:FRACTION", "user", "user:K", "kfold:K", "movielens")

Split = tuple[Ratings, Ratings]


def _parts(ratings: Ratings, test_mask: np.ndarray) -> Split:
    return ratings.take(np.flatnonzero(~test_mask)), ratings.take(np.flatnonzero(test_mask))


def random_split(
    ratings: Ratings,
    test_size: float = 0.2,
    random_state: int | np.random.Generator | None = None,
) -> Split:
    """Hold out a random fraction of all ratings.

    Parameters
    ----------
    ratings : Ratings
    test_size : float
        Fraction in (0, 1) held out; the test part gets ``round(test_size * n)`` ratings,
        at least one, and the training part at least one.
    random_state : int, Generator or None
        Seed.

    Returns
    -------
    train, test : Ratings
    """
    test_size = check_probability(test_size, "test_size")
    n = ratings.nnz
    if n < 2:
        raise DataError(f"cannot split {n} rating(s): need at least 2")
    n_test = min(n - 1, max(1, int(round(test_size * n))))
    rng = as_rng(random_state)
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[:n_test]] = True
    return _parts(ratings, mask)


def user_split(
    ratings: Ratings,
    n_test: int = 1,
    random_state: int | np.random.Generator | None = None,
    min_train: int = 1,
) -> Split:
    """Leave ``n_test`` random ratings of every user out.

    Users with fewer than ``n_test + min_train`` ratings keep all of theirs in the training part
    (so every user seen in the test part also has at least ``min_train`` training ratings).

    Parameters
    ----------
    ratings : Ratings
    n_test : int
        Ratings held out per eligible user (>= 1).
    random_state : int, Generator or None
        Seed.
    min_train : int
        Ratings a user must keep in training to be eligible (>= 0).

    Returns
    -------
    train, test : Ratings
    """
    n_test = check_positive_int(n_test, "n_test")
    min_train = check_nonnegative_int(min_train, "min_train")
    if ratings.nnz == 0:
        raise DataError("cannot split an empty Ratings")
    rng = as_rng(random_state)
    n = ratings.nnz
    # random order within each user: sort by (user, random key)
    order = np.lexsort((rng.random(n), ratings.users))
    counts = ratings.user_counts
    start = np.zeros(ratings.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    sorted_users = ratings.users[order]
    rank_in_user = np.arange(n) - start[sorted_users]
    eligible = counts >= n_test + min_train
    held = (rank_in_user < n_test) & eligible[sorted_users]
    if not held.any():
        raise DataError(
            f"no user has the {n_test + min_train} ratings needed to hold out {n_test} and keep "
            f"{min_train} for training"
        )
    mask = np.zeros(n, dtype=bool)
    mask[order[held]] = True
    return _parts(ratings, mask)


def kfold(
    ratings: Ratings,
    n_splits: int = 5,
    random_state: int | np.random.Generator | None = None,
) -> Iterator[Split]:
    """Shuffled k-fold: every rating is in exactly one test fold.

    Fold sizes differ by at most one.

    Parameters
    ----------
    ratings : Ratings
    n_splits : int
        Number of folds (>= 2, at most the number of ratings).
    random_state : int, Generator or None
        Seed.

    Yields
    ------
    train, test : Ratings
    """
    n_splits = _check_k(n_splits)
    n = ratings.nnz
    if n < n_splits:
        raise DataError(f"cannot make {n_splits} folds from {n} rating(s)")
    perm = as_rng(random_state).permutation(n)
    for fold in np.array_split(perm, n_splits):
        mask = np.zeros(n, dtype=bool)
        mask[fold] = True
        yield _parts(ratings, mask)


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or int(k) < 2:
        raise BayesMFError(f"the number of folds must be an integer >= 2, got {k!r}")
    return int(k)


def _read_fold_file(path: Path) -> pd.DataFrame:
    from bayesmf.datasets import _integer_ids, _read_numeric

    df = _read_numeric(path, "\t", ["user", "item", "rating", "timestamp"])
    _integer_ids(df, path)
    return df


def _map_into(ratings: Ratings, df: pd.DataFrame, path: Path) -> Ratings:
    users = ratings.user_index(df["user"].to_numpy(np.int64))
    items = ratings.item_index(df["item"].to_numpy(np.int64))
    if (users < 0).any() or (items < 0).any():
        bad = "user" if (users < 0).any() else "item"
        raw = df[bad].to_numpy()[(users if bad == "user" else items) < 0][0]
        raise DataError(f"{path}: {bad} id {raw} does not occur in the full data set")
    values = df["rating"].to_numpy(float)
    if ratings.scale is not None and ratings.scale.off_scale(values).any():
        raise DataError(f"{path}: ratings off the scale {ratings.scale.to_tuple()}")
    return Ratings(users, items, values, ratings.user_ids, ratings.item_ids, ratings.scale,
                   ratings.item_info, ratings.name)


def movielens_folds(
    directory: str | os.PathLike, ratings: Ratings | None = None
) -> list[Split]:
    """The MovieLens 100K canonical 5-fold split (``u1.base``/``u1.test`` ... ``u5``).

    Parameters
    ----------
    directory : path-like
        The ml-100k directory (or a folder holding just one MovieLens set).
    ratings : Ratings, optional
        The id space to map the folds into (e.g. the data already loaded from ``u.data``);
        by default the directory is read with :func:`bayesmf.datasets.load_movielens`, so the
        ids of every fold share one map built from ``u.data``.

    Returns
    -------
    list of (train, test)
        One pair per ``uK.base``/``uK.test`` pair present, in order of K.

    Raises
    ------
    DatasetNotFoundError
        No ``uK.base``/``uK.test`` pair in the directory.
    DataError
        A fold file is corrupt or names an id that ``u.data`` lacks.
    """
    from bayesmf.datasets import _find_layout, load_movielens

    root = Path(directory).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"no such directory: {root}")
    found = _find_layout(root)
    if found is not None:
        root = found[0]
    pairs = [
        (root / f"u{k}.base", root / f"u{k}.test")
        for k in range(1, 6)
        if (root / f"u{k}.base").is_file() and (root / f"u{k}.test").is_file()
    ]
    if not pairs:
        raise DatasetNotFoundError(
            f"{root} holds no MovieLens 100K canonical folds: looked for u1.base/u1.test "
            "... u5.base/u5.test"
        )
    if ratings is None:
        ratings = load_movielens(root)
    return [
        (_map_into(ratings, _read_fold_file(b), b), _map_into(ratings, _read_fold_file(t), t))
        for b, t in pairs
    ]


def make_splits(
    ratings: Ratings,
    scheme: str,
    test_size: float = 0.2,
    random_state: int | np.random.Generator | None = 0,
    directory: str | os.PathLike | None = None,
) -> list[Split]:
    """Build the (train, test) pairs of a named scheme (used by the CLI and cross-validation).

    Parameters
    ----------
    ratings : Ratings
    scheme : str
        ``"random"`` (one hold-out of ``test_size``; ``"random:0.1"`` sets it), ``"user"`` or ``"user:K"`` (leave K
        ratings per user out; default 1), ``"kfold:K"`` (K >= 2; ``"kfold"`` means 5), or
        ``"movielens"`` (the 100K ``u1..u5`` folds from ``directory``).
    test_size : float
        For ``"random"``: fraction in (0, 1).
    random_state : int, Generator or None
        Seed.
    directory : path-like, optional
        Required by ``"movielens"``.

    Returns
    -------
    list of (train, test)
    """
    if not isinstance(scheme, str):
        raise BayesMFError(f"split scheme must be a string such as 'kfold:5', got {scheme!r}")
    name, _, arg = scheme.strip().lower().partition(":")
    if name == "random":
        if arg:
            try:
                test_size = float(arg)
            except ValueError:
                raise BayesMFError(f"split scheme {scheme!r}: {arg!r} is not a fraction") from None
        return [random_split(ratings, test_size=check_probability(test_size, "test_size"),
                             random_state=random_state)]
    if name == "user":
        k = _parse_int(arg, scheme, default=1)
        if k < 1:
            raise BayesMFError(f"split scheme {scheme!r}: leave at least 1 rating per user out")
        return [user_split(ratings, n_test=k, random_state=random_state)]
    if name == "kfold":
        k = _check_k(_parse_int(arg, scheme, default=5))
        return list(kfold(ratings, n_splits=k, random_state=random_state))
    if name == "movielens" and not arg:
        if directory is None:
            raise BayesMFError(
                "split scheme 'movielens' needs the ml-100k directory holding u1.base ... "
                "u5.test (pass directory=)"
            )
        return movielens_folds(directory, ratings=ratings)
    raise BayesMFError(
        f"unknown split scheme {scheme!r}; use 'random', 'random:FRACTION', 'user', 'user:K', "
        "'kfold:K' (K >= 2) or 'movielens'"
    )


def _parse_int(arg: str, scheme: str, default: int) -> int:
    if not arg:
        return default
    try:
        return int(arg)
    except ValueError:
        raise BayesMFError(f"split scheme {scheme!r}: {arg!r} is not an integer") from None
