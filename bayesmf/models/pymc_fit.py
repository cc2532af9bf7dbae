"""Full posterior of the PMF model in PyMC: :class:`NUTSPMF` (NUTS) and :class:`ADVIPMF` (ADVI).

Both fit the model of :mod:`bayesmf.models.pymc_model` (by default with the one-pass numba
likelihood) and return ``idata_`` in the layout of ``CONVENTIONS.md``, the same as
:class:`~bayesmf.models.gibbs.GibbsPMF`: ``posterior`` with ``U, V, mu, user_bias, item_bias,
sigma, sigma_u, sigma_v, sigma_user_bias, sigma_item_bias`` (non-centred auxiliaries and raw
precisions are not stored), ``sample_stats`` with ``loglik`` per draw (plus PyMC's NUTS
statistics), ``observed_data`` ``R``, ``constant_data`` ``user_idx``/``item_idx`` and the settings
in ``attrs``.

Memory: PyMC's own trace would keep every auxiliary in float64 (3.3 GB for ml-latest-small at
rank 10, 4 x 1000 draws). Here a small trace backend keeps only the shared variables, casts the
per-user/per-item draws to ``store`` (float32 by default), thins by ``thin`` (``"auto"``: the
smallest factor that fits ``memory_budget_bytes``, see :mod:`bayesmf.memory`) and computes the
per-draw log-likelihood on the fly. What a fit will store is logged before it starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from typing import Any, ClassVar

import numpy as np
from pymc.backends.base import BaseTrace
from pymc.backends.ndarray import NDArray

from bayesmf._validation import (
    as_rng,
    check_bool,
    check_choice,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_ratings,
)
from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError
from bayesmf.kernels.pmf_logp import loglik
from bayesmf.memory import (
    DEFAULT_BUDGET_BYTES,
    auto_thin,
    check_memory_budget,
    estimate_draws_bytes,
    format_bytes,
    kept_draws,
)
from bayesmf.models.base import FitBase
from bayesmf.models.idata import build_inference_data
from bayesmf.models.pymc_model import (
    LIKELIHOODS,
    LINKS,
    PARAMETRIZATIONS,
    SHARED_NAMES,
    PMFPriors,
    build_pmf_model,
    working_values,
)

_log = logging.getLogger(__name__)

STORES = ("float32", "float64")
NUTS_SAMPLERS = ("pymc", "nutpie")
LARGE = ("U", "V", "user_bias", "item_bias")
#: PyMC NUTS statistics kept per stored draw, renamed as ArviZ / pm.sample name them
NUTS_STATS = {
    "diverging": "diverging",
    "depth": "tree_depth",
    "step_size": "step_size",
    "energy": "energy",
    "energy_error": "energy_error",
    "mean_tree_accept": "acceptance_rate",
    "model_logp": "lp",
    "n_steps": "n_steps",
    "reached_max_treedepth": "reached_max_treedepth",
}


@contextlib.contextmanager
def _quiet_pymc(quiet: bool):
    """Silence PyMC's INFO log lines (sampler set-up, timing) when ``progress=False``."""
    logger = logging.getLogger("pymc")
    old = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)


def _seed(random_state: Any) -> int:
    return int(as_rng(random_state).integers(2**31 - 1))


