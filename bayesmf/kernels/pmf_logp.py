"""Gaussian PMF log-likelihood and its gradient in one pass over the observed ratings.

The model's likelihood (see :mod:`bayesmf.models.pymc_model`) is

.. math::

    \\log p(R \\mid \\theta) = \\sum_{n} \\left[-\\tfrac12\\log(2\\pi) - \\log\\sigma
        - \\frac{(r_n - f(\\eta_n))^2}{2\\sigma^2}\\right],
    \\qquad \\eta_n = \\mu + b_{u_n} + c_{i_n} + u_{u_n}^\\top v_{i_n},

with ``f`` the identity or the logistic sigmoid. With ``g_n = (r_n - f(\\eta_n)) f'(\\eta_n) /
\\sigma^2`` the gradient is ``dU[u] += g_n V[i]``, ``dV[i] += g_n U[u]``, ``dmu = sum g_n``,
``db[u] += g_n``, ``dc[i] += g_n`` and ``dsigma = -N/sigma + sum e_n^2 / sigma^3``, all computed
in the same call as the value: one pass over the ratings computes the residuals (kept in a buffer)
and the value, a second pass over that buffer scatters the gradient. Rating order does not
matter for the result; sorting by item keeps the ``dV`` writes local (the model does this).

:func:`loglik_grad_reference` is the slow, obviously-correct NumPy version the tests compare with.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmf.kernels.linalg import latent_mean
from bayesmf.kernels.objective import sigmoid

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@njit(cache=True, nogil=True, fastmath=True)
def loglik_grad_into(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: float,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    sigma: float,
    logistic: bool,
    dU: np.ndarray,
    dV: np.ndarray,
    d_user_bias: np.ndarray,
    d_item_bias: np.ndarray,
) -> tuple[float, float, float]:
    """Log-likelihood of all ratings and its gradient, written into zeroed output arrays.

    Parameters
    ----------
    users, items : int array (nnz,)
        Indices of each rating.
    values : float array (nnz,)
        Ratings on the working scale (mapped to [0, 1] for the logistic link).
    U, V : float array (n_users, k), (n_items, k)
        Factors.
    mu : float
        Global offset.
    user_bias, item_bias : float array (n_users,), (n_items,)
        Biases (pass zeros for a model without biases).
    sigma : float
        Noise standard deviation (> 0).
    logistic : bool
        Mean ``sigmoid(eta)`` instead of ``eta``.
    dU, dV, d_user_bias, d_item_bias : float arrays
        Zero-initialised outputs, same shapes as the inputs; gradients are added into them.

    Returns
    -------
    (logp, dmu, dsigma) : tuple of float
    """
    n = values.shape[0]
    k = U.shape[1]
    inv_var = 1.0 / (sigma * sigma)
    ss = 0.0
    dmu = 0.0
    # pass 1: residuals and d logp / d eta per rating (gathers only)
    G = np.empty(n)
    for t in range(n):
        eta = latent_mean(users[t], items[t], U, V, mu, user_bias, item_bias)
        if logistic:
            p = sigmoid(eta)
            e = values[t] - p
            G[t] = e * p * (1.0 - p) * inv_var
        else:
            e = values[t] - eta
            G[t] = e * inv_var
        ss += e * e
    # pass 2: scatter the chain rule into the parameter gradients (measured ~30% faster than
    # one fused loop)
    for t in range(n):
        u = users[t]
        i = items[t]
        g = G[t]
        dmu += g
        d_user_bias[u] += g
        d_item_bias[i] += g
        for f in range(k):
            dU[u, f] += g * V[i, f]
        for f in range(k):
            dV[i, f] += g * U[u, f]
    logp = -n * (_HALF_LOG_2PI + math.log(sigma)) - 0.5 * ss * inv_var
    dsigma = -n / sigma + ss * inv_var / sigma
    return logp, dmu, dsigma


@njit(cache=True, nogil=True)
def loglik_grad(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: float,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    sigma: float,
    logistic: bool,
) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray, np.ndarray, float]:
    """Allocating wrapper of :func:`loglik_grad_into`.

    Returns
    -------
    (logp, dU, dV, dmu, d_user_bias, d_item_bias, dsigma)
    """
    dU = np.zeros_like(U)
    dV = np.zeros_like(V)
    dub = np.zeros_like(user_bias)
    dib = np.zeros_like(item_bias)
    logp, dmu, dsigma = loglik_grad_into(
        users, items, values, U, V, mu, user_bias, item_bias, sigma, logistic, dU, dV, dub, dib
    )
    return logp, dU, dV, dmu, dub, dib, dsigma


@njit(cache=True, nogil=True)
def loglik(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: float,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    sigma: float,
    logistic: bool,
) -> float:
    """Total Gaussian log-likelihood of the ratings (no gradient); inputs as :func:`loglik_grad_into`."""
    n = values.shape[0]
    ss = 0.0
    for t in range(n):
        eta = latent_mean(users[t], items[t], U, V, mu, user_bias, item_bias)
        if logistic:
            eta = sigmoid(eta)
        e = values[t] - eta
        ss += e * e
    return -n * (_HALF_LOG_2PI + math.log(sigma)) - 0.5 * ss / (sigma * sigma)


@njit(cache=True, nogil=True)
def loglik_draws(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: np.ndarray,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    sigma: np.ndarray,
    logistic: bool,
) -> np.ndarray:
    """:func:`loglik` for a stack of draws (leading axis ``draw``), computed in float64.

    ``U`` is ``(n_draws, n_users, k)`` and so on; float32 draws are accepted.
    """
    n_draws = U.shape[0]
    out = np.empty(n_draws)
    for d in range(n_draws):
        out[d] = loglik(
            users,
            items,
            values,
            U[d].astype(np.float64),
            V[d].astype(np.float64),
            float(mu[d]),
            user_bias[d].astype(np.float64),
            item_bias[d].astype(np.float64),
            float(sigma[d]),
            logistic,
        )
    return out


def loglik_grad_reference(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: float,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    sigma: float,
    logistic: bool,
) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray, np.ndarray, float]:
    """Slow NumPy reference of :func:`loglik_grad` (same arguments and returns)."""
    eta = mu + user_bias[users] + item_bias[items] + np.einsum("nk,nk->n", U[users], V[items])
    if logistic:
        p = 1.0 / (1.0 + np.exp(-eta))
        e = values - p
        g = e * p * (1.0 - p) / sigma**2
    else:
        e = values - eta
        g = e / sigma**2
    n = len(values)
    logp = float(-n * (_HALF_LOG_2PI + np.log(sigma)) - 0.5 * np.sum(e**2) / sigma**2)
    dU = np.zeros_like(U)
    dV = np.zeros_like(V)
    np.add.at(dU, users, g[:, None] * V[items])
    np.add.at(dV, items, g[:, None] * U[users])
    dub = np.bincount(users, weights=g, minlength=len(user_bias)).astype(float)
    dib = np.bincount(items, weights=g, minlength=len(item_bias)).astype(float)
    dsigma = float(-n / sigma + np.sum(e**2) / sigma**3)
    return logp, dU, dV, float(np.sum(g)), dub, dib, dsigma
