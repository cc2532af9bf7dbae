"""Save and load fitted models: one netCDF file per fit.

Layout of a bayesmf model file (HDF5-based netCDF4, written with ``h5netcdf``):

- for a Bayesian fit, the groups of ``fit.idata_`` exactly as
  :meth:`arviz.InferenceData.to_netcdf` writes them (``posterior``, ``sample_stats``,
  ``observed_data``, ...), so ``arviz.from_netcdf`` can read the file directly;
- always a group ``bayesmf`` holding the fit's state:

  * attributes ``bayesmf_model_file`` (a marker), ``format_version``, ``model_class``
    (``module:QualName``), ``bayesmf_version``, ``params_json`` (every constructor argument,
    JSON), ``scalars_json`` (fitted scalars such as ``mu_``, ``sigma_``, ``link_``),
    ``layout_json`` (what every stored variable is);
  * the training :class:`~bayesmf.data.Ratings` (indices, values, the raw id maps, scale,
    item titles): raw ids of any int / float / str mix survive, stored as values plus a type tag;
  * every fitted array (``U_``, ``V_``, biases, ...) and DataFrame (``history_``) bit for bit.

:func:`load` refuses, with :class:`~bayesmf.exceptions.ModelFileError`, a file that is
truncated or corrupt, a file that is not a bayesmf model file, one written by a newer format
version, and (when ``model_class`` is given) one written by a different estimator class.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayesmf.data import Ratings, RatingScale
from bayesmf.exceptions import BayesMFError, ModelFileError

__all__ = ["save", "load", "FORMAT_VERSION", "read_header"]

#: version of the file layout written by :func:`save`; :func:`load` reads this and older ones
FORMAT_VERSION = 1
STATE_GROUP = "bayesmf"
MARKER = "bayesmf_model_file"
_ENGINE = "h5netcdf"


# ============================================================================ raw ids
def encode_ids(index: pd.Index) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Turn raw ids into a netCDF-storable array, a type tag and (for mixes) per-id kinds.

    Returns
    -------
    values : ndarray
        int64, float64, bool or str values.
    tag : {"int", "float", "bool", "str", "mixed"}
    kinds : ndarray of str or None
        For ``"mixed"``: ``"i"``, ``"f"``, ``"b"`` or ``"s"`` per id.
    """
    arr = np.asarray(index)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64), "int", None
    if arr.dtype.kind == "f":
        return arr.astype(np.float64), "float", None
    if arr.dtype.kind == "b":
        return arr.astype(bool), "bool", None
    kinds = []
    for x in arr:
        if isinstance(x, (bool, np.bool_)):
            kinds.append("b")
        elif isinstance(x, (int, np.integer)):
            kinds.append("i")
        elif isinstance(x, (float, np.floating)):
            kinds.append("f")
        elif isinstance(x, str):
            kinds.append("s")
        else:
            raise BayesMFError(
                f"cannot save raw id {x!r} of type {type(x).__name__}: ids must be int, float, "
                "bool or str"
            )
    kset = set(kinds)
    strs = np.array([repr(x) if k == "f" else str(x) for x, k in zip(arr, kinds, strict=True)],
                    dtype=object)
    if kset <= {"s"}:
        return strs, "str", None
    if kset == {"i"}:
        return arr.astype(np.int64), "int", None
    return strs, "mixed", np.array(kinds, dtype=object)


def decode_ids(values: np.ndarray, tag: str, kinds: np.ndarray | None) -> pd.Index:
    """Inverse of :func:`encode_ids`."""
    if tag == "int":
        return pd.Index(np.asarray(values, dtype=np.int64))
    if tag == "float":
        return pd.Index(np.asarray(values, dtype=np.float64))
    if tag == "bool":
        return pd.Index(np.asarray(values, dtype=bool))
    vals = [str(v) for v in np.asarray(values)]
    if tag == "str":
        return pd.Index(vals, dtype=object)
    if tag == "mixed" and kinds is not None:
        conv = {"i": int, "f": float, "b": lambda s: s == "True", "s": str}
        return pd.Index([conv[str(k)](v) for v, k in zip(vals, kinds, strict=True)], dtype=object)
    raise ModelFileError(f"unknown id type tag {tag!r} in the model file")


