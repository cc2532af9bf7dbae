"""Point estimates of probabilistic matrix factorization: MAP and MLE by alternating least squares.

The model (Salakhutdinov & Mnih, 2008, with optional biases) is

    r_ui ~ Normal(mu + b_u + b_i + u_u . v_i, sigma^2),
    u_u ~ Normal(0, sigma_u^2 I),  v_i ~ Normal(0, sigma_v^2 I),  b ~ Normal(0, sigma_b^2).

Its negative log posterior, times ``sigma^2``, is the ridge objective

    1/2 sum_(u,i) (r_ui - rhat_ui)^2 + lambda_u/2 ||U||^2 + lambda_v/2 ||V||^2
        + lambda_bias/2 (||b_user||^2 + ||b_item||^2)

with ``lambda_u = sigma^2 / sigma_u^2``, ``lambda_v = sigma^2 / sigma_v^2`` and
``lambda_bias = sigma^2 / sigma_b^2``. Holding ``V`` fixed, each user row is a ridge regression
with a closed-form solution, and likewise each item row: :class:`PMF` alternates these exact
half-sweeps (:func:`bayesmf.kernels.als.als_half_sweep`), so the objective never increases.
For MAP the slow linear tail of this alternation is Anderson-accelerated by default
(``accelerate=True``): a sweep may then start from an extrapolated point, and a sweep whose
objective rose is discarded and the next one starts from the previous, better output.
``method="mle"`` sets every ``lambda`` to 0 (maximum likelihood); rows with fewer ratings than
unknowns are then underdetermined and get the minimum-norm least-squares solution, and are
counted and reported.

This module also holds :class:`PointFit`, the shared base of every point estimator
(:class:`PMF`, :class:`~bayesmf.models.sgd.SGDPMF`, :class:`~bayesmf.models.logistic.LogisticPMF`):
``predict_mean`` and ``to_inference_data``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bayesmf._validation import (
    as_rng,
    check_bool,
    check_choice,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_ratings,
)
from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError
from bayesmf.kernels.als import (
    PARALLEL_MIN_WORK_ALS,
    als_half_sweep,
    predict_solutions,
    row_covariances,
)
from bayesmf.kernels.anderson import anderson_coefficients, anderson_extrapolate, anderson_record
from bayesmf.kernels.objective import regularised_objective, residual_stats
from bayesmf.kernels.spectral import spectral_start
from bayesmf.models.base import FitBase
from bayesmf.progress import LazyBar

HISTORY_COLUMNS = ["sweep", "objective", "train_rmse", "rel_change", "seconds"]

#: Default penalties of :class:`PMF`, chosen by 5-fold CV (``bayesmf.split.kfold``, seed 0) on
#: ml-latest-small at rank 10 with biases, fitted to tol=1e-4. Mean held-out RMSE for
#: lambda_u = lambda_v = 6, 10, 13, 15, 17, 20 (lambda_bias 5): 0.880, 0.856, 0.851, 0.850,
#: 0.851, 0.854; lambda_bias = 1, 5, 15 (lambda 15): 0.853, 0.850, 0.855.
#: See ``benchmarks/bench_accuracy_map.py`` for the table against scikit-surprise.
DEFAULT_LAMBDA_U = 15.0
DEFAULT_LAMBDA_V = 15.0
DEFAULT_LAMBDA_BIAS = 5.0


#: ``nnz * d^2`` from which :class:`PMF` times threaded user half-sweeps against serial ones and
#: keeps the faster (below it the serial sweep always wins; from ``PARALLEL_MIN_WORK_ALS``
#: threads do)
PARALLEL_TRIAL_MIN_WORK = 2_000_000
#: history length of the Anderson extrapolation (``accelerate=True``); 2 and 3 needed the
#: fewest sweeps on ml-latest-small (80/20, rank 10, seeds 0-3) and 1M synthetic ratings
ANDERSON_DEPTH = 2
#: extrapolation starts once the relative change per sweep has fallen below this: Anderson
#: is a local (secant) method, and ALS's first sweeps from a random start are far from the
#: linear regime it models (0.01-0.04 gave the same sweep counts on ml-latest-small; starting
#: at sweep 1 costs the extrapolation's overhead on sweeps where it does not help)
ANDERSON_FROM_CHANGE = 0.02
#: sweeps of the serial/threaded trial (the first one's user half serial, the others threaded)
TRIAL_SWEEPS = 3


class _ThreadChoice:
    """Serial or threaded half-sweeps for one fit: fixed by the amount of work, or timed.

    Between ``PARALLEL_TRIAL_MIN_WORK`` and ``PARALLEL_MIN_WORK_ALS`` the user half-sweeps of
    the first ``TRIAL_SWEEPS`` sweeps are timed: the first one serial, the others threaded (the
    best of these counts, so the first threaded call's start-up does not decide); meanwhile the
    item half-sweeps run threaded. Afterwards both halves run the faster way.
    Threads pay off on an idle multi-core machine but stall when another process holds a core;
    timing both measures which case this is. Only the user half is timed both ways because a
    serial item half, with its many small rows, is the dearer experiment (about 2 ms a sweep on
    ml-latest-small). The draws do not depend on the choice.
    """

    def __init__(self, work: int) -> None:
        import numba

        self.trial = False
        if numba.get_num_threads() < 2 or work < PARALLEL_TRIAL_MIN_WORK:
            self.parallel = False
        elif work >= PARALLEL_MIN_WORK_ALS:
            self.parallel = True
        else:
            self.parallel = False
            self.trial = True
        self.seconds: dict[bool, float] = {}

    def for_sweep(self, sweep: int) -> tuple[bool, bool]:
        """Whether sweep ``sweep`` (1-based) runs its user and its item half threaded."""
        if self.trial and sweep <= TRIAL_SWEEPS:
            return sweep > 1, True
        return self.parallel, self.parallel

    def record(self, sweep: int, seconds: float) -> None:
        """Note a user half-sweep's wall time; after the trial sweeps, keep the faster way."""
        if not self.trial:
            return
        par = sweep > 1
        self.seconds[par] = min(seconds, self.seconds.get(par, np.inf))
        if sweep >= TRIAL_SWEEPS:
            self.parallel = self.seconds[True] < 0.9 * self.seconds[False]
            self.trial = False


def _split_state(buf: np.ndarray, nu: int, ni: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The user and item ``[factors, bias]`` rows of a flat state buffer (views, no copies)."""
    return buf[: nu * d].reshape(nu, d), buf[nu * d:].reshape(ni, d)


class _AndersonState:
    """Anderson history of one fit, with its safeguard (see :mod:`bayesmf.kernels.anderson`).

    :meth:`step` is called after each sweep with the iterate ``x`` and the sweep's output
    ``g = g(x)`` and says where the next sweep starts:

    * ``"extrapolated"``: ``x`` was overwritten with the extrapolated iterate;
    * ``"plain"``: from ``g`` itself (the caller copies it);
    * ``"reverted"``: the sweep's objective rose above the previous sweep's, which only an
      extrapolated start can cause (a plain ALS sweep never raises it). That output is
      discarded, ``x`` was overwritten with the previous, better output, and the history is
      dropped; extrapolation resumes once ``depth`` new differences have been recorded.
    """

    def __init__(self, n: int, depth: int) -> None:
        self.f_prev = np.empty(n)
        self.g_prev = np.empty(n)
        self.dF = np.zeros((depth, n))
        self.dG = np.zeros((depth, n))
        self.valid = np.zeros(depth, dtype=np.bool_)
        self.gram = np.zeros((depth, depth))
        self.count = 0
        self.prev_obj = np.inf
        self.reverts = 0

    def step(
        self,
        x: np.ndarray,
        g: np.ndarray,
        obj: float,
        g_blocks: tuple[np.ndarray, ...],
        x_blocks: tuple[np.ndarray, ...],
        design_last: np.ndarray | None,
        parallel: bool,
    ) -> str:
        """Record ``(x, g)`` and choose the next iterate (see the class docstring)."""
        m = self.dF.shape[0]
        if obj > self.prev_obj and self.count > 0:
            x[:] = self.g_prev  # the last output before this one
            if design_last is not None:
                design_last[:, :-1] = x_blocks[-1][:, :-1]
            self.valid[:] = False
            self.count = 0
            self.reverts += 1
            return "reverted"
        self.prev_obj = obj
        slot = -1 if self.count == 0 else (self.count - 1) % m
        if slot >= 0:
            self.valid[slot] = True
        gram_row, rhs = anderson_record(x, g, self.f_prev, self.g_prev, self.dF, self.dG, slot,
                                        self.valid, parallel=parallel)
        self.count += 1
        if slot >= 0:
            self.gram[slot, :] = gram_row
            self.gram[:, slot] = gram_row
        if self.count <= m:  # not yet depth differences since the (re)start
            return "plain"
        gamma = anderson_coefficients(self.gram, rhs, self.valid)
        if not gamma.any():
            return "plain"
        start = 0
        for t, (G, X) in enumerate(zip(g_blocks, x_blocks, strict=True)):
            size = G.size
            dG = self.dG[:, start:start + size].reshape(m, *G.shape)
            design = design_last if t == len(g_blocks) - 1 else None
            anderson_extrapolate(G, dG, gamma, X, design_out=design, parallel=parallel)
            start += size
        return "extrapolated"


def _csr_rows(indptr: np.ndarray) -> np.ndarray:
    """Row index of every stored entry of a CSR structure."""
    return np.repeat(np.arange(len(indptr) - 1, dtype=np.int32), np.diff(indptr))


class PointFit(FitBase):
    """Shared behaviour of point estimators: prediction of the mean and an InferenceData view.

    Subclasses set ``U_, V_, mu_, user_bias_, item_bias_, sigma_, ratings_, link_`` in ``fit``.
    """

    is_bayesian: ClassVar[bool] = False

    # ------------------------------------------------------------------ prediction
    def _check_pairs(self, user_idx: Any, item_idx: Any) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        u = np.asarray(user_idx)
        i = np.asarray(item_idx)
        if u.shape != i.shape:
            raise BayesMFError(
                f"user_idx and item_idx must have the same shape, got {u.shape} and {i.shape}"
            )
        for arr, name, n in ((u, "user_idx", self.ratings_.n_users), (i, "item_idx", self.ratings_.n_items)):
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise BayesMFError(f"{name} must hold integer indices, got dtype {arr.dtype}")
            if arr.size and (arr.min() < -1 or arr.max() >= n):
                raise BayesMFError(
                    f"{name} holds indices outside -1..{n - 1} (-1 marks an unknown id)"
                )
        return u.astype(np.int64, copy=False), i.astype(np.int64, copy=False)

    def _eta(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Linear predictor; index -1 (unknown) contributes zero factors and zero bias."""
        ku = u >= 0
        ki = i >= 0
        us = np.where(ku, u, 0)
        it = np.where(ki, i, 0)
        dot = np.einsum("pk,pk->p", self.U_[us], self.V_[it])
        eta = (
            self.mu_
            + np.where(ku, self.user_bias_[us], 0.0)
            + np.where(ki, self.item_bias_[it], 0.0)
            + np.where(ku & ki, dot, 0.0)
        )
        return eta

    def predict_mean(self, user_idx: Any, item_idx: Any) -> np.ndarray:
        """Predicted mean rating for index pairs (link applied, not clipped).

        Parameters
        ----------
        user_idx, item_idx : array of int
            User and item indices in the training id maps; ``-1`` marks an unknown id, which
            contributes no factors and no bias (so a cold user gets ``mu + item bias``).

        Returns
        -------
        ndarray of float, same shape as the inputs.
        """
        u, i = self._check_pairs(user_idx, item_idx)
        shape = u.shape
        eta = self._eta(u.ravel(), i.ravel())
        if self.link_ == "logistic":
            sc = self.ratings_.scale
            eta = sc.min + sc.span / (1.0 + np.exp(-eta))
        return eta.reshape(shape)

    # ------------------------------------------------------------------ InferenceData
    def to_inference_data(self) -> Any:
        """Return the point fit as a one-draw ``arviz.InferenceData`` (chain=1, draw=1).

        Built with :func:`bayesmf.models.idata.build_inference_data`, so groups and names follow
        the bayesmf conventions: ``posterior`` with ``U (user, factor)``, ``V (item, factor)``,
        ``mu``, ``sigma`` and, with biases, ``user_bias (user)`` and ``item_bias (item)``;
        ``sample_stats.loglik`` (Gaussian log-likelihood of the training ratings, identity link
        only); ``observed_data.R (rating)``; ``constant_data.user_idx`` / ``item_idx``;
        coordinates are the raw ids; ``attrs`` hold the method, rank, link, biases, the
        constructor arguments (``params_json``) and the rating scale. Draws are float64.
        """
        from bayesmf.models.idata import build_inference_data

        self._check_fitted()
        r = self.ratings_
        k = int(self.U_.shape[1])
        biases = bool(getattr(self, "biases", False))
        post = {
            "U": self.U_[None, None],
            "V": self.V_[None, None],
            "mu": np.array([[self.mu_]]),
            "sigma": np.array([[self.sigma_]]),
            "user_bias": self.user_bias_[None, None],
            "item_bias": self.item_bias_[None, None],
        }
        stats = None
        if self.link_ == "identity" and self.sigma_ > 0:
            resid = r.values - self.predict_mean(r.users, r.items)
            s2 = self.sigma_**2
            ll = -0.5 * (r.nnz * np.log(2 * np.pi * s2) + float(resid @ resid) / s2)
            stats = {"loglik": np.array([[ll]])}
        params = {
            key: ("Generator" if isinstance(v, np.random.Generator) else v)
            for key, v in self.get_params().items()
        }
        return build_inference_data(
            post,
            r,
            method=str(self.method),
            params=params,
            rank=k,
            biases=biases,
            link=self.link_,
            sample_stats=stats,
            extra_attrs={"estimator": type(self).__name__, "n_iter": int(self.n_iter_)},
            dtype=np.float64,
        )


class PMF(PointFit):
    """Probabilistic matrix factorization by alternating least squares: MAP or MLE.

    Parameters
    ----------
    rank : int
        Number of latent factors ``k``.
    method : {"map", "mle"}
        ``"map"``: ridge penalties below (Gaussian priors). ``"mle"``: all penalties forced to
        0, maximum likelihood; rows with fewer ratings than unknowns get the minimum-norm
        least-squares solution and are counted in ``underdetermined_users_`` /
        ``underdetermined_items_`` and reported in a ``UserWarning``.
    lambda_u, lambda_v : float
        Ridge penalties on user and item factors, ``lambda_u = sigma^2 / sigma_u^2`` (noise
        variance over prior variance). Defaults (15.0, 15.0) were chosen by 5-fold CV on
        ml-latest-small at rank 10 with biases.
    biases : bool
        Fit ``mu + b_u + b_i + u.v`` (True) or ``mu + u.v`` (False); ``mu`` is the training
        mean either way (it is not penalised), biases are learned in the same ALS sweeps.
    lambda_bias : float
        Ridge penalty on the user and item biases, ``sigma^2 / sigma_b^2`` (default 5.0).
    max_iter : int
        Maximum number of sweeps (a sweep = all users, then all items).
    tol : float
        Stop when the relative change of the predictions on the observed entries,
        ``||rhat_t - rhat_{t-1}|| / ||rhat_{t-1}||`` (the lecture's criterion on
        ``W H`` restricted to the observed entries, made scale-free), falls below ``tol``.
        The default 1e-3 (an RMS change of about 0.004 stars per rating on MovieLens) is
        reached in 6-8 sweeps on an 80/20 split of ml-latest-small at rank 10, and a tighter
        tolerance barely moves the held-out RMSE (seed 0; fold 0: 0.8504 after 7 sweeps,
        0.8491 after 23 at ``tol=1e-4``; fold 1: 0.8538 and 0.8536 after 7 and 21).
    init_scale : float
        Standard deviation of the random Gaussian initial factors (``init="random"``, and the
        columns beyond the shorter side's size with ``init="spectral"``).
    random_state : int, numpy Generator or None
        Seed of the initial factors; a given seed reproduces a fit bit for bit.
    verbose : bool
        Print one line per sweep.
    progress : bool
        Draw a progress bar (sweeps, relative change) once a fit has run for a second, when
        stderr is a terminal or ``BAYESMF_PROGRESS=1`` (see :mod:`bayesmf.progress`);
        ``False``: never.
    init : {"spectral", "random"}
        Starting point of the sweeps. ``"spectral"`` (default): biases at the regularised
        bias baseline and factors from a truncated SVD of the residual matrix with its
        missing entries as zeros (:func:`bayesmf.kernels.spectral.spectral_start`, a few
        sparse passes, about 4 ms on ml-latest-small). ``"random"``: small random factors
        (``init_scale``) and zero biases, the lecture's start. Sweeps to ``tol=1e-3`` over
        several seeds (``benchmarks/bench_init.py``): on three 80/20 folds of
        ml-latest-small at rank 10, 6-8 from the spectral start against 10-13 from the random
        one, at a lower objective; on 1M synthetic ratings the two are close (rank 32: 15-23
        against 7-26; rank 10: 7-9 against 6-10), and which is faster depends on the seed.
    accelerate : bool
        Anderson-accelerate the sweeps (default True; :mod:`bayesmf.kernels.anderson`). Once
        the relative change per sweep is below ``ANDERSON_FROM_CHANGE`` (0.02), each sweep
        starts from an extrapolation of the last three sweeps' outputs instead of the last
        output; a sweep whose objective rose is discarded, the next one starts from the
        previous output, and the history starts over. The test for ``tol`` is unchanged in meaning: the relative
        change of the predictions over one ALS sweep from the point it started from (without
        extrapolation this is exactly the plain criterion), and the returned factors are an
        exact ALS sweep's output. Used only when every penalty is positive (MAP); with a zero
        penalty (MLE) the factors' scale and rotation are free and plain ALS is used.
        On an 80/20 split of ml-latest-small at rank 10 from the random start (seeds 0-3) it
        took 11-12 sweeps instead of 15-17 to ``tol=1e-3`` and 21-39 instead of 49-106 to
        ``tol=1e-4``, at the same objective; each extrapolated sweep costs about 0.7 ms more. ``False``: the
        lecture's plain alternation, whose objective never rises.

    Attributes
    ----------
    U_, V_ : ndarray, shape (n_users, rank), (n_items, rank)
        Factors. Users or items with no training rating have zero factors (and zero bias).
    mu_ : float
        Global mean of the training ratings.
    user_bias_, item_bias_ : ndarray
        Biases (zeros when ``biases=False``).
    sigma_ : float
        Residual standard deviation on the training ratings.
    history_ : pandas.DataFrame
        One row per sweep: ``sweep``, ``objective`` (the regularised objective above, ``SSE/2``
        for MLE), ``train_rmse``, ``rel_change``, ``seconds`` (elapsed since the start of
        the sweeps).
    n_iter_ : int
        Sweeps run. ``converged_`` : bool, whether ``tol`` was reached.
    underdetermined_users_, underdetermined_items_ : int
        Rows (with at least one rating) solved by the minimum-norm fallback in the last sweep.
    lambda_u_, lambda_v_, lambda_bias_ : float
        Penalties actually used (0 for MLE).
    extrapolated_sweeps_ : int
        Sweeps that started from an Anderson extrapolation (0 with ``accelerate=False``).
    parallel_ : bool
        Whether the sweeps ran on all numba threads: always for large problems, never for
        small ones, and in between whichever of a serial and a threaded trial sweep was faster
        (threads stall on a machine whose cores are busy). The result does not depend on it.
    ratings_ : Ratings
        Training data. ``fit_time_`` : seconds. ``link_`` : ``"identity"``.

    Examples
    --------
    >>> fit = PMF(rank=10, random_state=0).fit(train)          # doctest: +SKIP
    >>> fit.predict_mean(test.users, test.items)               # doctest: +SKIP
    """

    method: ClassVar[str] = "map"

    def __init__(
        self,
        rank: int = 10,
        method: str = "map",
        lambda_u: float = DEFAULT_LAMBDA_U,
        lambda_v: float = DEFAULT_LAMBDA_V,
        biases: bool = True,
        lambda_bias: float = DEFAULT_LAMBDA_BIAS,
        max_iter: int = 100,
        tol: float = 1e-3,
        init_scale: float = 0.1,
        random_state: int | np.random.Generator | None = None,
        verbose: bool = False,
        progress: bool = True,
        init: str = "spectral",
        accelerate: bool = True,
    ) -> None:
        self.rank = rank
        self.method = method
        self.lambda_u = lambda_u
        self.lambda_v = lambda_v
        self.biases = biases
        self.lambda_bias = lambda_bias
        self.max_iter = max_iter
        self.tol = tol
        self.init_scale = init_scale
        self.random_state = random_state
        self.verbose = verbose
        self.progress = progress
        self.init = init
        self.accelerate = accelerate

    # ------------------------------------------------------------------ fit
    def _validate(self) -> tuple[int, str, float, float, float, int, float, float]:
        k = check_positive_int(self.rank, "rank")
        method = check_choice(self.method, "method", ("map", "mle"))
        lu = check_nonnegative_float(self.lambda_u, "lambda_u")
        lv = check_nonnegative_float(self.lambda_v, "lambda_v")
        lb = check_nonnegative_float(self.lambda_bias, "lambda_bias")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        tol = check_positive_float(self.tol, "tol")
        init_scale = check_nonnegative_float(self.init_scale, "init_scale")
        check_choice(self.init, "init", ("spectral", "random"))
        check_bool(self.accelerate, "accelerate")
        if method == "mle":
            lu = lv = lb = 0.0
        return k, method, lu, lv, lb, max_iter, tol, init_scale

    def fit(self, ratings: Ratings) -> PMF:
        """Fit the factors to ``ratings`` by alternating least squares.

        Parameters
        ----------
        ratings : Ratings
            Training ratings.

        Returns
        -------
        PMF
            ``self``, fitted.
        """
        k, method, lu, lv, lb, max_iter, tol, init_scale = self._validate()
        ratings = check_ratings(ratings)
        rng = as_rng(self.random_state)
        # forget any previous fit before starting
        for name in list(vars(self)):
            if name.endswith("_") and not name.startswith("_"):
                delattr(self, name)
        self._laplace_cache: dict[str, Any] = {}

        t_start = time.perf_counter()
        nu, ni = ratings.n_users, ratings.n_items
        by_user, by_item = ratings.by_user, ratings.by_item
        biases = bool(self.biases)
        d = k + int(biases)
        mu = ratings.global_mean
        reg_u = np.full(d, lu)
        reg_v = np.full(d, lv)
        if biases:
            reg_u[k] = lb
            reg_v[k] = lb

        zero_u = np.zeros(nu)
        zero_i = np.zeros(ni)
        if self.init == "spectral":
            U0, V0, bu0, bi0 = spectral_start(by_user, by_item, mu, k, biases, lb,
                                              float(np.sqrt(lu * lv)), rng, fill_scale=init_scale)
        else:
            U0 = init_scale * rng.standard_normal((nu, k))
            V0 = init_scale * rng.standard_normal((ni, k))
            bu0, bi0 = zero_u, zero_i
        u_empty = by_user.counts == 0
        i_empty = by_item.counts == 0
        U0[u_empty] = 0.0
        V0[i_empty] = 0.0
        # X* hold the current iterate's solutions [factors, bias]; Y* the same with the bias
        # column set to 1, which is the design matrix of the other side's solve. The iterate
        # lives in one flat buffer (the state of the Anderson extrapolation); with
        # accelerate=False the sweeps write into it directly.
        # extrapolation needs every direction penalised: with a zero penalty (MLE) the
        # factors' scale and rotation are free, and it was slower than plain ALS there
        accelerate = bool(self.accelerate) and min(lu, lv, lb if biases else lu) > 0
        n_state = (nu + ni) * d
        xbuf = np.zeros(n_state)
        Xu, Xv = _split_state(xbuf, nu, ni, d)
        Xu[:, :k] = U0
        Xv[:, :k] = V0
        if biases:
            Xu[:, k] = bu0
            Xv[:, k] = bi0
            Yu = Xu.copy()
            Yv = Xv.copy()
            Yu[:, k] = 1.0
            Yv[:, k] = 1.0
        else:  # the solutions are their own design matrices
            Yu = Yv = None
        if accelerate:  # the sweep's output g(x) goes to its own buffer
            gbuf = np.zeros(n_state)
            Gu, Gv = _split_state(gbuf, nu, ni, d)
            acc = _AndersonState(n_state, ANDERSON_DEPTH)
        else:
            gbuf, Gu, Gv = xbuf, Xu, Xv
        under_u = np.zeros(nu, dtype=np.bool_)
        under_i = np.zeros(ni, dtype=np.bool_)

        # predictions on the observed entries, in the per-item CSR order (the item half-sweep
        # writes them while its rows are in cache); norms and SSE do not depend on the order
        values = by_item.data
        item_rows = _csr_rows(by_item.indptr)
        pred = np.empty(ratings.nnz)  # at the sweep's output g(x)
        pred_x = np.empty(ratings.nnz)  # at the iterate x
        predict_solutions(by_item.indices, item_rows, Xu, Xv, k, mu, pred_x)
        rows: list[tuple] = []
        converged = False
        n_iter = n_extrapolated = 0
        in_tail = False
        action = "plain"
        t0 = time.perf_counter()
        threads = _ThreadChoice(ratings.nnz * d * d)
        off_i = np.empty(ni)  # offsets of the user half: mu + item biases
        off_u = np.empty(nu)  # and of the item half
        with LazyBar(max_iter, "ALS", enabled=None if self.progress else False) as bar:
            for sweep in range(1, max_iter + 1):
                par_u, par_i = threads.for_sweep(sweep)
                np.add(Xv[:, k] if biases else zero_i, mu, out=off_i)
                t_half = time.perf_counter()
                als_half_sweep(by_user.indptr, by_user.indices, by_user.data,
                               Yv if biases else Xv, off_i, reg_u, Gu, under_u, parallel=par_u,
                               design_out=Yu if biases else None)
                threads.record(sweep, time.perf_counter() - t_half)
                np.add(Gu[:, k] if biases else zero_u, mu, out=off_u)
                als_half_sweep(by_item.indptr, by_item.indices, by_item.data,
                               Yu if biases else Gu, off_u, reg_v, Gv,
                               under_i, parallel=par_i, pred_out=pred,
                               design_out=Yv if biases else None)
                sse, diff2, prev2 = residual_stats(values, pred, pred_x)
                obj = regularised_objective(sse, Gu, Gv, k, lu, lv, lb)
                change = float(np.sqrt(diff2 / prev2)) if prev2 > 0 else float("inf")
                n_iter = sweep
                extrapolated = action == "extrapolated"  # this sweep started from one
                n_extrapolated += int(extrapolated)
                rows.append((sweep, obj, np.sqrt(sse / ratings.nnz), change, time.perf_counter() - t0))
                if self.verbose:
                    print(
                        f"sweep {sweep:3d}  objective {obj:.6g}  train RMSE {rows[-1][2]:.5f}  "
                        f"rel change {change:.3g}{'  (extrapolated start)' if extrapolated else ''}"
                    )
                if not np.isfinite(obj):
                    raise BayesMFError(
                        f"ALS diverged at sweep {sweep} (non-finite objective); "
                        "use method='map' or larger penalties"
                    )
                bar.advance(description=f"ALS sweep {sweep}, rel change {change:.2g} (tol {tol:g})")
                if change < tol:
                    converged = True
                    break
                # the next iterate: the sweep's output, or an Anderson extrapolation from it
                in_tail = in_tail or change < ANDERSON_FROM_CHANGE
                action = (acc.step(xbuf, gbuf, obj, (Gu, Gv), (Xu, Xv), Yv, par_i)
                          if accelerate and in_tail else "plain")
                if action == "plain":
                    if accelerate:
                        xbuf[:] = gbuf
                    pred, pred_x = pred_x, pred
                else:
                    predict_solutions(by_item.indices, item_rows, Xu, Xv, k, mu, pred_x,
                                      parallel=par_i)

        if not converged and accelerate and action == "reverted":
            # stopped right after a discarded sweep: return the better output it reverted to
            gbuf[:] = xbuf
            sse = residual_stats(values, pred_x, pred_x)[0]
        Xu, Xv = Gu, Gv  # the solution is the last (kept) sweep's output
        self.U_ = np.ascontiguousarray(Xu[:, :k])
        self.V_ = np.ascontiguousarray(Xv[:, :k])
        self.mu_ = float(mu)
        self.user_bias_ = Xu[:, k].copy() if biases else np.zeros(nu)
        self.item_bias_ = Xv[:, k].copy() if biases else np.zeros(ni)
        self.sigma_ = float(np.sqrt(sse / ratings.nnz))
        self.history_ = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.underdetermined_users_ = int(np.sum(under_u & ~u_empty))
        self.underdetermined_items_ = int(np.sum(under_i & ~i_empty))
        self.lambda_u_, self.lambda_v_, self.lambda_bias_ = lu, lv, lb
        self.parallel_ = bool(threads.parallel)
        self.extrapolated_sweeps_ = n_extrapolated
        self.link_ = "identity"
        self.ratings_ = ratings
        self.fit_time_ = time.perf_counter() - t_start
        if method == "mle" and (self.underdetermined_users_ or self.underdetermined_items_):
            warnings.warn(
                f"MLE: {self.underdetermined_users_} user(s) and {self.underdetermined_items_} "
                f"item(s) have fewer ratings than the {d} unknowns of their row (rank {k}"
                f"{' + bias' if biases else ''}); their least-squares problem is "
                "underdetermined and was solved with the minimum-norm solution. "
                "Use method='map' to regularise them.",
                UserWarning,
                stacklevel=2,
            )
        if not converged and self.verbose:
            print(f"not converged after {n_iter} sweeps (rel change {change:.3g} >= tol {tol})")
        return self

    # ------------------------------------------------------------------ Laplace
    def _row_covs(self, side: str, rows: np.ndarray) -> np.ndarray:
        """Conditional covariances of ``[factors, bias]`` for the given rows (cached)."""
        cache = self._laplace_cache.setdefault(side, {})
        missing = np.array([r for r in np.unique(rows) if r not in cache], dtype=np.int64)
        if missing.size:
            k = self.U_.shape[1]
            biases = bool(self.biases)
            d = k + int(biases)
            r = self.ratings_
            if side == "user":
                sp, other, reg = r.by_user, self.V_, self.lambda_u_
                other_bias = self.item_bias_
            else:
                sp, other, reg = r.by_item, self.U_, self.lambda_v_
                other_bias = self.user_bias_
            Y = np.ones((other.shape[0], d))
            Y[:, :k] = other
            regv = np.full(d, reg)
            if biases:
                regv[k] = self.lambda_bias_
            covs = np.empty((missing.size, d, d))
            row_covariances(missing, sp.indptr, sp.indices, sp.data, Y, self.mu_ + other_bias,
                            regv, self.sigma_**2, covs)
            for t, row in enumerate(missing):
                cache[int(row)] = covs[t]
        return np.stack([cache[int(x)] for x in rows]) if len(rows) else np.empty((0, 0, 0))

    def laplace_var(self, user_idx: Any, item_idx: Any) -> np.ndarray:
        """Approximate variance of the latent mean ``mu + b_u + b_i + u.v`` for index pairs.

        Uses the conditional (per-row) Laplace approximation: given the fitted item factors,
        user row ``x_u = [u, b_u]`` has Gaussian conditional posterior with covariance
        ``Sigma_u = sigma^2 (Y_u^T Y_u + diag(lambda))^-1`` (the system the ALS step solves),
        and likewise for items. Then ``var ~ y_i^T Sigma_u y_i + x_u^T Sigma_i x_u`` with
        ``y_i = [v_i, 1]``, ``x_u = [u_u, 1]`` (bias coordinates only with ``biases=True``).
        The predictive variance of a new rating is this plus ``sigma_**2``. Covariances are
        computed lazily for the rows requested and cached, so memory grows with the number of
        distinct users and items asked about, not with the data.

        An unknown index (-1) gets zero variance from that side (the prediction there is the
        fixed fallback). For ``method="mle"`` there is no prior and so no Laplace
        approximation: the result is all NaN (documented choice, so downstream prediction
        tables show missing uncertainty rather than failing).

        Returns
        -------
        ndarray of float, same shape as the inputs.
        """
        u, i = self._check_pairs(user_idx, item_idx)
        shape = u.shape
        u, i = u.ravel(), i.ravel()
        if self.method == "mle":
            return np.full(shape, np.nan)
        k = self.U_.shape[1]
        biases = bool(self.biases)
        d = k + int(biases)
        out = np.zeros(u.size)
        both_known = (u >= 0) & (i >= 0)
        ku = u >= 0
        if np.any(ku):
            Su = self._row_covs("user", u[ku])
            y = np.ones((int(ku.sum()), d))
            y[:, :k] = np.where(both_known[ku, None], self.V_[np.where(i[ku] >= 0, i[ku], 0)], 0.0)
            out[ku] += np.einsum("pa,pab,pb->p", y, Su, y)
        ki = i >= 0
        if np.any(ki):
            Si = self._row_covs("item", i[ki])
            x = np.ones((int(ki.sum()), d))
            x[:, :k] = np.where(both_known[ki, None], self.U_[np.where(u[ki] >= 0, u[ki], 0)], 0.0)
            out[ki] += np.einsum("pa,pab,pb->p", x, Si, x)
        return out.reshape(shape)
