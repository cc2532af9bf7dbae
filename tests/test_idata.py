"""The shared InferenceData builder: layout, dims, coords, dtypes, attrs, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayesmf.datasets import make_synthetic
from bayesmf.exceptions import BayesMFError
from bayesmf.models.idata import build_inference_data, posterior_latent_means


@pytest.fixture(scope="module")
def data():
    r, _ = make_synthetic(n_users=7, n_items=5, rank=2, density=0.6, random_state=0)
    return r


def _posterior(r, chains=2, draws=3, k=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "U": rng.standard_normal((chains, draws, r.n_users, k)),
        "V": rng.standard_normal((chains, draws, r.n_items, k)),
        "mu": rng.standard_normal((chains, draws)) + 3,
        "user_bias": rng.standard_normal((chains, draws, r.n_users)),
        "item_bias": rng.standard_normal((chains, draws, r.n_items)),
        "sigma": np.abs(rng.standard_normal((chains, draws))),
        "sigma_u": np.ones((chains, draws, k)),
        "sigma_v": np.ones((chains, draws, k)),
        "sigma_user_bias": np.ones((chains, draws)),
        "sigma_item_bias": np.ones((chains, draws)),
        "Lambda_u": np.tile(np.eye(k), (chains, draws, 1, 1)),
    }


def test_layout_dims_coords_groups_attrs(data):
    r = data
    post = _posterior(r)
    idata = build_inference_data(
        post, r, method="gibbs", params={"rank": 2, "seed": None}, rank=2, biases=True,
        sample_stats={"loglik": np.zeros((2, 3))}, extra_attrs={"interrupted": False},
    )
    assert set(idata.groups()) >= {"posterior", "sample_stats", "observed_data", "constant_data"}
    p = idata.posterior
    assert p["U"].dims == ("chain", "draw", "user", "factor")
    assert p["V"].dims == ("chain", "draw", "item", "factor")
    assert p["user_bias"].dims == ("chain", "draw", "user")
    assert p["item_bias"].dims == ("chain", "draw", "item")
    assert p["mu"].dims == ("chain", "draw") and p["sigma"].dims == ("chain", "draw")
    assert p["sigma_u"].dims == ("chain", "draw", "factor")
    assert p["Lambda_u"].dims == ("chain", "draw", "factor", "factor_")
    # raw ids as coords
    assert list(p["user"].values) == list(r.user_ids)
    assert list(p["item"].values) == list(r.item_ids)
    assert list(p["factor"].values) == [0, 1]
    # dtypes: per-user/item draws compact, hyperparameters float64
    assert p["U"].dtype == np.float32 and p["user_bias"].dtype == np.float32
    assert p["sigma"].dtype == np.float64 and p["Lambda_u"].dtype == np.float64
    np.testing.assert_allclose(p["U"].values, post["U"].astype(np.float32))
    assert idata.sample_stats["loglik"].dims == ("chain", "draw")
    obs = idata.observed_data["R"]
    assert obs.dims == ("rating",) and obs.sizes["rating"] == r.nnz
    np.testing.assert_array_equal(obs.values, r.values)
    np.testing.assert_array_equal(idata.constant_data["user_idx"].values, r.users)
    np.testing.assert_array_equal(idata.constant_data["item_idx"].values, r.items)
    a = idata.attrs
    assert a["method"] == "gibbs" and a["rank"] == 2 and a["link"] == "identity"
    assert a["biases"] == 1 and a["interrupted"] == 0
    assert json.loads(a["params_json"]) == {"rank": 2, "seed": None}
    assert (a["scale_min"], a["scale_max"], a["scale_step"]) == (1.0, 5.0, 1.0)
    assert "bayesmf_version" in a


def test_no_biases_drops_bias_variables_and_point_fit(data):
    r = data
    post = {k: v[:1, :1] for k, v in _posterior(r).items()}
    idata = build_inference_data(post, r, method="map", params={}, rank=2, biases=False,
                                 dtype=np.float64)
    p = idata.posterior
    assert "user_bias" not in p and "sigma_item_bias" not in p
    assert p.sizes["chain"] == 1 and p.sizes["draw"] == 1
    assert p["U"].dtype == np.float64
    assert idata.attrs["biases"] == 0


def test_shape_errors(data):
    r = data
    post = _posterior(r)
    bad = dict(post, U=post["U"][:, :, :-1])
    with pytest.raises(BayesMFError, match="'U'"):
        build_inference_data(bad, r, method="gibbs", params={}, rank=2, biases=True)
    bad = dict(post, mu=post["mu"][:, :2])
    with pytest.raises(BayesMFError, match="chain, draw"):
        build_inference_data(bad, r, method="gibbs", params={}, rank=2, biases=True)
    with pytest.raises(BayesMFError, match="link"):
        build_inference_data(post, r, method="gibbs", params={}, rank=2, biases=True, link="probit")
    with pytest.raises(BayesMFError, match="sample_stats"):
        build_inference_data(post, r, method="gibbs", params={}, rank=2, biases=True,
                             sample_stats={"loglik": np.zeros((1, 3))})


def test_posterior_latent_means_by_hand(data):
    r = data
    post = _posterior(r)
    idata = build_inference_data(post, r, method="gibbs", params={}, rank=2, biases=True,
                                 dtype=np.float64)
    u = np.array([0, 3, 6])
    i = np.array([4, 0, 2])
    lat = posterior_latent_means(idata, u, i, max_elements=5)  # forces several chunks
    c, d, p = 1, 2, 1
    by_hand = (post["mu"][c, d] + post["user_bias"][c, d, u[p]] + post["item_bias"][c, d, i[p]]
               + post["U"][c, d, u[p]] @ post["V"][c, d, i[p]])
    assert lat.shape == (2, 3, 3)
    assert lat[c, d, p] == pytest.approx(by_hand)


def test_netcdf_roundtrip(tmp_path, data):
    import arviz as az

    r = data
    idata = build_inference_data(_posterior(r), r, method="gibbs", params={"a": 1}, rank=2,
                                 biases=True)
    path = tmp_path / "x.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    assert list(back.posterior["user"].values) == list(r.user_ids)
    assert back.attrs["method"] == "gibbs"
