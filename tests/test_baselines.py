"""Tests for bayesmf.models.baselines: exact values on the lecture's toy data, references."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pandas as pd
import pytest

from bayesmf.data import Ratings, RatingScale
from bayesmf.datasets import load_toy
from bayesmf.exceptions import BayesMFError, DataError, NotFittedError
from bayesmf.models.baselines import (
    BASELINES,
    BiasBaseline,
    GlobalMeanBaseline,
    ItemMeanBaseline,
    MeanOfMeansBaseline,
    UniformRandomBaseline,
    UserMeanBaseline,
)

# The toy table (rows Alice, Bob, Carol; columns Sholay, Swades, Batman, Interstellar, Shawshank):
#   Alice 5 4 2 3 2 | Bob ? 5 1 4 ? | Carol 4 ? 1 5 ?
MU = F(36, 11)
USER_MEAN = [F(16, 5), F(10, 3), F(10, 3)]
ITEM_MEAN = [F(9, 2), F(9, 2), F(4, 3), F(4, 1), F(2, 1)]
BOB, SHOLAY, SHAWSHANK = 1, 0, 4


@pytest.fixture(scope="module")
def toy() -> Ratings:
    return load_toy()


def test_global_mean_toy(toy):
    fit = GlobalMeanBaseline().fit(toy)
    assert fit.mu_ == pytest.approx(float(MU))
    np.testing.assert_allclose(fit.predict_mean([0, BOB, 2], [1, SHOLAY, 4]), float(MU))
    assert fit.sigma_ == pytest.approx(np.sqrt(np.mean((toy.values - float(MU)) ** 2)))
    assert fit.ratings_ is toy and fit.link_ == "identity" and fit.fit_time_ >= 0


def test_user_and_item_mean_toy(toy):
    um = UserMeanBaseline().fit(toy)
    im = ItemMeanBaseline().fit(toy)
    users = np.array([0, 1, 2, BOB, BOB])
    items = np.array([0, 0, 0, SHAWSHANK, 2])
    np.testing.assert_allclose(um.predict_mean(users, items), [float(USER_MEAN[u]) for u in users])
    np.testing.assert_allclose(im.predict_mean(users, items), [float(ITEM_MEAN[i]) for i in items])
    np.testing.assert_allclose(um.user_bias_, [float(m - MU) for m in USER_MEAN])
    np.testing.assert_allclose(im.item_bias_, [float(m - MU) for m in ITEM_MEAN])
    assert not um.item_bias_.any() and not im.user_bias_.any()


def test_mean_of_means_toy(toy):
    fit = MeanOfMeansBaseline().fit(toy)
    got = fit.predict_mean([BOB, 2], [SHOLAY, SHAWSHANK])
    want = [(MU + USER_MEAN[BOB] + ITEM_MEAN[SHOLAY]) / 3, (MU + USER_MEAN[2] + ITEM_MEAN[SHAWSHANK]) / 3]
    np.testing.assert_allclose(got, [float(w) for w in want])


def test_unseen_users_and_items_fall_back_to_global_mean(toy):
    # train on Alice only; Bob/Carol are in the id maps but have no training rating
    alice = toy.take(toy.users == 0)
    mu = 16 / 5
    for cls in (UserMeanBaseline, ItemMeanBaseline, MeanOfMeansBaseline, BiasBaseline):
        fit = cls().fit(alice)
        assert fit.user_bias_[1] == 0.0 and fit.user_bias_[2] == 0.0
        if cls is not UserMeanBaseline:
            # Bob x Sholay: user unseen, item seen -> item effect only
            assert fit.predict_mean([BOB], [SHOLAY])[0] == pytest.approx(mu + fit.item_bias_[SHOLAY])
    # index -1 (an id never seen at all) -> zero bias
    fit = MeanOfMeansBaseline().fit(toy)
    assert fit.predict_mean([-1], [-1])[0] == pytest.approx(float(MU))
    assert fit.predict_mean([-1], [SHOLAY])[0] == pytest.approx(float(MU + (ITEM_MEAN[0] - MU) / 3))


def test_bias_baseline_one_sweep_by_hand(toy):
    """n_iter=1: item biases from zero user biases, then user biases given those."""
    lu, li = 2, 1
    fit = BiasBaseline(lambda_user=lu, lambda_item=li, n_iter=1).fit(toy)
    cols = {0: [5, 4], 1: [4, 5], 2: [2, 1, 1], 3: [3, 4, 5], 4: [2]}  # item -> ratings
    bi = {i: sum(F(r) - MU for r in rs) / (li + len(rs)) for i, rs in cols.items()}
    rows = {0: [(0, 5), (1, 4), (2, 2), (3, 3), (4, 2)], 1: [(1, 5), (2, 1), (3, 4)],
            2: [(0, 4), (2, 1), (3, 5)]}
    bu = {u: sum(F(r) - MU - bi[i] for i, r in rs) / (lu + len(rs)) for u, rs in rows.items()}
    np.testing.assert_allclose(fit.item_bias_, [float(bi[i]) for i in range(5)], rtol=1e-12)
    np.testing.assert_allclose(fit.user_bias_, [float(bu[u]) for u in range(3)], rtol=1e-12)
    assert fit.predict_mean([BOB], [SHOLAY])[0] == pytest.approx(float(MU + bu[BOB] + bi[SHOLAY]))
    assert len(fit.history_) == 1 and fit.n_iter_ == 1


def _reference_bias_als(r: Ratings, lu: float, li: float, n_iter: int):
    """Plain-loop transcription of scikit-surprise's baseline_als."""
    mu = r.values.mean()
    bu, bi = np.zeros(r.n_users), np.zeros(r.n_items)
    for _ in range(n_iter):
        for i in range(r.n_items):
            sel = r.items == i
            bi[i] = np.sum(r.values[sel] - mu - bu[r.users[sel]]) / (li + sel.sum())
        for u in range(r.n_users):
            sel = r.users == u
            bu[u] = np.sum(r.values[sel] - mu - bi[r.items[sel]]) / (lu + sel.sum())
    return mu, bu, bi


