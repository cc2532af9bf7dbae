"""The one builder of home-made :class:`arviz.InferenceData` (Gibbs draws, point-fit exports).

Every fit in bayesmf hands its posterior to ArviZ in the same shape (see ``CONVENTIONS.md``):

- dims ``chain``, ``draw``, ``user``, ``item``, ``factor``, ``rating``; coords ``user`` / ``item``
  are the *raw* ids of the training :class:`~bayesmf.data.Ratings`, ``factor`` = ``0..k-1``,
  ``rating`` = ``0..nnz-1``;
- ``posterior``: ``U (user, factor)``, ``V (item, factor)``, ``mu``, ``user_bias (user)``,
  ``item_bias (item)``, ``sigma``, ``sigma_u (factor)``, ``sigma_v (factor)``,
  ``sigma_user_bias``, ``sigma_item_bias`` and method-specific extras (e.g. ``mu_u (factor)``,
  ``Lambda_u (factor, factor_)``);
- ``sample_stats``: ``loglik (chain, draw)`` and whatever else the method has;
- ``observed_data``: ``R (rating)``; ``constant_data``: ``user_idx``, ``item_idx (rating)``;
- ``attrs``: ``method``, ``rank``, ``link``, ``biases``, ``bayesmf_version``, ``params_json``
  and the rating scale (``scale_min``, ``scale_max``, ``scale_step``) when declared.

The large per-user / per-item draws are stored as ``dtype`` (float32 by default, to keep the
memory budget), hyperparameters and statistics as float64.

:func:`posterior_latent_means` is the matching reader: predicted latent means
``mu + b_u + c_i + u . v`` of chosen pairs for every draw.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import arviz as az
import numpy as np

from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError

#: dims (after ``chain, draw``) of the variables whose names are fixed by the conventions
DEFAULT_DIMS: dict[str, list[str]] = {
    "U": ["user", "factor"],
    "V": ["item", "factor"],
    "user_bias": ["user"],
    "item_bias": ["item"],
    "sigma_u": ["factor"],
    "sigma_v": ["factor"],
    "mu_u": ["factor"],
    "mu_v": ["factor"],
    "Lambda_u": ["factor", "factor_"],
    "Lambda_v": ["factor", "factor_"],
    "mu": [],
    "sigma": [],
    "sigma_user_bias": [],
    "sigma_item_bias": [],
}

#: per-user / per-item variables stored in the compact ``dtype``
LARGE_VARS = ("U", "V", "user_bias", "item_bias")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("bayesmf")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


def _jsonable(value: Any) -> Any:
    """Best-effort conversion of constructor arguments to JSON-compatible values."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.random.Generator):
        return "Generator"
    return repr(value)


def params_to_json(params: Mapping[str, Any]) -> str:
    """Serialise constructor arguments for the ``params_json`` attribute."""
    return json.dumps(_jsonable(dict(params)), sort_keys=True)


def _raw_coord(index: Any) -> np.ndarray:
    arr = np.asarray(index)
    if arr.dtype.kind in "iufb":
        return arr
    return arr.astype(str).astype(object)


