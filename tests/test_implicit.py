"""Implicit-feedback ALS: kernel vs a dense NumPy reference, monotone loss, ranking quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError, DataError
from bayesmf.kernels.als import implicit_half_sweep
from bayesmf.models.implicit import ImplicitALS, implicit_loss


def _dense_reference(R: np.ndarray, Y: np.ndarray, alpha: float, lam: float) -> np.ndarray:
    P = (R > 0).astype(float)
    C = 1.0 + alpha * R
    d = Y.shape[1]
    X = np.empty((R.shape[0], d))
    for u in range(R.shape[0]):
        Cu = np.diag(C[u])
        X[u] = np.linalg.solve(Y.T @ Cu @ Y + lam * np.eye(d), Y.T @ Cu @ P[u])
    return X


def _csr(R: np.ndarray):
    mask = R > 0
    indptr = np.zeros(R.shape[0] + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=1), out=indptr[1:])
    return indptr, np.nonzero(mask)[1].astype(np.int32), R[mask]


def test_kernel_matches_dense_reference() -> None:
    rng = np.random.default_rng(0)
    R = rng.poisson(0.6, size=(12, 9)).astype(float)
    R[0] = 0.0  # a user with no interactions
    Y = rng.standard_normal((9, 3))
    indptr, indices, vals = _csr(R)
    X = np.empty((12, 3))
    implicit_half_sweep(indptr, indices, 1.0 + 5.0 * vals, Y, Y.T @ Y, 0.3, X)
    np.testing.assert_allclose(X, _dense_reference(R, Y, 5.0, 0.3), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(X[0], 0.0)


def test_loss_formula_matches_dense() -> None:
    rng = np.random.default_rng(1)
    R = rng.poisson(0.5, size=(6, 5)).astype(float)
    U, V = rng.normal(size=(6, 2)), rng.normal(size=(5, 2))
    users, items = np.nonzero(R > 0)
    conf = 1.0 + 2.0 * R[users, items]
    scores = np.sum(U[users] * V[items], axis=1)
    S = U @ V.T
    dense = np.sum((1 + 2.0 * R) * ((R > 0) - S) ** 2) + 0.5 * (np.sum(U**2) + np.sum(V**2))
    assert implicit_loss(U, V, users, items, conf, scores, 0.5) == pytest.approx(dense)


def _block_data(seed: int = 0):
    """Two user groups each interacting with their own half of the items; one pair held out per user."""
    rng = np.random.default_rng(seed)
    n_users = 60
    rows, held = [], []
    for u in range(n_users):
        group = u % 2
        own = np.arange(group * 20, group * 20 + 20)
        picked = rng.choice(own, size=8, replace=False)
        held.append((u, int(picked[0])))
        rows += [(u, int(i), float(rng.integers(1, 5))) for i in picked[1:]]
    df = pd.DataFrame(rows, columns=["user", "item", "count"])
    # make sure every item id exists in the maps (held-out items may be otherwise unseen)
    r = Ratings.from_frame(df, rating_col="count")
    return r, held


def test_fit_ranks_held_out_items_of_the_right_group() -> None:
    r, held = _block_data()
    fit = ImplicitALS(rank=2, alpha=10.0, lambda_=0.1, max_iter=10, random_state=0).fit(r)
    obj = fit.history_["objective"].to_numpy()
    assert np.all(np.diff(obj) <= 1e-9 * np.abs(obj[:-1]))
    hits = 0
    for u_raw, i_raw in held:
        u = int(r.user_index([u_raw])[0])
        i = int(r.item_index([i_raw])[0])
        if i < 0:
            continue
        scores = fit.U_[u] @ fit.V_.T
        other_group = np.array([
            k for k, raw in enumerate(r.item_ids) if (raw // 20) != (i_raw // 20)
        ])
        hits += scores[i] > np.max(scores[other_group])
    assert hits >= 0.9 * len(held)
    assert np.isnan(fit.sigma_) and fit.method == "implicit"


def test_reproducible_and_validation() -> None:
    r, _ = _block_data(1)
    a = ImplicitALS(rank=2, max_iter=3, random_state=3).fit(r)
    b = ImplicitALS(rank=2, max_iter=3, random_state=3).fit(r)
    np.testing.assert_array_equal(a.V_, b.V_)
    with pytest.raises(BayesMFError, match="lambda_"):
        ImplicitALS(lambda_=0.0).fit(r)
    neg = Ratings.from_frame(pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [-1.0, 2.0]}))
    with pytest.raises(DataError, match="non-negative"):
        ImplicitALS().fit(neg)