@pytest.fixture(scope="module")
def random_ratings() -> Ratings:
    rng = np.random.default_rng(3)
    n = 800
    u, i = rng.integers(0, 40, n), rng.integers(0, 60, n)
    vals = np.clip(np.round(3 + rng.normal(0, 0.7, 40)[u] + rng.normal(0, 0.7, 60)[i]
                            + rng.normal(0, 0.5, n)), 1, 5)
    df = pd.DataFrame({"user": u, "item": i, "rating": vals}).drop_duplicates(["user", "item"])
    return Ratings.from_frame(df, scale=(1, 5, 1))


def test_bias_baseline_matches_loop_reference(random_ratings):
    fit = BiasBaseline(lambda_user=15, lambda_item=10, n_iter=10).fit(random_ratings)
    mu, bu, bi = _reference_bias_als(random_ratings, 15, 10, 10)
    assert fit.mu_ == pytest.approx(mu)
    np.testing.assert_allclose(fit.user_bias_, bu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.item_bias_, bi, rtol=1e-10, atol=1e-12)


def test_bias_baseline_converges_to_ridge_solution(random_ratings):
    r = random_ratings
    lu, li = 3.0, 7.0
    fit = BiasBaseline(lambda_user=lu, lambda_item=li, n_iter=300).fit(r)
    resid = r.values - fit.mu_ - fit.user_bias_[r.users] - fit.item_bias_[r.items]
    # stationarity of sum resid^2 + lu |bu|^2 + li |bi|^2
    grad_u = np.bincount(r.users, weights=resid, minlength=r.n_users) - lu * fit.user_bias_
    grad_i = np.bincount(r.items, weights=resid, minlength=r.n_items) - li * fit.item_bias_
    assert np.abs(grad_u).max() < 1e-8 and np.abs(grad_i).max() < 1e-8
    assert np.all(np.diff(fit.history_["objective"]) <= 1e-9)  # monotone coordinate descent
    assert fit.sigma_ == pytest.approx(np.sqrt(np.mean(resid**2)))


