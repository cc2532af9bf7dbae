"""Tests of bayesmf.plots with the Agg backend: each function returns a Figure with data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bayesmf.datasets import make_synthetic  # noqa: E402
from bayesmf.exceptions import BayesMFError  # noqa: E402
from bayesmf.models.base import FitBase  # noqa: E402
from bayesmf.models.idata import build_inference_data  # noqa: E402
from bayesmf.models.pmf import PMF  # noqa: E402
from bayesmf.plots import (  # noqa: E402
    plot_calibration,
    plot_energy,
    plot_ppc,
    plot_sd_vs_count,
    plot_trace,
)

pytestmark = pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")


class DrawsFit(FitBase):
    method = "nuts"
    is_bayesian = True

    def __init__(self, rank: int = 2) -> None:
        self.rank = rank


@pytest.fixture(scope="module")
def setup():
    r, truth = make_synthetic(n_users=40, n_items=30, rank=2, density=0.5, noise_sd=0.5,
                              activity_exponent=1.0, random_state=0)
    rng = np.random.default_rng(0)
    C, D, k = 2, 50, 2
    post = {
        "U": truth.U + 0.05 * rng.standard_normal((C, D, r.n_users, k)),
        "V": truth.V + 0.05 * rng.standard_normal((C, D, r.n_items, k)),
        "mu": truth.mu + 0.02 * rng.standard_normal((C, D)),
        "user_bias": truth.user_bias + 0.02 * rng.standard_normal((C, D, r.n_users)),
        "item_bias": truth.item_bias + 0.02 * rng.standard_normal((C, D, r.n_items)),
        "sigma": 0.5 + 0.01 * rng.random((C, D)),
        "sigma_u": 1 + 0.1 * rng.random((C, D, k)),
        "sigma_v": 1 + 0.1 * rng.random((C, D, k)),
    }
    stats = {"energy": 10 + rng.standard_normal((C, D)), "diverging": np.zeros((C, D), bool)}
    fit = DrawsFit()
    fit.idata_ = build_inference_data(post, r, method="nuts", params={}, rank=k, biases=True,
                                      sample_stats=stats, dtype=np.float64)
    fit.ratings_ = r
    fit.link_ = "identity"
    yield r, truth, post, fit
    plt.close("all")


def has_data(fig) -> bool:
    return any(ax.lines or ax.collections or ax.patches for ax in fig.axes)


def test_trace_and_rank_plots(setup):
    *_, fit = setup
    fig = plot_trace(fit)
    assert isinstance(fig, matplotlib.figure.Figure) and has_data(fig)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "sigma" in titles and "norm_U" in titles and "U\n" not in titles
    fig2 = plot_trace(fit, var_names=["mu", "sigma"], kind="rank")
    assert has_data(fig2) and len(fig2.axes) == 4
    with pytest.raises(BayesMFError):
        plot_trace(fit, kind="spaghetti")


def test_energy_plot_needs_nuts(setup):
    r, *_, fit = setup
    assert has_data(plot_energy(fit))
    with pytest.raises(BayesMFError, match="NUTS"):
        plot_energy(PMF(rank=2, random_state=0).fit(r))


def test_ppc_bars_sum_to_the_number_of_pairs(setup):
    r, *_, fit = setup
    fig = plot_ppc(fit)
    ax = fig.axes[0]
    heights = np.array([p.get_height() for p in ax.patches])
    n_levels = len(r.scale.levels)
    obs, exp = heights[:n_levels], heights[n_levels:2 * n_levels]
    assert obs.sum() == r.nnz and exp.sum() == pytest.approx(r.nnz, rel=1e-9)
    # a well-specified posterior reproduces the histogram
    assert np.abs(obs - exp).max() < 0.25 * r.nnz / n_levels + 10


def test_calibration_is_near_the_diagonal_for_the_true_predictive(setup):
    r, truth, post, fit = setup
    # held-out ratings drawn from the fit's own predictive: coverage must match the nominal
    rng = np.random.default_rng(3)
    S = 100
    m = (np.einsum("spk,spk->sp", post["U"].reshape(S, -1, 2)[:, r.users],
                   post["V"].reshape(S, -1, 2)[:, r.items]) + post["mu"].reshape(S, 1)
         + post["user_bias"].reshape(S, -1)[:, r.users]
         + post["item_bias"].reshape(S, -1)[:, r.items])
    s = rng.integers(S, size=r.nnz)
    y = m[s, np.arange(r.nnz)] + post["sigma"].reshape(-1)[s] * rng.standard_normal(r.nnz)
    test = r.with_values(y)
    test.scale = None
    mapfit = PMF(rank=2, random_state=0).fit(r)
    fig = plot_calibration({"draws": fit, "map": mapfit}, test, probs=[0.5, 0.9])
    assert has_data(fig) and set(fig.coverage) == {"draws", "map"}
    np.testing.assert_allclose(fig.coverage["draws"], [0.5, 0.9], atol=0.06)


def test_sd_shrinks_with_user_activity(setup):
    r, *_, fit = setup
    mapfit = PMF(rank=2, random_state=0).fit(r)
    fig = plot_sd_vs_count(mapfit)
    assert has_data(fig)
    med = fig.axes[0].lines[0].get_ydata()
    assert med[0] > med[-1]  # the least active users have the widest predictive