def build_inference_data(
    posterior: Mapping[str, np.ndarray],
    ratings: Ratings,
    *,
    method: str,
    params: Mapping[str, Any],
    rank: int,
    biases: bool,
    link: str = "identity",
    sample_stats: Mapping[str, np.ndarray] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
    dtype: Any = np.float32,
    dims: Mapping[str, list[str]] | None = None,
) -> az.InferenceData:
    """Wrap draws in an :class:`arviz.InferenceData` following the bayesmf conventions.

    Parameters
    ----------
    posterior : dict of str -> ndarray
        Draws with leading ``(chain, draw)`` axes, e.g. ``U`` of shape
        ``(chains, draws, n_users, rank)``. A point fit passes ``(1, 1, ...)``.
        Variables with ``None`` values are skipped. ``user_bias`` / ``item_bias`` /
        ``sigma_user_bias`` / ``sigma_item_bias`` are dropped when ``biases`` is False.
    ratings : Ratings
        The training ratings (id maps for the coords, observed values).
    method : str
        ``"gibbs"``, ``"map"``, ``"mle"``, ``"nuts"``, ...
    params : dict
        Constructor arguments of the fit, stored as JSON in ``attrs["params_json"]``.
    rank : int
        Number of factors ``k``.
    biases : bool
        Whether the model has user/item bias terms.
    link : {"identity", "logistic"}
        Link of the mean.
    sample_stats : dict of str -> ndarray, optional
        Per-draw statistics with leading ``(chain, draw)`` axes (``loglik`` ...).
    extra_attrs : dict, optional
        More global attributes (e.g. ``interrupted``, ``thin``, ``tune``).
    dtype : numpy dtype
        Storage type of the per-user / per-item draws (``U``, ``V``, biases).
    dims : dict, optional
        Dims of extra variables not in :data:`DEFAULT_DIMS` (without ``chain``, ``draw``).

    Returns
    -------
    arviz.InferenceData
        Groups ``posterior``, ``sample_stats`` (when given), ``observed_data``,
        ``constant_data``.

    Raises
    ------
    BayesMFError
        If a variable's shape does not match its dims, or chain/draw counts disagree.
    """
    if not isinstance(ratings, Ratings):
        raise BayesMFError(f"ratings must be a bayesmf Ratings object, got {type(ratings).__name__}")
    if link not in ("identity", "logistic"):
        raise BayesMFError(f"link must be 'identity' or 'logistic', got {link!r}")
    k = int(rank)
    all_dims = dict(DEFAULT_DIMS)
    if dims:
        all_dims.update({name: list(d) for name, d in dims.items()})
    sizes = {
        "user": ratings.n_users,
        "item": ratings.n_items,
        "factor": k,
        "factor_": k,
        "rating": ratings.nnz,
    }
    bias_only = ("user_bias", "item_bias", "sigma_user_bias", "sigma_item_bias")

    post: dict[str, np.ndarray] = {}
    lead: tuple[int, int] | None = None
    for name, value in posterior.items():
        if value is None or (not biases and name in bias_only):
            continue
        arr = np.asarray(value)
        if arr.ndim < 2:
            raise BayesMFError(f"posterior variable {name!r} needs leading (chain, draw) axes")
        if lead is None:
            lead = arr.shape[:2]
        elif arr.shape[:2] != lead:
            raise BayesMFError(
                f"posterior variable {name!r} has (chain, draw) = {arr.shape[:2]}, expected {lead}"
            )
        var_dims = all_dims.get(name)
        if var_dims is not None:
            expected = tuple(sizes[d] for d in var_dims)
            if arr.shape[2:] != expected:
                raise BayesMFError(
                    f"posterior variable {name!r} has shape {arr.shape[2:]} per draw, "
                    f"expected {expected} for dims {var_dims}"
                )
        target = dtype if name in LARGE_VARS else np.float64
        post[name] = arr if arr.dtype == np.dtype(target) else arr.astype(target)
    if lead is None:
        raise BayesMFError("the posterior holds no variables")

    stats: dict[str, np.ndarray] = {}
    for name, value in (sample_stats or {}).items():
        arr = np.asarray(value)
        if arr.shape[:2] != lead:
            raise BayesMFError(
                f"sample_stats variable {name!r} has (chain, draw) = {arr.shape[:2]}, expected {lead}"
            )
        stats[name] = arr

    coords = {
        "user": _raw_coord(ratings.user_ids),
        "item": _raw_coord(ratings.item_ids),
        "factor": np.arange(k),
        "factor_": np.arange(k),
        "rating": np.arange(ratings.nnz),
    }
    used_dims = {d for name in post for d in all_dims.get(name, [])} | {"rating"}
    coords = {key: val for key, val in coords.items() if key in used_dims}
    var_dims_map = {name: all_dims[name] for name in post if name in all_dims}
    var_dims_map["R"] = ["rating"]
    var_dims_map["user_idx"] = ["rating"]
    var_dims_map["item_idx"] = ["rating"]

    attrs: dict[str, Any] = {
        "method": str(method),
        "rank": k,
        "link": link,
        "biases": int(bool(biases)),
        "bayesmf_version": _version(),
        "params_json": params_to_json(params),
    }
    if ratings.scale is not None:
        attrs["scale_min"] = float(ratings.scale.min)
        attrs["scale_max"] = float(ratings.scale.max)
        if ratings.scale.step is not None:
            attrs["scale_step"] = float(ratings.scale.step)
    for key, value in (extra_attrs or {}).items():
        attrs[str(key)] = int(value) if isinstance(value, bool) else value

    idata = az.from_dict(
        posterior=post,
        sample_stats=stats or None,
        observed_data={"R": ratings.values.astype(np.float64)},
        constant_data={
            "user_idx": ratings.users.astype(np.int32),
            "item_idx": ratings.items.astype(np.int32),
        },
        coords=coords,
        dims=var_dims_map,
        attrs=attrs,
    )
    for group in ("posterior", "sample_stats"):
        if hasattr(idata, group):
            getattr(idata, group).attrs.update(attrs)
    return idata


def posterior_latent_means(
    idata: az.InferenceData,
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    *,
    max_elements: int = 4_000_000,
) -> np.ndarray:
    """Latent means ``mu + b_u + c_i + u . v`` of pairs for every posterior draw.

    Parameters
    ----------
    idata : arviz.InferenceData
        A bayesmf posterior (any method).
    user_idx, item_idx : array of int
        Integer indices (into the training id maps) of the pairs.
    max_elements : int
        Bound on the temporary gathered factor elements per chunk (memory).

    Returns
    -------
    ndarray, shape (chain, draw, n_pairs), float64
        Identity-link latent means (no link function applied).
    """
    post = idata.posterior
    users = np.asarray(user_idx, dtype=np.int64)
    items = np.asarray(item_idx, dtype=np.int64)
    U = post["U"].values
    V = post["V"].values
    mu = post["mu"].values.astype(np.float64)
    bu = post["user_bias"].values if "user_bias" in post else None
    bi = post["item_bias"].values if "item_bias" in post else None
    n_chain, n_draw = mu.shape
    k = U.shape[-1]
    step = max(1, int(max_elements) // max(1, n_draw * k))
    out = np.empty((n_chain, n_draw, len(users)))
    for c in range(n_chain):
        for start in range(0, len(users), step):
            sl = slice(start, start + step)
            u, i = users[sl], items[sl]
            val = np.einsum("dpk,dpk->dp", U[c][:, u, :], V[c][:, i, :], dtype=np.float64)
            val += mu[c][:, None]
            if bu is not None:
                val += bu[c][:, u]
            if bi is not None:
                val += bi[c][:, i]
            out[c, :, sl] = val
    return out
