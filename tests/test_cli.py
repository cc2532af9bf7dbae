"""Tests for the ``bayesmf`` command line, run in-process through ``main([...])``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayesmf.cli import METHODS, SplitSpec, main, make_estimator, parse_split
from bayesmf.datasets import load_toy
from bayesmf.evaluate import cross_validate, evaluate, rmse
from bayesmf.exceptions import BayesMFError
from bayesmf.models.baselines import BiasBaseline, GlobalMeanBaseline


# ------------------------------------------------------------------ argument parsing
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("random", SplitSpec("random", 0.2)),
        ("random:0.1", SplitSpec("random", 0.1)),
        ("user", SplitSpec("user", 1.0)),
        ("user:3", SplitSpec("user", 3.0)),
        ("kfold", SplitSpec("kfold", 5.0)),
        ("KFold:4", SplitSpec("kfold", 4.0)),
        ("movielens", SplitSpec("movielens")),
    ],
)
def test_parse_split_valid(text, want):
    assert parse_split(text) == want


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("bogus", "bad split 'bogus'"),
        ("kfold:1", "at least 2 folds"),
        ("kfold:x", "not an integer"),
        ("kfold:", "missing value"),
        ("random:1.5", r"in \(0, 1\)"),
        ("random:abc", "not a fraction"),
        ("user:0", "at least 1"),
        ("movielens:2", "takes no argument"),
    ],
)
def test_parse_split_errors(text, match):
    with pytest.raises(BayesMFError, match=match):
        parse_split(text)


def test_make_estimator():
    est = make_estimator("bias", rank=7, seed=3, params={"lambda_user": 2.0})
    assert isinstance(est, BiasBaseline) and est.lambda_user == 2.0  # rank/seed ignored
    pmf = make_estimator("mle", rank=4, seed=1, params={"max_iter": 3})
    assert (pmf.method, pmf.rank, pmf.random_state, pmf.max_iter) == ("mle", 4, 1, 3)
    with pytest.raises(BayesMFError, match="has no parameter 'alpha'"):
        make_estimator("map", params={"alpha": 1})
    with pytest.raises(BayesMFError, match="unknown method 'svd'"):
        make_estimator("svd")
    assert {"map", "mle", "gibbs", "nuts", "advi", "sgd", "bias"} <= set(METHODS)


# ------------------------------------------------------------------ errors: exit 2, one line
def _one_line_error(capsys, argv, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err
    assert match in lines[-1]
    return lines


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["evaluate", "--data", "toy", "--split", "bogus"], "bad split 'bogus'"),
        (["evaluate", "--data", "toy", "--method", "svd"], "unknown method(s) ['svd']"),
        (["evaluate", "--data", "toy", "--method", "map", "--param", "alpha=1"],
         "--param alpha: not a parameter of map"),
        (["evaluate", "--data", "toy", "--param", "oops"], "--param expects KEY=VALUE"),
        (["fit", "--data", "no/such/source", "--method", "map"], "unknown data source"),
        (["fit", "--data", "toy", "--method", "map,mle"], "exactly one --method"),
        (["fit", "--data", "toy", "--method", "map", "--rank", "0"], "rank must be a positive"),
        (["predict", "--model", "no/such/model.nc", "--pairs", "x.csv"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, match):
    lines = _one_line_error(capsys, argv, match)
    assert len(lines) == 1 and lines[0].startswith("bayesmf: error: ")


def test_argparse_usage_error_and_help(capsys):
    assert main(["fit", "--method", "map"]) == 2  # --data missing
    assert "required" in capsys.readouterr().err
    assert main([]) == 2
    capsys.readouterr()
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "fit", "evaluate", "predict"):
        assert cmd in out


def test_bad_csv_data_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\n1,1,4\n1,2,abc\n")
    _one_line_error(capsys, ["fit", "--data", str(bad), "--method", "bias"], "non-numeric")


# ------------------------------------------------------------------ fit
def test_fit_toy_prints_summary(capsys):
    assert main(["fit", "--data", "toy", "--method", "bias", "--param", "lambda_user=0",
                 "--param", "lambda_item=0", "--param", "n_iter=20"]) == 0
    out = json.loads(capsys.readouterr().out)
    toy = load_toy()
    ref = BiasBaseline(lambda_user=0, lambda_item=0, n_iter=20).fit(toy)
    assert out["method"] == "bias" and out["n_ratings"] == 11
    assert out["params"] == {"lambda_user": 0, "lambda_item": 0, "n_iter": 20}
    assert out["train_rmse"] == pytest.approx(rmse(toy.values, ref.predict_mean(toy.users, toy.items)))


def test_fit_save_and_predict_roundtrip(tmp_path, capsys):
    pytest.importorskip("bayesmf.io")
    model = tmp_path / "toy_map.nc"
    assert main(["fit", "--data", "toy", "--method", "map", "--rank", "2", "--seed", "1",
                 "--out", str(model)]) == 0
    capsys.readouterr()
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"user": ["Bob", "Carol", "Zoe"],
                  "item": ["Sholay", "Shawshank", "Batman"]}).to_csv(pairs, index=False)
    out_csv = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(model), "--pairs", str(pairs), "--prob", "0.5",
                 "--out", str(out_csv)]) == 0
    got = pd.read_csv(out_csv)
    from bayesmf.models.pmf import PMF

    ref = PMF(rank=2, random_state=1).fit(load_toy())
    want = ref.predict(pd.DataFrame({"user": ["Bob", "Carol", "Zoe"],
                                     "item": ["Sholay", "Shawshank", "Batman"]}), prob=0.5)
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-10)
    np.testing.assert_allclose(got["lower"], want["lower"], rtol=1e-10)
    assert list(got["cold_user"]) == [False, False, True]
    # to stdout
    assert main(["predict", "--model", str(model), "--pairs", str(pairs)]) == 0
    printed = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert len(printed) == 3 and "upper" in printed
    # a file that is not one of ours, a pairs file without the columns
    junk = tmp_path / "junk.nc"
    junk.write_text("not a model")
    _one_line_error(capsys, ["predict", "--model", str(junk), "--pairs", str(pairs)],
                    "not a readable bayesmf model file")
    nocols = tmp_path / "nocols.csv"
    nocols.write_text("a,b\n1,2\n")
    _one_line_error(capsys, ["predict", "--model", str(model), "--pairs", str(nocols)],
                    "needs a 'user' and an 'item' column")


# ------------------------------------------------------------------ evaluate
@pytest.fixture(scope="module")
def slice_csv(tmp_path_factory):
    """A small slice of ml-latest-small as a CSV file (40 most active users)."""
    from bayesmf.datasets import load_ml_latest_small

    r = load_ml_latest_small()
    keep = np.argsort(-r.user_counts, kind="stable")[:40]
    sub = r.take(np.isin(r.users, keep)).to_frame("userId", "movieId", "rating")
    sub = sub.groupby("userId").head(150)
    path = tmp_path_factory.mktemp("data") / "slice.csv"
    sub.to_csv(path, index=False)
    return path


def test_evaluate_toy_random_split_json(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["evaluate", "--data", "toy", "--method", "global_mean,bias",
                 "--split", "random:0.3", "--seed", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "global_mean" in text and "rmse" in text
    res = json.loads(out.read_text())
    assert res["split"] == "random:0.3" and res["n_folds"] == 1 and res["seed"] == 2
    from bayesmf.cli import make_folds

    toy = load_toy()
    train, test = make_folds(toy, SplitSpec("random", 0.3), 2)[0]
    want = evaluate(GlobalMeanBaseline().fit(train), test)
    fold = next(f for f in res["folds"] if f["method"] == "global_mean")
    assert fold["rmse"] == pytest.approx(want["rmse"])
    assert fold["n_test"] == test.nnz
    assert res["summary"]["global_mean"]["rmse_mean"] == pytest.approx(want["rmse"])


def test_evaluate_csv_kfold_matches_cross_validate(slice_csv, tmp_path, capsys):
    out = tmp_path / "cv.json"
    assert main(["evaluate", "--data", str(slice_csv), "--method", "bias,map", "--rank", "3",
                 "--param", "max_iter=5", "--split", "kfold:3", "--json", str(out)]) == 0
    capsys.readouterr()
    res = json.loads(out.read_text())
    assert res["n_folds"] == 3 and len(res["folds"]) == 6
    from bayesmf.cli import make_folds
    from bayesmf.datasets import load

    ratings = load(str(slice_csv))
    folds = make_folds(ratings, SplitSpec("kfold", 3.0), 0)
    want = cross_validate(BiasBaseline(), ratings, scheme=folds, progress=False)
    got = [f["rmse"] for f in res["folds"] if f["method"] == "bias"]
    np.testing.assert_allclose(got, want["rmse"], rtol=1e-10)
    map_rmse = res["summary"]["map"]["rmse_mean"]
    assert 0.6 < map_rmse < 1.2
    assert "coverage_90_mean" in res["summary"]["map"]


def test_evaluate_user_split(slice_csv, capsys):
    assert main(["evaluate", "--data", str(slice_csv), "--method", "user_mean",
                 "--split", "user:2"]) == 0
    out = capsys.readouterr().out
    assert "user_mean" in out and "split: user:2" in out


def test_evaluate_movielens_split_needs_directory(capsys):
    _one_line_error(capsys, ["evaluate", "--data", "toy", "--split", "movielens"],
                    "--split movielens needs --data to be a MovieLens 100K directory")


# ------------------------------------------------------------------ demo
def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--rank", "3", "--out", str(tmp_path), "--no-report"]) == 0
    out = capsys.readouterr().out
    for name in ("uniform_random", "global_mean", "bias", "mle", "map", "top-5"):
        assert name in out
    table = pd.read_csv(tmp_path / "comparison.csv")
    assert list(table["method"])[-2:] == ["mle", "map"]
    by = table.set_index("method")
    assert by.loc["bias", "rmse"] < by.loc["global_mean", "rmse"] < by.loc["uniform_random", "rmse"]
    assert np.isnan(by.loc["mle", "coverage_90"]) and 0 < by.loc["map", "coverage_90"] <= 1
    recs = pd.read_csv(tmp_path / "recommendations.csv")
    assert len(recs) == 5 and recs["title"].notna().all()
    assert (np.diff(recs["mean"]) <= 1e-12).all()
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["n_train"] + summary["n_test"] > 0


def test_demo_unknown_user_exits_2(capsys):
    _one_line_error(capsys, ["demo", "--quick", "--rank", "2", "--user", "no-such-user"],
                    "user 'no-such-user' is not in the data")


def test_report_subcommand_is_wired(capsys):
    pytest.importorskip("bayesmf.report")
    assert main(["report", "--help"]) == 0
    assert "--methods" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_quick_writes_report(tmp_path, capsys):
    pytest.importorskip("bayesmf.report")
    report = tmp_path / "demo.html"
    assert main(["demo", "--quick", "--rank", "3", "--report", str(report)]) == 0
    assert f"wrote report {report}" in capsys.readouterr().out
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:200]
    for name in ("MAP", "MLE", "BIAS"):
        assert name in html


def _fake_ml100k(root):
    """A tiny ml-100k-shaped directory: u.data, u.item and two canonical folds."""
    rng = np.random.default_rng(0)
    rows = sorted({(int(u), int(i)) for u, i in zip(rng.integers(1, 21, 200),
                                                    rng.integers(1, 31, 200), strict=True)})
    df = pd.DataFrame(rows, columns=["user", "item"])
    df["rating"] = rng.integers(1, 6, len(df))
    df["ts"] = 874965758
    root.mkdir()
    df.to_csv(root / "u.data", sep="\t", header=False, index=False)
    (root / "u.item").write_text(
        "".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 19) + "\n"
                for i in range(1, 31)), encoding="latin-1")
    for k in (1, 2):
        test = (np.arange(len(df)) % 2) == (k - 1)
        df[~test].to_csv(root / f"u{k}.base", sep="\t", header=False, index=False)
        df[test].to_csv(root / f"u{k}.test", sep="\t", header=False, index=False)
    return df


def test_evaluate_movielens_canonical_folds(tmp_path, capsys):
    df = _fake_ml100k(tmp_path / "ml-100k")
    out = tmp_path / "ml.json"
    assert main(["evaluate", "--data", str(tmp_path / "ml-100k"), "--method", "global_mean",
                 "--split", "movielens", "--json", str(out)]) == 0
    capsys.readouterr()
    res = json.loads(out.read_text())
    assert res["split"] == "movielens" and res["n_folds"] == 2
    for k, fold in enumerate(res["folds"]):
        test = (np.arange(len(df)) % 2) == k
        mu = df.loc[~test, "rating"].mean()
        assert fold["n_test"] == int(test.sum())
        assert fold["rmse"] == pytest.approx(rmse(df.loc[test, "rating"], np.full(test.sum(), mu)))
