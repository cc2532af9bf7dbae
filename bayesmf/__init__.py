"""bayesmf: Bayesian probabilistic matrix factorization of rating data.

Fit PMF as MLE and MAP (alternating ridge solves), by SGD, with a logistic link, and as a full
posterior (Gibbs / Bayesian PMF, NUTS and ADVI in PyMC); compare every fit through ArviZ on the
quantities the model identifies; predict ratings with their uncertainty.

The public names below are imported lazily, so ``import bayesmf`` stays fast and does not load
PyMC until a Bayesian estimator is used.

Examples
--------
>>> import bayesmf as bm
>>> ratings = bm.load_toy()
>>> fit = bm.PMF(rank=2, method="map", random_state=0).fit(ratings)
>>> fit.predict_mean([1], [0]).shape
(1,)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # data and datasets
    "Ratings": "bayesmf.data",
    "RatingScale": "bayesmf.data",
    "load": "bayesmf.datasets",
    "load_ml_latest_small": "bayesmf.datasets",
    "load_movielens": "bayesmf.datasets",
    "load_csv": "bayesmf.datasets",
    "load_toy": "bayesmf.datasets",
    "make_synthetic": "bayesmf.datasets",
    "download_movielens": "bayesmf.datasets",
    "SyntheticTruth": "bayesmf.datasets",
    # splits
    "random_split": "bayesmf.split",
    "user_split": "bayesmf.split",
    "kfold": "bayesmf.split",
    "movielens_folds": "bayesmf.split",
    "make_splits": "bayesmf.split",
    # point estimators and baselines
    "PMF": "bayesmf.models.pmf",
    "SGDPMF": "bayesmf.models.sgd",
    "LogisticPMF": "bayesmf.models.logistic",
    "ImplicitALS": "bayesmf.models.implicit",
    "UniformRandomBaseline": "bayesmf.models.baselines",
    "GlobalMeanBaseline": "bayesmf.models.baselines",
    "UserMeanBaseline": "bayesmf.models.baselines",
    "ItemMeanBaseline": "bayesmf.models.baselines",
    "MeanOfMeansBaseline": "bayesmf.models.baselines",
    "BiasBaseline": "bayesmf.models.baselines",
    # full posterior
    "GibbsPMF": "bayesmf.models.gibbs",
    "NUTSPMF": "bayesmf.models.pymc_fit",
    "ADVIPMF": "bayesmf.models.pymc_fit",
    "build_pmf_model": "bayesmf.models.pymc_model",
    "PMFPriors": "bayesmf.models.pymc_model",
    "GibbsPriors": "bayesmf.models.gibbs",
    "estimate_draws_bytes": "bayesmf.memory",
    "build_inference_data": "bayesmf.models.idata",
    # predictions, cold start, diagnostics, comparison
    "predict_draws": "bayesmf.predict",
    "recommend": "bayesmf.predict",
    "fold_in_user": "bayesmf.coldstart",
    "diagnose": "bayesmf.diagnostics",
    "raw_factor_rhat": "bayesmf.diagnostics",
    "loo_compare": "bayesmf.compare",
    # evaluation
    "cross_validate": "bayesmf.evaluate",
    "summarize_cv": "bayesmf.evaluate",
    "rmse": "bayesmf.evaluate",
    "mae": "bayesmf.evaluate",
    "coverage": "bayesmf.evaluate",
    "crps_gaussian": "bayesmf.evaluate",
    "crps_from_draws": "bayesmf.evaluate",
    # persistence and reporting
    "save": "bayesmf.io",
    "load_fit": "bayesmf.io",
    "write_report": "bayesmf.report",
}

_RENAMED = {"load_fit": "load"}
# ``predict``, ``evaluate`` and ``compare`` are submodules; their main functions are reached as
# ``fit.predict(...)``, ``bayesmf.evaluate.evaluate`` and ``bayesmf.compare.compare`` so that a
# package attribute never means a module in one session and a function in another.

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        value = getattr(module, _RENAMED.get(name, name))
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayesmf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
