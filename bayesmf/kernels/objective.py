"""Objectives of the point estimators, as pure functions on arrays.

* :func:`squared_error` -- sum of squared residuals of the identity-link model on the observed
  entries (numba, parallel) -- and :func:`regularised_objective`, the MAP objective
  ``SSE/2 + sum_k lambda_k ||X_k||^2 / 2`` that each ALS half-sweep minimises exactly.
* :func:`logistic_objective_grad` -- objective and gradient of the logistic-link PMF
  (Salakhutdinov & Mnih, 2008) on ratings mapped to ``[0, 1]``, for a quasi-Newton optimiser.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from bayesmf.kernels.linalg import latent_mean


@njit(parallel=True, cache=True, fastmath=True)
def squared_error(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
) -> float:
    """Sum over observed pairs of ``(r - mu - bu[u] - bi[i] - U[u].V[i])**2``."""
    total = 0.0
    for p in prange(users.shape[0]):
        e = values[p] - latent_mean(users[p], items[p], U, V, mu, bu, bi)
        total += e * e
    return total


@njit(cache=True, fastmath=True)
def regularised_objective(
    sse: float,
    Xu: np.ndarray,
    Xv: np.ndarray,
    k: int,
    lambda_u: float,
    lambda_v: float,
    lambda_bias: float,
) -> float:
    """``sse/2 + (lambda_u ||U||^2 + lambda_v ||V||^2 + lambda_bias (||bu||^2 + ||bi||^2)) / 2``.

    ``Xu`` and ``Xv`` hold the factors in their first ``k`` columns and, when they have a
    ``k + 1``-th column, the biases there (the ALS solver's ``[factors, bias]`` rows). This is
    the negative log posterior of PMF (up to constants and a factor ``sigma^2``) with Gaussian
    priors; ``lambda = sigma^2 / sigma_prior^2``.
    """
    sums = np.zeros(4)  # ||Xu||^2, ||Xv||^2 and the bias columns' parts of each
    for side in range(2):
        X = Xu if side == 0 else Xv
        flat = X.ravel()
        total = 0.0
        for p in range(flat.shape[0]):  # contiguous: vectorises
            total += flat[p] * flat[p]
        extra = 0.0
        for r in range(X.shape[0]):
            for a in range(k, X.shape[1]):
                extra += X[r, a] * X[r, a]
        sums[side] = total - extra
        sums[2 + side] = extra
    fu, fv, bias = sums[0], sums[1], sums[2] + sums[3]
    return 0.5 * (sse + lambda_u * fu + lambda_v * fv + lambda_bias * bias)


@njit(cache=True, fastmath=True)
def sigmoid(x: float) -> float:
    """The logistic function ``1 / (1 + exp(-x))``, without overflow for large ``|x|``."""
    if x >= 0.0:
        return 1.0 / (1.0 + np.exp(-x))
    e = np.exp(x)
    return e / (1.0 + e)


@njit(cache=True)
def logistic_objective_grad(
    users: np.ndarray,
    items: np.ndarray,
    targets: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    lambda_u: float,
    lambda_v: float,
    lambda_bias: float,
    gU: np.ndarray,
    gV: np.ndarray,
    gbu: np.ndarray,
    gbi: np.ndarray,
) -> tuple[float, float]:
    """Objective and gradient of the logistic-link PMF.

    ``L = 1/2 sum_p (t_p - g(eta_p))^2 + lambda_u/2 ||U||^2 + lambda_v/2 ||V||^2
    + lambda_bias/2 (||bu||^2 + ||bi||^2)`` with ``eta_p = mu + bu[u] + bi[i] + U[u].V[i]`` and
    ``g`` the logistic function. Gradients are written into ``gU, gV, gbu, gbi``.

    Returns
    -------
    (objective, d objective / d mu)
    """
    k = U.shape[1]
    gU[:, :] = lambda_u * U
    gV[:, :] = lambda_v * V
    gbu[:] = lambda_bias * bu
    gbi[:] = lambda_bias * bi
    obj = 0.5 * (
        lambda_u * np.sum(U * U)
        + lambda_v * np.sum(V * V)
        + lambda_bias * (np.sum(bu * bu) + np.sum(bi * bi))
    )
    gmu = 0.0
    for p in range(users.shape[0]):
        u = users[p]
        i = items[p]
        g = sigmoid(latent_mean(u, i, U, V, mu, bu, bi))
        e = targets[p] - g
        obj += 0.5 * e * e
        s = -e * g * (1.0 - g)
        gmu += s
        gbu[u] += s
        gbi[i] += s
        for a in range(k):
            ua = U[u, a]
            gU[u, a] += s * V[i, a]
            gV[i, a] += s * ua
    return obj, gmu


@njit(cache=True, fastmath=True)
def residual_stats(values: np.ndarray, pred: np.ndarray, prev: np.ndarray) -> tuple[float, float, float]:
    """One pass over the observed entries: ``(sum (r - pred)^2, ||pred - prev||^2, ||prev||^2)``.

    Gives the training SSE and the relative change of the reconstruction used as the
    convergence test of the alternating solvers.
    """
    sse = 0.0
    diff = 0.0
    norm = 0.0
    for p in range(values.shape[0]):
        e = values[p] - pred[p]
        sse += e * e
        c = pred[p] - prev[p]
        diff += c * c
        norm += prev[p] * prev[p]
    return sse, diff, norm
