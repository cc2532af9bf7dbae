"""Standard rating-prediction baselines, as bayesmf estimators.

Every baseline but the random one predicts ``mu_ + user_bias_[u] + item_bias_[i]``:

======================== ============================ =====================================
estimator                ``user_bias_``               ``item_bias_``
======================== ============================ =====================================
GlobalMeanBaseline       0                            0
UserMeanBaseline         user mean - mu               0
ItemMeanBaseline         0                            item mean - mu
MeanOfMeansBaseline      (user mean - mu) / 3         (item mean - mu) / 3
BiasBaseline             regularised b_u              regularised b_i
======================== ============================ =====================================

where ``mu`` is the global training mean. A user or item with no training rating (or an
index of -1, an id never seen) gets a zero bias, i.e. the global-mean fallback. So
``MeanOfMeansBaseline`` predicts ``(mu + user mean + item mean) / 3``.

Each baseline also describes a predictive distribution, so calibration metrics apply to it:
Normal(prediction, ``sigma_``) with ``sigma_`` the root-mean-square training residual; the
random baseline's predictive is the uniform distribution on the scale.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
from scipy import stats

from bayesmf._validation import (
    as_rng,
    check_nonnegative_float,
    check_positive_int,
    check_probability,
    check_ratings,
)
from bayesmf.data import Ratings, RatingScale
from bayesmf.exceptions import BayesMFError, DataError
from bayesmf.kernels.als import bias_passes
from bayesmf.models.base import FitBase

__all__ = [
    "UniformRandomBaseline",
    "GlobalMeanBaseline",
    "UserMeanBaseline",
    "ItemMeanBaseline",
    "MeanOfMeansBaseline",
    "BiasBaseline",
    "BASELINES",
]


def _group_means(index: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group mean (NaN for empty groups) and counts."""
    counts = np.bincount(index, minlength=n)
    sums = np.bincount(index, weights=values, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return means, counts


class _Baseline(FitBase):
    """Shared machinery: index checks, Gaussian predictive, fitted-attribute bookkeeping."""

    is_bayesian: ClassVar[bool] = False
    #: predict_mean accepts index -1 (an unknown id) and returns the fallback
    handles_unknown_ids: ClassVar[bool] = True
    #: the predictive is Normal(predict_mean, predict_sd) (CRPS / log density apply)
    predictive_is_gaussian: ClassVar[bool] = True

    def _indices(self, user_idx: Any, item_idx: Any) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        u = np.asarray(user_idx, dtype=np.int64).reshape(-1)
        i = np.asarray(item_idx, dtype=np.int64).reshape(-1)
        if u.shape != i.shape:
            raise BayesMFError(
                f"user_idx and item_idx must have the same length, got {u.size} and {i.size}"
            )
        r = self.ratings_
        if u.size and (u.min() < -1 or u.max() >= r.n_users):
            raise BayesMFError(f"user index out of range [-1, {r.n_users - 1}]")
        if i.size and (i.min() < -1 or i.max() >= r.n_items):
            raise BayesMFError(f"item index out of range [-1, {r.n_items - 1}]")
        return u, i

    def predict_sd(self, user_idx: Any, item_idx: Any) -> np.ndarray:
        """Predictive standard deviation of each pair (``sigma_`` everywhere).

        Parameters
        ----------
        user_idx, item_idx : array_like of int
            Index pairs (``-1`` for an unknown id).

        Returns
        -------
        numpy.ndarray
        """
        u, _ = self._indices(user_idx, item_idx)
        return np.full(u.size, self.sigma_)

    def predict_interval(
        self, user_idx: Any, item_idx: Any, prob: float = 0.9
    ) -> tuple[np.ndarray, np.ndarray]:
        """Central ``prob`` interval of the Normal(prediction, ``sigma_``) predictive.

        Parameters
        ----------
        user_idx, item_idx : array_like of int
            Index pairs (``-1`` for an unknown id).
        prob : float
            Interval probability in (0, 1).

        Returns
        -------
        lower, upper : numpy.ndarray
        """
        prob = check_probability(prob, "prob")
        mean = self.predict_mean(user_idx, item_idx)
        half = stats.norm.ppf(0.5 + prob / 2.0) * self.sigma_
        return mean - half, mean + half


class _BiasesBaseline(_Baseline):
    """Baselines of the form ``mu_ + user_bias_[u] + item_bias_[i]``."""

    def fit(self, ratings: Ratings) -> _BiasesBaseline:
        """Fit the baseline.

        Parameters
        ----------
        ratings : Ratings
            Training ratings.

        Returns
        -------
        self
        """
        ratings = check_ratings(ratings)
        self._validate_params()
        t0 = time.perf_counter()
        self.mu_ = float(ratings.values.mean())
        self.user_bias_, self.item_bias_ = self._fit_biases(ratings, self.mu_)
        resid = (
            ratings.values - self.mu_ - self.user_bias_[ratings.users] - self.item_bias_[ratings.items]
        )
        self.sigma_ = float(max(np.sqrt(np.mean(resid**2)), 1e-12))
        self.link_ = "identity"
        self.ratings_ = ratings
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _validate_params(self) -> None:
        """Check constructor arguments (none by default)."""

    def _fit_biases(self, ratings: Ratings, mu: float) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def predict_mean(self, user_idx: Any, item_idx: Any) -> np.ndarray:
        """Predicted rating ``mu_ + user_bias_[u] + item_bias_[i]`` (not clipped).

        Parameters
        ----------
        user_idx, item_idx : array_like of int
            Index pairs in the training id maps; ``-1`` marks an unknown id (zero bias).

        Returns
        -------
        numpy.ndarray
        """
        u, i = self._indices(user_idx, item_idx)
        bu = np.where(u >= 0, self.user_bias_[np.maximum(u, 0)], 0.0)
        bi = np.where(i >= 0, self.item_bias_[np.maximum(i, 0)], 0.0)
        return self.mu_ + bu + bi


class GlobalMeanBaseline(_BiasesBaseline):
    """Predict the global mean training rating for every pair.

    Examples
    --------
    >>> import pandas as pd
    >>> from bayesmf.data import Ratings
    >>> r = Ratings.from_frame(pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 1],
    ...                                      "rating": [4.0, 2.0, 3.0]}))
    >>> GlobalMeanBaseline().fit(r).predict_mean([0], [1])
    array([3.])
    """

    method: ClassVar[str] = "global_mean"

    def __init__(self) -> None:
        pass

    def _fit_biases(self, ratings: Ratings, mu: float) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(ratings.n_users), np.zeros(ratings.n_items)


class UserMeanBaseline(_BiasesBaseline):
    """Predict each user's mean training rating (the global mean for a user with none)."""

    method: ClassVar[str] = "user_mean"

    def __init__(self) -> None:
        pass

    def _fit_biases(self, ratings: Ratings, mu: float) -> tuple[np.ndarray, np.ndarray]:
        means, _ = _group_means(ratings.users, ratings.values, ratings.n_users)
        return np.nan_to_num(means - mu, nan=0.0), np.zeros(ratings.n_items)


class ItemMeanBaseline(_BiasesBaseline):
    """Predict each item's mean training rating (the global mean for an item with none)."""

    method: ClassVar[str] = "item_mean"

    def __init__(self) -> None:
        pass

    def _fit_biases(self, ratings: Ratings, mu: float) -> tuple[np.ndarray, np.ndarray]:
        means, _ = _group_means(ratings.items, ratings.values, ratings.n_items)
        return np.zeros(ratings.n_users), np.nan_to_num(means - mu, nan=0.0)


class MeanOfMeansBaseline(_BiasesBaseline):
    """Predict ``(global mean + user mean + item mean) / 3``.

    A user or item with no training rating contributes the global mean in place of its own.
    """

    method: ClassVar[str] = "mean_of_means"

    def __init__(self) -> None:
        pass

    def _fit_biases(self, ratings: Ratings, mu: float) -> tuple[np.ndarray, np.ndarray]:
        um, _ = _group_means(ratings.users, ratings.values, ratings.n_users)
        im, _ = _group_means(ratings.items, ratings.values, ratings.n_items)
        return np.nan_to_num(um - mu, nan=0.0) / 3.0, np.nan_to_num(im - mu, nan=0.0) / 3.0


class BiasBaseline(_BiasesBaseline):
    """The regularised bias baseline ``mu + b_u + b_i`` (Koren 2010), fitted by alternating
    closed-form shrunken means.

    Each iteration first sets every item bias, then every user bias, to its ridge solution
    given the other:

    ``b_i = sum_{u in R(i)} (r_ui - mu - b_u) / (lambda_item + |R(i)|)``

    ``b_u = sum_{i in R(u)} (r_ui - mu - b_i) / (lambda_user + |R(u)|)``

    the same schedule as scikit-surprise's ``BaselineOnly`` with ALS (whose defaults,
    ``reg_u=15, reg_i=10, n_epochs=10``, are used here), so the two give the same numbers.

    Parameters
    ----------
    lambda_user, lambda_item : float
        Non-negative ridge penalties of the user and item biases (in units of "pseudo-ratings"
        pulling a bias toward zero).
    n_iter : int
        Number of alternating sweeps.

    Attributes
    ----------
    mu_ : float
        Global training mean.
    user_bias_, item_bias_ : numpy.ndarray
        Fitted biases (zero for users / items without training ratings).
    sigma_ : float
        Root-mean-square training residual.
    history_ : pandas.DataFrame
        One row per sweep: ``sweep, objective, train_rmse``.
    """

    method: ClassVar[str] = "bias"

    def __init__(self, lambda_user: float = 15.0, lambda_item: float = 10.0, n_iter: int = 10) -> None:
        self.lambda_user = lambda_user
        self.lambda_item = lambda_item
        self.n_iter = n_iter

    def _validate_params(self) -> None:
        check_nonnegative_float(self.lambda_user, "lambda_user")
        check_nonnegative_float(self.lambda_item, "lambda_item")
        check_positive_int(self.n_iter, "n_iter")

    def _fit_biases(self, ratings: Ratings, mu: float) -> tuple[np.ndarray, np.ndarray]:
        import pandas as pd

        lu, li = float(self.lambda_user), float(self.lambda_item)
        users, items, r = ratings.users, ratings.items, ratings.values - mu
        by_user, by_item = ratings.by_user, ratings.by_item
        bu = np.zeros(ratings.n_users)
        bi = np.zeros(ratings.n_items)
        rows = []
        for sweep in range(1, int(self.n_iter) + 1):
            bias_passes(by_user.indptr, by_user.indices, by_user.data, by_item.indptr,
                        by_item.indices, by_item.data, mu, lu, li, bu, bi, 1)
            resid = r - bu[users] - bi[items]
            sse = float(resid @ resid)
            rows.append(
                {
                    "sweep": sweep,
                    "objective": sse + lu * float(bu @ bu) + li * float(bi @ bi),
                    "train_rmse": float(np.sqrt(sse / len(r))),
                }
            )
        self.history_ = pd.DataFrame(rows)
        self.n_iter_ = int(self.n_iter)
        return bu, bi


class UniformRandomBaseline(_Baseline):
    """Predict a rating drawn uniformly at random on the rating scale.

    On a stepped scale (e.g. 0.5..5 step 0.5) the prediction is a uniformly chosen level; on a
    continuous scale a uniform draw on ``[min, max]``. The draws are reproducible: every call
    to :meth:`predict_mean` restarts from ``random_state`` when it is an int (a Generator is
    used as is and advances). Its predictive distribution is the same uniform, so
    :meth:`predict_interval` returns the central interval of the uniform on the scale.

    Parameters
    ----------
    random_state : int, numpy.random.Generator or None
        Seed of the draws.
    scale : RatingScale or tuple, optional
        Rating scale to draw on; defaults to the training data's declared scale. A scale is
        required.

    Attributes
    ----------
    scale_ : RatingScale
        The scale used.
    mu_ : float
        Mean of the uniform predictive.
    sigma_ : float
        Standard deviation of the uniform predictive.
    """

    method: ClassVar[str] = "uniform_random"
    predictive_is_gaussian: ClassVar[bool] = False

    def __init__(self, random_state: int | np.random.Generator | None = 0,
                 scale: RatingScale | tuple | None = None) -> None:
        self.random_state = random_state
        self.scale = scale

    def fit(self, ratings: Ratings) -> UniformRandomBaseline:
        """Record the scale (no parameters to learn).

        Parameters
        ----------
        ratings : Ratings
            Training ratings (only their scale and id maps are used).

        Returns
        -------
        self
        """
        ratings = check_ratings(ratings)
        t0 = time.perf_counter()
        scale = self.scale if self.scale is not None else ratings.scale
        if isinstance(scale, tuple):
            scale = RatingScale(*scale)
        if not isinstance(scale, RatingScale):
            raise DataError(
                "UniformRandomBaseline needs a rating scale: the ratings declare none; pass "
                "scale=(min, max, step) or load the data with a scale"
            )
        as_rng(self.random_state)  # validates the seed early
        if scale.step is not None:
            levels = scale.levels
            self.mu_ = float(levels.mean())
            self.sigma_ = float(levels.std())
        else:
            self.mu_ = (scale.min + scale.max) / 2.0
            self.sigma_ = scale.span / np.sqrt(12.0)
        self.scale_ = scale
        self.link_ = "identity"
        self.ratings_ = ratings
        self.fit_time_ = time.perf_counter() - t0
        return self

    def predict_mean(self, user_idx: Any, item_idx: Any) -> np.ndarray:
        """A uniform random rating on the scale for each pair.

        Parameters
        ----------
        user_idx, item_idx : array_like of int
            Index pairs (only their number matters).

        Returns
        -------
        numpy.ndarray
        """
        u, _ = self._indices(user_idx, item_idx)
        rng = as_rng(self.random_state)
        if self.scale_.step is not None:
            return rng.choice(self.scale_.levels, size=u.size)
        return rng.uniform(self.scale_.min, self.scale_.max, size=u.size)

    def predict_interval(
        self, user_idx: Any, item_idx: Any, prob: float = 0.9
    ) -> tuple[np.ndarray, np.ndarray]:
        """Central ``prob`` interval of the uniform predictive on the scale.

        Parameters
        ----------
        user_idx, item_idx : array_like of int
            Index pairs.
        prob : float
            Interval probability in (0, 1).

        Returns
        -------
        lower, upper : numpy.ndarray
            On a stepped scale, the smallest run of central levels holding at least ``prob``
            of the mass; on a continuous scale, the central ``prob`` sub-interval.
        """
        prob = check_probability(prob, "prob")
        u, _ = self._indices(user_idx, item_idx)
        s = self.scale_
        if s.step is not None:
            n = len(s.levels)
            k = int(np.ceil(prob * n - 1e-9))
            start = (n - k) // 2
            lo, hi = s.levels[start], s.levels[start + k - 1]
        else:
            half = (1.0 - prob) / 2.0 * s.span
            lo, hi = s.min + half, s.max - half
        return np.full(u.size, float(lo)), np.full(u.size, float(hi))


#: all baselines by CLI / report name
BASELINES: dict[str, type[_Baseline]] = {
    "uniform_random": UniformRandomBaseline,
    "global_mean": GlobalMeanBaseline,
    "user_mean": UserMeanBaseline,
    "item_mean": ItemMeanBaseline,
    "mean_of_means": MeanOfMeansBaseline,
    "bias": BiasBaseline,
}
