"""Stochastic gradient descent over observed ratings (the lecture's per-rating updates).

For each rating ``(u, i, r)`` in a shuffled order::

    e    = r - (mu + b_u + b_i + u . v)
    b_u += lr * (e - lam * b_u);        b_i += lr * (e - lam * b_i)      (with biases)
    u   += lr * (e * v - lam * u);      v   += lr * (e * u_old - lam * v)

``lam = 0`` and no biases is exactly the lecture's rule ``w <- w + alpha e h``,
``h <- h + alpha e w`` (both from the pre-update vectors). With ``lam > 0`` it is stochastic
gradient descent on ``1/2 sum_(u,i) [e_ui^2 + lam (|u_u|^2 + |v_i|^2 + b_u^2 + b_i^2)]`` (the
penalty applied once per rating, as in Funk's SVD and scikit-surprise).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def sgd_epoch(
    order: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    lr: float,
    lam: float,
    biases: bool,
) -> float:
    """One pass of per-rating updates in the order ``order``, in place on ``U, V, bu, bi``.

    Parameters
    ----------
    order : ndarray of int
        Positions of the ratings to visit, in visiting order (a permutation for one epoch).
    users, items, values : ndarray
        The observed ratings.
    U, V : ndarray, shape (n_users, k), (n_items, k)
        Factors, updated in place.
    mu : float
        Fixed global offset.
    bu, bi : ndarray
        Biases, updated in place when ``biases`` is True.
    lr : float
        Learning rate ``alpha``.
    lam : float
        L2 penalty (0 for the lecture's plain rule).
    biases : bool
        Whether to update the biases.

    Returns
    -------
    float
        Sum of squared errors seen during the pass (each computed before its update).
    """
    k = U.shape[1]
    sse = 0.0
    for t in range(order.shape[0]):
        p = order[t]
        u = users[p]
        i = items[p]
        pred = mu + bu[u] + bi[i]
        for a in range(k):
            pred += U[u, a] * V[i, a]
        e = values[p] - pred
        sse += e * e
        if biases:
            bu[u] += lr * (e - lam * bu[u])
            bi[i] += lr * (e - lam * bi[i])
        for a in range(k):
            ua = U[u, a]
            va = V[i, a]
            U[u, a] = ua + lr * (e * va - lam * ua)
            V[i, a] = va + lr * (e * ua - lam * va)
    return sse
