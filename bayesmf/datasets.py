"""Datasets: the embedded ml-latest-small, MovieLens readers and downloader, CSV tables,
synthetic data with known ground truth, and the lecture's toy example.

Every loader returns a :class:`bayesmf.data.Ratings`.

==========================  =====================================================
``load_ml_latest_small()``  MovieLens latest-small (100,836 ratings, 0.5..5 step 0.5),
                            shipped inside the package, offline, with titles.
``load_movielens(path)``    a local MovieLens 100K / 1M / latest directory.
``download_movielens(n)``   fetch a GroupLens zip into the cache and unpack it.
``load_csv(path)``          any delimited table with user / item / rating columns.
``make_synthetic()``        draws from the PMF generative model, returns the truth too.
``load_toy()``              Alice, Bob, Carol x five films (the lecture's example).
``load(source)``            the dispatcher used by the command line.
==========================  =====================================================

The download cache is ``$BAYESMF_CACHE`` if set, else ``~/.cache/bayesmf``.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmf._validation import (
    as_rng,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_probability,
)
from bayesmf.data import Ratings, RatingScale
from bayesmf.exceptions import BayesMFError, DataError, DatasetNotFoundError

__all__ = [
    "MOVIELENS_URLS",
    "SyntheticTruth",
    "default_cache_dir",
    "download_movielens",
    "load",
    "load_csv",
    "load_ml_latest_small",
    "load_movielens",
    "load_toy",
    "make_synthetic",
]

#: GroupLens download addresses of the MovieLens sets this module can read.
MOVIELENS_URLS: dict[str, str] = {
    name: f"https://files.grouplens.org/datasets/movielens/{name}.zip"
    for name in ("ml-100k", "ml-1m", "ml-latest-small")
}

#: Files that identify each MovieLens layout, in detection order.
_LAYOUTS: dict[str, str] = {
    "u.data": "ml-100k",
    "ratings.dat": "ml-1m",
    "ratings.csv": "ml-latest",
}

_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

_STAR_SCALE = RatingScale(1.0, 5.0, 1.0)
_HALF_STAR_SCALE = RatingScale(0.5, 5.0, 0.5)


# ====================================================================== embedded data
def load_ml_latest_small(titles: bool = True) -> Ratings:
    """Load MovieLens latest-small (shipped with the package; no network needed).

    610 users, 9,724 movies, 100,836 ratings on a 0.5..5 scale in half stars. The
    GroupLens licence README is shipped beside the data (``bayesmf/data_files``).

    Parameters
    ----------
    titles : bool
        Attach ``item_info`` (indexed by ``movieId``, columns ``title`` and ``genres``).

    Returns
    -------
    Ratings
        Named ``"ml-latest-small"``, scale ``RatingScale(0.5, 5.0, 0.5)``.
    """
    files = resources.files("bayesmf") / "data_files"
    with (files / "ml-latest-small-ratings.csv.gz").open("rb") as fh:
        df = pd.read_csv(
            fh,
            compression="gzip",
            usecols=["userId", "movieId", "rating"],
            dtype={"userId": np.int64, "movieId": np.int64, "rating": np.float64},
        )
    info = None
    if titles:
        with (files / "ml-latest-small-movies.csv.gz").open("rb") as fh:
            info = pd.read_csv(fh, compression="gzip", index_col="movieId")
    return Ratings.from_frame(
        df, "userId", "movieId", "rating", scale=_HALF_STAR_SCALE, item_info=info,
        name="ml-latest-small",
    )


# ====================================================================== toy example
_TOY_ITEMS = ("Sholay", "Swades", "Batman", "Interstellar", "Shawshank")
_TOY_USERS = ("Alice", "Bob", "Carol")
_TOY_MATRIX = np.array(
    [
        [5, 4, 2, 3, 2],
        [np.nan, 5, 1, 4, np.nan],
        [4, np.nan, 1, 5, np.nan],
    ]
)


def load_toy() -> Ratings:
    """The lecture's 3 x 5 example (``?`` = not rated)::

                Sholay  Swades  Batman  Interstellar  Shawshank
        Alice     5       4       2          3            2
        Bob       ?       5       1          4            ?
        Carol     4       ?       1          5            ?

    User and item indices follow the table's order (Alice = 0, Sholay = 0).

    Returns
    -------
    Ratings
        11 ratings, scale 1..5 step 1, ``item_info`` with a ``title`` column, name ``"toy"``.
    """
    users, items = np.nonzero(~np.isnan(_TOY_MATRIX))
    values = _TOY_MATRIX[users, items]
    item_ids = pd.Index(list(_TOY_ITEMS), name="item")
    info = pd.DataFrame({"title": list(_TOY_ITEMS)}, index=item_ids)
    return Ratings(
        users=users,
        items=items,
        values=values,
        user_ids=pd.Index(list(_TOY_USERS), name="user"),
        item_ids=item_ids,
        scale=_STAR_SCALE,
        item_info=info,
        name="toy",
    )


# ====================================================================== synthetic data
@dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """The parameters synthetic ratings were drawn from.

    Indices are those of the returned :class:`Ratings` (row ``k`` of ``U`` is user index ``k``).

    Attributes
    ----------
    U : ndarray (n_users, rank)
    V : ndarray (n_items, rank)
    mu : float
        Global offset.
    user_bias : ndarray (n_users,)
    item_bias : ndarray (n_items,)
    noise_sd : float
        Standard deviation of the Gaussian noise added before rounding.
    factor_sd : float or None
        Prior standard deviation of every entry of ``U`` and ``V`` (as drawn by
        :func:`make_synthetic`).
    scale : RatingScale or None
        The scale the ratings were rounded to (``None``: continuous, unrounded).
    """

    U: np.ndarray
    V: np.ndarray
    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    noise_sd: float
    factor_sd: float | None = None
    scale: RatingScale | None = None

    @property
    def rank(self) -> int:
        """Number of latent factors."""
        return int(self.U.shape[1])

    def mean(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Noise-free latent mean ``mu + b_u + b_i + u . v`` for index pairs (not rounded)."""
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        out = self.mu + self.user_bias[u] + self.item_bias[i]
        step = max(1, (1 << 22) // max(1, self.rank))  # bound the gathered block's memory
        for start in range(0, len(out), step):
            sl = slice(start, start + step)
            out[sl] += np.einsum("nk,nk->n", self.U[u[sl]], self.V[i[sl]])
        return out


def _activity_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray | None:
    """Zipf-like weights ``rank^-exponent`` over a random permutation (``None`` = uniform)."""
    if exponent == 0.0:
        return None
    w = np.arange(1, n + 1, dtype=float) ** (-exponent)
    w = w[rng.permutation(n)]
    return w / w.sum()


def _draw(n: int, size: int, p: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """``size`` i.i.d. draws from ``0..n-1`` with probabilities ``p`` (``None``: uniform)."""
    if p is None:
        return rng.integers(0, n, size=size)
    # counts then a shuffle: same distribution as i.i.d. draws, much faster than searchsorted
    return rng.permutation(np.repeat(np.arange(n), rng.multinomial(size, p)))


def _choose_remaining(
    codes: np.ndarray,
    n_users: int,
    n_items: int,
    n_ratings: int,
    pu: np.ndarray | None,
    pi: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Add ``n_ratings - len(codes)`` pairs drawn without replacement among the unused ones."""
    free = np.ones(n_users * n_items, dtype=bool)
    free[codes] = False
    rest = np.flatnonzero(free)
    wu = pu if pu is not None else np.full(n_users, 1.0 / n_users)
    wi = pi if pi is not None else np.full(n_items, 1.0 / n_items)
    w = wu[rest // n_items] * wi[rest % n_items]
    k = n_ratings - len(codes)
    if k <= 0:
        return codes
    # weighted sampling without replacement (Efraimidis-Spirakis): the k largest log(U)/w
    keys = np.log(rng.random(len(rest))) / (w / w.max())
    extra = rest[np.argpartition(-keys, k - 1)[:k]]
    return np.sort(np.concatenate([codes, extra]))


def _sample_pairs(
    n_users: int,
    n_items: int,
    n_ratings: int,
    pu: np.ndarray | None,
    pi: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Distinct pair codes ``u * n_items + i`` (sorted): a covering set, then weighted draws."""
    m = max(n_users, n_items)
    k = np.arange(m)
    cover_u = rng.permutation(n_users)[k % n_users]
    cover_i = rng.permutation(n_items)[k % n_items]
    codes = np.sort(cover_u.astype(np.int64) * n_items + cover_i)
    if len(codes) >= n_ratings:
        return np.sort(rng.choice(codes, size=n_ratings, replace=False))
    total = n_users * n_items
    if n_ratings - len(codes) > 0.5 * (total - len(codes)):
        return _choose_remaining(codes, n_users, n_items, n_ratings, pu, pi, rng)
    while len(codes) < n_ratings:
        need = n_ratings - len(codes)
        batch_n = int(need * 1.25) + 64
        batch = np.sort(
            _draw(n_users, batch_n, pu, rng).astype(np.int64) * n_items
            + _draw(n_items, batch_n, pi, rng)
        )
        # np.unique's hash path is slow on millions of int64: dedupe the sorted array by hand
        batch = batch[np.concatenate(([True], batch[1:] != batch[:-1]))]
        pos = np.minimum(np.searchsorted(codes, batch), len(codes) - 1)
        new = batch[codes[pos] != batch]
        if len(new) > need:
            new = new[np.sort(rng.choice(len(new), size=need, replace=False))]
        # two sorted runs: the stable (tim)sort merges them in linear time
        codes = np.sort(np.concatenate([codes, new]), kind="stable")
        if len(new) < 0.2 * need and total <= 50_000_000:
            # heavy users / items are saturated: rejection stalls, enumerate what is left
            return _choose_remaining(codes, n_users, n_items, n_ratings, pu, pi, rng)
    return codes


def make_synthetic(
    n_users: int = 200,
    n_items: int = 150,
    rank: int = 3,
    n_ratings: int | None = None,
    density: float | None = None,
    noise_sd: float = 0.5,
    biases: bool = True,
    mu: float = 3.5,
    bias_sd: float = 0.3,
    factor_sd: float | None = None,
    activity_exponent: float = 0.0,
    scale: RatingScale | tuple | None = _STAR_SCALE,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[Ratings, SyntheticTruth]:
    """Draw ratings from the PMF generative model and return the ground truth with them.

    ``U_u ~ N(0, factor_sd^2 I)``, ``V_i ~ N(0, factor_sd^2 I)``, ``b_u, b_i ~ N(0, bias_sd^2)``,
    ``r_ui = mu + b_u + b_i + U_u . V_i + eps``, ``eps ~ N(0, noise_sd^2)``, then clipped and
    rounded to ``scale`` when one is given.

    Which pairs are observed: each (user, item) pair at most once; first a covering set of
    ``max(n_users, n_items)`` pairs so every user and item has at least one rating (when
    ``n_ratings`` allows it), then pairs drawn with probability proportional to
    ``w_user * w_item``, where the activity weights follow a power law ``rank^-activity_exponent``
    over a random order of users (and of items); ``activity_exponent=0`` is uniform.

    Parameters
    ----------
    n_users, n_items, rank : int
        Matrix size and number of latent factors.
    n_ratings : int, optional
        Number of observed pairs. Give this or ``density``; with neither, ``density=0.1``.
    density : float, optional
        Fraction of the ``n_users x n_items`` matrix observed, in (0, 1].
    noise_sd : float
        Observation noise standard deviation (>= 0).
    biases : bool
        Draw user and item biases; ``False`` sets them to zero (``mu`` still applies: pass
        ``mu=0`` for a pure ``U V^T`` model).
    mu : float
        Global offset.
    bias_sd : float
        Standard deviation of the user and item biases.
    factor_sd : float, optional
        Standard deviation of each factor entry. Default ``rank ** -0.25``, so that ``u . v``
        has unit variance whatever the rank.
    activity_exponent : float
        Power-law exponent of user and item activity (>= 0; 0 = uniform).
    scale : RatingScale, tuple or None
        Clip and round the ratings to this scale (default 1..5 step 1); ``None`` keeps the
        continuous values.
    random_state : int, Generator or None
        Seed; the same seed gives identical data.

    Returns
    -------
    ratings : Ratings
        Named ``"synthetic"``. User ids are strings ``"u0001"...``, item ids the integers
        ``1001, 1002, ...`` (deliberately not ``0..n-1``); both sort in index order.
    truth : SyntheticTruth
        ``truth.mean(ratings.users, ratings.items)`` is the noise-free mean of each rating.
    """
    n_users = check_positive_int(n_users, "n_users")
    n_items = check_positive_int(n_items, "n_items")
    rank = check_positive_int(rank, "rank")
    noise_sd = check_nonnegative_float(noise_sd, "noise_sd")
    bias_sd = check_nonnegative_float(bias_sd, "bias_sd")
    activity_exponent = check_nonnegative_float(activity_exponent, "activity_exponent")
    mu = float(mu)
    if not np.isfinite(mu):
        raise BayesMFError(f"mu must be finite, got {mu!r}")
    factor_sd = (
        rank ** -0.25 if factor_sd is None else check_positive_float(factor_sd, "factor_sd")
    )
    if isinstance(scale, tuple):
        scale = RatingScale(*scale)
    total = n_users * n_items
    if n_ratings is not None and density is not None:
        raise BayesMFError("give n_ratings or density, not both")
    if n_ratings is None:
        if density is None:
            density = 0.1
        elif density != 1.0:
            density = check_probability(density, "density")
        n_ratings = max(1, int(round(float(density) * total)))
    n_ratings = check_positive_int(n_ratings, "n_ratings")
    if n_ratings > total:
        raise BayesMFError(
            f"n_ratings={n_ratings} exceeds the {n_users} x {n_items} = {total} possible pairs"
        )
    rng = as_rng(random_state)

    U = rng.normal(0.0, factor_sd, size=(n_users, rank))
    V = rng.normal(0.0, factor_sd, size=(n_items, rank))
    if biases:
        bu = rng.normal(0.0, bias_sd, size=n_users)
        bi = rng.normal(0.0, bias_sd, size=n_items)
    else:
        bu, bi = np.zeros(n_users), np.zeros(n_items)
    pu = _activity_weights(n_users, activity_exponent, rng)
    pi = _activity_weights(n_items, activity_exponent, rng)
    codes = _sample_pairs(n_users, n_items, n_ratings, pu, pi, rng)
    users = (codes // n_items).astype(np.int32)
    items = (codes % n_items).astype(np.int32)

    truth = SyntheticTruth(U, V, mu, bu, bi, noise_sd, float(factor_sd), scale)
    values = truth.mean(users, items) + rng.normal(0.0, 1.0, size=n_ratings) * noise_sd
    if scale is not None:
        values = scale.round(values)
    width = max(4, len(str(n_users)))
    ratings = Ratings(
        users=users,
        items=items,
        values=values,
        user_ids=pd.Index([f"u{k + 1:0{width}d}" for k in range(n_users)], name="user"),
        item_ids=pd.Index(np.arange(1001, 1001 + n_items, dtype=np.int64), name="item"),
        scale=scale,
        name="synthetic",
    )
    return ratings, truth


# ====================================================================== delimited files
def _check_table(
    df: pd.DataFrame, path: Path, first_line: int, names: list[str], numeric: list[str]
) -> pd.DataFrame:
    """Validate a table read as text with ``skip_blank_lines=False``.

    Every line must have ``len(names)`` fields and the ``numeric`` columns must parse as
    numbers. Raises :class:`DataError` naming the file and the (1-based) line of the first
    problem; returns the ``numeric`` columns as floats.
    """
    # trailing blank lines are harmless
    empty = df.isna().all(axis=1).to_numpy()
    last = len(empty)
    while last > 0 and empty[last - 1]:
        last -= 1
    df = df.iloc[:last]
    n_fields = len(names)
    if len(df) == 0:
        raise DataError(f"{path}: the file holds no ratings")
    if df.shape[1] != n_fields:
        raise DataError(
            f"{path}: line {first_line} has {df.shape[1]} fields, expected {n_fields} "
            f"({', '.join(names)}); the file is corrupt or not in the expected format"
        )
    counts = df.notna().sum(axis=1).to_numpy()
    short = np.flatnonzero(counts < n_fields)
    if len(short):
        pos = int(short[0])
        hint = " (the file looks truncated)" if pos == len(df) - 1 else ""
        raise DataError(
            f"{path}: line {first_line + pos} has {int(counts[pos])} "
            f"field(s), expected {n_fields} ({', '.join(names)}){hint}"
        )
    out = {}
    for name in numeric:
        col = df[name]
        num = pd.to_numeric(col, errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy())
        if len(bad):
            pos = int(bad[0])
            raise DataError(
                f"{path}: line {first_line + pos}: non-numeric {name} {col.iloc[pos]!r}"
            )
        out[name] = num.to_numpy(dtype=float)
    return pd.DataFrame(out)


def _read_numeric(
    path: Path, sep: str, names: list[str], header: bool = False, encoding: str = "utf-8"
) -> pd.DataFrame:
    """Read a delimited ratings file strictly; return the ``names`` columns as floats.

    Without a header the file must have exactly ``len(names)`` fields per line; with one, the
    header must name every column in ``names`` (other columns are allowed, must be filled in,
    and are dropped). A fast pass parses straight to floats; when it fails or finds a hole, a
    second pass reads the text and names the file and line of the first problem.
    """
    if sep == "::":
        # the C parser takes one-character separators only: swap '::' for a tab first
        source: object = io.BytesIO(path.read_bytes().replace(b"::", b"\t"))
        sep = "\t"
    else:
        source = path
    common = dict(sep=sep, header=0 if header else None, skip_blank_lines=False,
                  encoding=encoding)
    try:
        dtype = dict.fromkeys(names, np.float64) if header else np.float64
        df = pd.read_csv(source, dtype=dtype, **common)
        if not header and df.shape[1] == len(names):
            df.columns = names
        if all(n in df.columns for n in names) and not df.isna().to_numpy().any():
            return df[names]
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        pass  # diagnose below
    if isinstance(source, io.BytesIO):
        source.seek(0)
    try:
        df = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""], **common)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: corrupt file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a {encoding} text file ({exc.reason})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    if not header:
        if df.shape[1] == len(names):
            df.columns = names
        return _check_table(df, path, 1, names, names)
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise DataError(f"{path}: header lacks column(s) {missing}; found {list(df.columns)}")
    return _check_table(df, path, 2, [str(c) for c in df.columns], names)


def _integer_ids(df: pd.DataFrame, where: Path) -> None:
    """Turn the float ``user``/``item`` columns of a MovieLens table into int64, in place."""
    for col in ("user", "item"):
        v = df[col].to_numpy()
        bad = np.flatnonzero(v != np.round(v))
        if len(bad):
            raise DataError(f"{where}: non-integer {col} id {v[bad[0]]!r} in the ratings file")
        df[col] = v.astype(np.int64)


def _read_ml100k_items(path: Path) -> pd.DataFrame:
    rows = []
    for lineno, line in enumerate(path.read_bytes().decode("latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < 2 or not parts[0].strip().isdigit():
            raise DataError(f"{path}: line {lineno} is not 'movie id | title | ...'")
        flags = parts[5:]
        genres = "|".join(
            g for g, f in zip(_ML100K_GENRES, flags, strict=False) if f.strip() == "1"
        )
        rows.append((int(parts[0]), parts[1], genres))
    return pd.DataFrame(rows, columns=["movieId", "title", "genres"]).set_index("movieId")


def _read_ml1m_movies(path: Path) -> pd.DataFrame:
    rows = []
    for lineno, line in enumerate(path.read_bytes().decode("latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            raise DataError(f"{path}: line {lineno} is not 'MovieID::Title::Genres'")
        rows.append((int(parts[0]), parts[1], parts[2]))
    return pd.DataFrame(rows, columns=["movieId", "title", "genres"]).set_index("movieId")


def _read_movies_csv(path: Path) -> pd.DataFrame:
    try:
        info = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: corrupt movies file: {exc}") from None
    if "movieId" not in info.columns or "title" not in info.columns:
        raise DataError(f"{path}: expected columns movieId, title; found {list(info.columns)}")
    if pd.to_numeric(info["movieId"], errors="coerce").isna().any():
        raise DataError(f"{path}: non-numeric movieId")
    return info.set_index("movieId")


def _find_layout(directory: Path) -> tuple[Path, str] | None:
    """Return ``(dir, layout)`` for ``directory``, or for the one sub-folder holding a set.

    Raises :class:`DatasetNotFoundError` when several sub-folders hold a set (ambiguous).
    """
    for fname, layout in _LAYOUTS.items():
        if (directory / fname).is_file():
            return directory, layout
    hits = []
    for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
        for fname, layout in _LAYOUTS.items():
            if (sub / fname).is_file():
                hits.append((sub, layout))
                break
    if len(hits) > 1:
        raise DatasetNotFoundError(
            f"{directory} holds several rating sets ({', '.join(h[0].name for h in hits)}); "
            "pass the one you mean"
        )
    return hits[0] if hits else None


def load_movielens(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Ratings:
    """Read a MovieLens directory: 100K, 1M or latest (including latest-small).

    The layout is detected from the files present:

    - ``u.data`` (tab separated ``user item rating timestamp``; titles from ``u.item``,
      latin-1, ``|`` separated): MovieLens 100K, scale 1..5 step 1;
    - ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``; titles from ``movies.dat``,
      latin-1): MovieLens 1M, scale 1..5 step 1;
    - ``ratings.csv`` (header ``userId,movieId,rating,timestamp``; titles from ``movies.csv``):
      MovieLens latest / latest-small, scale 0.5..5 step 0.5.

    A directory holding a single such folder (as unpacked from a GroupLens zip) works too.

    Parameters
    ----------
    path : path-like
        The directory. A bare dataset name (``"ml-100k"``, ``"ml-1m"``,
        ``"ml-latest-small"``) that is not an existing directory is looked up in the download
        cache instead (nothing is downloaded; see :func:`download_movielens`).
    cache_dir : path-like, optional
        Cache to look in for a bare name (default :func:`default_cache_dir`).

    Returns
    -------
    Ratings
        Named after the directory; ``item_info`` indexed by movie id with ``title`` and
        ``genres`` when the movies file is present.

    Raises
    ------
    DatasetNotFoundError
        The directory does not exist or holds none of the known files.
    DataError
        A file is corrupt or truncated (the message names the file and line).
    """
    directory = Path(path).expanduser()
    if not directory.is_dir() and str(path) in MOVIELENS_URLS:
        directory = _cache_root(cache_dir) / str(path)
        if not directory.is_dir():
            raise DatasetNotFoundError(
                f"{path} is not in the cache {directory.parent}; download it with "
                f"download_movielens({str(path)!r}) or pass the directory that holds it"
            )
    if not directory.exists():
        raise DatasetNotFoundError(f"no such directory: {directory}")
    if not directory.is_dir():
        raise DatasetNotFoundError(f"{directory} is a file, not a MovieLens directory")
    found = _find_layout(directory)
    if found is None:
        present = sorted(p.name for p in directory.iterdir())[:10]
        raise DatasetNotFoundError(
            f"{directory} holds none of the known MovieLens files: looked for "
            f"u.data (100K), ratings.dat (1M), ratings.csv (latest); found {present}"
        )
    directory, layout = found
    name = directory.name
    if layout == "ml-100k":
        df = _read_numeric(directory / "u.data", "\t", ["user", "item", "rating", "timestamp"])
        items = directory / "u.item"
        info = _read_ml100k_items(items) if items.is_file() else None
        scale = _STAR_SCALE
    elif layout == "ml-1m":
        df = _read_numeric(
            directory / "ratings.dat", "::", ["user", "item", "rating", "timestamp"],
            encoding="latin-1",
        )
        movies = directory / "movies.dat"
        info = _read_ml1m_movies(movies) if movies.is_file() else None
        scale = _STAR_SCALE
    else:
        df = _read_numeric(
            directory / "ratings.csv", ",", ["userId", "movieId", "rating"], header=True,
        )
        df = df.rename(columns={"userId": "user", "movieId": "item"})
        movies = directory / "movies.csv"
        info = _read_movies_csv(movies) if movies.is_file() else None
        scale = _HALF_STAR_SCALE
    _integer_ids(df, directory)
    try:
        return Ratings.from_frame(df, "user", "item", "rating", scale=scale, item_info=info,
                                  name=name)
    except DataError as exc:
        raise DataError(f"{directory}: {exc}") from None


def load_csv(
    path: str | os.PathLike,
    user_col: str = "userId",
    item_col: str = "movieId",
    rating_col: str = "rating",
    scale: RatingScale | tuple | None = None,
    sep: str = ",",
    duplicates: str = "error",
) -> Ratings:
    """Read any delimited table with user, item and rating columns (a header row required).

    Parameters
    ----------
    path : path-like
        The file (``.gz``/``.zip``/... compression inferred from the suffix).
    user_col, item_col, rating_col : str
        Header names of the three columns (defaults match MovieLens ``ratings.csv``).
    scale : RatingScale, tuple or None
        Declared rating scale; ``None`` infers ``(min, max, step)`` from the data
        (continuous when no step of 1, 0.5, 0.25 or 0.1 fits).
    sep : str
        Field separator (``"\\t"`` for tab separated files).
    duplicates : {"error", "mean", "first", "last"}
        Policy for repeated (user, item) pairs; see :meth:`Ratings.from_frame`.

    Returns
    -------
    Ratings
        Named after the file stem.

    Raises
    ------
    DatasetNotFoundError
        No such file.
    DataError
        Unreadable table, missing column, or bad ratings (message prefixed by the file name).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"no such file: {path}")
    try:
        df = pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot parse the table: {exc}") from None
    infer = scale is None
    try:
        if infer:
            missing = [c for c in (user_col, item_col, rating_col) if c not in df.columns]
            if not missing and len(df):
                vals = pd.to_numeric(df[rating_col], errors="coerce").to_numpy(dtype=float)
                finite = vals[np.isfinite(vals)]
                if len(finite) == len(vals) and np.unique(finite).size < 2:
                    infer = False  # one distinct rating: no scale to infer
        return Ratings.from_frame(
            df, user_col, item_col, rating_col, scale=scale, duplicates=duplicates,
            name=path.name.split(".")[0], infer_scale=infer,
        )
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


# ====================================================================== downloads
def default_cache_dir() -> Path:
    """``$BAYESMF_CACHE`` if set, else ``~/.cache/bayesmf``."""
    env = os.environ.get("BAYESMF_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bayesmf"


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _offline_error(name: str, url: str, reason: object) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"could not download {name} from {url}: {reason}. The machine may be offline. "
        f"Download and unzip {name}.zip elsewhere, then pass its directory, e.g. "
        f"load_movielens('/path/to/{name}') or `bayesmf evaluate /path/to/{name}`."
    )


def _fetch(url: str, dest: Path, progress: bool, label: str) -> None:
    """Stream ``url`` into ``dest`` with an optional rich progress bar."""
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (http/https only)
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with open(dest, "wb") as out:
            if not progress:
                shutil.copyfileobj(resp, out, 1 << 16)
                return
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            with Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), transient=True,
            ) as bar:
                task = bar.add_task(f"downloading {label}", total=total)
                while chunk := resp.read(1 << 16):
                    out.write(chunk)
                    bar.update(task, advance=len(chunk))


def _safe_extract(archive: zipfile.ZipFile, target: Path) -> None:
    root = target.resolve()
    for member in archive.namelist():
        dest = (target / member).resolve()
        if dest != root and root not in dest.parents:
            raise DataError(f"refusing to extract {member!r}: it points outside {target}")
    archive.extractall(target)


def download_movielens(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    url: str | None = None,
    progress: bool = True,
) -> Path:
    """Download a MovieLens zip from GroupLens into the cache and unpack it.

    Nothing is fetched when the cache already holds the unpacked set.

    Parameters
    ----------
    name : {"ml-100k", "ml-1m", "ml-latest-small"}
        Which set.
    cache_dir : path-like, optional
        Where to keep it; default ``$BAYESMF_CACHE`` or ``~/.cache/bayesmf``.
    url : str, optional
        Override the address (default ``https://files.grouplens.org/datasets/movielens/<name>.zip``).
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    pathlib.Path
        The unpacked directory (``<cache>/<name>``), ready for :func:`load_movielens`.

    Raises
    ------
    DatasetNotFoundError
        Unknown name, or the download failed (offline, HTTP error); the message says how to
        pass a local directory instead.
    DataError
        The downloaded file is not a valid zip archive (truncated or corrupt) or holds no
        MovieLens ratings file.
    """
    if name not in MOVIELENS_URLS:
        raise DatasetNotFoundError(
            f"unknown MovieLens set {name!r}; choose one of {sorted(MOVIELENS_URLS)}"
        )
    root = _cache_root(cache_dir)
    target = root / name
    if target.is_dir() and _find_layout(target) is not None:
        return target
    url = url or MOVIELENS_URLS[name]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetNotFoundError(f"cannot create the cache directory {root}: {exc}") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}-", suffix=".zip.part", dir=root)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            _fetch(url, tmp, progress, name)
        except urllib.error.HTTPError as exc:
            raise _offline_error(name, url, f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise _offline_error(name, url, exc.reason) from None
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise _offline_error(name, url, exc) from None
        if not zipfile.is_zipfile(tmp):
            raise DataError(
                f"the file downloaded from {url} ({tmp.stat().st_size} bytes) is not a valid "
                "zip archive (truncated or corrupt download); nothing was unpacked. Try again, "
                "or unzip a copy yourself and pass its directory"
            )
        unpack = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            try:
                with zipfile.ZipFile(tmp) as archive:
                    bad = archive.testzip()
                    if bad is not None:
                        raise DataError(f"{url}: zip member {bad!r} is corrupt (CRC mismatch)")
                    _safe_extract(archive, unpack)
            except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise DataError(
                    f"the zip archive downloaded from {url} is corrupt or truncated: {exc}"
                ) from None
            found = _find_layout(unpack)
            if found is None:
                raise DataError(
                    f"the archive from {url} holds no MovieLens ratings file "
                    "(u.data, ratings.dat or ratings.csv)"
                )
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(found[0]), str(target))
        finally:
            shutil.rmtree(unpack, ignore_errors=True)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# ====================================================================== dispatcher
def load(source: str | os.PathLike, **kwargs: object) -> Ratings:
    """Load ratings from a named source, a directory, or a file (used by the CLI).

    Parameters
    ----------
    source : str or path-like
        - ``"ml-latest-small"``: the embedded copy (offline);
        - ``"ml-100k"`` / ``"ml-1m"``: from the download cache, downloading once when online;
        - ``"toy"``: :func:`load_toy`;
        - ``"synthetic"``: :func:`make_synthetic` with its defaults (keyword arguments go to it);
        - an existing directory: :func:`load_movielens`;
        - an existing file: :func:`load_csv`.
    **kwargs
        Passed on to the loader (e.g. ``cache_dir=`` for downloads, ``sep=`` for a CSV).

    Returns
    -------
    Ratings

    Raises
    ------
    DatasetNotFoundError
        Unknown source, a path that does not exist, or a download that failed.
    """
    key = str(source)
    if key == "ml-latest-small":
        return load_ml_latest_small(**kwargs)  # type: ignore[arg-type]
    if key == "toy":
        return load_toy(**kwargs)
    if key == "synthetic":
        return make_synthetic(**kwargs)[0]  # type: ignore[arg-type]
    path = Path(key).expanduser()
    if key in MOVIELENS_URLS and not path.exists():
        directory = download_movielens(key, **kwargs)  # type: ignore[arg-type]
        return load_movielens(directory)
    if path.is_dir():
        return load_movielens(path, **kwargs)  # type: ignore[arg-type]
    if path.is_file():
        return load_csv(path, **kwargs)  # type: ignore[arg-type]
    raise DatasetNotFoundError(
        f"unknown data source {key!r}: expected 'ml-latest-small', 'ml-100k', 'ml-1m', "
        "'toy', 'synthetic', a MovieLens directory or a CSV file path"
    )
