"""Tests of bayesmf.predict: exact mixture summaries, intervals, cold start, MAP/MLE, bad input."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from bayesmf.data import Ratings, RatingScale
from bayesmf.datasets import make_synthetic
from bayesmf.exceptions import BayesMFError, NotFittedError
from bayesmf.models.base import FitBase
from bayesmf.models.idata import build_inference_data
from bayesmf.models.pmf import PMF
from bayesmf.predict import predict, predict_draws, predictive_summary, recommend


class DrawsFit(FitBase):
    """A Bayesian fit that follows the CONVENTIONS contract, with hand-made draws."""

    method = "gibbs"
    is_bayesian = True

    def __init__(self, rank: int = 2) -> None:
        self.rank = rank


def make_draws_fit(ratings, post, link="identity", dtype=np.float64):
    k = post["U"].shape[-1]
    fit = DrawsFit(rank=k)
    fit.idata_ = build_inference_data(post, ratings, method="gibbs", params={"rank": k},
                                      rank=k, biases="user_bias" in post, link=link, dtype=dtype)
    fit.ratings_ = ratings
    fit.link_ = link
    return fit


@pytest.fixture(scope="module")
def data():
    r, truth = make_synthetic(n_users=25, n_items=18, rank=2, density=0.35, random_state=1)
    rng = np.random.default_rng(5)
    C, D, k = 2, 20, 2
    post = {
        "U": truth.U[None, None] + 0.3 * rng.standard_normal((C, D, r.n_users, k)),
        "V": truth.V[None, None] + 0.3 * rng.standard_normal((C, D, r.n_items, k)),
        "mu": truth.mu + 0.05 * rng.standard_normal((C, D)),
        "user_bias": truth.user_bias + 0.1 * rng.standard_normal((C, D, r.n_users)),
        "item_bias": truth.item_bias + 0.1 * rng.standard_normal((C, D, r.n_items)),
        "sigma": 0.4 + 0.2 * rng.random((C, D)),
        "sigma_u": 0.5 + rng.random((C, D, k)),
        "sigma_v": 0.5 + rng.random((C, D, k)),
        "sigma_user_bias": 0.2 + 0.1 * rng.random((C, D)),
        "sigma_item_bias": 0.2 + 0.1 * rng.random((C, D)),
    }
    return r, post, make_draws_fit(r, post)


def latent(post, u, i):
    """Reference m_s for pairs, shape (S, P)."""
    S = post["mu"].size
    U = post["U"].reshape(S, -1, post["U"].shape[-1])
    V = post["V"].reshape(S, -1, post["V"].shape[-1])
    m = np.einsum("spk,spk->sp", U[:, u], V[:, i]) + post["mu"].reshape(S, 1)
    m += post["user_bias"].reshape(S, -1)[:, u] + post["item_bias"].reshape(S, -1)[:, i]
    return m


def mixture_quantile_ref(m, sd, q):
    f = lambda x: stats.norm.cdf((x - m) / sd).mean() - q  # noqa: E731
    return optimize.brentq(f, m.min() - 20 * sd.max(), m.max() + 20 * sd.max(), xtol=1e-12)


def pairs_of(r, u, i):
    return pd.DataFrame({"user": r.user_ids[u], "item": r.item_ids[i]})


# ----------------------------------------------------------------------------- exact summaries
def test_mixture_summary_is_exact(data):
    r, post, fit = data
    u = np.array([0, 3, 7, 7])
    i = np.array([1, 2, 5, 0])
    df = predict(fit, pairs_of(r, u, i), prob=0.8)
    m = latent(post, u, i)
    sig = np.broadcast_to(post["sigma"].reshape(-1, 1), m.shape)
    np.testing.assert_allclose(df["mean"], m.mean(0), rtol=1e-12)
    np.testing.assert_allclose(df["sd"], np.sqrt(m.var(0) + (sig**2).mean(0)), rtol=1e-12)
    levels = r.scale.levels
    edges = np.concatenate([[-np.inf], (levels[:-1] + levels[1:]) / 2, [np.inf]])
    for p in range(len(u)):
        ref_p = [np.mean(stats.norm.cdf((edges[j + 1] - m[:, p]) / sig[:, p])
                         - stats.norm.cdf((edges[j] - m[:, p]) / sig[:, p]))
                 for j in range(len(levels))]
        got = df.loc[p, [f"p_{float(lv)}" for lv in levels]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, ref_p, atol=1e-10)
        assert df.loc[p, "mode_level"] == levels[int(np.argmax(ref_p))]
        assert df.loc[p, "lower"] == pytest.approx(mixture_quantile_ref(m[:, p], sig[:, p], 0.1),
                                                   abs=1e-8)
        assert df.loc[p, "upper"] == pytest.approx(mixture_quantile_ref(m[:, p], sig[:, p], 0.9),
                                                   abs=1e-8)
    assert list(df.columns[:8]) == ["user", "item", "mean", "sd", "lower", "upper",
                                    "mean_clipped", "mode_level"]
    assert list(df.columns[-3:]) == ["cold_user", "cold_item", "method"]
    assert (df["method"] == "gibbs").all() and not df["cold_user"].any()


def test_intervals_have_nominal_coverage_of_the_predictive(data):
    r, post, fit = data
    rng = np.random.default_rng(0)
    uu, ii = np.meshgrid(np.arange(r.n_users), np.arange(r.n_items))
    u, i = np.tile(uu.ravel(), 4), np.tile(ii.ravel(), 4)  # 1800 pairs
    m = latent(post, u, i)
    s = rng.integers(m.shape[0], size=len(u))
    y = m[s, np.arange(len(u))] + post["sigma"].reshape(-1)[s] * rng.standard_normal(len(u))
    for prob in (0.5, 0.9):
        summ = predictive_summary(fit, u, i, probs=(prob,), levels=False)
        lo, hi = summ.intervals[prob]
        cov = np.mean((y >= lo) & (y <= hi))
        assert abs(cov - prob) < 3.5 * np.sqrt(prob * (1 - prob) / len(u))


def test_hdi_matches_arviz_on_the_same_predictive_draws(data):
    r, post, fit = data
    pairs = pairs_of(r, np.array([0, 4, 9]), np.array([3, 3, 8]))
    df = predict(fit, pairs, prob=0.7, interval="hdi", random_state=11)
    draws = predict_draws(fit, pairs, include_noise=True, random_state=11)
    for p in range(3):
        ref = az.hdi(draws.isel(pair=p).values.reshape(-1), hdi_prob=0.7)
        assert df.loc[p, "lower"] == pytest.approx(ref[0], abs=1e-12)
        assert df.loc[p, "upper"] == pytest.approx(ref[1], abs=1e-12)


def test_predict_draws_layout_and_values(data):
    r, post, fit = data
    u, i = np.array([1, 2, 3]), np.array([4, 5, 6])
    d = predict_draws(fit, pairs_of(r, u, i))
    assert d.dims == ("chain", "draw", "pair") and d.shape == (2, 20, 3)
    np.testing.assert_allclose(d.values.reshape(40, 3), latent(post, u, i), rtol=1e-12)
    assert list(d["user"].values) == list(r.user_ids[u])
    noisy = predict_draws(fit, pairs_of(r, np.zeros(4000, int), np.zeros(4000, int)),
                          include_noise=True, random_state=3)
    # each pair's noise is an independent standard Normal scaled by sigma_s
    m00 = latent(post, np.array([0]), np.array([0])).reshape(2, 20, 1)
    z = (noisy.values - m00) / post["sigma"][:, :, None]
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.corrcoef(z[:, :, :-1].ravel(), z[:, :, 1:].ravel())[0, 1]) < 0.02


def test_float32_draws_and_fit_predict_delegation(data):
    r, post, _ = data
    fit32 = make_draws_fit(r, post, dtype=np.float32)
    pairs = pairs_of(r, np.array([0, 1]), np.array([2, 3]))
    a = fit32.predict(pairs)
    m = latent({k: (v.astype(np.float32) if k in ("U", "V", "user_bias", "item_bias") else v)
                for k, v in post.items()}, np.array([0, 1]), np.array([2, 3]))
    np.testing.assert_allclose(a["mean"], m.mean(0), rtol=1e-6)


def test_logistic_link_maps_draws_through_the_link(data):
    r, post, _ = data
    post = dict(post)
    post["sigma"] = np.full_like(post["sigma"], 0.05)
    fit = make_draws_fit(r, post, link="logistic")
    u, i = np.array([2]), np.array([3])
    df = predict(fit, pairs_of(r, u, i))
    eta = latent(post, u, i)[:, 0]
    sc = r.scale
    m = sc.min + sc.span / (1 + np.exp(-eta))
    assert df["mean"][0] == pytest.approx(m.mean(), rel=1e-12)
    assert df["sd"][0] == pytest.approx(np.sqrt(m.var() + (sc.span * 0.05) ** 2), rel=1e-12)


# ----------------------------------------------------------------------------- cold start
def test_unknown_ids_get_the_population_predictive_and_are_flagged(data):
    r, post, fit = data
    pairs = pd.DataFrame({"user": ["nobody", r.user_ids[0], "nobody"],
                          "item": [r.item_ids[2], "no-item", "no-item"]})
    df = predict(fit, pairs)
    assert df["cold_user"].tolist() == [True, False, True]
    assert df["cold_item"].tolist() == [False, True, True]
    assert np.isfinite(df[["mean", "sd", "lower", "upper"]].to_numpy()).all()
    # cold user, known item 2: per draw N(mu + c_i, sigma^2 + v_i' diag(sigma_u^2) v_i + s_b^2)
    S = 40
    V = post["V"].reshape(S, -1, 2)[:, 2]
    m = post["mu"].reshape(S) + post["item_bias"].reshape(S, -1)[:, 2]
    var = (post["sigma"].reshape(S) ** 2 + np.sum(V**2 * post["sigma_u"].reshape(S, 2) ** 2, 1)
           + post["sigma_user_bias"].reshape(S) ** 2)
    assert df["mean"][0] == pytest.approx(m.mean(), rel=1e-12)
    assert df["sd"][0] == pytest.approx(np.sqrt(m.var() + var.mean()), rel=1e-12)
    warm = predict(fit, pairs_of(r, np.array([0]), np.array([2])))
    assert df["sd"][0] > warm["sd"][0]


def test_known_user_without_training_ratings_is_cold():
    df = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 3, 2],
                       "rating": [4.0, 3.0, 5.0, 2.0, 4.0]})
    full = Ratings.from_frame(df, scale=RatingScale(1, 5, 1))
    train = full.take(np.array([0, 1, 2, 3]))  # user 3 keeps its id but has no rating
    fit = PMF(rank=1, random_state=0).fit(train)
    out = predict(fit, pd.DataFrame({"user": [3, 1], "item": [2, 2]}))
    assert out["cold_user"].tolist() == [True, False]


# ----------------------------------------------------------------------------- point fits
@pytest.fixture(scope="module")
def point_data():
    r, _ = make_synthetic(n_users=40, n_items=30, rank=2, density=0.4, random_state=2)
    return r


def test_map_predictive_is_laplace_plus_noise(point_data):
    r = point_data
    fit = PMF(rank=2, method="map", random_state=0).fit(r)
    u, i = np.array([0, 5, 9]), np.array([1, 1, 7])
    df = predict(fit, pairs_of(r, u, i), prob=0.9)
    np.testing.assert_allclose(df["mean"], fit.predict_mean(u, i), rtol=1e-12)
    sd = np.sqrt(fit.laplace_var(u, i) + fit.sigma_**2)
    np.testing.assert_allclose(df["sd"], sd, rtol=1e-10)
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(df["lower"], df["mean"] - z * sd, rtol=1e-8)
    np.testing.assert_allclose(df["upper"], df["mean"] + z * sd, rtol=1e-8)
    hdi = predict(fit, pairs_of(r, u, i), prob=0.9, interval="hdi")  # Normal: HDI == ETI
    np.testing.assert_allclose(hdi["lower"], df["lower"], rtol=1e-10)


def test_mle_says_it_has_no_uncertainty(point_data):
    r = point_data
    with pytest.warns(UserWarning):
        fit = PMF(rank=8, method="mle", random_state=0).fit(r)
    df = predict(fit, pairs_of(r, np.array([0, 1]), np.array([0, 1])))
    assert df[["sd", "lower", "upper", "p_1.0"]].isna().all().all()
    assert np.isfinite(df["mean"]).all()
    assert "no posterior" in df.attrs["note"]
    np.testing.assert_allclose(df["mode_level"], r.scale.round(df["mean"]))
    with pytest.raises(BayesMFError, match="no predictive uncertainty"):
        predict(fit, pairs_of(r, np.array([0]), np.array([0])), require_uncertainty=True)
    with pytest.raises(BayesMFError, match="needs predictive uncertainty"):
        recommend(fit, r.user_ids[0], by="lower")


def test_map_thompson_draws_from_the_laplace_posterior(point_data):
    r = point_data
    fit = PMF(rank=2, random_state=0).fit(r)
    user = r.user_ids[0]
    a = recommend(fit, user, n=30, by="thompson", random_state=1)
    b = recommend(fit, user, n=30, by="thompson", random_state=1)
    pd.testing.assert_frame_equal(a, b)
    z = (a["score"] - a["mean"]) / np.sqrt(a["sd"] ** 2 - fit.sigma_**2)
    assert np.all(np.abs(z) < 5) and not np.allclose(a["score"], a["mean"])


def test_round_option_rounds_the_clipped_mean(point_data):
    r = point_data
    fit = PMF(rank=2, random_state=0).fit(r)
    df = predict(fit, pairs_of(r, np.arange(5), np.arange(5)), round=True)
    np.testing.assert_allclose(df["mean_clipped"], r.scale.round(df["mean"]))


# ----------------------------------------------------------------------------- recommend
def test_recommend_ranks_unseen_items_with_intervals_and_titles(data):
    r, post, fit = data
    info = pd.DataFrame({"title": [f"Movie {x}" for x in r.item_ids]}, index=r.item_ids)
    r2 = Ratings(r.users, r.items, r.values, r.user_ids, r.item_ids, r.scale, info)
    fit.ratings_ = r2
    try:
        user = r.user_ids[0]
        rec = recommend(fit, user, n=5)
        seen = set(r.item_ids[r.items[r.users == 0]])
        assert len(rec) == 5 and not (set(rec["item"]) & seen)
        assert rec["score"].is_monotonic_decreasing
        assert (rec["lower"] <= rec["mean"]).all() and (rec["mean"] <= rec["upper"]).all()
        assert rec["title"].tolist() == [f"Movie {x}" for x in rec["item"]]
        # the top item by mean is the best unseen item of a full prediction
        unseen = [x for x in r.item_ids if x not in seen]
        full = predict(fit, pd.DataFrame({"user": user, "item": unseen}), levels=False)
        assert rec["item"][0] == full.loc[full["mean"].idxmax(), "item"]
        low = recommend(fit, user, n=5, by="lower")
        assert low["score"].tolist() == low["lower"].tolist()
        t1 = recommend(fit, user, n=5, by="thompson", random_state=4)
        t2 = recommend(fit, user, n=5, by="thompson", random_state=4)
        pd.testing.assert_frame_equal(t1, t2)
        cold = recommend(fit, "new-user", n=3)
        assert cold["cold_user"].all() and len(cold) == 3
    finally:
        fit.ratings_ = r


# ----------------------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors(data, point_data):
    r, post, fit = data
    pairs = pairs_of(r, np.array([0]), np.array([0]))
    with pytest.raises(BayesMFError, match="empty"):
        predict(fit, pairs.iloc[:0])
    for prob in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(BayesMFError, match="between 0 and 1"):
            predict(fit, pairs, prob=prob)
    with pytest.raises(BayesMFError, match="interval"):
        predict(fit, pairs, interval="central")
    with pytest.raises(BayesMFError, match="missing column"):
        predict(fit, pairs.rename(columns={"user": "u"}))
    with pytest.raises(BayesMFError, match="DataFrame"):
        predict(fit, [(1, 2)])
    with pytest.raises(NotFittedError):
        predict(PMF(rank=2), pairs)
    nodraws = DrawsFit()
    nodraws.ratings_ = r
    nodraws.idata_ = None
    with pytest.raises(BayesMFError, match="no posterior draws"):
        predict(nodraws, pairs)
    mapfit = PMF(rank=2, random_state=0).fit(point_data)
    with pytest.raises(BayesMFError, match="point fit"):
        predict_draws(mapfit, pairs_of(point_data, np.array([0]), np.array([0])))
    with pytest.raises(BayesMFError, match="indices must lie"):
        predictive_summary(fit, np.array([0, r.n_users]), np.array([0, 0]))
    # custom column names are honoured
    out = predict(fit, pairs.rename(columns={"user": "uid", "item": "mid"}),
                  user_col="uid", item_col="mid")
    assert list(out.columns[:2]) == ["uid", "mid"]


@pytest.mark.slow
def test_many_pairs_many_draws_stream_without_a_dense_matrix():
    # 300k pairs x 500 draws: a dense draws x pairs matrix would be 1.2 GB
    r, truth = make_synthetic(n_users=600, n_items=900, rank=5, density=0.02, random_state=0)
    rng = np.random.default_rng(0)
    C, D = 2, 250
    post = {
        "U": (truth.U + 0.1 * rng.standard_normal((C, D, r.n_users, 5))).astype(np.float32),
        "V": (truth.V + 0.1 * rng.standard_normal((C, D, r.n_items, 5))).astype(np.float32),
        "mu": truth.mu + 0.01 * rng.standard_normal((C, D)),
        "sigma": 0.5 + 0.01 * rng.random((C, D)),
    }
    fit = make_draws_fit(r, post, dtype=np.float32)
    u = rng.integers(0, r.n_users, 300_000)
    i = rng.integers(0, r.n_items, 300_000)
    summ = predictive_summary(fit, u, i, probs=(0.9,), levels=False)
    sub = slice(0, 50)
    m = latent({**post, "user_bias": np.zeros((C, D, r.n_users)),
                "item_bias": np.zeros((C, D, r.n_items))}, u[sub], i[sub])
    np.testing.assert_allclose(summ.mean[sub], m.mean(0), rtol=1e-6)
    assert np.all(summ.intervals[0.9][0] < summ.mean) and np.all(summ.mean < summ.intervals[0.9][1])


def test_intervals_are_clipped_to_the_rating_scale_but_moments_are_not():
    ratings, _ = make_synthetic(80, 60, rank=2, noise_sd=0.8, random_state=3)
    fit = PMF(rank=2, random_state=0).fit(ratings)
    pairs = ratings.to_frame().iloc[:300]
    out = predict(fit, pairs, prob=0.99)
    summ = predictive_summary(fit, ratings.users[:300], ratings.items[:300], probs=(0.99,))
    raw_lo, raw_hi = summ.intervals[0.99]
    assert (raw_hi > 5).any() or (raw_lo < 1).any()  # the Normal predictive spills over
    assert out["lower"].min() >= 1.0 and out["upper"].max() <= 5.0
    np.testing.assert_allclose(out["lower"], np.clip(raw_lo, 1, 5))
    np.testing.assert_allclose(out["mean"], summ.mean)
