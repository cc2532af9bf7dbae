"""Tests of bayesmf.diagnostics: identifiable quantities, verdicts, and why raw-factor R-hat misleads."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesmf.datasets import make_synthetic
from bayesmf.diagnostics import (
    check_convergence,
    convergence_message,
    diagnose,
    factor_strength,
    identifiable_draws,
    raw_factor_rhat,
    verdict,
)
from bayesmf.exceptions import BayesMFError
from bayesmf.models.base import FitBase
from bayesmf.models.idata import build_inference_data
from bayesmf.models.pmf import PMF


class DrawsFit(FitBase):
    method = "nuts"
    is_bayesian = True

    def __init__(self, rank: int = 2) -> None:
        self.rank = rank


@pytest.fixture(scope="module")
def ratings():
    r, truth = make_synthetic(n_users=12, n_items=9, rank=2, density=0.5, random_state=3)
    return r, truth


def iid_posterior(r, truth, C=2, D=500, seed=0):
    """Independent draws around the truth: every chain samples the same distribution."""
    rng = np.random.default_rng(seed)
    k = truth.rank
    return {
        "U": truth.U + 0.1 * rng.standard_normal((C, D, r.n_users, k)),
        "V": truth.V + 0.1 * rng.standard_normal((C, D, r.n_items, k)),
        "mu": truth.mu + 0.05 * rng.standard_normal((C, D)),
        "sigma": 0.5 + 0.02 * rng.standard_normal((C, D)),
        "sigma_u": 1.0 + 0.05 * rng.standard_normal((C, D, k)),
        "sigma_v": 1.0 + 0.05 * rng.standard_normal((C, D, k)),
    }


def make_fit(r, post, sample_stats=None, **extra):
    fit = DrawsFit(rank=post["U"].shape[-1])
    fit.idata_ = build_inference_data(post, r, method="nuts", params={}, rank=fit.rank,
                                      biases=False, sample_stats=sample_stats, dtype=np.float64)
    fit.ratings_ = r
    fit.link_ = "identity"
    for k, v in extra.items():
        setattr(fit, k, v)
    return fit


def test_rotated_chains_fool_raw_factor_rhat_but_not_diagnose(ratings):
    r, truth = ratings
    post = iid_posterior(r, truth)
    theta = 1.1
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.diag([1, -1])
    # chain 1 lives in a rotated + sign-flipped copy of the same posterior: U V^T is unchanged
    post["U"][1] = post["U"][1] @ R
    post["V"][1] = post["V"][1] @ R
    fit = make_fit(r, post)
    raw = raw_factor_rhat(fit)
    assert (raw["max_r_hat"] > 1.5).all() and (raw["frac_above_1.01"] > 0.5).all()
    diag = diagnose(fit, n_probe=10, per_pair=True)
    q = diag[diag["kind"] == "quantity"]
    assert (q["r_hat"] < 1.01).all(), q[["quantity", "r_hat"]]
    assert (q["verdict"] == "ok").all() and diag.attrs["verdict"] == "ok"
    assert {"mu", "sigma", "sum_sigma_u2", "norm_U", "norm_V", "factor_strength"} <= set(q["group"])
    assert (q["group"] == "factor_strength").sum() == 2  # one row per component
    assert (q["group"] == "pred_mean").sum() == 10
    # the default table summarises the pairs: one row per kind, the worst of each
    summary = diagnose(fit, n_probe=10).set_index("quantity")
    pairs = q[q["group"] == "pred_mean"]
    assert summary.loc["pred_mean[rated: 5 pairs]", "r_hat"] == max(
        pairs[pairs["quantity"].str.endswith(" rated]")]["r_hat"])
    assert summary.loc["pred_mean[unrated: 5 pairs]", "ess_bulk"] == min(
        pairs[pairs["quantity"].str.endswith(" unrated]")]["ess_bulk"])
    assert (summary[summary["group"] == "pred_mean"]["value"] == 0).all()


def test_stuck_chain_is_caught(ratings):
    r, truth = ratings
    post = iid_posterior(r, truth, seed=1)
    post["mu"][1] += 0.2  # chain 1 disagrees about the global mean
    post["U"][1] *= 1.3
    diag = diagnose(make_fit(r, post), n_probe=5)
    by = diag.set_index("quantity")
    assert by.loc["mu", "verdict"] == "fail" and by.loc["mu", "r_hat"] > 1.05
    assert by.loc["norm_U", "verdict"] == "fail"
    assert diag.attrs["verdict"] == "fail"


def test_identifiable_quantities_match_direct_computation(ratings):
    r, truth = ratings
    post = iid_posterior(r, truth, C=1, D=6)
    ds = identifiable_draws(make_fit(r, post),
                            probe_pairs=pd.DataFrame({"user": [r.user_ids[2]],
                                                      "item": [r.item_ids[3]]}))
    np.testing.assert_allclose(ds["norm_U"].values, np.sqrt((post["U"] ** 2).sum((2, 3))))
    np.testing.assert_allclose(ds["sum_sigma_u2"].values, (post["sigma_u"] ** 2).sum(-1))
    np.testing.assert_allclose(ds["pred_mean"].values[..., 0],
                               (post["U"][:, :, 2] * post["V"][:, :, 3]).sum(-1) + post["mu"])


def test_factor_strength_is_the_spectrum_of_uv_and_ignores_any_invertible_map():
    rng = np.random.default_rng(7)
    U = rng.standard_normal((2, 3, 11, 3)).astype(np.float32)
    V = rng.standard_normal((2, 3, 8, 3)).astype(np.float32)
    got = factor_strength(U, V, block=2)  # blocks that do not divide the draws
    for c in range(2):
        for t in range(3):
            want = np.linalg.svd(U[c, t].astype(np.float64) @ V[c, t].T, compute_uv=False)[:3]
            np.testing.assert_allclose(got[c, t], want, rtol=1e-6)
    T = np.array([[2.0, 0.5, 0.0], [0.0, 0.3, -1.0], [0.4, 0.0, 1.5]])  # not orthogonal
    moved = factor_strength(U.astype(np.float64) @ T, V.astype(np.float64) @ np.linalg.inv(T).T)
    np.testing.assert_allclose(moved, got, rtol=1e-6)
    # rank-deficient factors: the missing components are zero, not NaN
    U0 = U.copy()
    U0[..., 2] = 0.0
    low = factor_strength(U0, V)
    assert np.all(np.isfinite(low)) and np.allclose(low[..., 2], 0.0, atol=1e-5)


def test_sampler_rows_for_nuts_and_advi(ratings):
    r, truth = ratings
    post = iid_posterior(r, truth, C=2, D=100)
    rng = np.random.default_rng(0)
    div = np.zeros((2, 100), dtype=bool)
    div[0, :3] = True
    stats = {"diverging": div, "energy": rng.standard_normal((2, 100)).cumsum(1) * 0.1 + 10,
             "tree_depth": np.full((2, 100), 4), "reached_max_treedepth": np.zeros((2, 100), bool)}
    diag = diagnose(make_fit(r, post, stats), n_probe=3).set_index("quantity")
    assert diag.loc["divergences", "value"] == 3
    assert diag.loc["divergences", "verdict"] == "fail"  # 1.5% of draws
    assert diag.loc["max_treedepth_hits", "verdict"] == "ok"
    assert "bfmi_min" in diag.index
    elbo = -1000 * np.exp(-np.arange(2000) / 100) - 50
    d2 = diagnose(make_fit(r, post, elbo_=elbo), n_probe=3).set_index("quantity")
    assert d2.loc["elbo_rel_change", "verdict"] == "ok"
    d3 = diagnose(make_fit(r, post, elbo_=elbo[:300]), n_probe=3).set_index("quantity")
    assert d3.loc["elbo_rel_change", "verdict"] != "ok"


def test_verdict_thresholds():
    assert verdict(1.005, 500, 450) == "ok"
    assert verdict(1.005, 300, 450) == "warn"
    assert verdict(1.03, 500, 500) == "warn"
    assert verdict(1.2, 5000, 5000) == "fail"
    assert verdict(1.0, 50, 500) == "fail"
    assert verdict(float("nan"), 500, 500) == "fail"


def test_point_fits_have_nothing_to_diagnose(ratings):
    r, _ = ratings
    with pytest.raises(BayesMFError, match="point fit"):
        diagnose(PMF(rank=2, random_state=0).fit(r))


def test_default_probe_set_is_half_rated_half_unrated(ratings):
    r, truth = ratings
    fit = make_fit(r, iid_posterior(r, truth, D=20))
    ds = identifiable_draws(fit, n_probe=10, random_state=4)
    labels = [str(x) for x in ds["probe"].values]
    assert len(labels) == 10
    assert sum(lab.endswith(" rated") for lab in labels) == 5
    assert sum(lab.endswith(" unrated") for lab in labels) == 5
    seen = set(zip(r.user_ids[r.users].tolist(), r.item_ids[r.items].tolist(), strict=True))
    for lab in labels:
        pair, kind = lab.split(" ")
        u, i = pair.split("|")
        key = (type(r.user_ids[0])(u), type(r.item_ids[0])(i))
        assert (key in seen) == (kind == "rated"), lab
    assert len(set(labels)) == 10  # no pair twice
    # the labels reach the diagnose table, one row per probe
    diag = diagnose(fit, n_probe=10, random_state=4, per_pair=True)
    rows = diag[diag["group"] == "pred_mean"]["quantity"].tolist()
    assert rows == [f"pred_mean[{lab}]" for lab in labels]


def test_disagreement_on_an_unrated_pair_is_caught():
    """Chains that agree on every rated pair but not on an unrated one fail the check."""
    r, truth = make_synthetic(n_users=15, n_items=10, rank=3, density=0.4, random_state=4)
    post = iid_posterior(r, truth, seed=2)
    u = int(np.argmin(r.user_counts))
    rated = r.items[r.users == u]
    assert len(rated) < truth.rank  # room for a shift the user's ratings cannot see
    # fix the factors of the user's rated items and move chain 1's user vector orthogonally
    # to them: its rated predictions do not change, its unrated ones do
    post["V"][:, :, rated] = truth.V[rated]
    e = np.linalg.svd(truth.V[rated], full_matrices=True)[2][-1]
    post["U"][1, :, u] += 1.5 * e
    unrated = [i for i in range(r.n_items) if i not in set(rated.tolist())]
    j = max(unrated, key=lambda i: abs(truth.V[i] @ e))
    pairs = pd.DataFrame({"user": r.user_ids[[u] * (1 + len(rated))],
                          "item": r.item_ids[[j, *rated.tolist()]],
                          "kind": ["unrated"] + ["rated"] * len(rated)})
    fit = make_fit(r, post)
    diag = diagnose(fit, probe_pairs=pairs, per_pair=True).set_index("quantity")
    bad = f"pred_mean[{r.user_ids[u]}|{r.item_ids[j]} unrated]"
    assert diag.loc[bad, "verdict"] == "fail"
    for i in rated:
        assert diag.loc[f"pred_mean[{r.user_ids[u]}|{r.item_ids[i]} rated]", "verdict"] == "ok"
    # the summary rows name the failing pair and count it
    summary = diagnose(fit, probe_pairs=pairs).set_index("quantity")
    row = summary.loc["pred_mean[unrated: 1 pair]"]
    assert row["verdict"] == "fail" and row["value"] == 1 and bad in row["note"]
    assert summary.loc[f"pred_mean[rated: {len(rated)} pair{'s' if len(rated) != 1 else ''}]", "verdict"] == "ok"
    assert summary.attrs["verdict"] == "fail"


def test_check_convergence_warns_names_the_worst_row_and_skips_one_chain(ratings):
    r, truth = ratings
    post = iid_posterior(r, truth, C=2, D=600, seed=3)
    div = np.zeros((2, 600), dtype=bool)
    div[0, :40] = True  # 3% divergent: a failing sampler row, every quantity fine
    stats = {"diverging": div, "energy": np.random.default_rng(0).standard_normal((2, 600)),
             "tree_depth": np.full((2, 600), 3), "reached_max_treedepth": np.zeros((2, 600), bool)}
    fit = make_fit(r, post, stats)
    with pytest.warns(RuntimeWarning, match=r"worst \[fail\]: divergences = 40"):
        table = check_convergence(fit)
    assert table.attrs["verdict"] == "fail"
    # a stuck chain: the warning names the quantity with its R-hat
    post = iid_posterior(r, truth, C=2, D=600, seed=4)
    post["mu"][1] += 0.3
    with pytest.warns(RuntimeWarning, match=r"worst \[fail\]: mu \(R-hat"):
        check_convergence(make_fit(r, post))
    with pytest.warns(RuntimeWarning, match="Run more or longer chains"):
        check_convergence(make_fit(r, post))
    # only pair means miss: the message says so instead of asking for a longer run
    table = diagnose(make_fit(r, iid_posterior(r, truth, C=2, D=600)), n_probe=4)
    assert convergence_message(table, "GibbsPMF") is None
    row = table.index[table["quantity"].str.startswith("pred_mean[unrated")][0]
    table.loc[row, ["r_hat", "verdict"]] = [1.048, "fail"]
    table.loc[row, "note"] = ("worst of 2 pairs: pred_mean[u0001|1001 unrated] (R-hat 1.048, "
                              "bulk ESS 57); 0 warn, 1 fail")
    msg = convergence_message(table, "GibbsPMF")
    assert msg.startswith("GibbsPMF: 1 of ") and "pred_mean[u0001|1001 unrated]" in msg
    assert "Every other quantity is ok" in msg and "Run more or longer" not in msg
    table.loc[table["quantity"] == "mu", ["r_hat", "verdict"]] = [1.2, "fail"]
    assert "Run more or longer chains" in convergence_message(table, "GibbsPMF")
    # converged: no warning; one chain: no check at all
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert check_convergence(make_fit(r, iid_posterior(r, truth, C=2, D=600))).attrs[
            "verdict"] == "ok"
        assert check_convergence(make_fit(r, iid_posterior(r, truth, C=1, D=600))) is None
