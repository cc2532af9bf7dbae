"""Implicit-feedback matrix factorization by ALS (Hu, Koren & Volinsky, 2008).

Every (user, item) cell of the full matrix enters the loss: a binary preference ``p_ui``
(1 where an interaction was recorded, 0 elsewhere) with confidence ``c_ui = 1 + alpha * r_ui``
(``r_ui`` the recorded count or rating; ``c = 1`` on unobserved cells)::

    sum_(u,i) c_ui (p_ui - x_u . y_i)^2 + lambda_ (|X|^2 + |Y|^2).

Each half-sweep is a closed-form weighted ridge regression per row
(:func:`bayesmf.kernels.als.implicit_half_sweep`), costing ``O(nnz d^2 + n d^3)`` thanks to the
``Y^T Y`` trick. Predictions are preference *scores* ``x_u . y_i`` for ranking items, not
ratings on a scale.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import pandas as pd

from bayesmf._validation import (
    as_rng,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_ratings,
)
from bayesmf.data import Ratings
from bayesmf.exceptions import DataError
from bayesmf.kernels.als import implicit_half_sweep, predict_observed
from bayesmf.kernels.objective import residual_stats
from bayesmf.models.pmf import HISTORY_COLUMNS, PointFit
from bayesmf.progress import LazyBar


def implicit_loss(
    U: np.ndarray, V: np.ndarray, users: np.ndarray, items: np.ndarray, conf: np.ndarray,
    scores: np.ndarray, lam: float,
) -> float:
    """Full implicit-feedback loss over all cells, in ``O(nnz k + (n_users + n_items) k^2)``.

    ``sum_all c (p - s)^2 = sum_all s^2 + sum_obs [c (1 - s)^2 - s^2]`` and
    ``sum_all s^2 = trace(U^T U V^T V)``.
    """
    all_sq = float(np.sum((U.T @ U) * (V.T @ V)))
    obs = float(np.sum(conf * (1.0 - scores) ** 2 - scores**2))
    return all_sq + obs + lam * (float(np.sum(U * U)) + float(np.sum(V * V)))


class ImplicitALS(PointFit):
    """Confidence-weighted implicit-feedback ALS (Hu, Koren & Volinsky, 2008).

    Parameters
    ----------
    rank : int
        Number of latent factors.
    alpha : float
        Confidence slope: ``c_ui = 1 + alpha * r_ui`` on observed cells (r must be >= 0).
    lambda_ : float
        Ridge penalty (> 0).
    max_iter : int
        Maximum number of sweeps.
    tol : float
        Stop when the relative change of the scores on the observed cells falls below ``tol``.
    init_scale : float
        Standard deviation of the initial factors.
    random_state : int, numpy Generator or None
        Seed of the initial factors.
    progress : bool
        Draw a progress bar once a fit has run for a second, when stderr is a terminal or
        ``BAYESMF_PROGRESS=1`` (see :mod:`bayesmf.progress`); ``False``: never.

    Attributes
    ----------
    U_, V_ : ndarray
        User and item factors; ``predict_mean`` returns the scores ``U_[u] . V_[i]``.
    mu_, user_bias_, item_bias_ : zero
        Kept for the common point-fit interface.
    sigma_ : float
        NaN: the model has no rating-noise scale.
    history_ : pandas.DataFrame
        Per sweep: ``objective`` (the full loss above), ``train_rmse`` (RMS of ``1 - score`` on
        observed cells), ``rel_change``, ``seconds``.
    """

    method: ClassVar[str] = "implicit"

    def __init__(
        self,
        rank: int = 10,
        alpha: float = 40.0,
        lambda_: float = 0.1,
        max_iter: int = 15,
        tol: float = 1e-4,
        init_scale: float = 0.01,
        random_state: int | np.random.Generator | None = None,
        progress: bool = True,
    ) -> None:
        self.rank = rank
        self.alpha = alpha
        self.lambda_ = lambda_
        self.max_iter = max_iter
        self.tol = tol
        self.progress = progress
        self.init_scale = init_scale
        self.random_state = random_state

    def fit(self, ratings: Ratings) -> ImplicitALS:
        """Fit by alternating weighted least squares; returns ``self``.

        Raises
        ------
        DataError
            If any recorded value is negative (confidences must be >= 1).
        """
        k = check_positive_int(self.rank, "rank")
        alpha = check_nonnegative_float(self.alpha, "alpha")
        lam = check_positive_float(self.lambda_, "lambda_")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        tol = check_positive_float(self.tol, "tol")
        init_scale = check_nonnegative_float(self.init_scale, "init_scale")
        ratings = check_ratings(ratings)
        if np.any(ratings.values < 0):
            raise DataError("ImplicitALS needs non-negative counts/ratings (confidence 1 + alpha r)")
        rng = as_rng(self.random_state)
        for name in list(vars(self)):
            if name.endswith("_") and not name.startswith("_") and name != "lambda_":
                delattr(self, name)

        t_start = time.perf_counter()
        nu, ni = ratings.n_users, ratings.n_items
        bu_csr, bi_csr = ratings.by_user, ratings.by_item
        conf_u = 1.0 + alpha * bu_csr.data
        conf_i = 1.0 + alpha * bi_csr.data
        U = init_scale * rng.standard_normal((nu, k))
        V = init_scale * rng.standard_normal((ni, k))
        users, items = ratings.users, ratings.items
        conf = 1.0 + alpha * ratings.values
        zu, zi = np.zeros(nu), np.zeros(ni)
        ones = np.ones(ratings.nnz)
        scores = np.empty(ratings.nnz)
        spare = np.empty(ratings.nnz)
        predict_observed(users, items, U, V, 0.0, zu, zi, scores)
        rows = []
        converged = False
        t0 = time.perf_counter()
        sweep = 0
        with LazyBar(max_iter, "ALS sweep", enabled=None if self.progress else False) as bar:
            for sweep in range(1, max_iter + 1):
                implicit_half_sweep(bu_csr.indptr, bu_csr.indices, conf_u, V, V.T @ V, lam, U)
                implicit_half_sweep(bi_csr.indptr, bi_csr.indices, conf_i, U, U.T @ U, lam, V)
                prev, scores = scores, spare
                spare = prev
                predict_observed(users, items, U, V, 0.0, zu, zi, scores)
                sse, diff2, prev2 = residual_stats(ones, scores, prev)
                change = float(np.sqrt(diff2 / prev2)) if prev2 > 0 else float("inf")
                obj = implicit_loss(U, V, users, items, conf, scores, lam)
                rows.append((sweep, obj, np.sqrt(sse / ratings.nnz), change, time.perf_counter() - t0))
                bar.advance(description=f"ALS sweep {sweep}, rel change {change:.2g} (tol {tol:g})")
                if change < tol:
                    converged = True
                    break

        self.U_ = U
        self.V_ = V
        self.mu_ = 0.0
        self.user_bias_ = zu
        self.item_bias_ = zi
        self.sigma_ = float("nan")
        self.history_ = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
        self.n_iter_ = sweep
        self.converged_ = converged
        self.underdetermined_users_ = 0
        self.underdetermined_items_ = 0
        self.link_ = "identity"
        self.ratings_ = ratings
        self.fit_time_ = time.perf_counter() - t_start
        return self