# ---------------------------------------------------------------------------------------------
# trace backend: selected variables, float32, thinned, loglik per draw
# ---------------------------------------------------------------------------------------------
class _KeepTrace(NDArray):
    """A PyMC trace that stores only ``vars``, casts big arrays, thins, and skips warm-up.

    ``pm.sample`` copies this template once per chain (a shallow copy), calls :meth:`setup`, then
    :meth:`record` for every iteration. Each chain's copy registers itself in the shared
    ``registry`` list, from which the fit collects the draws.
    """

    def __init__(
        self,
        model,
        vars,
        *,
        thin: int,
        store: np.dtype,
        data: tuple[np.ndarray, np.ndarray, np.ndarray, bool],
        registry: list,
        expected_draws: int,
    ) -> None:
        super().__init__(model=model, vars=vars)
        self.thin = int(thin)
        self.store = np.dtype(store)
        self.data = data
        self.registry = registry
        self.expected_draws = int(expected_draws)

    def setup(self, draws, chain, sampler_vars=None) -> None:
        BaseTrace.setup(self, draws, chain, sampler_vars)
        self.chain = chain
        n_keep = kept_draws(self.expected_draws, self.thin)
        self.samples = {
            name: np.empty(
                (n_keep, *self.var_shapes[name]),
                dtype=self.store if name in LARGE else np.float64,
            )
            for name in self.varnames
        }
        self.loglik = np.empty(n_keep)
        self.kept_stats: dict[str, np.ndarray] = {}
        self.all_diverging = np.zeros(self.expected_draws, dtype=bool)
        self.all_depth = np.zeros(self.expected_draws, dtype=np.int64)
        self.n_recorded = 0
        self.n_post = 0
        self.n_kept = 0
        self.registry.append(self)

    def record(self, point, sampler_stats=None, *, in_warmup: bool = False) -> None:
        self.n_recorded += 1
        if in_warmup or self.n_post >= self.expected_draws:
            return
        k = self.n_post
        self.n_post += 1
        st = sampler_stats[0] if sampler_stats else {}
        if "diverging" in st:
            self.all_diverging[k] = bool(st["diverging"])
        if "depth" in st:
            self.all_depth[k] = int(st["depth"])
        if (k + 1) % self.thin:
            return
        j = self.n_kept
        values = dict(zip(self.varnames, self.fn(*point.values()), strict=True))
        for name, val in values.items():
            self.samples[name][j] = val
        for key, new in NUTS_STATS.items():
            if key in st:
                if new not in self.kept_stats:
                    self.kept_stats[new] = np.zeros(
                        len(self.loglik), dtype=np.asarray(st[key]).dtype
                    )
                self.kept_stats[new][j] = st[key]
        self.loglik[j] = _loglik_of(values, self.data)
        self.n_kept += 1

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return getattr(self, "n_recorded", 0)

    def _slice(self, idx):
        return self


def _loglik_of(values: dict[str, np.ndarray], data) -> float:
    users, items, vals, logistic = data
    ub = values.get("user_bias")
    ib = values.get("item_bias")
    U = np.asarray(values["U"], dtype=np.float64)
    V = np.asarray(values["V"], dtype=np.float64)
    return float(
        loglik(
            users,
            items,
            vals,
            U,
            V,
            float(values["mu"]),
            np.zeros(U.shape[0]) if ub is None else np.asarray(ub, dtype=np.float64),
            np.zeros(V.shape[0]) if ib is None else np.asarray(ib, dtype=np.float64),
            float(values["sigma"]),
            logistic,
        )
    )


def _trace_vars(model) -> list:
    """The model's value-space expressions of the shared posterior names, in a fixed order."""
    by_name = {v.name: v for v in model.unobserved_value_vars}
    return [by_name[name] for name in SHARED_NAMES if name in by_name]


def _collect(registry: list[_KeepTrace]) -> tuple[dict, dict, int, int]:
    """Stack the chains' kept draws (trimmed to the shortest chain after an interrupt)."""
    traces = sorted(registry, key=lambda t: t.chain)
    n = min(t.n_kept for t in traces)
    if n == 0:
        raise BayesMFError("sampling stopped before the first kept draw; nothing to return")
    post = {}
    for name in traces[0].varnames:
        first = traces[0].samples[name]
        post[name] = np.empty((len(traces), n, *first.shape[1:]), dtype=first.dtype)
        for c, t in enumerate(traces):
            post[name][c] = t.samples[name][:n]
            t.samples[name] = None  # free each chain's copy as we go: peak ~ budget + one chain
    stats = {"loglik": np.stack([t.loglik[:n] for t in traces])}
    for key in traces[0].kept_stats:
        stats[key] = np.stack([t.kept_stats[key][:n] for t in traces])
    n_div = int(sum(t.all_diverging[: t.n_post].sum() for t in traces))
    n_post = int(sum(t.n_post for t in traces))
    return post, stats, n_div, n_post


