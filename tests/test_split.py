"""Tests for bayesmf.split: random, per-user, k-fold and MovieLens canonical splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmf.data import Ratings
from bayesmf.datasets import load_movielens, make_synthetic
from bayesmf.exceptions import BayesMFError, DataError, DatasetNotFoundError
from bayesmf.split import kfold, make_splits, movielens_folds, random_split, user_split


def _keys(r: Ratings) -> list[tuple]:
    """(raw user, raw item, value) triples: comparable across Ratings objects."""
    return list(zip(r.user_ids[r.users], r.item_ids[r.items], r.values, strict=True))


def _positions(full: Ratings, part: Ratings) -> np.ndarray:
    """Position in ``full`` of each rating of ``part`` (pairs are unique)."""
    code = full.users.astype(np.int64) * full.n_items + full.items
    lookup = pd.Series(np.arange(full.nnz), index=code)
    return lookup.loc[part.users.astype(np.int64) * full.n_items + part.items].to_numpy()


def _assert_partition(full: Ratings, train: Ratings, test: Ratings, same: bool = True) -> None:
    assert train.nnz + test.nnz == full.nnz
    both = np.concatenate([_positions(full, train), _positions(full, test)])
    np.testing.assert_array_equal(np.sort(both), np.arange(full.nnz))
    for part in (train, test):
        if same:   # built by take(): the very same id maps
            assert part.user_ids is full.user_ids and part.item_ids is full.item_ids
        assert part.user_ids.equals(full.user_ids) and part.item_ids.equals(full.item_ids)
        assert part.scale == full.scale and part.name == full.name
        np.testing.assert_array_equal(part.values, full.values[_positions(full, part)])


# ---------------------------------------------------------------- random
def test_random_split_partitions(small_synthetic):
    r, _ = small_synthetic
    train, test = random_split(r, test_size=0.25, random_state=0)
    assert test.nnz == 150 and train.nnz == 450
    _assert_partition(r, train, test)
    # original order kept inside each part
    assert np.all(np.diff(_positions(r, train)) > 0) and np.all(np.diff(_positions(r, test)) > 0)


def test_random_split_reproducible(small_synthetic):
    r, _ = small_synthetic
    a = random_split(r, random_state=5)
    b = random_split(r, random_state=5)
    c = random_split(r, random_state=6)
    assert _keys(a[1]) == _keys(b[1]) and _keys(a[0]) == _keys(b[0])
    assert _keys(a[1]) != _keys(c[1])
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert _keys(random_split(r, random_state=rng_a)[1]) == _keys(
        random_split(r, random_state=rng_b)[1])


def test_random_split_edges(toy_ratings):
    train, test = random_split(toy_ratings, test_size=0.01, random_state=0)
    assert test.nnz == 1 and train.nnz == 10        # at least one rating held out
    train, test = random_split(toy_ratings, test_size=0.99, random_state=0)
    assert train.nnz == 1 and test.nnz == 10        # at least one kept for training
    with pytest.raises(DataError, match="need at least 2"):
        random_split(toy_ratings.take(np.array([0])))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5, "0.2", True])
def test_random_split_bad_test_size(toy_ratings, bad):
    with pytest.raises(BayesMFError, match="test_size"):
        random_split(toy_ratings, test_size=bad)


# ---------------------------------------------------------------- per user
@pytest.mark.parametrize("k", [1, 3])
def test_user_split_holds_out_k_per_eligible_user(small_synthetic, k):
    r, _ = small_synthetic
    train, test = user_split(r, n_test=k, random_state=0, min_train=2)
    _assert_partition(r, train, test)
    counts = r.user_counts
    eligible = counts >= k + 2
    assert eligible.sum() > 30
    np.testing.assert_array_equal(test.user_counts, np.where(eligible, k, 0))
    np.testing.assert_array_equal(train.user_counts, counts - test.user_counts)


def test_user_split_small_users_stay_in_train():
    df = pd.DataFrame({"user": ["a"] * 5 + ["b"] * 2 + ["c"],
                       "item": [1, 2, 3, 4, 5, 1, 2, 1],
                       "rating": [1.0, 2, 3, 4, 5, 1, 2, 3]})
    r = Ratings.from_frame(df)
    train, test = user_split(r, n_test=2, min_train=1, random_state=0)
    # a: 5 >= 3 -> 2 held out; b: 2 < 3 -> all kept; c: 1 < 3 -> all kept
    assert test.user_counts.tolist() == [2, 0, 0]
    assert train.user_counts.tolist() == [3, 2, 1]
    _, test0 = user_split(r, n_test=2, min_train=0, random_state=0)
    assert test0.user_counts.tolist() == [2, 2, 0]       # b may now give both away
    with pytest.raises(DataError, match="no user has the 7 ratings needed"):
        user_split(r, n_test=5, min_train=2)


def test_user_split_reproducible_and_random(small_synthetic):
    r, _ = small_synthetic
    a = user_split(r, random_state=3)[1]
    b = user_split(r, random_state=3)[1]
    c = user_split(r, random_state=4)[1]
    assert _keys(a) == _keys(b) and _keys(a) != _keys(c)


@pytest.mark.parametrize(("kw", "msg"), [(dict(n_test=0), "n_test"), (dict(min_train=-1), "min_train")])
def test_user_split_bad_args(toy_ratings, kw, msg):
    with pytest.raises(BayesMFError, match=msg):
        user_split(toy_ratings, **kw)


# ---------------------------------------------------------------- k-fold
def test_kfold_covers_every_rating_once(small_synthetic):
    r, _ = small_synthetic
    folds = list(kfold(r, n_splits=7, random_state=0))
    assert len(folds) == 7
    seen = np.concatenate([_positions(r, test) for _, test in folds])
    np.testing.assert_array_equal(np.sort(seen), np.arange(r.nnz))
    sizes = [test.nnz for _, test in folds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == r.nnz
    for train, test in folds:
        _assert_partition(r, train, test)


def test_kfold_shuffled_and_reproducible(small_synthetic):
    r, _ = small_synthetic
    a = [_keys(t) for _, t in kfold(r, 5, random_state=0)]
    b = [_keys(t) for _, t in kfold(r, 5, random_state=0)]
    c = [_keys(t) for _, t in kfold(r, 5, random_state=1)]
    assert a == b and a != c
    first = _positions(r, next(kfold(r, 5, random_state=0))[1])
    assert first.max() - first.min() > r.nnz // 2        # not a contiguous block


@pytest.mark.parametrize("k", [1, 0, -3, 2.5, True])
def test_kfold_bad_k(toy_ratings, k):
    with pytest.raises(BayesMFError, match="number of folds must be an integer >= 2"):
        list(kfold(toy_ratings, n_splits=k))


def test_kfold_too_few_ratings(toy_ratings):
    with pytest.raises(DataError, match="cannot make 12 folds from 11"):
        list(kfold(toy_ratings, n_splits=12))


# ---------------------------------------------------------------- MovieLens canonical folds
def _write_ml100k_with_folds(directory: Path, n_folds: int = 5) -> pd.DataFrame:
    r, _ = make_synthetic(n_users=12, n_items=9, density=0.5, random_state=0)
    df = r.to_frame()
    df["user"] = df["user"].str[1:].astype(int) * 10     # raw ints 10, 20, ...
    df["item"] = df["item"] + 500
    df["ts"] = 880000000 + np.arange(len(df))
    directory.mkdir(parents=True)
    lines = lambda d: "".join(  # noqa: E731
        f"{u}\t{i}\t{int(v)}\t{t}\n" for u, i, v, t in d.itertuples(index=False))
    (directory / "u.data").write_text(lines(df))
    fold_of = np.arange(len(df)) % 5
    for k in range(n_folds):
        (directory / f"u{k + 1}.base").write_text(lines(df[fold_of != k]))
        (directory / f"u{k + 1}.test").write_text(lines(df[fold_of == k]))
    return df


def test_movielens_folds(tmp_path):
    d = tmp_path / "ml-100k"
    df = _write_ml100k_with_folds(d)
    full = load_movielens(d)
    folds = movielens_folds(d)
    assert len(folds) == 5
    fold_of = np.arange(len(df)) % 5
    for k, (train, test) in enumerate(folds):
        assert train.user_ids.equals(full.user_ids) and test.item_ids.equals(full.item_ids)
        expect = df[fold_of == k]
        got = test.to_frame()
        assert got["user"].tolist() == expect["user"].tolist()
        assert got["item"].tolist() == expect["item"].tolist()
        assert got["rating"].tolist() == expect["rating"].astype(float).tolist()
        _assert_partition(full, train, test, same=False)
        assert test.scale == full.scale and test.item_info is None  # no u.item written
        assert train.user_ids is test.user_ids           # one id space for every fold


def test_movielens_folds_partial_and_via_make_splits(tmp_path):
    d = tmp_path / "ml-100k"
    _write_ml100k_with_folds(d, n_folds=2)
    full = load_movielens(d)
    folds = make_splits(full, "movielens", directory=tmp_path)     # parent dir is fine
    assert len(folds) == 2
    assert folds[0][0].user_ids is full.user_ids                      # mapped into full's ids


def test_movielens_folds_missing_and_bad(tmp_path):
    d = tmp_path / "ml-100k"
    _write_ml100k_with_folds(d, n_folds=0)
    with pytest.raises(DatasetNotFoundError, match=r"no MovieLens 100K canonical folds.*u1.base"):
        movielens_folds(d)
    with pytest.raises(DatasetNotFoundError, match="no such directory"):
        movielens_folds(tmp_path / "nope")
    (d / "u1.base").write_text("10\t1501\t3\t1\n")
    (d / "u1.test").write_text("999\t1501\t3\t1\n")
    with pytest.raises(DataError, match=r"u1.test: user id 999 does not occur"):
        movielens_folds(d)
    (d / "u1.test").write_text("10\t1501\t3\n")
    with pytest.raises(DataError, match=r"u1.test: line 1 has 3 field"):
        movielens_folds(d)


# ---------------------------------------------------------------- make_splits
def test_make_splits_schemes(small_synthetic):
    r, _ = small_synthetic
    (tr, te), = make_splits(r, "random", test_size=0.1)
    assert te.nnz == 60
    assert make_splits(r, "random:0.3")[0][1].nnz == 180
    assert _keys(make_splits(r, "random")[0][1]) == _keys(random_split(r, random_state=0)[1])
    (tr, te), = make_splits(r, "user")
    assert te.user_counts.max() == 1
    (tr, te), = make_splits(r, "user:2")
    assert te.user_counts.max() == 2
    assert len(make_splits(r, "kfold:3")) == 3
    assert len(make_splits(r, "KFold")) == 5
    assert [_keys(t) for _, t in make_splits(r, "kfold:4", random_state=2)] == [
        _keys(t) for _, t in kfold(r, 4, random_state=2)]


@pytest.mark.parametrize(
    ("scheme", "kw", "msg"),
    [
        ("holdout", {}, r"unknown split scheme 'holdout'; use 'random'"),
        ("kfold:1", {}, "number of folds must be an integer >= 2, got 1"),
        ("kfold:x", {}, r"'x' is not an integer"),
        ("user:0", {}, "leave at least 1 rating per user out"),
        ("random:3", {}, "test_size must lie strictly between 0 and 1, got 3.0"),
        ("random:abc", {}, "'abc' is not a fraction"),
        ("movielens:2", {}, "unknown split scheme"),
        ("random", {"test_size": 1.0}, "test_size must lie strictly between 0 and 1"),
        ("random", {"test_size": 0}, "test_size"),
        ("movielens", {}, "needs the ml-100k directory"),
        (5, {}, "must be a string"),
    ],
)
def test_make_splits_bad(toy_ratings, scheme, kw, msg):
    with pytest.raises(BayesMFError, match=msg):
        make_splits(toy_ratings, scheme, **kw)


def test_splits_on_real_data(ml_small):
    r = ml_small
    train, test = random_split(r, test_size=0.2, random_state=0)
    assert test.nnz == 20167 and train.nnz == 80669
    _assert_partition(r, train, test)
    folds = make_splits(r, "kfold:5", random_state=0)
    assert sum(t.nnz for _, t in folds) == r.nnz
    assert np.array_equal(np.sort(np.concatenate([_positions(r, t) for _, t in folds])),
                          np.arange(r.nnz))
    train, test = user_split(r, n_test=5, random_state=0)
    assert test.nnz == 5 * 610                         # every user has >= 20 ratings
    assert set(test.user_counts.tolist()) == {5}