# ============================================================================ state <-> Dataset
class _StateWriter:
    """Collects variables and a layout description for the ``bayesmf`` group."""

    def __init__(self) -> None:
        self.vars: dict[str, xr.Variable] = {}
        self.layout: dict[str, Any] = {}

    def array(self, name: str, arr: Any) -> None:
        a = np.asarray(arr)
        if a.dtype.kind == "O" or a.dtype.kind == "U":
            a = a.astype(str).astype(object)
        self.vars[name] = xr.Variable(tuple(f"{name}__d{j}" for j in range(a.ndim)), a)

    def ids(self, name: str, index: pd.Index) -> dict[str, Any]:
        values, tag, kinds = encode_ids(index)
        self.array(name, values)
        if kinds is not None:
            self.array(name + "__kinds", kinds)
        return {"var": name, "tag": tag, "kinds": None if kinds is None else name + "__kinds"}

    def frame(self, name: str, df: pd.DataFrame) -> dict[str, Any]:
        cols = []
        for j, col in enumerate(df.columns):
            var = f"{name}__c{j}"
            values = df[col].to_numpy()
            if values.dtype.kind == "O":
                values = values.astype(str).astype(object)
            self.array(var, values)
            cols.append([str(col), var, str(df[col].dtype)])
        index = self.ids(name + "__index", df.index)
        return {"columns": cols, "index": index}

    def ratings(self, name: str, r: Ratings) -> dict[str, Any]:
        self.array(name + "__users", r.users)
        self.array(name + "__items", r.items)
        self.array(name + "__values", r.values)
        spec: dict[str, Any] = {
            "user_ids": self.ids(name + "__user_ids", r.user_ids),
            "item_ids": self.ids(name + "__item_ids", r.item_ids),
            "scale": None if r.scale is None else list(r.scale.to_tuple()),
            "name": r.name,
            "item_info": None,
        }
        if r.item_info is not None:
            spec["item_info"] = self.frame(name + "__item_info", r.item_info)
        return spec


def _read_array(ds: xr.Dataset, name: str) -> np.ndarray:
    if name not in ds:
        raise ModelFileError(f"the model file lacks the stored variable {name!r}")
    return np.asarray(ds[name].values)


def _read_ids(ds: xr.Dataset, spec: dict[str, Any]) -> pd.Index:
    kinds = _read_array(ds, spec["kinds"]) if spec.get("kinds") else None
    return decode_ids(_read_array(ds, spec["var"]), spec["tag"], kinds)


def _read_frame(ds: xr.Dataset, spec: dict[str, Any]) -> pd.DataFrame:
    data = {}
    for col, var, dtype in spec["columns"]:
        values = _read_array(ds, var)
        try:
            data[col] = pd.Series(values).astype(dtype).to_numpy() if dtype != "object" else values
        except (TypeError, ValueError):
            data[col] = values
    return pd.DataFrame(data, index=_read_ids(ds, spec["index"]))