def test_bias_baseline_matches_scikit_surprise(random_ratings):
    surprise = pytest.importorskip("surprise")
    r = random_ratings
    df = r.to_frame()
    data = surprise.Dataset.load_from_df(df[["user", "item", "rating"]],
                                         surprise.Reader(rating_scale=(1, 5)))
    algo = surprise.BaselineOnly(bsl_options={"method": "als", "reg_u": 15, "reg_i": 10,
                                              "n_epochs": 10}, verbose=False)
    algo.fit(data.build_full_trainset())
    fit = BiasBaseline().fit(r)  # defaults are surprise's
    pairs = [(0, 0), (5, 17), (39, 59), (12, 3)]
    ours = np.clip(fit.predict_mean([p[0] for p in pairs], [p[1] for p in pairs]), 1, 5)
    theirs = [algo.predict(r.user_ids[u], r.item_ids[i]).est for u, i in pairs]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_bias_baseline_bad_params(toy):
    with pytest.raises(BayesMFError, match="lambda_user"):
        BiasBaseline(lambda_user=-1).fit(toy)
    with pytest.raises(BayesMFError, match="lambda_item"):
        BiasBaseline(lambda_item=float("nan")).fit(toy)
    with pytest.raises(BayesMFError, match="n_iter"):
        BiasBaseline(n_iter=0).fit(toy)
    assert BiasBaseline(lambda_user=1.0).get_params() == {"lambda_user": 1.0, "lambda_item": 10.0,
                                                          "n_iter": 10}


def test_uniform_random_baseline(toy):
    fit = UniformRandomBaseline(random_state=7).fit(toy)
    a = fit.predict_mean(np.zeros(5000, dtype=int), np.zeros(5000, dtype=int))
    b = fit.predict_mean(np.zeros(5000, dtype=int), np.zeros(5000, dtype=int))
    np.testing.assert_array_equal(a, b)  # reproducible call for call
    assert set(np.unique(a)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    np.testing.assert_allclose(np.bincount(a.astype(int))[1:] / 5000, 0.2, atol=0.03)
    assert fit.mu_ == 3.0 and fit.sigma_ == pytest.approx(np.sqrt(2.0))
    other = UniformRandomBaseline(random_state=8).fit(toy).predict_mean(np.zeros(50, int), np.zeros(50, int))
    assert not np.array_equal(a[:50], other)
    lo, hi = fit.predict_interval([0, 1], [0, 0], prob=0.5)
    np.testing.assert_array_equal(lo, [2.0, 2.0])
    np.testing.assert_array_equal(hi, [4.0, 4.0])
    lo, hi = fit.predict_interval([0], [0], prob=0.9)
    assert (lo[0], hi[0]) == (1.0, 5.0)
    half = UniformRandomBaseline(scale=RatingScale(0.5, 5.0, 0.5)).fit(toy)
    lo, hi = half.predict_interval([0], [0], prob=0.5)
    assert (lo[0], hi[0]) == (1.5, 3.5)  # 5 of the 10 levels
    cont = UniformRandomBaseline(random_state=0, scale=(0.0, 1.0)).fit(toy)
    x = cont.predict_mean(np.zeros(2000, int), np.zeros(2000, int))
    assert x.min() >= 0 and x.max() <= 1 and len(np.unique(x)) == 2000
    assert cont.sigma_ == pytest.approx(1 / np.sqrt(12))
    lo, hi = cont.predict_interval([0], [0], prob=0.5)
    assert (lo[0], hi[0]) == pytest.approx((0.25, 0.75))


def test_uniform_random_needs_a_scale():
    r = Ratings.from_frame(pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [1.0, 2.0]}))
    with pytest.raises(DataError, match="needs a rating scale"):
        UniformRandomBaseline().fit(r)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_common_errors(name, toy):
    cls = BASELINES[name]
    with pytest.raises(NotFittedError, match="not fitted"):
        cls().predict_mean([0], [0])
    with pytest.raises(DataError, match="Ratings"):
        cls().fit(toy.to_frame())
    with pytest.raises(DataError, match="empty"):
        cls().fit(toy.take(np.zeros(toy.nnz, dtype=bool)))
    fit = cls().fit(toy)
    assert fit.fit(toy) is fit
    assert fit.method == name
    with pytest.raises(BayesMFError, match="user index out of range"):
        fit.predict_mean([3], [0])
    with pytest.raises(BayesMFError, match="same length"):
        fit.predict_mean([0, 1], [0])
    lo, hi = fit.predict_interval([0, 1, 2], [0, 1, 2], prob=0.9)
    assert np.all(lo < hi)
    assert fit.predict_sd([0, 1], [2, 3]).shape == (2,)
    with pytest.raises(BayesMFError, match="between 0 and 1"):
        fit.predict_interval([0], [0], prob=0.0)


def test_refit_replaces_state(toy):
    fit = UserMeanBaseline().fit(toy)
    alice = toy.take(toy.users == 0)
    fit.fit(alice)
    assert fit.ratings_ is alice
    assert fit.user_bias_[BOB] == 0.0 and fit.mu_ == pytest.approx(3.2)
