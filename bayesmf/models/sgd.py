"""PMF fitted by stochastic gradient descent: the lecture's per-rating updates, for ALS vs SGD."""

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
from bayesmf.exceptions import BayesMFError
from bayesmf.kernels.als import predict_observed
from bayesmf.kernels.objective import residual_stats
from bayesmf.kernels.sgd import sgd_epoch
from bayesmf.models.pmf import HISTORY_COLUMNS, PointFit
from bayesmf.progress import LazyBar


class SGDPMF(PointFit):
    """Probabilistic matrix factorization fitted by stochastic gradient descent.

    Each epoch visits every training rating once in a fresh random order and applies the
    per-rating updates of :mod:`bayesmf.kernels.sgd` (lecture eqs. 11-12, plus an optional L2
    penalty and biases). With ``lambda_=0`` and ``biases=False`` it is exactly the lecture's
    rule. The model and prediction are those of :class:`~bayesmf.models.pmf.PMF`
    (``mu + b_u + b_i + u.v`` with ``mu`` the training mean), so the two can be compared
    sweep by sweep.

    Parameters
    ----------
    rank : int
        Number of latent factors.
    lr : float
        Learning rate ``alpha``.
    lambda_ : float
        L2 penalty applied at every update (per rating, as in Funk SVD / scikit-surprise).
    biases : bool
        Learn user and item biases.
    n_epochs : int
        Maximum number of passes over the data.
    tol : float
        Stop early when the relative change of the training predictions over one epoch,
        ``||rhat_t - rhat_{t-1}|| / ||rhat_{t-1}||``, falls below ``tol``.
    init_scale : float
        Standard deviation of the initial Gaussian factors.
    random_state : int, numpy Generator or None
        Seed of the initial factors and of the visiting order; reproducible bit for bit.
    verbose : bool
        Print one line per epoch.
    progress : bool
        Draw a progress bar once a fit has run for a second, when stderr is a terminal or
        ``BAYESMF_PROGRESS=1`` (see :mod:`bayesmf.progress`); ``False``: never.

    Attributes
    ----------
    U_, V_, mu_, user_bias_, item_bias_, sigma_, ratings_, fit_time_, link_
        As for :class:`~bayesmf.models.pmf.PMF`.
    history_ : pandas.DataFrame
        One row per epoch (column ``sweep`` = epoch): ``objective`` = the penalised objective
        SGD descends, ``1/2 sum_(u,i) [e^2 + lambda_ (|u_u|^2 + |v_i|^2 + b_u^2 + b_i^2)]``
        evaluated after the epoch, ``train_rmse``, ``rel_change``, ``seconds`` (elapsed).
    n_iter_, converged_
        Epochs run and whether ``tol`` was reached.
    lambda_u_, lambda_v_ : float
        Both equal ``lambda_``. ``underdetermined_users_ = underdetermined_items_ = 0``.
    """

    method: ClassVar[str] = "sgd"

    def __init__(
        self,
        rank: int = 10,
        lr: float = 0.01,
        lambda_: float = 0.02,
        biases: bool = True,
        n_epochs: int = 20,
        tol: float = 1e-4,
        init_scale: float = 0.1,
        random_state: int | np.random.Generator | None = None,
        verbose: bool = False,
        progress: bool = True,
    ) -> None:
        self.rank = rank
        self.lr = lr
        self.lambda_ = lambda_
        self.biases = biases
        self.n_epochs = n_epochs
        self.tol = tol
        self.init_scale = init_scale
        self.random_state = random_state
        self.verbose = verbose
        self.progress = progress

    def fit(self, ratings: Ratings) -> SGDPMF:
        """Fit by SGD; returns ``self``."""
        k = check_positive_int(self.rank, "rank")
        lr = check_positive_float(self.lr, "lr")
        lam = check_nonnegative_float(self.lambda_, "lambda_")
        n_epochs = check_positive_int(self.n_epochs, "n_epochs")
        tol = check_positive_float(self.tol, "tol")
        init_scale = check_nonnegative_float(self.init_scale, "init_scale")
        ratings = check_ratings(ratings)
        rng = as_rng(self.random_state)
        for name in list(vars(self)):
            if name.endswith("_") and not name.startswith("_") and name != "lambda_":
                delattr(self, name)

        t_start = time.perf_counter()
        biases = bool(self.biases)
        nu, ni = ratings.n_users, ratings.n_items
        U = init_scale * rng.standard_normal((nu, k))
        V = init_scale * rng.standard_normal((ni, k))
        bu = np.zeros(nu)
        bi = np.zeros(ni)
        mu = ratings.global_mean
        users, items, values = ratings.users, ratings.items, ratings.values
        n = ratings.nnz
        uc = ratings.user_counts.astype(float)
        ic = ratings.item_counts.astype(float)
        pred = np.empty(n)
        spare = np.empty(n)
        predict_observed(users, items, U, V, mu, bu, bi, pred)
        rows = []
        converged = False
        t0 = time.perf_counter()
        epoch = 0
        with LazyBar(n_epochs, "SGD epoch", enabled=None if self.progress else False) as bar:
            for epoch in range(1, n_epochs + 1):
                order = rng.permutation(n)
                sgd_epoch(order, users, items, values, U, V, mu, bu, bi, lr, lam, biases)
                prev, pred = pred, spare
                spare = prev
                predict_observed(users, items, U, V, mu, bu, bi, pred)
                sse, diff2, prev2 = residual_stats(values, pred, prev)
                pen = float(uc @ np.sum(U * U, axis=1) + ic @ np.sum(V * V, axis=1))
                pen += float(uc @ (bu * bu) + ic @ (bi * bi))
                obj = 0.5 * (sse + lam * pen)
                change = float(np.sqrt(diff2 / prev2)) if prev2 > 0 else float("inf")
                rows.append((epoch, obj, np.sqrt(sse / n), change, time.perf_counter() - t0))
                if self.verbose:
                    print(f"epoch {epoch:3d}  objective {obj:.6g}  train RMSE {rows[-1][2]:.5f}  "
                          f"rel change {change:.3g}")
                if not np.isfinite(obj):
                    raise BayesMFError(
                        f"SGD diverged at epoch {epoch} (non-finite objective); lower the learning "
                        f"rate lr={lr}"
                    )
                bar.advance(description=f"SGD epoch {epoch}, rel change {change:.2g} (tol {tol:g})")
                if change < tol:
                    converged = True
                    break

        self.U_ = U
        self.V_ = V
        self.mu_ = float(mu)
        self.user_bias_ = bu
        self.item_bias_ = bi
        self.sigma_ = float(np.sqrt(sse / n))
        self.history_ = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
        self.n_iter_ = epoch
        self.converged_ = converged
        self.underdetermined_users_ = 0
        self.underdetermined_items_ = 0
        self.lambda_u_ = self.lambda_v_ = lam
        self.link_ = "identity"
        self.ratings_ = ratings
        self.fit_time_ = time.perf_counter() - t_start
        return self
