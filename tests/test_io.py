"""Tests of bayesmf.io: round trips predict exactly the same, ids survive, bad files are refused."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesmf.data import Ratings, RatingScale
from bayesmf.datasets import make_synthetic
from bayesmf.exceptions import ModelFileError, NotFittedError
from bayesmf.io import decode_ids, encode_ids, load, read_header, save
from bayesmf.models.baselines import BiasBaseline, UniformRandomBaseline
from bayesmf.models.gibbs import GibbsPMF, GibbsPriors
from bayesmf.models.logistic import LogisticPMF
from bayesmf.models.pmf import PMF
from bayesmf.models.sgd import SGDPMF
from bayesmf.predict import predict


@pytest.fixture(scope="module")
def ratings():
    r, _ = make_synthetic(n_users=30, n_items=20, rank=2, density=0.3, random_state=0)
    info = pd.DataFrame({"title": [f"Film {x}" for x in r.item_ids]}, index=r.item_ids)
    return Ratings(r.users, r.items, r.values, r.user_ids, r.item_ids, r.scale, info, "syn")


def all_pairs(r, extra_user="nobody"):
    return pd.DataFrame({"user": list(r.user_ids[:8]) + [extra_user],
                         "item": list(r.item_ids[:8]) + [r.item_ids[0]]})


def test_map_round_trip_predicts_exactly(ratings, tmp_path):
    fit = PMF(rank=2, lambda_u=3.0, random_state=0).fit(ratings)
    path = fit.save(tmp_path / "map.nc") or tmp_path / "map.nc"
    loaded = load(path)
    assert type(loaded) is PMF and loaded.get_params() == fit.get_params()
    pairs = all_pairs(ratings)
    pd.testing.assert_frame_equal(predict(fit, pairs), predict(loaded, pairs))
    np.testing.assert_array_equal(loaded.U_, fit.U_)
    assert loaded.mu_ == fit.mu_ and loaded.link_ == "identity"
    pd.testing.assert_frame_equal(loaded.history_, fit.history_)
    assert loaded.ratings_.item_info["title"].tolist() == ratings.item_info["title"].tolist()
    assert loaded.ratings_.scale == ratings.scale and loaded.ratings_.name == "syn"
    hdr = read_header(path)
    assert hdr["model_class"] == "bayesmf.models.pmf:PMF" and hdr["format_version"] == 1


def test_gibbs_round_trip_keeps_draws_and_arguments(ratings, tmp_path):
    pri = GibbsPriors(noise_rate=2.0)
    fit = GibbsPMF(rank=2, chains=2, draws=15, tune=10, priors=pri, random_state=1,
                   progress=False).fit(ratings)
    save(fit, tmp_path / "gibbs.nc")
    loaded = load(tmp_path / "gibbs.nc", model_class=GibbsPMF)
    assert loaded.priors == pri and loaded.get_params() == fit.get_params()
    pairs = all_pairs(ratings)
    for interval in ("eti", "hdi"):
        pd.testing.assert_frame_equal(predict(fit, pairs, interval=interval),
                                      predict(loaded, pairs, interval=interval))
    post, post2 = fit.idata_.posterior, loaded.idata_.posterior
    for name in post.data_vars:
        np.testing.assert_array_equal(post[name].values, post2[name].values)
    assert list(post2["user"].values) == list(ratings.user_ids)
    np.testing.assert_array_equal(loaded.idata_.sample_stats["loglik"],
                                  fit.idata_.sample_stats["loglik"])


@pytest.mark.parametrize(
    "make",
    [BiasBaseline, UniformRandomBaseline, lambda: SGDPMF(rank=2, random_state=0),
     lambda: LogisticPMF(rank=2, random_state=0)],
    ids=["bias", "uniform", "sgd", "logistic"],
)
def test_other_estimators_round_trip(ratings, tmp_path, make):
    fit = make().fit(ratings)
    save(fit, tmp_path / "b.nc")
    loaded = load(tmp_path / "b.nc")
    assert type(loaded) is type(fit)
    pairs = all_pairs(ratings)
    pd.testing.assert_frame_equal(predict(fit, pairs), predict(loaded, pairs))


@pytest.mark.parametrize(
    "ids",
    [
        pd.Index([10, 3, 7]),
        pd.Index(["a", "b", "ç"]),
        pd.Index([1.5, 2.25, -3.0]),
        pd.Index([1, "x", 2.5, True], dtype=object),
    ],
)
def test_raw_ids_of_any_type_survive(ids):
    back = decode_ids(*encode_ids(ids))
    assert list(back) == list(ids)
    assert [type(x) for x in back] == [type(x.item() if hasattr(x, "item") else x) for x in ids]


def test_mixed_ids_survive_a_fit_round_trip(tmp_path):
    users = pd.Index([1, "bob", 2.5], dtype=object)
    items = pd.Index(["m1", 7], dtype=object)
    r = Ratings(np.array([0, 1, 2, 0]), np.array([0, 1, 0, 1]), np.array([4.0, 3.0, 5.0, 2.0]),
                users, items, RatingScale(1, 5, 1))
    fit = PMF(rank=1, random_state=0).fit(r)
    save(fit, tmp_path / "mixed.nc")
    loaded = load(tmp_path / "mixed.nc")
    assert list(loaded.ratings_.user_ids) == [1, "bob", 2.5]
    pairs = pd.DataFrame({"user": ["bob", 1], "item": [7, "m1"]})
    out = predict(loaded, pairs)
    assert not out["cold_user"].any() and not out["cold_item"].any()
    pd.testing.assert_frame_equal(out, predict(fit, pairs))


# ----------------------------------------------------------------------------- bad files
@pytest.fixture
def saved(ratings, tmp_path):
    path = tmp_path / "ok.nc"
    save(PMF(rank=2, random_state=0).fit(ratings), path)
    return path


def test_truncated_file_is_refused(saved, tmp_path):
    data = saved.read_bytes()
    bad = tmp_path / "trunc.nc"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load(bad)


def test_foreign_files_are_refused(tmp_path):
    txt = tmp_path / "notes.nc"
    txt.write_text("hello")
    with pytest.raises(ModelFileError):
        load(txt)
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("a", np.arange(3))}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ModelFileError, match="not a readable bayesmf model file"):
        load(other)
    with pytest.raises(ModelFileError, match="does not exist"):
        load(tmp_path / "missing.nc")


def test_newer_format_and_other_class_are_refused(saved):
    with pytest.raises(ModelFileError, match="holds a PMF fit"):
        load(saved, model_class=GibbsPMF)
    with h5py.File(saved, "r+") as fh:
        fh["bayesmf"].attrs["format_version"] = 99
    with pytest.raises(ModelFileError, match="newer"):
        load(saved)


def test_marker_is_required(saved):
    with h5py.File(saved, "r+") as fh:
        del fh["bayesmf"].attrs["bayesmf_model_file"]
    with pytest.raises(ModelFileError, match="no marker"):
        load(saved)


def test_saving_an_unfitted_model_fails(tmp_path):
    with pytest.raises(NotFittedError):
        save(PMF(rank=2), tmp_path / "x.nc")
    assert not (tmp_path / "x.nc").exists()
