"""Tests for bayesmf.data: Ratings, RatingScale, sparse views, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmf.data import Ratings, RatingScale, infer_rating_scale
from bayesmf.exceptions import BayesMFError, DataError


def _frame(users, items, ratings):
    return pd.DataFrame({"user": users, "item": items, "rating": ratings})


# ---------------------------------------------------------------- RatingScale
def test_rating_scale_levels_round_clip():
    s = RatingScale(0.5, 5.0, 0.5)
    assert s.levels.tolist() == [0.5 * k for k in range(1, 11)]
    assert s.span == 4.5
    np.testing.assert_allclose(s.round(np.array([-3.0, 0.74, 0.76, 3.74, 9.0])),
                               [0.5, 0.5, 1.0, 3.5, 5.0])
    np.testing.assert_allclose(s.clip(np.array([0.0, 2.2, 7.0])), [0.5, 2.2, 5.0])
    assert s.off_scale(np.array([0.5, 0.75, 5.5, 0.0, 3.0])).tolist() == [
        False, True, True, True, False]
    assert s.to_tuple() == (0.5, 5.0, 0.5)


def test_rating_scale_continuous():
    s = RatingScale(1, 5)
    assert s.step is None
    np.testing.assert_allclose(s.round(np.array([0.0, 2.37, 6.0])), [1.0, 2.37, 5.0])
    assert not s.off_scale(np.array([1.0, 2.37, 5.0])).any()
    with pytest.raises(DataError, match="continuous"):
        _ = s.levels


@pytest.mark.parametrize(
    ("args", "msg"),
    [((5, 1, 1), "min < max"), ((1, 1, 1), "min < max"), ((1, np.inf, 1), "finite"),
     ((1, 5, 0), "step must be positive"), ((1, 5, -1), "step must be positive"),
     ((1, 5, 0.7), "whole levels")],
)
def test_rating_scale_bad(args, msg):
    with pytest.raises(DataError, match=msg):
        RatingScale(*args)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([1, 2, 5, 3], (1.0, 5.0, 1.0)), ([0.5, 5.0, 3.5], (0.5, 5.0, 0.5)),
     ([1.0, 1.25, 2.0], (1.0, 2.0, 0.25)), ([0.13, 0.9, 0.4], (0.13, 0.9, None))],
)
def test_infer_rating_scale(values, expected):
    assert infer_rating_scale(np.array(values)).to_tuple() == pytest.approx(expected)


def test_infer_rating_scale_constant():
    with pytest.raises(DataError, match="all ratings are equal"):
        infer_rating_scale(np.array([3.0, 3.0]))


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize(
    ("users", "items"),
    [
        ([10, 3, 10, 7], [100, 200, 300, 100]),                       # ints, not 0..n-1
        (["bob", "alice", "bob", "zoe"], ["x", "y", "z", "x"]),        # strings
        ([(1, "a"), (0, "b"), (1, "a"), (2, "c")], [1.5, 2.5, 3.5, 1.5]),  # tuples, floats
        ([1, "a", 2.5, "a"], ["i1", "i2", "i3", "i4"]),  # mixed types
        (list(pd.to_datetime(["2020-01-02", "2019-05-01", "2020-01-02", "2018-01-01"])),
         [True, False, "t", True]),
    ],
)
def test_from_frame_to_frame_round_trip(users, items):
    df = _frame(users, items, [1.0, 2.0, 3.0, 4.0])
    r = Ratings.from_frame(df)
    assert r.nnz == 4
    assert r.n_users == len(set(users)) and r.n_items == len(set(items))
    back = r.to_frame()
    assert list(back.columns) == ["user", "item", "rating"]
    assert back["user"].tolist() == users
    assert back["item"].tolist() == items
    assert back["rating"].tolist() == [1.0, 2.0, 3.0, 4.0]
    # raw -> index -> raw
    assert r.user_ids[r.user_index(users)].tolist() == users
    assert r.item_ids[r.item_index(items)].tolist() == items
    np.testing.assert_array_equal(r.user_index(users), r.users)


def test_from_frame_custom_columns_and_index_maps():
    df = pd.DataFrame({"uid": [30, 10, 20, 10], "mid": ["m2", "m1", "m2", "m3"],
                       "stars": [4, 5, 3, 1]})
    r = Ratings.from_frame(df, "uid", "mid", "stars", scale=(1, 5, 1), name="t")
    assert r.user_ids.tolist() == [10, 20, 30]          # sorted raw ids
    assert r.item_ids.tolist() == ["m1", "m2", "m3"]
    assert r.users.tolist() == [2, 0, 1, 0]
    assert r.items.tolist() == [1, 0, 1, 2]
    assert r.users.dtype == np.int32 and r.items.dtype == np.int32
    assert r.values.dtype == np.float64
    assert r.scale == RatingScale(1, 5, 1) and r.name == "t"
    assert r.user_index([20, 99]).tolist() == [1, -1]
    assert r.item_index(["m3", "zz"]).tolist() == [2, -1]
    assert r.user_counts.tolist() == [2, 1, 1]
    assert r.item_counts.tolist() == [1, 2, 1]
    assert r.global_mean == pytest.approx(13 / 4)
    assert r.density == pytest.approx(4 / 9)
    assert len(r) == 4 and "n_ratings=4" in repr(r)
    out = r.to_frame("u", "i", "r")
    assert list(out.columns) == ["u", "i", "r"]


def test_item_titles():
    info = pd.DataFrame({"title": ["Alpha", "Beta"]}, index=pd.Index([7, 9]))
    r = Ratings.from_frame(_frame([1, 2], [9, 7], [1.0, 2.0]), item_info=info)
    assert r.item_titles(np.array([0, 1])).tolist() == ["Alpha", "Beta"]
    assert Ratings.from_frame(_frame([1, 2], [9, 7], [1.0, 2.0])).item_titles([0]) is None


def test_infer_scale_flag():
    r = Ratings.from_frame(_frame([1, 2, 3], [1, 1, 1], [0.5, 4.5, 2.0]), infer_scale=True)
    assert r.scale == RatingScale(0.5, 4.5, 0.5)
    assert Ratings.from_frame(_frame([1, 2], [1, 1], [1.0, 2.0])).scale is None


# ---------------------------------------------------------------- duplicates
def _dups():
    return _frame(["a", "a", "b", "a"], ["x", "x", "x", "y"], [1.0, 3.0, 2.0, 5.0])


def test_duplicates_error_by_default():
    with pytest.raises(DataError, match=r"1 \(user, item\) pair\(s\) occur more than once.*'a'"):
        Ratings.from_frame(_dups())


@pytest.mark.parametrize(("policy", "ax"), [("mean", 2.0), ("first", 1.0), ("last", 3.0)])
def test_duplicates_policies(policy, ax):
    r = Ratings.from_frame(_dups(), duplicates=policy)
    assert r.nnz == 3
    got = {(u, i): v for u, i, v in r.to_frame().itertuples(index=False)}
    assert got == {("a", "x"): ax, ("b", "x"): 2.0, ("a", "y"): 5.0}


def test_duplicates_bad_policy():
    with pytest.raises(DataError, match="duplicates must be one of"):
        Ratings.from_frame(_dups(), duplicates="sum")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("ratings", "msg"),
    [
        ([1.0, np.nan, 3.0], r"column 'rating' has 1 NaN rating\(s\)"),
        ([1.0, np.inf, 3.0], r"column 'rating' has 1 infinite rating\(s\)"),
        ([1.0, -np.inf, np.inf], r"2 infinite rating\(s\)"),
        (["4", "five", "3"], r"1 non-numeric rating\(s\), e.g. \['five'\]"),
        (pd.array([1, None, 3], dtype="Int64"), r"1 NaN rating"),
    ],
)
def test_bad_rating_values(ratings, msg):
    with pytest.raises(DataError, match=msg):
        Ratings.from_frame(_frame([1, 2, 3], [1, 2, 3], ratings))


def test_off_scale_ratings():
    df = _frame([1, 2, 3, 4], [1, 2, 3, 4], [1.0, 6.0, 2.5, 0.0])
    with pytest.raises(DataError, match=r"3 rating\(s\) are off the declared scale 1.0..5.0 "
                                        r"step 1.0, e.g. \[0.0, 2.5, 6.0\]"):
        Ratings.from_frame(df, scale=RatingScale(1, 5, 1))
    with pytest.raises(DataError, match="off the declared scale"):
        Ratings.from_frame(df, scale=(1, 5, None))  # 6 and 0 are outside even continuously


def test_boolean_ratings_rejected():
    with pytest.raises(DataError, match="holds booleans, not numeric ratings"):
        Ratings.from_frame(_frame([1, 2], [1, 1], [True, False]))


def test_scale_argument_forms():
    df = _frame([1, 2], [1, 1], [1.0, 2.0])
    assert Ratings.from_frame(df, scale=[1, 5, 1]).scale == RatingScale(1, 5, 1)
    with pytest.raises(DataError, match="scale must be a RatingScale"):
        Ratings.from_frame(df, scale="1..5")


def test_empty_table():
    with pytest.raises(DataError, match="the ratings table is empty"):
        Ratings.from_frame(_frame([], [], []))


def test_missing_column():
    df = pd.DataFrame({"user": [1], "movie": [2], "rating": [3.0]})
    with pytest.raises(DataError, match=r"missing column\(s\) \['item'\].*'movie'.*item_col="):
        Ratings.from_frame(df)


def test_missing_ids():
    with pytest.raises(DataError, match=r"column 'user' has 1 missing id\(s\)"):
        Ratings.from_frame(_frame([1, None, 3], [1, 2, 3], [1.0, 2.0, 3.0]))


def test_not_a_frame():
    with pytest.raises(DataError, match="expected a pandas DataFrame, got dict"):
        Ratings.from_frame({"user": [1], "item": [1], "rating": [1.0]})


def test_errors_are_value_errors():
    assert issubclass(DataError, BayesMFError) and issubclass(DataError, ValueError)


def test_constructor_checks():
    with pytest.raises(DataError, match="same length"):
        Ratings([0, 1], [0], [1.0, 2.0], pd.Index([1, 2]), pd.Index([1]))
    with pytest.raises(DataError, match="outside the id maps"):
        Ratings([0, 2], [0, 0], [1.0, 2.0], pd.Index([1, 2]), pd.Index([1]))


def test_with_values():
    r = Ratings.from_frame(_frame([1, 2], [1, 1], [1.0, 2.0]))
    r2 = r.with_values(np.array([5.0, 6.0]))
    assert r2.values.tolist() == [5.0, 6.0] and r.values.tolist() == [1.0, 2.0]
    with pytest.raises(DataError, match="match the number of ratings"):
        r.with_values(np.ones(3))


def test_global_mean_empty():
    r = Ratings.from_frame(_frame([1, 2], [1, 1], [1.0, 2.0])).take(np.array([], dtype=int))
    assert r.nnz == 0 and r.n_users == 2
    with pytest.raises(DataError, match="global mean is undefined"):
        _ = r.global_mean


# ---------------------------------------------------------------- sparse views
def _dense(r: Ratings) -> np.ndarray:
    m = np.full((r.n_users, r.n_items), np.nan)
    m[r.users, r.items] = r.values
    return m


def _dense_from_rows(rows, n_rows, n_cols, transpose=False):
    m = np.full((n_rows, n_cols), np.nan)
    for row in range(n_rows):
        lo, hi = rows.indptr[row], rows.indptr[row + 1]
        m[row, rows.indices[lo:hi]] = rows.data[lo:hi]
    return m.T if transpose else m


def test_sparse_views_match_dense(small_synthetic):
    r, _ = small_synthetic
    ref = _dense(r)
    bu, bi = r.by_user, r.by_item
    np.testing.assert_array_equal(_dense_from_rows(bu, r.n_users, r.n_items), ref)
    np.testing.assert_array_equal(_dense_from_rows(bi, r.n_items, r.n_users, True), ref)
    np.testing.assert_array_equal(bu.counts, r.user_counts)
    np.testing.assert_array_equal(bi.counts, r.item_counts)
    # order maps stored entries back to positions in the parent arrays
    np.testing.assert_array_equal(r.values[bu.order], bu.data)
    np.testing.assert_array_equal(r.items[bu.order], bu.indices)
    np.testing.assert_array_equal(r.users[bi.order], bi.indices)
    assert bu.indptr.dtype == np.int64 and bu.indices.dtype == np.int32
    assert bu.data.flags.c_contiguous and bu.indices.flags.c_contiguous


def test_sparse_views_with_empty_rows():
    # user 'b' exists in the id map but has no rating after take()
    r = Ratings.from_frame(_frame(["a", "b", "c", "a"], [1, 2, 1, 3], [1.0, 2.0, 3.0, 4.0]))
    sub = r.take(np.array([0, 2, 3]))
    assert sub.by_user.counts.tolist() == [2, 0, 1]
    assert sub.by_item.counts.tolist() == [2, 0, 1]
    np.testing.assert_array_equal(_dense_from_rows(sub.by_user, 3, 3), _dense(sub))


def test_take_keeps_id_maps_and_mask():
    r = Ratings.from_frame(_frame(["a", "b", "c"], [1, 2, 3], [1.0, 2.0, 3.0]),
                           scale=(1, 5, 1), name="n")
    sub = r.take(np.array([False, True, True]))
    assert sub.user_ids.equals(r.user_ids) and sub.item_ids.equals(r.item_ids)
    assert sub.values.tolist() == [2.0, 3.0] and sub.scale == r.scale and sub.name == "n"
