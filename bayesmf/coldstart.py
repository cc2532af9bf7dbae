"""Cold start: fold a new user into a fitted model without refitting.

Given the item side of a fit, a new user's vector ``x = [u, b_u]`` has a closed-form
conditional posterior. With ``y_j = [v_j, 1]`` for each item ``j`` the user rated and
``t_j = r_j - mu - c_j``:

.. math::

    A = \\Lambda_0 + \\sigma^{-2} \\sum_j y_j y_j^T, \\qquad
    x \\mid \\text{data} \\sim N\\big(A^{-1}(\\Lambda_0 m_0 + \\sigma^{-2} \\sum_j y_j t_j),\\ A^{-1}\\big)

- **Bayesian fits**: per posterior draw ``s``, with that draw's item factors, biases, noise and
  the population prior ``N(m_0, \\Lambda_0^{-1})`` of the user vectors (the hierarchical prior's
  draw: ``mu_u``, ``Lambda_u``, ``sigma_user_bias``). Predictions integrate ``x`` analytically
  per draw (Rao-Blackwellised: no sampling of ``x``), then mix over draws.
- **MAP**: the same solve is the ALS ridge step ``(sum y y^T + diag(lambda)) x = sum y t`` with
  the fitted penalties (``lambda_u`` for factors, ``lambda_bias`` for the bias), and its
  conditional Laplace covariance ``sigma^2 A^-1``.
- **MLE**: the minimum-norm least-squares solution, no covariance (no uncertainty).

The Gram matrix is built by the same :func:`~bayesmf.kernels.linalg.row_normal_equations` the
ALS and Gibbs samplers use, then factorised with :func:`~bayesmf.kernels.linalg.cholesky_inplace`.

A user with no ratings at all gets the population predictive (the prior, wide intervals) and is
flagged ``cold_user``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from bayesmf._validation import check_choice, check_positive_int, check_probability
from bayesmf.exceptions import BayesMFError, DataError
from bayesmf.kernels.linalg import (
    cholesky_inplace,
    cholesky_solve,
    min_norm_solve,
    row_normal_equations,
)
from bayesmf.predict import (
    INTERVALS,
    RECOMMEND_BY,
    PredictiveParts,
    _frame,
    _lookup,
    predictive_parts,
    predictive_summary,
)

__all__ = ["FoldedInUser", "fold_in_user", "fold_in_kernel"]


@njit(cache=True)
def fold_in_kernel(
    items: np.ndarray,
    values: np.ndarray,
    V: np.ndarray,
    mu: np.ndarray,
    bi: np.ndarray,
    sigma: np.ndarray,
    prior_prec: np.ndarray,
    prior_shift: np.ndarray,
    d: int,
    out_mean: np.ndarray,
    out_cov: np.ndarray,
) -> int:
    """Per-draw Gaussian conditional of a new user's ``[u, b_u]`` (first ``d`` coordinates).

    For each draw ``s``: ``A = prior_prec[s] + G / sigma_s^2`` and
    ``b = prior_shift[s] + g / sigma_s^2`` where ``G, g`` are the Gram matrix and right-hand
    side of the user's ratings (``y_j = [V[s, items[j]], 1][:d]``, offset ``mu + c_j``);
    ``out_mean[s] = A^-1 b`` and ``out_cov[s] = A^-1``. If ``A`` is singular (MLE, no prior)
    the minimum-norm solution is written and ``out_cov[s]`` is NaN.

    Returns
    -------
    int
        Number of draws whose system was singular.
    """
    n = items.shape[0]
    S = out_mean.shape[0]
    k = V.shape[2]
    Y = np.empty((n, d))
    off = np.empty(n)
    indptr = np.array([0, n], dtype=np.int64)
    idx = np.arange(n).astype(np.int32)
    A = np.empty((d, d))
    b = np.empty(d)
    x = np.empty(d)
    e = np.empty(d)
    singular = 0
    for s in range(S):
        sv = s if V.shape[0] > 1 else 0
        sb = s if bi.shape[0] > 1 else 0
        sp = s if prior_prec.shape[0] > 1 else 0
        for j in range(n):
            for a in range(d):
                Y[j, a] = V[sv, items[j], a] if a < k else 1.0
            off[j] = mu[s if mu.shape[0] > 1 else 0] + bi[sb, items[j]]
        row_normal_equations(0, indptr, idx, values, Y, off, A, b)
        s2 = sigma[s if sigma.shape[0] > 1 else 0] ** 2
        for a in range(d):
            b[a] = b[a] / s2 + prior_shift[sp, a]
            for c in range(d):
                A[a, c] = A[a, c] / s2 + prior_prec[sp, a, c]
        Acopy = A.copy()
        if cholesky_inplace(A):
            cholesky_solve(A, b, x)
            for a in range(d):
                out_mean[s, a] = x[a]
            for c in range(d):
                for a in range(d):
                    e[a] = 1.0 if a == c else 0.0
                cholesky_solve(A, e, x)
                for a in range(d):
                    out_cov[s, a, c] = x[a]
        else:
            singular += 1
            min_norm_solve(Acopy, b, x, 1e-10)
            for a in range(d):
                out_mean[s, a] = x[a]
                for c in range(d):
                    out_cov[s, a, c] = np.nan
    return singular


@dataclass
class FoldedInUser:
    """A new user folded into a fit: per-draw Gaussian of ``[u, b_u]`` and predictions.

    Attributes
    ----------
    fit : FitBase
        The fit the user was folded into (unchanged).
    mean_ : ndarray, shape (S, k + 1)
        Per-draw posterior mean of ``[u, b_u]`` (``S = 1`` for point fits).
    cov_ : ndarray, shape (S, k + 1, k + 1)
        Per-draw posterior covariance (NaN for MLE).
    n_ratings_ : int
        Number of the user's ratings used (ratings of unknown items are ignored).
    seen_items_ : ndarray of int
        Item indices the user rated.
    label : hashable
        The id shown in the ``user`` column of predictions.
    """

    fit: Any
    parts: PredictiveParts
    mean_: np.ndarray
    cov_: np.ndarray
    n_ratings_: int
    seen_items_: np.ndarray
    label: Any = "new_user"

    @property
    def is_cold(self) -> bool:
        """True when the user had no usable rating (population predictive)."""
        return self.n_ratings_ == 0

    def predict(
        self,
        items: Any = None,
        prob: float = 0.9,
        interval: str = "eti",
        round: bool = False,
        levels: bool = True,
        random_state: Any = 0,
    ) -> pd.DataFrame:
        """Predictions with uncertainty for this user (same columns as :func:`bayesmf.predict.predict`).

        Parameters
        ----------
        items : sequence of raw item ids, optional
            Items to predict; default every item of the training data.
        prob, interval, round, levels, random_state
            As in :func:`bayesmf.predict.predict`.

        Returns
        -------
        pandas.DataFrame
        """
        prob = check_probability(prob, "prob")
        interval = check_choice(interval, "interval", INTERVALS)
        r = self.parts.ratings
        raw = np.asarray(r.item_ids) if items is None else np.asarray(list(items), dtype=object)
        if raw.size == 0:
            raise BayesMFError("the item list is empty: nothing to predict")
        _, i = _lookup(r, np.zeros(raw.size, dtype=object), raw)
        u = np.full(raw.size, -1, dtype=np.int64)
        summ = predictive_summary(self.fit, u, i, probs=(prob,), interval=interval,
                                  levels=levels, random_state=random_state, parts=self.parts,
                                  user_pop=(self.mean_, self.cov_))
        summ.cold_user[:] = self.is_cold
        users = np.full(raw.size, self.label, dtype=object)
        return _frame(self.parts, users, raw, summ, prob, round, levels)

    def recommend(self, n: int = 10, by: str = "mean", prob: float = 0.9) -> pd.DataFrame:
        """Top-``n`` items the user has not rated, ranked by ``"mean"`` or ``"lower"`` bound."""
        n = check_positive_int(n, "n")
        by = check_choice(by, "by", RECOMMEND_BY[:2])
        r = self.parts.ratings
        cand = np.setdiff1d(np.flatnonzero(r.item_counts > 0), self.seen_items_)
        df = self.predict(items=r.item_ids[cand], prob=prob, levels=False)
        df = df.sort_values(by, ascending=False, kind="stable").head(n).reset_index(drop=True)
        titles = r.item_titles(r.item_index(df["item"]))
        if titles is not None:
            df["title"] = titles
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        return df


def _user_ratings(fit: Any, ratings: Any, item_col: str, rating_col: str) -> tuple[np.ndarray, ...]:
    parts = predictive_parts(fit)
    r = parts.ratings
    if ratings is None:
        return np.zeros(0, np.int64), np.zeros(0)
    if not isinstance(ratings, pd.DataFrame):
        raise DataError(f"ratings must be a DataFrame with columns {item_col!r}, {rating_col!r}, "
                        f"got {type(ratings).__name__}")
    missing = [c for c in (item_col, rating_col) if c not in ratings.columns]
    if missing:
        raise DataError(f"the new user's ratings lack column(s) {missing}; they have "
                        f"{list(ratings.columns)}")
    values = pd.to_numeric(ratings[rating_col], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise DataError(f"column {rating_col!r} has non-numeric, NaN or infinite ratings")
    if r.scale is not None and r.scale.off_scale(values).any():
        raise DataError(f"some ratings are off the fit's scale {r.scale.min}..{r.scale.max}")
    if ratings[item_col].duplicated().any():
        raise DataError("the new user rated some item more than once")
    items = np.asarray(r.item_index(ratings[item_col]), dtype=np.int64)
    unknown = items < 0
    if unknown.any():
        warnings.warn(
            f"{int(unknown.sum())} rated item(s) are unknown to the fit and were ignored, e.g. "
            f"{ratings[item_col].to_numpy()[unknown][:3].tolist()}",
            UserWarning,
            stacklevel=3,
        )
    return items[~unknown], values[~unknown]


def fold_in_user(
    fit: Any,
    ratings: pd.DataFrame | None,
    item_col: str = "item",
    rating_col: str = "rating",
    label: Any = "new_user",
) -> FoldedInUser:
    """Fold a new user into a fitted model from their ratings, without refitting.

    Parameters
    ----------
    fit : FitBase
        A fitted factor model: a Bayesian fit (per-draw conditional posterior), MAP (ridge solve
        and Laplace covariance) or MLE (minimum-norm solve, no uncertainty).
    ratings : pandas.DataFrame or None
        The new user's ratings, columns ``item_col`` (raw item ids) and ``rating_col``. ``None``
        or an empty frame gives the population (cold-start) predictive.
    item_col, rating_col : str
        Column names.
    label : hashable
        Id shown in the ``user`` column of the predictions.

    Returns
    -------
    FoldedInUser
        Call ``.predict(items)`` / ``.recommend(n)`` on it.

    Raises
    ------
    DataError
        Missing columns, non-numeric or off-scale ratings, duplicate items.
    BayesMFError
        A fit without factors (a baseline) or without draws.
    """
    parts = predictive_parts(fit)
    if parts.kind == "native":
        raise BayesMFError(f"{type(fit).__name__} has no factors to fold a user into")
    items, values = _user_ratings(fit, ratings, item_col, rating_col)
    k = parts.rank
    pop_mean, pop_cov = parts.population("user")
    if items.size == 0:
        return FoldedInUser(fit, parts, pop_mean, pop_cov, 0, items, label)
    S = parts.n_samples
    if parts.link != 0:
        raise BayesMFError("fold-in is closed-form only for the identity link")
    if parts.kind == "draws":
        has_bias = bool(np.any(pop_cov[:, k, k] > 0))
        d = k + int(has_bias)
        prec = np.linalg.inv(pop_cov[:, :d, :d])
        shift = np.einsum("sab,sb->sa", prec, pop_mean[:, :d])
    else:
        has_bias = bool(getattr(fit, "biases", np.any(parts.item_bias)))
        d = k + int(has_bias)
        lam = np.full(d, float(getattr(fit, "lambda_u_", getattr(fit, "lambda_u", 0.0))))
        if has_bias:
            lam[k] = float(getattr(fit, "lambda_bias_", getattr(fit, "lambda_bias", lam[0])))
        if parts.kind == "point":
            lam[:] = 0.0 if parts.method == "mle" else lam
        s2 = float(parts.sigma[0]) ** 2 if parts.sigma[0] > 0 else 1.0
        prec = (np.diag(lam) / s2)[None]
        shift = np.zeros((1, d))
    mean = np.zeros((S, d))
    cov = np.zeros((S, d, d))
    sig = parts.sigma if parts.sigma[0] > 0 else np.ones(1)
    fold_in_kernel(items, values, parts.V, parts.mu, parts.item_bias, sig,
                   np.ascontiguousarray(prec), np.ascontiguousarray(shift), d, mean, cov)
    full_mean = np.zeros((S, k + 1))
    full_cov = np.zeros((S, k + 1, k + 1))
    full_mean[:, :d] = mean
    full_cov[:, :d, :d] = cov
    if not parts.has_uncertainty:
        full_cov[:] = 0.0
    return FoldedInUser(fit, parts, full_mean, full_cov, int(items.size), items, label)