def _read_ratings(ds: xr.Dataset, name: str, spec: dict[str, Any]) -> Ratings:
    scale = None if spec["scale"] is None else RatingScale(*spec["scale"])
    info = None if spec["item_info"] is None else _read_frame(ds, spec["item_info"])
    return Ratings(
        users=_read_array(ds, name + "__users"),
        items=_read_array(ds, name + "__items"),
        values=_read_array(ds, name + "__values"),
        user_ids=_read_ids(ds, spec["user_ids"]),
        item_ids=_read_ids(ds, spec["item_ids"]),
        scale=scale,
        item_info=info,
        name=spec["name"],
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.random.Generator):
        return None
    if isinstance(value, RatingScale):
        return {"__dataclass__": _class_path(value), "fields": list(value.to_tuple())}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": _class_path(value),
                "fields": {f.name: _jsonable(getattr(value, f.name))
                           for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(type(value).__name__)


def _from_json(value: Any) -> Any:
    """Inverse of :func:`_jsonable` for tagged dataclasses (nested in dicts and lists)."""
    if isinstance(value, dict):
        if "__dataclass__" in value:
            cls = _import_class(value["__dataclass__"])
            fields = _from_json(value["fields"])
            return cls(*fields) if isinstance(fields, list) else cls(**fields)
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _fit_state(fit: Any) -> tuple[_StateWriter, dict[str, Any]]:
    w = _StateWriter()
    params = fit.get_params() if hasattr(fit, "get_params") else {}
    try:
        params_json = json.dumps(_jsonable(params))
    except TypeError as err:
        raise BayesMFError(f"cannot save a constructor argument of type {err}") from None
    scalars: dict[str, Any] = {}
    layout: dict[str, Any] = {"arrays": [], "frames": {}, "ratings": {}, "caches": [],
                              "skipped": []}
    for name, value in vars(fit).items():
        if name in params or name == "idata_":
            continue
        if name.startswith("_"):
            if isinstance(value, dict):
                layout["caches"].append(name)
            continue
        if not name.endswith("_"):
            continue
        if isinstance(value, Ratings):
            layout["ratings"][name] = w.ratings(f"ratings__{name}", value)
        elif isinstance(value, pd.DataFrame):
            layout["frames"][name] = w.frame(f"frame__{name}", value)
        elif isinstance(value, np.ndarray):
            w.array(f"array__{name}", value)
            layout["arrays"].append(name)
        else:
            try:
                scalars[name] = _jsonable(value)
            except TypeError:
                layout["skipped"].append(name)
    if layout["skipped"]:
        warnings.warn(
            f"save: fitted attribute(s) {layout['skipped']} of unsupported type were not saved",
            UserWarning,
            stacklevel=3,
        )
    attrs = {
        MARKER: 1,
        "format_version": FORMAT_VERSION,
        "model_class": _class_path(fit),
        "bayesmf_version": _package_version(),
        "params_json": params_json,
        "scalars_json": json.dumps(scalars),
        "layout_json": json.dumps(layout),
        "has_idata": int(getattr(fit, "idata_", None) is not None),
    }
    return w, attrs


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("bayesmf")
    except Exception:  # pragma: no cover
        return "unknown"


def _sanitise_group(ds: xr.Dataset) -> xr.Dataset:
    """Make object-dtype coords (mixed raw ids) writable: store them as strings."""
    new = {}
    for name, coord in ds.coords.items():
        if coord.dtype.kind == "O":
            new[name] = coord.values.astype(str).astype(object)
    return ds.assign_coords(new) if new else ds


# ============================================================================ public API
def save(fit: Any, path: str | os.PathLike) -> Path:
    """Save a fitted estimator to a netCDF file.

    Parameters
    ----------
    fit : FitBase
        A fitted estimator (point fit, baseline or Bayesian fit).
    path : str or path-like
        Target file (conventionally ``*.nc``); written atomically (a temporary file in the same
        directory is renamed over it), so an interrupted save never leaves a half-written file
        under ``path``.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    NotFittedError
        If the estimator is not fitted.
    BayesMFError
        If a constructor argument or a raw id cannot be stored.
    """
    from bayesmf._validation import check_fitted

    check_fitted(fit, getattr(fit, "_fitted_attr", "ratings_"))
    path = Path(path)
    writer, attrs = _fit_state(fit)
    state = xr.Dataset({k: v for k, v in writer.vars.items()}, attrs=attrs)
    fd, tmp = tempfile.mkstemp(suffix=".nc.tmp", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    try:
        idata = getattr(fit, "idata_", None)
        mode = "w"
        if idata is not None:
            groups = {g: _sanitise_group(getattr(idata, g)) for g in idata.groups()}
            clean = az.InferenceData(attrs=dict(idata.attrs), **groups)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clean.to_netcdf(tmp, engine=_ENGINE)
            mode = "a"
        state.to_netcdf(tmp, mode=mode, group=STATE_GROUP, engine=_ENGINE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Read a model file's ``bayesmf`` attributes (class, versions, arguments) without loading.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated, corrupt or not a bayesmf model file.
    """
    return dict(_open_state(path).attrs)


def _open_state(path: str | os.PathLike) -> xr.Dataset:
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    try:
        with xr.open_dataset(path, group=STATE_GROUP, engine=_ENGINE) as ds:
            state = ds.load()
    except Exception as err:  # h5py/h5netcdf raise OSError, KeyError, ValueError ...
        raise ModelFileError(
            f"{str(path)!r} is not a readable bayesmf model file (truncated, corrupt, or not "
            f"written by bayesmf.save): {type(err).__name__}: {err}"
        ) from None
    if state.attrs.get(MARKER) != 1:
        raise ModelFileError(f"{str(path)!r} is not a bayesmf model file (no marker attribute)")
    return state


def _import_class(spec: str) -> type:
    module, _, qual = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ModelFileError(f"the model class {spec!r} of this file cannot be imported: {err}") \
            from None
    return obj


def _load_idata(path: Path) -> az.InferenceData:
    import h5netcdf

    try:
        with h5netcdf.File(path, mode="r") as fh:
            names = [g for g in fh.groups if g != STATE_GROUP]
        groups = {}
        for g in names:
            with xr.open_dataset(path, group=g, engine=_ENGINE) as ds:
                groups[g] = ds.load()
        with xr.open_dataset(path, engine=_ENGINE) as ds:
            attrs = dict(ds.attrs)
    except Exception as err:
        raise ModelFileError(f"cannot read the posterior groups of {str(path)!r}: {err}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.InferenceData(attrs=attrs, **groups)


def load(path: str | os.PathLike, model_class: type | None = None) -> Any:
    """Load a fit saved by :func:`save`.

    Parameters
    ----------
    path : str or path-like
        The model file.
    model_class : type, optional
        The estimator class the caller expects; a file written by another class is refused.

    Returns
    -------
    FitBase
        A fitted estimator of the stored class, with the stored constructor arguments, fitted
        attributes, training data and (Bayesian fits) ``idata_``; it predicts exactly what the
        saved fit predicted.

    Raises
    ------
    ModelFileError
        Missing, truncated or foreign file; a newer ``format_version``; a different class than
        ``model_class``; an unimportable class.
    """
    path = Path(path)
    state = _open_state(path)
    attrs = state.attrs
    version = int(attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} was written with model-file format version {version}, newer than "
            f"this bayesmf supports ({FORMAT_VERSION}); upgrade bayesmf to read it"
        )
    if version < 1:
        raise ModelFileError(f"{str(path)!r} has an invalid format version {version}")
    spec = str(attrs["model_class"])
    if model_class is not None:
        want = f"{model_class.__module__}:{model_class.__qualname__}"
        if want != spec:
            raise ModelFileError(
                f"{str(path)!r} holds a {spec.split(':')[-1]} fit ({spec}), not a "
                f"{model_class.__qualname__}"
            )
    cls = _import_class(spec)
    try:
        params = _from_json(json.loads(attrs["params_json"]))
        scalars = _from_json(json.loads(attrs["scalars_json"]))
        layout = json.loads(attrs["layout_json"])
        fit = cls(**params)
    except Exception as err:
        raise ModelFileError(f"cannot rebuild the {spec} estimator from {str(path)!r}: {err}") \
            from None
    for name, value in scalars.items():
        setattr(fit, name, value)
    for name in layout["arrays"]:
        setattr(fit, name, _read_array(state, f"array__{name}"))
    for name, fspec in layout["frames"].items():
        setattr(fit, name, _read_frame(state, fspec).reset_index(drop=True)
                if name == "history_" else _read_frame(state, fspec))
    for name, rspec in layout["ratings"].items():
        setattr(fit, name, _read_ratings(state, f"ratings__{name}", rspec))
    for name in layout["caches"]:
        setattr(fit, name, {})
    if int(attrs.get("has_idata", 0)):
        idata = _load_idata(path)
        r = getattr(fit, "ratings_", None)
        if r is not None and hasattr(idata, "posterior"):
            _restore_coords(idata, r)
        fit.idata_ = idata
    return fit


def _restore_coords(idata: az.InferenceData, r: Ratings) -> None:
    """Put the raw ids (which may have been stringified for netCDF) back as coords."""
    for g in idata.groups():
        ds = getattr(idata, g)
        new = {}
        if "user" in ds.coords and len(ds.coords["user"]) == r.n_users:
            new["user"] = np.asarray(r.user_ids, dtype=object) if r.user_ids.dtype.kind == "O" \
                else np.asarray(r.user_ids)
        if "item" in ds.coords and len(ds.coords["item"]) == r.n_items:
            new["item"] = np.asarray(r.item_ids, dtype=object) if r.item_ids.dtype.kind == "O" \
                else np.asarray(r.item_ids)
        if new:
            setattr(idata, g, ds.assign_coords(new))