# ---------------------------------------------------------------------------------------------
# shared estimator behaviour
# ---------------------------------------------------------------------------------------------
class _PyMCFit(FitBase):
    is_bayesian: ClassVar[bool] = True

    def _common_checks(self, ratings: object) -> Ratings:
        ratings = check_ratings(ratings)
        check_positive_int(self.rank, "rank")
        if not isinstance(self.biases, bool):
            raise BayesMFError(f"biases must be True or False, got {self.biases!r}")
        check_choice(self.link, "link", LINKS)
        check_choice(self.store, "store", STORES)
        check_positive_int(self.draws, "draws")
        if self.memory_budget_bytes is not None:
            check_positive_int(self.memory_budget_bytes, "memory_budget_bytes")
        if self.priors is not None and not isinstance(self.priors, PMFPriors):
            raise BayesMFError(f"priors must be a PMFPriors, got {type(self.priors).__name__}")
        working_values(ratings, self.link)  # logistic link without a scale -> DataError
        as_rng(self.random_state)
        return ratings

    def _plan_storage(self, ratings: Ratings, chains: int, draws: int, thin: Any) -> int:
        dtype = np.dtype(self.store)
        args = (ratings.n_users, ratings.n_items, int(self.rank))
        if isinstance(thin, str) and thin == "auto":
            budget = self.memory_budget_bytes
            th = 1 if budget is None else auto_thin(*args, chains, draws, budget, dtype, self.biases)
        else:
            th = check_positive_int(thin, "thin")
            if th > draws:
                raise BayesMFError(f"thin={th} keeps no draw out of draws={draws}")
        nbytes = estimate_draws_bytes(*args, chains, draws, th, dtype, self.biases)
        check_memory_budget(nbytes, self.memory_budget_bytes)
        msg = (
            f"{type(self).__name__}: storing {chains} x {kept_draws(draws, th)} draws "
            f"(thin={th}, {self.store}) of {ratings.n_users} users + {ratings.n_items} items at "
            f"rank {self.rank}: about {format_bytes(nbytes)}"
        )
        _log.info(msg)
        if self.progress:
            print(msg)
        return th

    def _finish(self, ratings, post, stats, method, extra_attrs) -> None:
        self.idata_ = build_inference_data(
            post,
            ratings,
            method=method,
            params=self.get_params(),
            rank=int(self.rank),
            biases=self.biases,
            link=self.link,
            sample_stats=stats,
            extra_attrs=extra_attrs,
            dtype=np.dtype(self.store),
        )
        pm_ = self.idata_.posterior
        mean = {name: pm_[name].values.mean(axis=(0, 1), dtype=np.float64) for name in pm_}
        self.U_ = mean["U"]
        self.V_ = mean["V"]
        self.mu_ = float(mean["mu"])
        self.user_bias_ = mean.get("user_bias", np.zeros(ratings.n_users))
        self.item_bias_ = mean.get("item_bias", np.zeros(ratings.n_items))
        self.sigma_ = float(mean["sigma"])
        self.link_ = self.link
        if self.link == "logistic":
            self.sigma_scale_ = "unit"
        self.ratings_ = ratings

    # ------------------------------------------------------------------ outputs
    def to_inference_data(self):
        """The posterior as :class:`arviz.InferenceData` (``idata_``)."""
        self._check_fitted()
        return self.idata_

    def predict_draws(self, user_idx: Any, item_idx: Any) -> np.ndarray:
        """Per-draw predicted means (link applied), shape ``(chain, draw, n_pairs)``.

        ``-1`` marks an unknown user or item: it contributes no factors and no bias.
        """
        self._check_fitted()
        u = np.asarray(user_idx)
        i = np.asarray(item_idx)
        if u.shape != i.shape or u.ndim != 1:
            raise BayesMFError("user_idx and item_idx must be 1-d arrays of the same length")
        for arr, name, n in (
            (u, "user_idx", self.ratings_.n_users),
            (i, "item_idx", self.ratings_.n_items),
        ):
            if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < -1 or arr.max() >= n):
                raise BayesMFError(f"{name} must hold integer indices in -1..{n - 1}")
        post = self.idata_.posterior
        ku, ki = u >= 0, i >= 0
        us, it = np.where(ku, u, 0), np.where(ki, i, 0)
        U, V = post["U"].values, post["V"].values
        out = np.einsum("cdpk,cdpk->cdp", U[:, :, us], V[:, :, it], dtype=np.float64)
        out *= ku & ki
        out += post["mu"].values[:, :, None]
        if "user_bias" in post:
            out += post["user_bias"].values[:, :, us] * ku
        if "item_bias" in post:
            out += post["item_bias"].values[:, :, it] * ki
        if self.link_ == "logistic":
            sc = self.ratings_.scale
            out = sc.min + sc.span / (1.0 + np.exp(-out))
        return out

    def predict_mean(self, user_idx: Any, item_idx: Any) -> np.ndarray:
        """Posterior mean of the predicted mean rating (link applied, not clipped)."""
        return self.predict_draws(np.ravel(user_idx), np.ravel(item_idx)).mean(axis=(0, 1)).reshape(
            np.shape(user_idx)
        )


