"""Bayesian PMF by Gibbs sampling (Salakhutdinov & Mnih, 2008): :class:`GibbsPMF`.

The model (identity link)::

    R_ij ~ N(mu + b_i + c_j + u_i^T v_j, sigma^2),        tau = 1 / sigma^2 ~ Gamma(a_tau, b_tau)
    u_i ~ N(mu_U, Lambda_U^-1),  v_j ~ N(mu_V, Lambda_V^-1)
    (mu_U, Lambda_U), (mu_V, Lambda_V) ~ Normal-Wishart(mu0=0, beta0=2, W0=I, nu0=rank)
    b_i ~ N(0, 1/tau_b), c_j ~ N(0, 1/tau_c),              tau_b, tau_c ~ Gamma(a_b, b_b)
    mu ~ N(mu_mean, mu_sd^2)

``hyperprior="diagonal"`` replaces the Normal-Wishart by ``u_i ~ N(0, diag(1/lambda_u))``
with ``lambda_u[a] ~ Gamma(factor_shape, factor_rate)`` (the same for ``V``) -- the
hierarchical prior of the PyMC model, so Gibbs, NUTS and ADVI can be compared on one model.

**Biases** are drawn *jointly* with the factors by the ones-column trick the ALS kernel uses:
a user's block is ``(u_i, b_i)``, the item side gets a trailing column of ones, the prior
precision is ``blockdiag(Lambda_U, tau_b)``. One Cholesky per row gives the joint conditional,
so the strong posterior correlation between a bias and the factors does not slow mixing.

One sweep draws, in order: user hyperparameters, every ``(u_i, b_i)`` (parallel, numba),
item hyperparameters, every ``(v_j, c_j)``, then (``moves=True``, the default) each bias
precision with its biases integrated out followed by the biases, the global mean ``mu`` and
the noise precision, and finally three "group" moves along directions the likelihood cannot
see (generalised Gibbs steps, Liu & Sabatti 2000): a rescaling/shearing of the factors with
their priors (``u -> T u``, ``v -> T^-T v``), shifts of the factors against the other side's
biases *and* the global mean, drawn jointly (``u_i + w``, ``mu + delta``,
``c_j - w.v_j - delta``: the factor means carry part of the global level, and the biases'
prior pins their own mean, so ``mu`` only moves freely with the factor means), and shifts
of ``mu`` against the biases. Every step
draws from an exact conditional (or, for the collapsed bias precision, applies a slice-sampling
update that leaves it invariant); see :mod:`bayesmf.kernels.gibbs`. Plain BPMF Gibbs mixes
slowly along those directions (rank histograms of ``||U||_F`` and ``mu`` in simulation-based
calibration were U-shaped without them; calibrated with them, see :mod:`bayesmf.sbc`).

**Overrelaxation** (``overrelax=alpha``, default -0.7): every Gaussian draw (the factor
rows, ``mu``, the joint shift) is replaced by Adler's overrelaxed update
``m + alpha (x - m) + sqrt(1 - alpha^2) L^-T z`` and the noise precision by its copula
analogue; each leaves its conditional invariant (it is a reversible AR(1) step towards it),
so the posterior is unchanged. It damps the random walk of alternating between the strongly
coupled ``U`` and ``V`` blocks: on ml-latest-small the latent mean of an unobserved
(user, item) pair had an autocorrelation time of ~30-70 sweeps with plain draws, ~1-5
with ``alpha = -0.7``. Variance-like quantities (``sigma_item_bias``) gain nothing from it.

Chains run side by side in worker processes, one per core (``cores``), when the run is long
enough to repay starting them, and one after the other in this process otherwise (each sweep
then uses every core through the numba kernels). Per-chain seeds come from ``random_state``
via :class:`numpy.random.SeedSequence`, so a fit is reproducible, and the draws do not depend
on how the chains were spread over processes or threads. The chain state and sweep live in
:mod:`bayesmf.models.gibbs_chain`.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from bayesmf._validation import (
    check_bool,
    check_choice,
    check_positive_float,
    check_positive_int,
    check_ratings,
)
from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError, DataError
from bayesmf.memory import (
    auto_thin,
    check_memory_budget,
    estimate_draws_bytes,
    format_bytes,
    kept_draws,
)
from bayesmf.models.base import FitBase
from bayesmf.models.gibbs_chain import (  # the two constants are re-exported (documented here)
    PARALLEL_MIN_RATINGS as PARALLEL_MIN_RATINGS,
)
from bayesmf.models.gibbs_chain import (
    PROCESS_MIN_WORK as PROCESS_MIN_WORK,
)
from bayesmf.models.gibbs_chain import (
    ChainSampler,
    DrawStorage,
    default_workers,
    run_chain,
    run_chains_in_processes,
)
from bayesmf.models.idata import build_inference_data, posterior_latent_means
from bayesmf.progress import progress_bar, progress_enabled

logger = logging.getLogger("bayesmf")

HYPERPRIORS = ("normal-wishart", "diagonal")
INITS = ("map", "random")
STORES = ("float32", "float64")


class GibbsLinkError(BayesMFError, NotImplementedError):
    """The requested link has no conjugate Gibbs sampler (use NUTS or ADVI)."""


@dataclass(frozen=True)
class GibbsPriors:
    """Prior hyperparameters of the Gibbs PMF model (all conjugate).

    Parameters
    ----------
    mu_mean, mu_sd : float
        Normal prior of the global mean ``mu``.
    noise_shape, noise_rate : float
        Gamma(shape, rate) prior of the noise precision ``tau = 1/sigma^2``.
    bias_shape, bias_rate : float
        Gamma prior of the user-bias and item-bias precisions.
    beta0 : float
        Normal-Wishart: prior pseudo-count of the factor mean ``mu_U``.
    nu0 : float or None
        Normal-Wishart degrees of freedom (``None``: the rank, as in BPMF).
    w0 : float
        Normal-Wishart scale matrix ``W0 = w0 * I`` (``E[Lambda] = nu0 * W0``).
    factor_shape, factor_rate : float
        ``hyperprior="diagonal"``: Gamma prior of each per-factor precision.
    """

    mu_mean: float = 0.0
    mu_sd: float = 10.0
    noise_shape: float = 1.0
    noise_rate: float = 1.0
    bias_shape: float = 1.0
    bias_rate: float = 0.1
    beta0: float = 2.0
    nu0: float | None = None
    w0: float = 1.0
    factor_shape: float = 1.0
    factor_rate: float = 0.1

    def validate(self, rank: int) -> None:
        """Raise :class:`BayesMFError` on a non-positive or non-finite setting."""
        for name, value in asdict(self).items():
            if name == "mu_mean":
                if not np.isfinite(value):
                    raise BayesMFError(f"priors.mu_mean must be finite, got {value!r}")
            elif name == "nu0":
                if value is not None and not (np.isfinite(value) and value > rank - 1):
                    raise BayesMFError(f"priors.nu0 must exceed rank - 1 = {rank - 1}, got {value!r}")
            else:
                check_positive_float(value, f"priors.{name}")


class _Interrupted(Exception):
    """Internal: carries the interrupt out of the chain loop."""


class GibbsPMF(FitBase):
    """Full posterior of Bayesian PMF by conjugate Gibbs sampling (BPMF).

    Parameters
    ----------
    rank : int
        Number of latent factors ``k``.
    biases : bool
        Fit user and item bias terms (drawn jointly with the factors).
    hyperprior : {"normal-wishart", "diagonal"}
        Prior on the factor means/precisions (see the module docstring).
    chains : int
        Number of chains (run sequentially; each sweep uses all cores).
    draws : int
        Post-warm-up sweeps per chain; every ``thin``-th is kept (``draws // thin`` kept).
    tune : int
        Warm-up sweeps per chain (discarded).
    thin : int or "auto"
        Keep every ``thin``-th draw. ``"auto"`` picks the smallest thinning that keeps the
        stored draws within ``memory_budget_bytes``; an explicit value that would exceed the
        budget raises :class:`~bayesmf.exceptions.MemoryBudgetError` before sampling.
    store : {"float32", "float64"}
        Storage type of the ``U``, ``V`` and bias draws (hyperparameters are float64).
    memory_budget_bytes : int or None
        Budget for stored draws (default 1 GiB); ``None`` disables the check.
    init : {"map", "random"}
        Start each chain from a quick ALS MAP fit (own random start per chain) or from small
        random factors.
    priors : GibbsPriors or None
        Prior hyperparameters (``None``: the defaults of :class:`GibbsPriors`).
    moves : bool
        After each sweep, also draw exact "group" moves along directions the likelihood
        cannot see: a rescaling/shearing of ``(U, its prior)`` against ``(V, its prior)``,
        joint shifts of the factors, the other side's biases and ``mu``, and shifts of
        ``mu`` against the biases (Liu & Sabatti 2000); the bias precisions are drawn with
        the biases integrated out. All leave the posterior invariant and fix the slow mixing
        of ``||U||_F``, the factor precisions and ``mu``. ``False`` gives the plain BPMF
        sweep.
    overrelax : float
        Overrelaxation ``alpha`` in ``(-1, 1)`` of the Gaussian draws and of the noise
        precision (see the module docstring); ``0.0`` gives plain Gibbs draws. Exact for
        every value; negative values speed up the ``U``/``V`` alternation.
    n_threads : int or None
        Threads of the numba kernels within a sweep (``None``: numba's default, all cores,
        when chains run in this process; one per worker process otherwise). ``1`` uses the
        serial kernels (faster on a machine that is already busy). Problems with fewer than
        ``PARALLEL_MIN_RATINGS`` ratings always use the serial kernels.
    cores : int or None
        Worker processes that run chains side by side (at most one per chain). ``None``:
        one per CPU core when the run is long enough to repay starting them
        (``ratings x sweeps x chains >= PROCESS_MIN_WORK``), else 1 (chains one after the
        other in this process). Draws are identical either way (each chain has its own
        seed). Workers write their draws into memory-mapped files in ``/dev/shm`` (or the
        temporary directory when that has no room), removed after the fit.
    random_state : int, numpy Generator or None
        Seed; the same int gives bit-identical draws.
    progress : bool
        ``True``: show a progress bar (and print the storage cost first) when stderr is a
        terminal or ``BAYESMF_PROGRESS=1`` (see :mod:`bayesmf.progress`); ``False``: never.
    link : {"identity", "logistic"}
        Only ``"identity"`` is conjugate; ``"logistic"`` raises (use NUTS/ADVI).
    check_convergence : bool
        After sampling two or more chains, run :func:`bayesmf.diagnostics.diagnose` (about a
        second on ml-latest-small) and emit a ``RuntimeWarning`` naming the worst quantity
        when any identifiable quantity is not ``ok``; the table is kept as ``diagnostics_``.

    Attributes
    ----------
    idata_ : arviz.InferenceData
        The draws (see ``CONVENTIONS.md``); ``sample_stats.loglik`` per draw.
    U_, V_, mu_, user_bias_, item_bias_, sigma_ : ndarray or float
        Posterior means. ``U_`` and ``V_`` are only identified up to rotation; use
        :meth:`predict_mean` (average of ``u.v`` over draws), not ``U_ @ V_.T``, for
        posterior-mean predictions.
    diagnostics_ : pandas.DataFrame or None
        The :func:`~bayesmf.diagnostics.diagnose` table of the fit (None for one chain or
        ``check_convergence=False``).
    probe_mean_, probe_sd_ : ndarray or None
        Posterior mean and sd of the latent mean of the ``probe`` pairs passed to ``fit``,
        accumulated on the fly over the kept draws.
    thin_, n_kept_ : int
        Thinning used and draws kept per chain.
    memory_bytes_ : int
        Estimated bytes of the stored draws.
    interrupted_ : bool
        True when Ctrl-C stopped the run (the draws so far are kept).
    ratings_, fit_time_, link_
        As for every fit.
    """

    method: ClassVar[str] = "gibbs"
    is_bayesian: ClassVar[bool] = True

    def __init__(
        self,
        rank: int = 10,
        biases: bool = True,
        hyperprior: str = "normal-wishart",
        chains: int = 4,
        draws: int = 500,
        tune: int = 200,
        thin: int | str = "auto",
        store: str = "float32",
        memory_budget_bytes: int | None = 1 << 30,
        init: str = "map",
        priors: GibbsPriors | None = None,
        moves: bool = True,
        overrelax: float = -0.7,
        n_threads: int | None = None,
        cores: int | None = None,
        random_state: int | np.random.Generator | None = None,
        progress: bool = True,
        link: str = "identity",
        check_convergence: bool = True,
    ) -> None:
        self.rank = rank
        self.biases = biases
        self.hyperprior = hyperprior
        self.chains = chains
        self.draws = draws
        self.tune = tune
        self.thin = thin
        self.store = store
        self.memory_budget_bytes = memory_budget_bytes
        self.init = init
        self.priors = priors
        self.moves = moves
        self.overrelax = overrelax
        self.n_threads = n_threads
        self.cores = cores
        self.random_state = random_state
        self.progress = progress
        self.link = link
        self.check_convergence = check_convergence

    # ------------------------------------------------------------------ validation
    def _validate(self, ratings: Ratings) -> None:
        check_ratings(ratings)
        check_positive_int(self.rank, "rank")
        check_positive_int(self.chains, "chains")
        check_positive_int(self.draws, "draws")
        check_positive_int(self.tune, "tune")
        if self.thin != "auto":
            check_positive_int(self.thin, "thin")
            if self.thin > self.draws:
                raise BayesMFError(
                    f"thin={self.thin} exceeds draws={self.draws}: no draw would be kept"
                )
        check_bool(self.biases, "biases")
        check_bool(self.check_convergence, "check_convergence")
        check_choice(self.hyperprior, "hyperprior", HYPERPRIORS)
        check_choice(self.init, "init", INITS)
        check_choice(self.store, "store", STORES)
        check_choice(self.link, "link", ("identity", "logistic"))
        if self.n_threads is not None:
            check_positive_int(self.n_threads, "n_threads")
        if self.cores is not None:
            check_positive_int(self.cores, "cores")
        if isinstance(self.overrelax, (bool, np.bool_)) or not isinstance(
            self.overrelax, (int, float, np.integer, np.floating)
        ) or not -1.0 < float(self.overrelax) < 1.0:
            raise BayesMFError(f"overrelax must be a number in (-1, 1), got {self.overrelax!r}")
        if self.memory_budget_bytes is not None:
            check_positive_int(self.memory_budget_bytes, "memory_budget_bytes")
        if self.priors is not None and not isinstance(self.priors, GibbsPriors):
            raise BayesMFError(f"priors must be a GibbsPriors, got {type(self.priors).__name__}")
        self._priors().validate(int(self.rank))
        if self.link == "logistic":
            if ratings.scale is None:
                raise BayesMFError(
                    "the logistic link maps ratings to [0, 1] and needs a declared rating scale; "
                    "pass scale=(min, max, step) to Ratings.from_frame"
                )
            raise GibbsLinkError(
                "the logistic link has no conjugate Gibbs sampler; use NUTSPMF or ADVIPMF "
                "for link='logistic'"
            )
        if not np.all(np.isfinite(ratings.values)):
            raise DataError("ratings contain NaN or infinite values")

    def _priors(self) -> GibbsPriors:
        return self.priors if self.priors is not None else GibbsPriors()

    # ------------------------------------------------------------------ fit
    def fit(self, ratings: Ratings, probe: Ratings | tuple | None = None) -> GibbsPMF:
        """Sample the posterior.

        Parameters
        ----------
        ratings : Ratings
            Training ratings.
        probe : Ratings or (user_idx, item_idx), optional
            Pairs whose posterior-mean prediction is accumulated on the fly over the kept
            draws (``probe_mean_``, ``probe_sd_``), e.g. a test split.

        Returns
        -------
        GibbsPMF
            ``self``.
        """
        for attr in list(vars(self)):
            if attr.endswith("_") and not attr.startswith("_"):
                delattr(self, attr)
        self._validate(ratings)
        t0 = time.perf_counter()
        k = int(self.rank)
        chains, draws, tune = int(self.chains), int(self.draws), int(self.tune)
        dtype = np.dtype(self.store)
        n_u, n_i = ratings.n_users, ratings.n_items
        budget = self.memory_budget_bytes
        if self.thin == "auto":
            thin = 1 if budget is None else auto_thin(n_u, n_i, k, chains, draws, budget, dtype, self.biases)
        else:
            thin = int(self.thin)
        nbytes = estimate_draws_bytes(n_u, n_i, k, chains, draws, thin, dtype, self.biases)
        check_memory_budget(nbytes, budget)
        n_kept = kept_draws(draws, thin)
        msg = (
            f"GibbsPMF: {chains} chain(s) x ({tune} warm-up + {draws} sweeps), keeping "
            f"{n_kept} draws per chain (thin={thin}) of U, V{', biases' if self.biases else ''} "
            f"as {dtype.name}: about {format_bytes(nbytes)}"
            + ("" if budget is None else f" of a {format_bytes(budget)} budget")
        )
        logger.info(msg)
        if progress_enabled(None if self.progress is True else bool(self.progress)):
            _console_print(msg)

        probe_u, probe_i = _probe_pairs(probe, ratings)
        probe_pairs = None if probe_u is None else (probe_u, probe_i)
        spec = DrawStorage.layout(chains, n_kept, n_u, n_i, k, dtype, self.biases, self.hyperprior)
        if probe_pairs is not None:
            spec["_probe"] = ((chains, 2, len(probe_u)), np.dtype(np.float64))
        seeds = _chain_seeds(self.random_state, chains)
        n_threads = None if self.n_threads is None else int(self.n_threads)
        workers = self._workers(chains, ratings.nnz, tune + draws)
        show = progress_enabled(None if self.progress is True else bool(self.progress))
        sampler_args = dict(moves=bool(self.moves), overrelax=float(self.overrelax))
        if workers > 1:
            job = dict(ratings=ratings, k=k, biases=bool(self.biases), hyperprior=self.hyperprior,
                       priors=asdict(self._priors()), seeds=seeds, init=self.init, tune=tune,
                       draws=draws, thin=thin, n_kept=n_kept, probe=probe_pairs,
                       n_threads=n_threads, **sampler_args)
            total = chains * (tune + draws)
            with progress_bar(total, f"Gibbs {chains} chains on {workers} processes",
                              enabled=show, transient=False) as bar:
                arrays, interrupted = run_chains_in_processes(
                    workers, job, spec, lambda done: bar.update(completed=done))
            counts = arrays["_counts"]
            probe_acc = arrays.get("_probe")
            st = DrawStorage(arrays, n_kept, self.biases, self.hyperprior)
        else:
            arrays = {n: np.zeros(shape, dtype=dt) for n, (shape, dt) in spec.items()}
            st = DrawStorage(arrays, n_kept, self.biases, self.hyperprior)
            probe_acc = arrays.get("_probe")
            counts = np.zeros(chains, dtype=np.int64)
            interrupted = False
            with progress_bar(tune + draws, "Gibbs", enabled=show, transient=False) as bar, \
                    _numba_threads(n_threads):
                try:
                    for c in range(chains):
                        sampler = ChainSampler(ratings, k, self.biases, self.hyperprior,
                                               self._priors(), np.random.default_rng(seeds[c]),
                                               parallel=n_threads != 1, **sampler_args)
                        sampler.initialise(self.init)
                        bar.update(description=f"Gibbs chain {c + 1}/{chains}", completed=0)
                        run_chain(sampler, c, st, tune, draws, thin, counts, probe_pairs,
                                  probe_acc, self._sweep, bar.advance)
                except KeyboardInterrupt:
                    interrupted = True
        self.workers_ = workers
        if interrupted:
            keep = counts > 0
            if not keep.any():
                raise KeyboardInterrupt("GibbsPMF interrupted before any draw was kept")
            n_keep = int(counts[keep].min())
            warnings.warn(
                f"GibbsPMF interrupted: keeping {int(keep.sum())} chain(s) x {n_keep} draws "
                f"(of {chains} x {n_kept} requested)",
                RuntimeWarning,
                stacklevel=2,
            )
            # the probe running sums keep every recorded draw (still a posterior average)
            st.trim(np.flatnonzero(keep), n_keep)

        self.ratings_ = ratings
        self.link_ = "identity"
        self.thin_ = thin
        self.n_kept_ = st.n_kept
        self.memory_bytes_ = nbytes
        self.interrupted_ = interrupted
        posterior, stats = st.as_dicts()
        self.idata_ = build_inference_data(
            posterior,
            ratings,
            method=self.method,
            params=self.get_params(),
            rank=k,
            biases=bool(self.biases),
            link="identity",
            sample_stats=stats,
            extra_attrs={
                "interrupted": int(interrupted),
                "thin": thin,
                "tune": tune,
                "draws_requested": draws,
                "hyperprior": self.hyperprior,
            },
            dtype=dtype,
        )
        post = self.idata_.posterior
        self.U_ = post["U"].values.mean(axis=(0, 1), dtype=np.float64)
        self.V_ = post["V"].values.mean(axis=(0, 1), dtype=np.float64)
        self.mu_ = float(post["mu"].values.mean())
        self.sigma_ = float(post["sigma"].values.mean())
        if self.biases:
            self.user_bias_ = post["user_bias"].values.mean(axis=(0, 1), dtype=np.float64)
            self.item_bias_ = post["item_bias"].values.mean(axis=(0, 1), dtype=np.float64)
        else:
            self.user_bias_ = np.zeros(n_u)
            self.item_bias_ = np.zeros(n_i)
        if probe_acc is not None:
            n_rec = max(1, int(counts.sum()))
            m = probe_acc[:, 0].sum(axis=0) / n_rec
            self.probe_mean_ = m
            self.probe_sd_ = np.sqrt(np.maximum(probe_acc[:, 1].sum(axis=0) / n_rec - m * m, 0.0))
        else:
            self.probe_mean_ = None
            self.probe_sd_ = None
        self.fit_time_ = time.perf_counter() - t0
        self._check_convergence()
        return self

    def _workers(self, chains: int, nnz: int, sweeps: int) -> int:
        """Number of worker processes for this run (1: chains run in this process)."""
        if self.cores is not None:
            workers = min(int(self.cores), chains)
        else:
            workers = default_workers(chains, nnz, sweeps)
        if workers > 1 and not sys.executable:  # embedded interpreters cannot start workers
            logger.warning("GibbsPMF: no Python executable to start worker processes; running "
                           "the %d chains in this process", chains)
            workers = 1
        return workers

    def _sweep(self, sampler: ChainSampler) -> None:
        """One Gibbs sweep (a method so tests can interrupt it)."""
        sampler.sweep()

    # ------------------------------------------------------------------ outputs
    def to_inference_data(self):
        """The posterior as :class:`arviz.InferenceData` (``idata_``)."""
        self._check_fitted()
        return self.idata_

    def predict_mean(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Posterior-mean latent prediction ``E[mu + b_u + c_i + u.v]`` over all kept draws.

        Parameters
        ----------
        user_idx, item_idx : array of int
            Indices into the training id maps (``ratings_.user_index(raw)``).

        Returns
        -------
        ndarray
            Not clipped to the rating scale.
        """
        self._check_fitted()
        u, i = _check_pairs(user_idx, item_idx, self.ratings_)
        return posterior_latent_means(self.idata_, u, i).mean(axis=(0, 1))

    def predict_draws(
        self,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        noise: bool = False,
        random_state: int | np.random.Generator | None = None,
    ) -> np.ndarray:
        """Per-draw predictions, shape ``(chain, draw, n_pairs)``.

        With ``noise=True`` each draw adds ``N(0, sigma^2)`` noise of that draw (posterior
        predictive of a new rating); otherwise the latent means.
        """
        self._check_fitted()
        u, i = _check_pairs(user_idx, item_idx, self.ratings_)
        out = posterior_latent_means(self.idata_, u, i)
        if noise:
            rng = np.random.default_rng(random_state)
            sig = self.idata_.posterior["sigma"].values[:, :, None]
            out += sig * rng.standard_normal(out.shape)
        return out


# ---------------------------------------------------------------------- helpers
def _check_pairs(user_idx: Any, item_idx: Any, ratings: Ratings) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(user_idx)
    i = np.asarray(item_idx)
    if u.shape != i.shape or u.ndim != 1:
        raise BayesMFError("user_idx and item_idx must be 1-d arrays of the same length")
    if u.dtype.kind not in "iu" or i.dtype.kind not in "iu":
        raise BayesMFError("user_idx and item_idx must be integer indices (see Ratings.user_index)")
    if len(u) and (u.min() < 0 or u.max() >= ratings.n_users or i.min() < 0 or i.max() >= ratings.n_items):
        raise BayesMFError("user/item indices outside the training id maps (unknown ids map to -1)")
    return u.astype(np.int64), i.astype(np.int64)


def _probe_pairs(probe: Any, ratings: Ratings) -> tuple[np.ndarray | None, np.ndarray | None]:
    if probe is None:
        return None, None
    if isinstance(probe, Ratings):
        if not (probe.user_ids.equals(ratings.user_ids) and probe.item_ids.equals(ratings.item_ids)):
            raise BayesMFError(
                "probe ratings must share the training id maps (take both from one Ratings)"
            )
        return probe.users.astype(np.int32), probe.items.astype(np.int32)
    if isinstance(probe, tuple) and len(probe) == 2:
        u, i = _check_pairs(probe[0], probe[1], ratings)
        return u.astype(np.int32), i.astype(np.int32)
    raise BayesMFError("probe must be a Ratings or a (user_idx, item_idx) tuple")


def _chain_seeds(random_state: Any, chains: int) -> list[np.random.SeedSequence]:
    if isinstance(random_state, np.random.Generator):
        entropy = int(random_state.integers(0, 2**63 - 1))
        return np.random.SeedSequence(entropy).spawn(chains)
    if random_state is None or isinstance(random_state, (int, np.integer)) and not isinstance(
        random_state, bool
    ):
        return np.random.SeedSequence(None if random_state is None else int(random_state)).spawn(chains)
    raise BayesMFError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")


@contextmanager
def _numba_threads(n: int | None) -> Iterator[None]:
    """Temporarily set numba's thread count (``None``: leave it)."""
    if n is None or n == 1:
        yield
        return
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _console_print(msg: str) -> None:
    try:
        from rich.console import Console

        Console(stderr=True).print(msg, markup=False, highlight=False)
    except Exception:  # pragma: no cover - rich missing
        print(msg)
