"""Conventions shared by every estimator: stored arguments, fitted-state checks, delegation.

Every estimator (MLE, MAP, SGD, logistic, Gibbs, NUTS, ADVI) follows scikit-learn's rules:
the constructor only stores its arguments, ``fit`` returns ``self``, fitted attributes end in
``_``, and using a fitted-only method before ``fit`` raises :class:`~bayesmf.exceptions.NotFittedError`.

The user-facing prediction, recommendation, fold-in and save methods are thin wrappers around
functions in :mod:`bayesmf.predict`, :mod:`bayesmf.coldstart` and :mod:`bayesmf.io`, so one
implementation serves all fits.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, ClassVar

import pandas as pd

from bayesmf._validation import check_fitted


class FitBase:
    """Base class for bayesmf estimators.

    Subclasses set the class attribute ``method`` (``"mle"``, ``"map"``, ``"sgd"``,
    ``"logistic"``, ``"gibbs"``, ``"nuts"``, ``"advi"``) and ``is_bayesian``.
    """

    method: ClassVar[str] = "base"
    is_bayesian: ClassVar[bool] = False
    #: the fitted attribute whose presence marks the estimator as fitted
    _fitted_attr: ClassVar[str] = "ratings_"

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """Return the constructor arguments as a dict."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> FitBase:
        """Set constructor arguments (invalidates nothing: call ``fit`` again)."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise TypeError(f"{type(self).__name__} has no parameter {key!r}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_fitted(self) -> None:
        check_fitted(self, self._fitted_attr)

    def _check_convergence(self) -> None:
        """End of an MCMC ``fit``: set ``diagnostics_`` and warn unless it is all ``ok``.

        Runs :func:`bayesmf.diagnostics.check_convergence` when the estimator's
        ``check_convergence`` argument is true (None for one chain); the warning points at the
        caller of ``fit``.
        """
        self.diagnostics_ = None
        if getattr(self, "check_convergence", False):
            from bayesmf.diagnostics import check_convergence

            post = self.idata_.posterior
            if post.sizes["chain"] * post.sizes["draw"] < 4:
                # e.g. Ctrl-C before four draws were kept: return them, say why unchecked
                warnings.warn(
                    f"{type(self).__name__}: only {post.sizes['chain'] * post.sizes['draw']} "
                    "posterior draw(s) kept, too few to check convergence (needs 4)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return
            # frames: check_convergence <- this method <- fit <- the user's call
            self.diagnostics_ = check_convergence(self, stacklevel=3)

    # ------------------------------------------------------------------ delegation
    def predict(self, pairs: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
        """Predict ratings with uncertainty for (user, item) pairs.

        See :func:`bayesmf.predict.predict` for the arguments and the output columns.
        """
        from bayesmf.predict import predict

        return predict(self, pairs, **kwargs)

    def recommend(self, user: Any, n: int = 10, **kwargs: Any) -> pd.DataFrame:
        """Top-``n`` unseen items for ``user``; see :func:`bayesmf.predict.recommend`."""
        from bayesmf.predict import recommend

        return recommend(self, user, n=n, **kwargs)

    @classmethod
    def load(cls, path: str) -> FitBase:
        """Load a fit saved by :meth:`save`, refusing files written by another model class."""
        from bayesmf.io import load

        return load(path, model_class=cls)

    def save(self, path: str) -> None:
        """Save the fit to ``path``; see :func:`bayesmf.io.save`."""
        from bayesmf.io import save

        save(self, path)
