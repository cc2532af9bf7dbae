"""Logistic-link PMF (Salakhutdinov & Mnih, 2008, section 2), fitted by L-BFGS-B.

Ratings on a declared scale ``min..max`` are mapped to ``t = (r - min) / (max - min)`` in
``[0, 1]`` and modelled as ``t ~ Normal(g(eta), sigma^2)`` with ``g`` the logistic function and
``eta = mu + b_u + b_i + u . v`` (``mu`` an unpenalised intercept; biases optional). The MAP
objective::

    1/2 sum_(u,i) (t_ui - g(eta_ui))^2 + lambda_u/2 |U|^2 + lambda_v/2 |V|^2
        + lambda_bias/2 (|b_user|^2 + |b_item|^2)

is minimised jointly over all parameters with scipy's L-BFGS-B, using the vectorised objective
and gradient of :func:`bayesmf.kernels.objective.logistic_objective_grad`. Predictions are
``min + (max - min) g(eta)``, always inside the scale.
"""

from __future__ import annotations

import contextlib
import time
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from bayesmf._validation import (
    as_rng,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_ratings,
)
from bayesmf.data import Ratings
from bayesmf.exceptions import DataError
from bayesmf.kernels.als import predict_observed
from bayesmf.kernels.objective import logistic_objective_grad
from bayesmf.models.pmf import HISTORY_COLUMNS, PointFit


