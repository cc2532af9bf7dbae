"""Tests for bayesmf.evaluate: metric functions against hand values / references, evaluate, CV."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from bayesmf.data import Ratings
from bayesmf.evaluate import (
    coverage,
    cross_validate,
    crps_from_draws,
    crps_gaussian,
    evaluate,
    gaussian_interval,
    log_predictive_density_from_draws,
    log_predictive_density_gaussian,
    mae,
    mean_interval_width,
    rmse,
    summarize_cv,
    warm_up,
)
from bayesmf.exceptions import BayesMFError, DataError
from bayesmf.models.baselines import (
    BiasBaseline,
    GlobalMeanBaseline,
    UniformRandomBaseline,
    UserMeanBaseline,
)
from bayesmf.models.gibbs import GibbsPMF
from bayesmf.models.pmf import PMF


# ------------------------------------------------------------------ point metrics
def test_rmse_mae_hand_values():
    y = [1.0, 2.0, 3.0, 4.0]
    p = [1.0, 3.0, 1.0, 4.0]
    assert rmse(y, p) == pytest.approx(math.sqrt((0 + 1 + 4 + 0) / 4))
    assert mae(y, p) == pytest.approx((0 + 1 + 2 + 0) / 4)
    assert rmse(y, y) == 0.0


@pytest.mark.parametrize("fn", [rmse, mae])
def test_point_metric_bad_input(fn):
    with pytest.raises(BayesMFError, match="length mismatch"):
        fn([1.0, 2.0], [1.0])
    with pytest.raises(BayesMFError, match="empty"):
        fn([], [])
    with pytest.raises(DataError, match="y_pred has 1 NaN"):
        fn([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(DataError, match="y_true has 1 NaN or infinite"):
        fn([np.inf, 2.0], [1.0, 2.0])
    with pytest.raises(DataError, match="array of numbers"):
        fn(["a", "b"], [1.0, 2.0])
    with pytest.raises(BayesMFError, match="one-dimensional"):
        fn(np.ones((2, 2)), np.ones((2, 2)))


def test_coverage_and_width_hand_values():
    y = [1.0, 2.0, 3.0, 4.0]
    lo = [0.0, 2.5, 3.0, 3.0]
    hi = [2.0, 3.0, 4.0, 4.0]  # inside, below, on lower edge, on upper edge
    assert coverage(y, lo, hi) == 0.75
    assert mean_interval_width(lo, hi) == pytest.approx((2 + 0.5 + 1 + 1) / 4)
    with pytest.raises(BayesMFError, match="lower > upper"):
        coverage([1.0], [2.0], [1.0])
    with pytest.raises(BayesMFError, match="length mismatch: y_true has 2, lower has 1"):
        coverage([1.0, 2.0], [0.0], [3.0, 3.0])


def test_gaussian_interval_and_coverage_on_normal_draws():
    rng = np.random.default_rng(1)
    m = rng.normal(size=20000)
    y = m + rng.normal(size=m.size) * 0.5
    for p in (0.5, 0.9):
        lo, hi = gaussian_interval(m, 0.5, p)
        assert coverage(y, lo, hi) == pytest.approx(p, abs=0.01)
        assert mean_interval_width(lo, hi) == pytest.approx(2 * 0.5 * stats.norm.ppf(0.5 + p / 2))
    with pytest.raises(BayesMFError, match="between 0 and 1"):
        gaussian_interval([0.0], 1.0, 1.5)
    with pytest.raises(BayesMFError, match="sd must be positive"):
        gaussian_interval([0.0], 0.0, 0.5)


# ------------------------------------------------------------------ CRPS and log density
def _crps_numeric(y: float, m: float, s: float) -> float:
    """CRPS = integral (F(x) - 1{x >= y})^2 dx, by quadrature."""
    f = stats.norm(m, s).cdf
    left = integrate.quad(lambda x: f(x) ** 2, -np.inf, y)[0]
    right = integrate.quad(lambda x: (1 - f(x)) ** 2, y, np.inf)[0]
    return left + right


def test_crps_gaussian_closed_form_matches_quadrature():
    cases = [(0.0, 0.0, 1.0), (3.0, 3.7, 0.8), (1.0, 4.5, 0.3), (5.0, 2.0, 2.0)]
    got = crps_gaussian([c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases],
                        reduce="none")
    want = [_crps_numeric(*c) for c in cases]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert crps_gaussian([0.0], [0.0], 1.0) == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi))
    # sums and means agree
    assert crps_gaussian([0.0, 1.0], [0.0, 0.0], 1.0, reduce="sum") == pytest.approx(
        2 * crps_gaussian([0.0, 1.0], [0.0, 0.0], 1.0)
    )
    with pytest.raises(BayesMFError, match="reduce"):
        crps_gaussian([0.0], [0.0], 1.0, reduce="median")


def _crps_draws_bruteforce(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    t1 = np.mean(np.abs(x - y[None, :]), axis=0)
    t2 = np.mean(np.abs(x[:, None, :] - x[None, :, :]), axis=(0, 1))
    return t1 - 0.5 * t2


def test_crps_from_draws_matches_bruteforce_and_closed_form():
    rng = np.random.default_rng(0)
    y = rng.normal(size=7)
    x = rng.normal(size=(50, 7)) * 1.3 + 0.2
    np.testing.assert_allclose(crps_from_draws(y, x, reduce="none"), _crps_draws_bruteforce(y, x),
                               rtol=1e-12, atol=1e-12)
    # a single draw: CRPS is the absolute error
    np.testing.assert_allclose(crps_from_draws(y, x[:1], reduce="none"), np.abs(y - x[0]))
    # many Normal draws approach the closed form
    big = rng.normal(size=(20000, 3)) * 0.7 + 3.0
    yy = np.array([3.0, 2.0, 4.5])
    np.testing.assert_allclose(crps_from_draws(yy, big, reduce="none"),
                               crps_gaussian(yy, np.full(3, 3.0), 0.7, reduce="none"), atol=0.01)


def test_crps_from_draws_shape_errors():
    with pytest.raises(BayesMFError, match="transpose"):
        crps_from_draws([0.0, 1.0, 2.0], np.zeros((3, 5)))
    with pytest.raises(DataError, match="NaN"):
        crps_from_draws([0.0], [[np.nan]])


def test_log_density_gaussian_and_from_draws():
    y = np.array([0.0, 1.0, 3.0])
    m = np.array([0.5, 1.0, 2.0])
    s = np.array([1.0, 0.5, 2.0])
    np.testing.assert_allclose(log_predictive_density_gaussian(y, m, s, reduce="none"),
                               stats.norm.logpdf(y, m, s))
    assert log_predictive_density_gaussian(y, m, s) == pytest.approx(stats.norm.logpdf(y, m, s).mean())
    # from draws: log-mean-exp of per-draw densities (two draws, hand formula)
    draws = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 4.0]])
    sig = np.array([1.0, 2.0])
    want = np.log(0.5 * stats.norm.pdf(y, draws[0], 1.0) + 0.5 * stats.norm.pdf(y, draws[1], 2.0))
    np.testing.assert_allclose(log_predictive_density_from_draws(y, draws, sig, reduce="none"), want)
    # identical draws reduce to the single Gaussian
    same = np.vstack([m, m, m])
    assert log_predictive_density_from_draws(y, same, 1.0) == pytest.approx(
        log_predictive_density_gaussian(y, m, 1.0))
    with pytest.raises(BayesMFError, match="3 draws"):
        log_predictive_density_from_draws(y, same, [1.0, 2.0])


# ------------------------------------------------------------------ evaluate on fits
def _ratings(df: pd.DataFrame) -> Ratings:
    return Ratings.from_frame(df, scale=(1, 5, 1))


@pytest.fixture
def split_toy():
    df = pd.DataFrame(
        {
            "user": ["a", "a", "a", "b", "b", "c", "c", "d"],
            "item": ["x", "y", "z", "x", "y", "x", "z", "w"],
            "rating": [5, 3, 1, 4, 2, 3, 5, 4],
        }
    )
    r = _ratings(df)
    test_mask = np.zeros(r.nnz, dtype=bool)
    # hold out (a, z), (c, x) and the only rating of d (d, w): d and w become cold
    for u, i in [("a", "z"), ("c", "x"), ("d", "w")]:
        test_mask |= (r.user_ids[r.users] == u) & (r.item_ids[r.items] == i)
    return r.take(~test_mask), r.take(test_mask)


def test_evaluate_global_mean_hand_values(split_toy):
    train, test = split_toy
    fit = GlobalMeanBaseline().fit(train)
    mu = np.mean([5, 3, 4, 2, 5])
    y = test.values
    res = evaluate(fit, test)
    assert res["rmse"] == pytest.approx(np.sqrt(np.mean((y - mu) ** 2)))
    assert res["mae"] == pytest.approx(np.mean(np.abs(y - mu)))
    sigma = np.sqrt(np.mean((train.values - mu) ** 2))
    z90 = stats.norm.ppf(0.95)
    assert res["width_90"] == pytest.approx(2 * z90 * sigma)
    assert res["coverage_90"] == pytest.approx(np.mean(np.abs(y - mu) <= z90 * sigma))
    assert res["coverage_50"] == pytest.approx(np.mean(np.abs(y - mu) <= stats.norm.ppf(0.75) * sigma))
    assert res["crps"] == pytest.approx(crps_gaussian(y, np.full(3, mu), sigma))
    assert res["lpd"] == pytest.approx(log_predictive_density_gaussian(y, np.full(3, mu), sigma))
    assert res["n_test"] == 3
    assert res["n_cold"] == 1  # user d / item w have no training rating


def test_evaluate_matches_raw_ids_with_different_id_maps(split_toy):
    """A test set built on its own id maps is matched by raw id; unknown ids are cold."""
    train, test = split_toy
    fit = UserMeanBaseline().fit(train)
    frame = test.to_frame()
    frame.loc[len(frame)] = ["zed", "x", 3.0]  # a user the fit has never seen
    other = _ratings(frame)
    res = evaluate(fit, other, interval_prob=0.9)
    uid = fit.ratings_.user_index(frame["user"])
    pred = fit.predict_mean(uid, fit.ratings_.item_index(frame["item"]))
    assert pred[-1] == pytest.approx(fit.mu_)  # unknown user -> global mean
    assert res["rmse"] == pytest.approx(rmse(frame["rating"], pred))
    assert res["n_cold"] == 2 and res["n_test"] == 4
    assert "coverage_90" in res and "coverage_50" not in res


def test_evaluate_uniform_random_has_uniform_intervals(split_toy):
    train, test = split_toy
    res = evaluate(UniformRandomBaseline(random_state=3).fit(train), test, interval_prob=(0.5,))
    # levels 1..5: the central 50% run needs ceil(2.5) = 3 levels -> [2, 4]
    assert res["width_50"] == pytest.approx(2.0)
    assert res["coverage_50"] == pytest.approx(np.mean((test.values >= 2) & (test.values <= 4)))
    assert "crps" not in res  # its predictive is not Gaussian


def test_evaluate_bad_input(split_toy):
    train, test = split_toy
    fit = GlobalMeanBaseline().fit(train)
    with pytest.raises(BayesMFError, match="Ratings"):
        evaluate(fit, test.to_frame())
    with pytest.raises(BayesMFError, match="empty"):
        evaluate(fit, test.take(np.zeros(test.nnz, dtype=bool)))
    with pytest.raises(BayesMFError, match="interval_prob"):
        evaluate(fit, test, interval_prob=(0.5, 1.0))
    with pytest.raises(BayesMFError, match="not fitted"):
        evaluate(GlobalMeanBaseline(), test)


def test_evaluate_map_fit_gives_calibrated_intervals_on_synthetic():
    """MAP (PMF) on data from the model: Laplace predictive intervals cover about nominally."""
    pytest.importorskip("bayesmf.models.pmf")
    from bayesmf.datasets import make_synthetic
    from bayesmf.models.pmf import PMF

    ratings = make_synthetic(n_users=300, n_items=200, n_ratings=12000, rank=3, random_state=0)[0]
    rng = np.random.default_rng(0)
    mask = rng.random(ratings.nnz) < 0.2
    train, test = ratings.take(~mask), ratings.take(mask)
    fit = PMF(rank=3, random_state=0).fit(train)
    res = evaluate(fit, test)
    base = evaluate(GlobalMeanBaseline().fit(train), test)
    assert res["rmse"] < base["rmse"]
    assert res["coverage_90"] == pytest.approx(0.9, abs=0.06)
    assert res["coverage_50"] == pytest.approx(0.5, abs=0.08)
    assert res["width_50"] < res["width_90"]


# ------------------------------------------------------------------ cross-validation
def _explicit_folds(r: Ratings, k: int, seed: int = 0):
    fold_of = np.random.default_rng(seed).integers(0, k, r.nnz)
    return [(r.take(fold_of != f), r.take(fold_of == f)) for f in range(k)]


def test_cross_validate_instance_and_factory_agree():
    rng = np.random.default_rng(5)
    u, i = rng.integers(0, 30, 600), rng.integers(0, 40, 600)
    bu, bi = rng.normal(0, 0.8, 30), rng.normal(0, 0.8, 40)
    rating = np.clip(np.round(3.2 + bu[u] + bi[i] + rng.normal(0, 0.5, 600)), 1, 5)
    df = pd.DataFrame({"user": u, "item": i, "rating": rating}).drop_duplicates(["user", "item"])
    r = _ratings(df)
    folds = _explicit_folds(r, 3)
    est = BiasBaseline(lambda_user=5, lambda_item=5)
    a = cross_validate(est, r, scheme=folds, progress=False)
    b = cross_validate(lambda: BiasBaseline(lambda_user=5, lambda_item=5), r, scheme=folds,
                       progress=False)
    assert not hasattr(est, "ratings_")  # the instance itself is never fitted
    assert list(a["fold"]) == [0, 1, 2]
    assert (a["method"] == "bias").all()
    assert a["n_test"].sum() == r.nnz
    np.testing.assert_array_equal(a["rmse"], b["rmse"])
    for f, (train, test) in enumerate(folds):
        want = evaluate(BiasBaseline(lambda_user=5, lambda_item=5).fit(train), test)
        assert a.loc[f, "rmse"] == pytest.approx(want["rmse"])
        assert a.loc[f, "coverage_90"] == pytest.approx(want["coverage_90"])
    assert (a["fit_time"] >= 0).all()
    summary = summarize_cv(pd.concat([a, cross_validate(GlobalMeanBaseline(), r, scheme=folds,
                                                        progress=False)]))
    assert list(summary.index) == ["bias", "global_mean"]
    assert summary.loc["bias", "rmse_mean"] == pytest.approx(a["rmse"].mean())
    assert summary.loc["bias", "rmse_sd"] == pytest.approx(a["rmse"].std(ddof=1))
    assert summary.loc["bias", "rmse_mean"] < summary.loc["global_mean", "rmse_mean"]


def test_cross_validate_metrics_selection_and_errors():
    r = _ratings(pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": [1, 2, 1, 2, 1, 2],
                               "rating": [5, 3, 4, 2, 3, 1]}))
    folds = _explicit_folds(r, 2, seed=1)
    out = cross_validate(GlobalMeanBaseline(), r, scheme=folds, metrics=["rmse"], progress=False)
    assert [c for c in out.columns if c not in ("fold", "method", "n_train", "n_test",
                                                  "fit_time", "eval_time")] == ["rmse"]
    with pytest.raises(BayesMFError, match="unknown metric"):
        cross_validate(GlobalMeanBaseline(), r, scheme=folds, metrics=["auc"], progress=False)
    with pytest.raises(BayesMFError, match="make_estimator"):
        cross_validate(42, r, scheme=folds)
    with pytest.raises(BayesMFError, match="no folds"):
        cross_validate(GlobalMeanBaseline(), r, scheme=[])


def test_cross_validate_with_scheme_string_matches_split_module():
    from bayesmf.split import kfold

    rng = np.random.default_rng(2)
    u, i = rng.integers(0, 20, 300), rng.integers(0, 25, 300)
    df = pd.DataFrame({"user": u, "item": i, "rating": rng.integers(1, 6, 300)})
    r = _ratings(df.drop_duplicates(["user", "item"]))
    out = cross_validate(GlobalMeanBaseline(), r, scheme="kfold:4", random_state=7, progress=False)
    want = [evaluate(GlobalMeanBaseline().fit(tr), te)["rmse"] for tr, te in kfold(r, 4, 7)]
    np.testing.assert_allclose(out["rmse"], want)
    assert out["n_test"].sum() == r.nnz
    with pytest.raises(BayesMFError, match="split scheme"):
        cross_validate(GlobalMeanBaseline(), r, scheme="bogus")


def test_evaluate_mle_has_point_metrics_only(split_toy):
    pytest.importorskip("bayesmf.models.pmf")
    import warnings

    from bayesmf.models.pmf import PMF

    train, test = split_toy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = PMF(rank=1, method="mle", random_state=0).fit(train)
    res = evaluate(fit, test)
    assert set(res) == {"rmse", "mae", "n_test", "n_cold"}


@pytest.mark.slow
def test_evaluate_gibbs_fit_is_calibrated_on_synthetic():
    """A Bayesian fit on data from the model: intervals cover nominally, lpd from the draws."""
    gibbs = pytest.importorskip("bayesmf.models.gibbs")
    from bayesmf.datasets import make_synthetic

    ratings = make_synthetic(n_users=200, n_items=150, n_ratings=6000, rank=3, random_state=0)[0]
    mask = np.random.default_rng(0).random(ratings.nnz) < 0.2
    train, test = ratings.take(~mask), ratings.take(mask)
    fit = gibbs.GibbsPMF(rank=3, chains=2, draws=200, random_state=0, progress=False).fit(train)
    res = evaluate(fit, test)
    assert res["coverage_90"] == pytest.approx(0.9, abs=0.04)
    assert res["coverage_50"] == pytest.approx(0.5, abs=0.06)
    assert "crps" not in res  # a mixture predictive: no closed-form Gaussian CRPS here
    # lpd is the log-mean-exp over draws: check against a direct computation
    post = fit.idata_.posterior
    u, i = test.users, test.items
    m = (post["mu"].values[..., None] + post["user_bias"].values[..., u]
         + post["item_bias"].values[..., i]
         + np.einsum("cdpk,cdpk->cdp", post["U"].values[:, :, u], post["V"].values[:, :, i]))
    m = m.reshape(-1, len(u))
    sig = post["sigma"].values.reshape(-1)
    assert res["lpd"] == pytest.approx(log_predictive_density_from_draws(test.values, m, sig),
                                       rel=1e-4)


# ------------------------------------------------------------------ warm-up before timed fits
class _RecordingPMF(PMF):
    """PMF that records the iteration cap and data size of every fit."""

    fits: list[tuple[int, int]] = []

    def fit(self, ratings):  # noqa: ANN001, ANN201
        type(self).fits.append((self.max_iter, ratings.nnz))
        return super().fit(ratings)


class _RecordingGibbs(GibbsPMF):
    fits: list[int] = []

    def fit(self, ratings, **kw):  # noqa: ANN001, ANN003, ANN201
        type(self).fits.append(ratings.nnz)
        return super().fit(ratings, **kw)


def _bias_data(n_users: int = 60, n_items: int = 50, n: int = 1500, seed: int = 3) -> Ratings:
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    rating = np.clip(np.round(3.4 + rng.normal(0, 0.8, n_users)[u] + rng.normal(0, 0.8, n_items)[i]
                              + rng.normal(0, 0.5, n)), 1, 5)
    df = pd.DataFrame({"user": u, "item": i, "rating": rating}).drop_duplicates(["user", "item"])
    return _ratings(df)


def test_warm_up_fits_a_capped_copy_on_a_slice_and_leaves_the_estimator_alone():
    r = _bias_data()
    _RecordingPMF.fits = []
    est = _RecordingPMF(rank=3, max_iter=100, progress=False)
    assert warm_up(est, r, n_ratings=500) is True
    assert _RecordingPMF.fits == [(30, 500)]  # max_iter capped at 30, 500 of the ratings
    assert est.max_iter == 100 and not hasattr(est, "U_")  # the original is untouched
    assert warm_up(_RecordingPMF(rank=3, max_iter=10), r, n_ratings=10 * r.nnz) is True
    assert _RecordingPMF.fits[-1] == (10, r.nnz)  # small data: all of it; a lower cap stays


def test_warm_up_skips_bayesian_estimators():
    _RecordingGibbs.fits = []
    assert warm_up(_RecordingGibbs(rank=2, chains=1, draws=2, tune=1), _bias_data()) is False
    assert _RecordingGibbs.fits == []


def test_cross_validate_warms_up_once_before_the_first_fold():
    r = _bias_data()
    folds = _explicit_folds(r, 3)
    _RecordingPMF.fits = []
    warm = cross_validate(_RecordingPMF(rank=2, max_iter=50, random_state=0), r, scheme=folds, progress=False)
    assert len(_RecordingPMF.fits) == 4 and _RecordingPMF.fits[0][0] == 30
    _RecordingPMF.fits = []
    cold = cross_validate(_RecordingPMF(rank=2, max_iter=50, random_state=0), r, scheme=folds, progress=False,
                          warm=False)
    assert len(_RecordingPMF.fits) == 3
    # the warm-up fit is thrown away: the folds' results are the same either way
    np.testing.assert_array_equal(warm["rmse"], cold["rmse"])
