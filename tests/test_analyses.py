"""Smoke-and-sense tests of the research scripts in ``analyses/`` (``--quick`` runs).

Each script's ``main`` runs on small synthetic data into a temporary directory; the tests check
the results JSON (keys and values that must hold by construction, e.g. ALS never increases its
objective, MLE has underdetermined rows and MAP none) and that the figures were written as PNGs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_script(name: str) -> ModuleType:
    """Import ``analyses/<name>.py`` as a module (its directory goes on ``sys.path``)."""
    if str(ANALYSES) not in sys.path:
        sys.path.insert(0, str(ANALYSES))
    spec = importlib.util.spec_from_file_location(f"analyses_{name}", ANALYSES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, out: Path, *extra: str) -> tuple[dict, dict]:
    """Run a script's ``main`` with ``--quick`` on synthetic data; return (returned, JSON)."""
    module = load_script(name)
    returned = module.main(["--quick", "--data", "synthetic", "--seed", "0", "--out", str(out),
                            *extra])
    written = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert written["script"] == name
    assert written["quick"] is True
    assert written["elapsed_s"] > 0
    for fig in written["figures"]:
        data = (out / fig).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, fig
    return returned, written


def test_common_activity_buckets_and_json():
    common = load_script("_common")
    idx, labels = common.activity_buckets(np.array([0, 1, 2, 5, 6, 100]), (-1, 0, 2, 5, math.inf))
    assert labels == ["0", "1-2", "3-5", ">5"]
    assert idx.tolist() == [0, 1, 1, 2, 3, 3]
    assert common.to_jsonable({"a": np.float64("nan"), "b": np.int32(3), "c": (np.bool_(True),)}) \
        == {"a": None, "b": 3, "c": [True]}


def test_map_vs_mle(tmp_path):
    _, res = run("map_vs_mle", tmp_path)
    assert set(res["figures"]) == {"rmse_vs_rank.png", "rmse_vs_lambda.png",
                                   "rmse_by_activity.png"}
    sweep = res["rank_sweep"]
    ranks = res["settings"]["ranks"]
    assert sorted({r["rank"] for r in sweep}) == sorted(ranks)
    mle = {r["rank"]: r for r in sweep if r["method"] == "MLE"}
    map_ = {r["rank"]: r for r in sweep if r["method"] == "MAP"}
    # MAP's ridge systems are never underdetermined; MLE's are for sparse rows, more so as k grows
    assert all(r["underdetermined_users"] == 0 == r["underdetermined_items"] for r in map_.values())
    under = [mle[k]["underdetermined_items"] + mle[k]["underdetermined_users"] for k in ranks]
    assert under == sorted(under) and under[-1] > 0
    kmax = max(ranks)
    # without a penalty MLE fits the training data better and the test data worse
    assert mle[kmax]["train_rmse"] < map_[kmax]["train_rmse"]
    assert mle[kmax]["test_rmse"] > map_[kmax]["test_rmse"]
    # the lambda sweep: training error grows with the penalty
    lam = sorted(res["lambda_sweep"], key=lambda r: r["lambda"])
    train = [r["train_rmse"] for r in lam]
    assert train == sorted(train)
    # the activity buckets partition the test set
    for side in ("user", "item"):
        assert sum(r["n_test"] for r in res["activity"][side]) == res["data"]["n_test"]
    assert res["summary"]["best_test_rmse_map"] < res["summary"]["best_test_rmse_mle"]


def test_als_vs_sgd(tmp_path):
    _, res = run("als_vs_sgd", tmp_path)
    assert set(res["figures"]) == {"objective_and_rmse.png", "sgd_learning_rate.png"}
    # refitting with max sweeps = s reproduces the long run's first s sweeps exactly
    assert res["refits_reproduce_history"] is True
    summary = {r["method"]: r for r in res["summary"]}
    # an exact ALS half-sweep never increases the MAP objective
    assert summary["ALS"]["objective_increases"] == 0
    assert summary["ALS"]["sweeps_run"] == res["settings"]["als_sweeps"]
    assert summary["SGD"]["sweeps_run"] == res["settings"]["sgd_sweeps"]
    hist = [r for r in res["history"] if r["method"] == "ALS"]
    obj = [r["objective"] for r in hist]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(obj, obj[1:], strict=False))
    aspects = [r["aspect"] for r in res["lecture_table"]]
    assert any(a.startswith("parallelisation") for a in aspects)
    assert any(a.startswith("stability") for a in aspects)
    assert len(res["learning_rates"]) == 2
    for row in res["threads"]:
        assert row["speedup"] > 0


def test_rank_selection(tmp_path):
    _, res = run("rank_selection", tmp_path)
    table = res["table"]
    models = {r["model"] for r in table}
    lams = res["settings"]["map_lambdas"]
    assert models == {f"MAP lambda={lam:g}" for lam in lams} | {"Gibbs (BPMF)"}
    assert len(table) == (len(lams) + 1) * len(res["settings"]["ranks"])
    for row in table:
        assert row["test_lpd"] is not None and row["test_lpd"] < 0
        if row["model"].startswith("Gibbs"):
            assert row["loo_elpd"] is not None and row["loo_elpd"] < 0
            assert 0 <= row["coverage_90"] <= 1
        else:
            assert row["loo_elpd"] is None  # a point fit has no LOO
    chosen = {r["model"]: r for r in res["chosen"]}
    assert chosen["Gibbs (BPMF)"]["rank_by_loo"] in res["settings"]["ranks"]
    assert res["figures"] == ["rank_selection.png"]


def test_sbc_gibbs(tmp_path):
    _, res = run("sbc", tmp_path, "--methods", "Gibbs")
    n_draws = res["n_draws"]
    tests = res["tests"]
    assert {t["quantity"] for t in tests} >= {"sigma", "mu", "norm_U", "norm_V"}
    assert all(0 <= t["p_value"] <= 1 for t in tests)
    ranks = res["ranks"]["Gibbs"]
    assert len(ranks) == 20
    assert all(0 <= v <= n_draws for row in ranks for v in row.values())
    # the exact Gibbs sampler is calibrated (Bonferroni over the quantities)
    assert res["summary"][0]["calibrated_at_1pct"] is True


@pytest.mark.slow
def test_sbc_pymc_methods(tmp_path):
    _, res = run("sbc", tmp_path, "--methods", "NUTS,ADVI")
    methods = {r["method"] for r in res["summary"]}
    assert methods == {"NUTS", "ADVI"}
    assert all(len(r) == 4 for r in res["ranks"].values())


def test_inference_comparison_point_and_gibbs(tmp_path):
    pytest.importorskip("bayesmf.compare")
    _, res = run("inference_comparison", tmp_path, "--methods", "MLE,MAP,SGD,Gibbs")
    block = res["subset"]
    assert block["methods"] == ["MLE", "MAP", "SGD", "Gibbs"]
    assert len(block["table"]) == 4
    cal = block["calibration"]
    cal_methods = {r["method"] for r in cal}
    assert "Gibbs" in cal_methods and "MLE" not in cal_methods
    assert all(0 <= r["empirical"] <= 1 for r in cal)
    assert {"calibration.png", "comparison.png"} <= set(res["figures"])


@pytest.mark.slow
def test_inference_comparison_all_methods(tmp_path):
    pytest.importorskip("bayesmf.compare")
    _, res = run("inference_comparison", tmp_path)
    block = res["subset"]
    assert len(block["table"]) == 6
    assert block["nuts"]["n_divergent"] is not None