def _single_threaded_blas() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread while L-BFGS-B runs, if threadpoolctl is available.

    L-BFGS-B's vector updates are small BLAS-1 calls; multi-threaded BLAS only adds
    synchronisation (and stalls badly on a busy machine).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class LogisticPMF(PointFit):
    """PMF with a logistic link on ratings rescaled to [0, 1] (PMF paper), MAP by L-BFGS-B.

    Parameters
    ----------
    rank : int
        Number of latent factors.
    lambda_u, lambda_v : float
        Penalties on the factors, ``sigma^2 / sigma_u^2`` with ``sigma`` the noise sd on the
        [0, 1] scale (so much smaller numbers than for :class:`~bayesmf.models.pmf.PMF`, whose
        noise is in rating units). Default 0.5: on one 80/20 split of ml-latest-small (rank 10)
        lambda = 0.1, 0.5, 1, 2 gave held-out RMSE 0.957, 0.853, 0.855, 0.862.
    biases : bool
        Add user and item biases inside the link.
    lambda_bias : float
        Penalty on the biases.
    max_iter : int
        Maximum number of L-BFGS-B iterations.
    tol : float
        Relative reduction of the objective below which L-BFGS-B stops (its ``ftol``).
    init_scale : float
        Standard deviation of the initial factors.
    random_state : int, numpy Generator or None
        Seed of the initial factors.

    Attributes
    ----------
    U_, V_, mu_, user_bias_, item_bias_ : ndarray / float
        Parameters of ``eta`` (``mu_`` is on the logit scale).
    sigma_ : float
        Residual sd on the [0, 1] scale (``sigma_scale_ = "unit"``; multiply by the scale's span
        for rating units).
    link_ : str
        ``"logistic"``.
    history_ : pandas.DataFrame
        One row per L-BFGS-B iteration (``sweep`` = iteration): ``objective``, ``train_rmse``
        (rating units), ``rel_change`` of the training predictions, ``seconds``.
    n_iter_, converged_, optimizer_message_
        From scipy's result.
    """

    method: ClassVar[str] = "logistic"

    def __init__(
        self,
        rank: int = 10,
        lambda_u: float = 0.5,
        lambda_v: float = 0.5,
        biases: bool = True,
        lambda_bias: float = 0.1,
        max_iter: int = 300,
        tol: float = 1e-7,
        init_scale: float = 0.1,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.rank = rank
        self.lambda_u = lambda_u
        self.lambda_v = lambda_v
        self.biases = biases
        self.lambda_bias = lambda_bias
        self.max_iter = max_iter
        self.tol = tol
        self.init_scale = init_scale
        self.random_state = random_state

    def fit(self, ratings: Ratings) -> LogisticPMF:
        """Fit by L-BFGS-B; returns ``self``.

        Raises
        ------
        DataError
            If ``ratings`` has no declared rating scale (the link needs ``min`` and ``max``).
        """
        k = check_positive_int(self.rank, "rank")
        lu = check_nonnegative_float(self.lambda_u, "lambda_u")
        lv = check_nonnegative_float(self.lambda_v, "lambda_v")
        lb = check_nonnegative_float(self.lambda_bias, "lambda_bias")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        tol = check_positive_float(self.tol, "tol")
        init_scale = check_nonnegative_float(self.init_scale, "init_scale")
        ratings = check_ratings(ratings)
        if ratings.scale is None:
            raise DataError(
                "LogisticPMF needs a declared rating scale to map ratings to [0, 1]; build the "
                "Ratings with scale=(min, max, step) or infer_scale=True"
            )
        rng = as_rng(self.random_state)
        for name in list(vars(self)):
            if name.endswith("_") and not name.startswith("_"):
                delattr(self, name)

        t_start = time.perf_counter()
        biases = bool(self.biases)
        sc = ratings.scale
        nu, ni = ratings.n_users, ratings.n_items
        users, items = ratings.users, ratings.items
        t = (ratings.values - sc.min) / sc.span
        tbar = float(np.clip(t.mean(), 1e-3, 1 - 1e-3))
        sizes = [nu * k, ni * k, nu, ni, 1]
        cuts = np.cumsum(sizes)[:-1]
        x0 = np.concatenate([
            init_scale * rng.standard_normal(nu * k),
            init_scale * rng.standard_normal(ni * k),
            np.zeros(nu + ni),
            [np.log(tbar / (1 - tbar))],
        ])
        gU = np.empty((nu, k))
        gV = np.empty((ni, k))
        gbu = np.empty(nu)
        gbi = np.empty(ni)
        zu, zi = np.zeros(nu), np.zeros(ni)

        def unpack(x: np.ndarray):
            U, V, bu, bi, mu = np.split(x, cuts)
            return U.reshape(nu, k), V.reshape(ni, k), bu, bi, float(mu[0])

        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            U, V, bu, bi, mu = unpack(x)
            if not biases:
                bu, bi = zu, zi
            obj, gmu = logistic_objective_grad(users, items, t, U, V, mu, bu, bi, lu, lv, lb,
                                               gU, gV, gbu, gbi)
            if not biases:
                gbu[:] = 0.0
                gbi[:] = 0.0
            return obj, np.concatenate([gU.ravel(), gV.ravel(), gbu, gbi, [gmu]])

        eta_buf = np.empty(ratings.nnz)

        def eta_of(x: np.ndarray) -> np.ndarray:
            U, V, bu, bi, mu = unpack(x)
            if not biases:
                bu, bi = zu, zi
            predict_observed(users, items, U, V, mu, bu, bi, eta_buf)
            return eta_buf.copy()

        rows: list[tuple] = []
        state = {"prev": sc.min + sc.span * _sigmoid(eta_of(x0))}
        t0 = time.perf_counter()

        def callback(intermediate_result) -> None:
            x = intermediate_result.x
            pred = sc.min + sc.span * _sigmoid(eta_of(x))
            prev = state["prev"]
            change = float(np.linalg.norm(pred - prev) / np.linalg.norm(prev))
            state["prev"] = pred
            rmse = float(np.sqrt(np.mean((pred - ratings.values) ** 2)))
            rows.append((len(rows) + 1, float(intermediate_result.fun), rmse, change,
                         time.perf_counter() - t0))

        with _single_threaded_blas():
            res = minimize(fun, x0, jac=True, method="L-BFGS-B", callback=callback,
                           options={"maxiter": max_iter, "ftol": tol, "gtol": 1e-9, "maxcor": 20})
        U, V, bu, bi, mu = unpack(res.x)
        self.U_ = np.ascontiguousarray(U)
        self.V_ = np.ascontiguousarray(V)
        self.mu_ = mu
        self.user_bias_ = bu.copy() if biases else np.zeros(nu)
        self.item_bias_ = bi.copy() if biases else np.zeros(ni)
        # zero factors (and biases) for users / items without a training rating
        self.U_[ratings.user_counts == 0] = 0.0
        self.V_[ratings.item_counts == 0] = 0.0
        self.user_bias_[ratings.user_counts == 0] = 0.0
        self.item_bias_[ratings.item_counts == 0] = 0.0
        fitted = _sigmoid(eta_of(res.x))
        self.sigma_ = float(np.sqrt(np.mean((t - fitted) ** 2)))
        self.sigma_scale_ = "unit"
        self.history_ = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
        self.n_iter_ = int(res.nit)
        self.converged_ = bool(res.success)
        self.optimizer_message_ = str(res.message)
        self.lambda_u_, self.lambda_v_, self.lambda_bias_ = lu, lv, lb
        self.underdetermined_users_ = 0
        self.underdetermined_items_ = 0
        self.link_ = "logistic"
        self.ratings_ = ratings
        self.fit_time_ = time.perf_counter() - t_start
        return self