# ---------------------------------------------------------------------------------------------
# NUTS
# ---------------------------------------------------------------------------------------------
class NUTSPMF(_PyMCFit):
    """Full posterior of hierarchical PMF by NUTS in PyMC (or nutpie).

    Parameters
    ----------
    rank : int
        Number of factors.
    biases : bool
        User and item biases with learned scales.
    link : {"identity", "logistic"}
        Logistic needs a declared rating scale (see :mod:`bayesmf.models.pymc_model`).
    chains, draws, tune : int
        Chains, kept-before-thinning draws per chain, and warm-up iterations per chain (> 0).
    target_accept : float
        NUTS target acceptance (0 < x < 1).
    nuts_sampler : {"pymc", "nutpie"}
        PyMC's NUTS (default) or nutpie (numba backend; the fast likelihood has a native numba
        implementation). nutpie keeps every draw in float64 before conversion, so it is checked
        against the budget unthinned in float64.
    likelihood : {"fast", "naive"}
        One-pass numba log-likelihood Op (default) or the textbook PyMC graph.
    parametrization : {"noncentered", "centered"}
        See :func:`~bayesmf.models.pymc_model.build_pmf_model`.
    store : {"float32", "float64"}
        Storage type of ``U``, ``V`` and the biases.
    memory_budget_bytes : int or None
        Budget for the stored draws (default 1 GiB); ``None`` disables the check.
    thin : int or "auto"
        Keep every ``thin``-th draw; ``"auto"`` picks the smallest factor within the budget.
    cores : int or None
        Parallel chains (default: ``min(chains, os.cpu_count())``).
    priors : PMFPriors or None
        Prior constants.
    random_state : int, Generator or None
        Seed; the same seed gives the same draws.
    progress : bool
        Progress bar and the storage message.
    check_convergence : bool
        After sampling two or more chains, run :func:`bayesmf.diagnostics.diagnose` and emit a
        ``RuntimeWarning`` naming the worst quantity when any identifiable quantity (or a
        sampler check: divergences, BFMI) is not ``ok``; the table is kept as
        ``diagnostics_``. PyMC's own check, on the rotation-ambiguous raw factors, is off.

    Attributes
    ----------
    idata_ : arviz.InferenceData
        Posterior in the ``CONVENTIONS.md`` layout; ``sample_stats`` has ``loglik``,
        ``diverging``, ``tree_depth``, ``step_size``, ``energy``, ``acceptance_rate``, ``lp``, ...
    diagnostics_ : pandas.DataFrame or None
        The :func:`~bayesmf.diagnostics.diagnose` table (None for one chain or
        ``check_convergence=False``).
    summary_ : dict
        ``n_divergent`` (over all post-warm-up draws, thinned or not), ``divergent_fraction``,
        ``mean_tree_depth``, ``max_tree_depth``, ``thin``, ``sampling_seconds``.
    U_, V_, mu_, user_bias_, item_bias_, sigma_ : posterior means.
    """

    method: ClassVar[str] = "nuts"

    def __init__(
        self,
        rank: int = 10,
        biases: bool = True,
        link: str = "identity",
        chains: int = 4,
        draws: int = 1000,
        tune: int = 1000,
        target_accept: float = 0.9,
        nuts_sampler: str = "pymc",
        likelihood: str = "fast",
        parametrization: str = "noncentered",
        store: str = "float32",
        memory_budget_bytes: int | None = DEFAULT_BUDGET_BYTES,
        thin: int | str = "auto",
        cores: int | None = None,
        priors: PMFPriors | None = None,
        random_state: int | np.random.Generator | None = None,
        progress: bool = True,
        check_convergence: bool = True,
    ) -> None:
        self.rank = rank
        self.biases = biases
        self.link = link
        self.chains = chains
        self.draws = draws
        self.tune = tune
        self.target_accept = target_accept
        self.nuts_sampler = nuts_sampler
        self.likelihood = likelihood
        self.parametrization = parametrization
        self.store = store
        self.memory_budget_bytes = memory_budget_bytes
        self.thin = thin
        self.cores = cores
        self.priors = priors
        self.random_state = random_state
        self.progress = progress
        self.check_convergence = check_convergence

    def fit(self, ratings: Ratings) -> NUTSPMF:
        """Sample the posterior; returns ``self``.

        Raises
        ------
        BayesMFError
            Bad settings (``draws``, ``chains`` or ``tune`` <= 0, ...).
        DataError
            Bad ratings, or the logistic link without a declared scale.
        MemoryBudgetError
            The kept draws would not fit in ``memory_budget_bytes`` (before sampling starts).
        """
        ratings = self._common_checks(ratings)
        chains = check_positive_int(self.chains, "chains")
        draws = check_positive_int(self.draws, "draws")
        tune = check_positive_int(self.tune, "tune")
        check_probability(self.target_accept, "target_accept")
        sampler = check_choice(self.nuts_sampler, "nuts_sampler", NUTS_SAMPLERS)
        check_choice(self.likelihood, "likelihood", LIKELIHOODS)
        check_choice(self.parametrization, "parametrization", PARAMETRIZATIONS)
        if self.cores is not None:
            check_positive_int(self.cores, "cores")
        check_bool(self.check_convergence, "check_convergence")
        if sampler == "nutpie":
            # nutpie holds every draw of the stored variables in float64 before we convert
            nbytes = estimate_draws_bytes(
                ratings.n_users, ratings.n_items, int(self.rank), chains, draws, 1, np.float64,
                self.biases,
            )
            check_memory_budget(nbytes, self.memory_budget_bytes, "nutpie's float64 draws")
            thin = 1
        else:
            thin = self._plan_storage(ratings, chains, draws, self.thin)

        model = build_pmf_model(
            ratings,
            int(self.rank),
            biases=self.biases,
            link=self.link,
            parametrization=self.parametrization,
            likelihood=self.likelihood,
            priors=self.priors,
        )
        seed = _seed(self.random_state)
        data = (ratings.users, ratings.items, working_values(ratings, self.link),
                self.link == "logistic")
        t0 = time.perf_counter()
        if sampler == "pymc":
            post, stats, n_div, n_post, depth = self._sample_pymc(model, chains, draws, tune, thin,
                                                                  seed, data)
        else:
            post, stats, n_div, n_post, depth = self._sample_nutpie(model, chains, draws, tune,
                                                                    seed, data)
        seconds = time.perf_counter() - t0
        self.summary_ = {
            "n_divergent": n_div,
            "divergent_fraction": n_div / max(1, n_post),
            "mean_tree_depth": float(depth.mean()) if depth.size else float("nan"),
            "max_tree_depth": int(depth.max()) if depth.size else 0,
            "thin": thin,
            "sampling_seconds": seconds,
        }
        if n_div:
            warnings.warn(
                f"NUTSPMF: {n_div} divergent transitions out of {n_post} post-warm-up draws "
                f"({100 * n_div / max(1, n_post):.1f}%); consider a higher target_accept or the "
                "other parametrization",
                RuntimeWarning,
                stacklevel=2,
            )
        self._finish(
            ratings,
            post,
            stats,
            "nuts",
            {
                "sampler": sampler,
                "likelihood": self.likelihood,
                "parametrization": self.parametrization,
                "chains": chains,
                "draws": draws,
                "tune": tune,
                "thin": thin,
                "n_divergent": n_div,
                "mean_tree_depth": self.summary_["mean_tree_depth"],
                "sampling_seconds": seconds,
            },
        )
        self.fit_time_ = time.perf_counter() - t0
        self._check_convergence()
        return self

    def _sample_pymc(self, model, chains, draws, tune, thin, seed, data):
        import pymc as pm

        registry: list[_KeepTrace] = []
        with model:
            template = _KeepTrace(
                model,
                _trace_vars(model),
                thin=thin,
                store=np.dtype(self.store),
                data=data,
                registry=registry,
                expected_draws=draws,
            )
            cores = self.cores if self.cores is not None else min(chains, os.cpu_count() or 1)
            with warnings.catch_warnings(), _quiet_pymc(not self.progress):
                warnings.filterwarnings("ignore", message=".*[Pp]otential.*", category=UserWarning)
                warnings.filterwarnings("ignore", message=".*Tuning samples.*", category=UserWarning)
                pm.sample(
                    draws=draws,
                    tune=tune,
                    chains=chains,
                    cores=cores,
                    target_accept=float(self.target_accept),
                    random_seed=seed,
                    progressbar=bool(self.progress),
                    trace=template,
                    return_inferencedata=False,
                    discard_tuned_samples=False,
                    compute_convergence_checks=False,
                )
        if not registry:
            raise BayesMFError("PyMC returned no chains")
        post, stats, n_div, n_post = _collect(registry)
        depth = np.concatenate([t.all_depth[: t.n_post] for t in registry])
        return post, stats, n_div, n_post, depth

    def _sample_nutpie(self, model, chains, draws, tune, seed, data):
        try:
            import nutpie
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise BayesMFError(
                "nuts_sampler='nutpie' needs the nutpie package (pip install nutpie)"
            ) from exc
        names = [v.name for v in _trace_vars(model)]
        compiled = nutpie.compile_pymc_model(model, backend="numba", var_names=names)
        idata = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=self.cores if self.cores is not None else min(chains, os.cpu_count() or 1),
            seed=seed,
            progress_bar=bool(self.progress),
            save_warmup=False,
            target_accept=float(self.target_accept),
        )
        post = {}
        for name in names:
            arr = idata.posterior[name].values
            post[name] = arr.astype(self.store) if name in LARGE else arr.astype(np.float64)
        c, d = post["mu"].shape
        ll = np.empty((c, d))
        for ci in range(c):
            for di in range(d):
                ll[ci, di] = _loglik_of({n: post[n][ci, di] for n in names}, data)
        ss = idata.sample_stats
        stats = {"loglik": ll}
        rename = {"diverging": "diverging", "depth": "tree_depth", "step_size": "step_size",
                  "energy": "energy", "mean_tree_accept": "acceptance_rate", "logp": "lp",
                  "n_steps": "n_steps", "maxdepth_reached": "reached_max_treedepth",
                  "energy_error": "energy_error"}
        for key, new in rename.items():
            if key in ss:
                stats[new] = ss[key].values
        div = stats.get("diverging", np.zeros((c, d), dtype=bool))
        depth = np.asarray(stats.get("tree_depth", np.zeros(0))).ravel()
        return post, stats, int(np.sum(div)), c * d, depth


# ---------------------------------------------------------------------------------------------
# ADVI
# ---------------------------------------------------------------------------------------------
class ADVIPMF(_PyMCFit):
    """Mean-field ADVI approximation of the PMF posterior in PyMC.

    Parameters
    ----------
    rank, biases, link, parametrization, likelihood, store, memory_budget_bytes, priors,
    random_state, progress
        As :class:`NUTSPMF`.
    n_steps : int
        Optimisation steps.
    minibatch_size : int or None
        ``None``: full-batch ADVI (fast likelihood). An int: minibatch ADVI with
        ``pm.Minibatch`` of that many ratings per step (naive likelihood with ``total_size``
        scaling), for data too large for a full pass per step.
    draws : int
        Draws from the fitted approximation, stored with ``chain`` = 1.
    learning_rate : float
        Adam step size.

    Attributes
    ----------
    idata_ : arviz.InferenceData
        Draws of the approximation in the ``CONVENTIONS.md`` layout, plus a group ``elbo``
        (variable ``elbo`` over dim ``step``) with the ELBO trace.
    elbo_ : ndarray (n_steps,)
        ELBO per optimisation step (minus PyMC's loss; with minibatches an unbiased estimate).
    U_, V_, mu_, user_bias_, item_bias_, sigma_ : means of the approximation draws.
    """

    method: ClassVar[str] = "advi"

    def __init__(
        self,
        rank: int = 10,
        biases: bool = True,
        link: str = "identity",
        n_steps: int = 20000,
        minibatch_size: int | None = None,
        draws: int = 1000,
        learning_rate: float = 0.01,
        likelihood: str = "fast",
        parametrization: str = "noncentered",
        store: str = "float32",
        memory_budget_bytes: int | None = DEFAULT_BUDGET_BYTES,
        priors: PMFPriors | None = None,
        random_state: int | np.random.Generator | None = None,
        progress: bool = True,
    ) -> None:
        self.rank = rank
        self.biases = biases
        self.link = link
        self.n_steps = n_steps
        self.minibatch_size = minibatch_size
        self.draws = draws
        self.learning_rate = learning_rate
        self.likelihood = likelihood
        self.parametrization = parametrization
        self.store = store
        self.memory_budget_bytes = memory_budget_bytes
        self.priors = priors
        self.random_state = random_state
        self.progress = progress

    def fit(self, ratings: Ratings) -> ADVIPMF:
        """Fit the approximation and draw from it; returns ``self``."""
        import pymc as pm

        ratings = self._common_checks(ratings)
        n_steps = check_positive_int(self.n_steps, "n_steps")
        draws = check_positive_int(self.draws, "draws")
        lr = check_positive_float(self.learning_rate, "learning_rate")
        check_choice(self.likelihood, "likelihood", LIKELIHOODS)
        check_choice(self.parametrization, "parametrization", PARAMETRIZATIONS)
        mb = None
        if self.minibatch_size is not None:
            mb = check_positive_int(self.minibatch_size, "minibatch_size")
            if mb >= ratings.nnz:
                mb = None  # a minibatch as large as the data is full-batch ADVI
        self._plan_storage(ratings, 1, draws, 1)

        model = build_pmf_model(
            ratings,
            int(self.rank),
            biases=self.biases,
            link=self.link,
            parametrization=self.parametrization,
            likelihood="naive" if mb else self.likelihood,
            priors=self.priors,
            minibatch_size=mb,
        )
        rng = as_rng(self.random_state)
        fit_seed, draw_seed = (int(x) for x in rng.integers(2**31 - 1, size=2))
        data = (ratings.users, ratings.items, working_values(ratings, self.link),
                self.link == "logistic")
        t0 = time.perf_counter()
        with model, _quiet_pymc(not self.progress):
            approx = pm.fit(
                n=n_steps,
                method="advi",
                obj_optimizer=pm.adam(learning_rate=lr),
                random_seed=fit_seed,
                progressbar=bool(self.progress),
            )
        fit_seconds = time.perf_counter() - t0
        self.elbo_ = -np.asarray(approx.hist, dtype=np.float64)
        if not np.all(np.isfinite(self.elbo_[-max(1, len(self.elbo_) // 10):])):
            warnings.warn("ADVIPMF: the ELBO is not finite at the end of the optimisation; "
                          "lower learning_rate", RuntimeWarning, stacklevel=2)

        registry: list[_KeepTrace] = []
        trace = _KeepTrace(
            model,
            _trace_vars(model),
            thin=1,
            store=np.dtype(self.store),
            data=data,
            registry=registry,
            expected_draws=draws,
        )
        trace.setup(draws, 0, None)
        sample = approx.sample_dict_fn
        value_names = [v.name for v in model.value_vars]
        chunk = max(1, min(draws, 50))
        done = 0
        while done < draws:
            n = min(chunk, draws - done)
            got = sample(n, random_seed=draw_seed + done)
            for j in range(n):
                point = {name: np.asarray(got[name][j]) for name in value_names}
                trace.record(point, None, in_warmup=False)
            done += n
        post, stats, _, _ = _collect(registry)
        self._finish(
            ratings,
            post,
            stats,
            "advi",
            {
                "likelihood": "naive" if mb else self.likelihood,
                "parametrization": self.parametrization,
                "n_steps": n_steps,
                "minibatch_size": 0 if mb is None else mb,
                "learning_rate": lr,
                "final_elbo": float(np.mean(self.elbo_[-max(1, n_steps // 100):])),
                "fit_seconds": fit_seconds,
                "chains": 1,
                "draws": draws,
            },
        )
        import xarray as xr

        self.idata_.add_groups(
            {"elbo": xr.Dataset({"elbo": ("step", self.elbo_)}, coords={"step": np.arange(n_steps)})}
        )
        self.fit_time_ = time.perf_counter() - t0
        return self


# ---------------------------------------------------------------------------------------------
# simulation-based calibration (engine: bayesmf.sbc.run_sbc)
# ---------------------------------------------------------------------------------------------
def priors_from_gibbs(gibbs_priors: Any) -> PMFPriors:
    """The :class:`PMFPriors` of a :class:`~bayesmf.models.gibbs.GibbsPriors` (same field names)."""
    return PMFPriors(
        factor_shape=gibbs_priors.factor_shape,
        factor_rate=gibbs_priors.factor_rate,
        bias_shape=gibbs_priors.bias_shape,
        bias_rate=gibbs_priors.bias_rate,
        noise_shape=gibbs_priors.noise_shape,
        noise_rate=gibbs_priors.noise_rate,
        mu_mean=gibbs_priors.mu_mean,
        mu_sd=gibbs_priors.mu_sd,
    )


def sbc_fit_fn(
    setup: Any,
    method: str = "nuts",
    *,
    n_draws: int = 99,
    tune: int = 300,
    thin: int = 2,
    n_steps: int = 5000,
    learning_rate: float = 0.05,
    likelihood: str = "fast",
) -> Any:
    """A ``fit_fn(ratings, seed) -> InferenceData`` for :func:`bayesmf.sbc.run_sbc`.

    Parameters
    ----------
    setup : bayesmf.sbc.SBCSetup
        Must use ``hyperprior="diagonal"`` (the PyMC model's prior); its priors are converted
        with :func:`priors_from_gibbs`, so the fit uses exactly the simulator's prior.
    method : {"nuts", "advi"}
        One NUTS chain of ``n_draws * thin`` draws after ``tune``, or ADVI with ``n_steps``
        and ``n_draws`` draws of the approximation.
    """
    method = check_choice(method, "method", ("nuts", "advi"))
    if getattr(setup, "hyperprior", "diagonal") != "diagonal":
        raise BayesMFError(
            "the PyMC model has the diagonal (per-factor Gamma) hyperprior; use "
            "SBCSetup(hyperprior='diagonal') for NUTS/ADVI calibration"
        )
    priors = priors_from_gibbs(setup.priors)

    def fit(ratings: Ratings, seed: int) -> Any:
        common = dict(
            rank=setup.rank, biases=setup.biases, likelihood=likelihood, store="float64",
            memory_budget_bytes=None, priors=priors, random_state=seed, progress=False,
        )
        if method == "nuts":
            est: _PyMCFit = NUTSPMF(chains=1, draws=n_draws * thin, tune=tune, thin=thin,
                                    cores=1, **common)
        else:
            est = ADVIPMF(n_steps=n_steps, draws=n_draws, learning_rate=learning_rate, **common)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return est.fit(ratings).idata_

    return fit
