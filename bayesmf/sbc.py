"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman, 2018).

If a sampler draws from the true posterior, then for parameters ``theta~`` drawn from the
prior, data ``y ~ p(y | theta~)`` simulated from them, and ``L`` posterior draws
``theta_1..theta_L`` given ``y``, the rank ``#{l : f(theta_l) < f(theta~)}`` of any scalar
``f`` is uniform on ``0..L``. Repeating this ``n_reps`` times and testing the ranks for
uniformity (chi-square on binned ranks) checks the whole pipeline -- prior, likelihood and
sampler -- for every quantity ``f``.

PMF's factors are identified only up to rotation, so the quantities compared are invariant
ones: the noise sd ``sigma``, the global mean ``mu``, the Frobenius norm ``||U||_F`` (and
``||V||_F``), and the latent means ``mu + b_u + c_i + u.v`` of a few fixed (user, item)
pairs.

The engine is generic: :func:`run_sbc` takes a ``fit_fn(ratings, seed) -> InferenceData`` (any
bayesmf Bayesian fit: Gibbs, NUTS, ADVI) and a ``simulate_fn(rng) -> (ratings, truth)``;
:func:`simulate_pmf_prior` simulates the PMF model with the priors of
:class:`bayesmf.models.gibbs.GibbsPriors`, and :func:`gibbs_fit_fn` builds the matching Gibbs
fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bayesmf._validation import as_rng, check_positive_int
from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError
from bayesmf.kernels.gibbs import sample_wishart
from bayesmf.models.gibbs import GibbsPMF, GibbsPriors
from bayesmf.models.idata import posterior_latent_means

#: (user, item) index pairs whose latent means are compared by default
DEFAULT_PAIRS: tuple[tuple[int, int], ...] = ((0, 0), (1, 2), (3, 1))


@dataclass
class SBCSetup:
    """Size of the simulated PMF problem.

    Parameters
    ----------
    n_users, n_items, rank : int
        Model size.
    density : float
        Fraction of (user, item) pairs observed (at least one rating per user and item is
        ensured so the id maps are complete).
    biases : bool
        Simulate and fit bias terms.
    hyperprior : {"diagonal", "normal-wishart"}
        Prior on the factors (as in :class:`~bayesmf.models.gibbs.GibbsPMF`).
    priors : GibbsPriors
        Prior hyperparameters shared by the simulator and the fit. The defaults are tighter
        than :class:`GibbsPriors`' so that prior draws give well-scaled data.
    pairs : sequence of (int, int)
        Pairs whose latent means are ranked.
    """

    n_users: int = 20
    n_items: int = 15
    rank: int = 2
    density: float = 0.5
    biases: bool = True
    hyperprior: str = "diagonal"
    priors: GibbsPriors = field(
        default_factory=lambda: GibbsPriors(
            mu_mean=0.0, mu_sd=1.0, noise_shape=20.0, noise_rate=5.0, bias_shape=10.0,
            bias_rate=2.0, beta0=2.0, nu0=None, w0=1.0, factor_shape=10.0, factor_rate=10.0,
        )
    )
    pairs: Sequence[tuple[int, int]] = DEFAULT_PAIRS


def simulate_pmf_prior(setup: SBCSetup, rng: np.random.Generator) -> tuple[Ratings, dict[str, float]]:
    """Draw PMF parameters from the prior and simulate ratings from them.

    Returns
    -------
    ratings : Ratings
        Simulated ratings (continuous, no scale; raw ids ``0..n-1``).
    truth : dict of str -> float
        The true values of the SBC quantities (see :func:`quantities_from_params`).
    """
    pr, k = setup.priors, setup.rank
    nu, ni = setup.n_users, setup.n_items
    mu = rng.normal(pr.mu_mean, pr.mu_sd)
    tau = rng.gamma(pr.noise_shape, 1.0 / pr.noise_rate)

    def factors(n: int) -> np.ndarray:
        if setup.hyperprior == "diagonal":
            lam = rng.gamma(pr.factor_shape, 1.0 / pr.factor_rate, size=k)
            return rng.standard_normal((n, k)) / np.sqrt(lam)
        if setup.hyperprior == "normal-wishart":
            nu0 = float(k if pr.nu0 is None else pr.nu0)
            Lam = sample_wishart(rng, np.eye(k) * pr.w0, nu0)
            L = np.linalg.cholesky(Lam)
            m = np.linalg.solve(L.T, rng.standard_normal(k)) / np.sqrt(pr.beta0)
            return m + np.linalg.solve(L.T, rng.standard_normal((k, n))).T
        raise BayesMFError(f"unknown hyperprior {setup.hyperprior!r}")

    U, V = factors(nu), factors(ni)
    bias_sds = None
    if setup.biases:
        sd_u = 1.0 / np.sqrt(rng.gamma(pr.bias_shape, 1.0 / pr.bias_rate))
        sd_i = 1.0 / np.sqrt(rng.gamma(pr.bias_shape, 1.0 / pr.bias_rate))
        bu = rng.standard_normal(nu) * sd_u
        bi = rng.standard_normal(ni) * sd_i
        bias_sds = (float(sd_u), float(sd_i))
    else:
        bu, bi = np.zeros(nu), np.zeros(ni)
    mask = rng.random((nu, ni)) < setup.density
    mask[np.arange(nu), rng.integers(0, ni, nu)] = True
    mask[rng.integers(0, nu, ni), np.arange(ni)] = True
    users, items = np.nonzero(mask)
    mean = mu + bu[users] + bi[items] + np.einsum("pk,pk->p", U[users], V[items])
    values = mean + rng.standard_normal(len(users)) / np.sqrt(tau)
    ratings = Ratings(users, items, values, pd.RangeIndex(nu), pd.RangeIndex(ni), name="sbc")
    truth = quantities_from_params(U, V, mu, bu, bi, 1.0 / np.sqrt(tau), setup.pairs, bias_sds)
    return ratings, truth


def quantities_from_params(
    U: np.ndarray,
    V: np.ndarray,
    mu: float,
    bu: np.ndarray,
    bi: np.ndarray,
    sigma: float,
    pairs: Sequence[tuple[int, int]],
    bias_sds: tuple[float, float] | None = None,
) -> dict[str, float]:
    """The rotation-invariant SBC quantities of one parameter set.

    ``bias_sds`` (the prior sds of the user and item biases), when given, adds
    ``sigma_user_bias`` and ``sigma_item_bias``.
    """
    out = {
        "sigma": float(sigma),
        "mu": float(mu),
        "norm_U": float(np.linalg.norm(U)),
        "norm_V": float(np.linalg.norm(V)),
    }
    if bias_sds is not None:
        out["sigma_user_bias"] = float(bias_sds[0])
        out["sigma_item_bias"] = float(bias_sds[1])
    for u, i in pairs:
        out[f"pred_{u}_{i}"] = float(mu + bu[u] + bi[i] + U[u] @ V[i])
    return out


def quantities_from_idata(idata: Any, pairs: Sequence[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Draws (flattened over chains) of the SBC quantities from a bayesmf posterior."""
    post = idata.posterior
    out = {
        "sigma": post["sigma"].values.reshape(-1),
        "mu": post["mu"].values.reshape(-1),
        "norm_U": np.sqrt((post["U"].values.astype(np.float64) ** 2).sum(axis=(2, 3))).reshape(-1),
        "norm_V": np.sqrt((post["V"].values.astype(np.float64) ** 2).sum(axis=(2, 3))).reshape(-1),
    }
    for name in ("sigma_user_bias", "sigma_item_bias"):
        if name in post:
            out[name] = post[name].values.reshape(-1)
    if pairs:
        u = np.array([p[0] for p in pairs])
        i = np.array([p[1] for p in pairs])
        lat = posterior_latent_means(idata, u, i)
        for j, (a, b) in enumerate(pairs):
            out[f"pred_{a}_{b}"] = lat[:, :, j].reshape(-1)
    return out


def sbc_rank(truth: float, draws: np.ndarray, rng: np.random.Generator | None = None) -> int:
    """Rank of ``truth`` among ``draws``: ``#{draws < truth}`` (ties broken at random)."""
    draws = np.asarray(draws, dtype=float)
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    if ties and rng is not None:
        below += int(rng.integers(0, ties + 1))
    return below


def uniformity_test(ranks: np.ndarray, n_draws: int, bins: int | None = None) -> tuple[float, float, int]:
    """Chi-square test that ranks in ``0..n_draws`` are uniform.

    Parameters
    ----------
    ranks : array of int
        One rank per replication.
    n_draws : int
        ``L``: ranks take the ``L + 1`` values ``0..L``.
    bins : int, optional
        Number of equal-width bins (must divide ``L + 1``); default: the largest divisor of
        ``L + 1`` that is at most ``max(2, n_reps / 5)`` (so about 5 expected per bin).

    Returns
    -------
    statistic, p_value, bins
    """
    ranks = np.asarray(ranks, dtype=int)
    n_vals = int(n_draws) + 1
    if ranks.size == 0:
        raise BayesMFError("no ranks to test")
    if ranks.min() < 0 or ranks.max() > n_draws:
        raise BayesMFError(f"ranks must lie in 0..{n_draws}")
    if bins is None:
        target = max(2, ranks.size // 5)
        bins = max(b for b in range(1, n_vals + 1) if n_vals % b == 0 and b <= target)
    if n_vals % bins:
        raise BayesMFError(f"bins={bins} must divide n_draws + 1 = {n_vals}")
    if bins < 2:
        return 0.0, 1.0, 1
    counts = np.bincount(ranks * bins // n_vals, minlength=bins)
    expected = ranks.size / bins
    stat = float(((counts - expected) ** 2 / expected).sum())
    return stat, float(stats.chi2.sf(stat, bins - 1)), bins


@dataclass
class SBCResult:
    """Ranks of every quantity in every replication, and their uniformity tests.

    Attributes
    ----------
    ranks : pandas.DataFrame
        One row per replication, one column per quantity; values in ``0..n_draws``.
    n_draws : int
        ``L``, the number of posterior draws each truth was ranked among.
    tests : pandas.DataFrame
        Per quantity: ``chi2``, ``p_value``, ``bins``.
    seconds : float
        Total wall time.
    """

    ranks: pd.DataFrame
    n_draws: int
    tests: pd.DataFrame
    seconds: float

    def histogram(self, quantity: str, bins: int | None = None) -> np.ndarray:
        """Counts of the binned ranks of one quantity."""
        b = int(self.tests.loc[quantity, "bins"]) if bins is None else bins
        r = self.ranks[quantity].to_numpy(dtype=int)
        return np.bincount(r * b // (self.n_draws + 1), minlength=b)

    def min_p_value(self) -> float:
        """Smallest uniformity p-value over the quantities."""
        return float(self.tests["p_value"].min())


def run_sbc(
    fit_fn: Callable[[Ratings, int], Any],
    simulate_fn: Callable[[np.random.Generator], tuple[Ratings, dict[str, float]]],
    *,
    n_reps: int = 200,
    n_draws: int = 99,
    pairs: Sequence[tuple[int, int]] = DEFAULT_PAIRS,
    bins: int | None = None,
    random_state: int | np.random.Generator | None = None,
    progress: bool = False,
    draws_fn: Callable[[Any], dict[str, np.ndarray]] | None = None,
) -> SBCResult:
    """Simulation-based calibration of a posterior sampler.

    Parameters
    ----------
    fit_fn : callable
        ``fit_fn(ratings, seed) -> InferenceData`` with the bayesmf posterior layout. It is
        expected to return (at least) ``n_draws`` roughly independent draws (thin inside).
    simulate_fn : callable
        ``simulate_fn(rng) -> (ratings, truth)``, drawing from the *same* prior the fit uses.
    n_reps : int
        Replications.
    n_draws : int
        ``L``: posterior draws per replication used for the rank (evenly spaced subset of
        what ``fit_fn`` returns).
    pairs : sequence of (int, int)
        Pairs whose latent means are ranked (must match the simulator's).
    bins : int, optional
        Bins of the chi-square test (see :func:`uniformity_test`).
    random_state : int, Generator or None
        Seed of the simulations and fit seeds.
    progress : bool
        Print one line per replication.
    draws_fn : callable, optional
        ``draws_fn(idata) -> {quantity: draws}``; default :func:`quantities_from_idata`.

    Returns
    -------
    SBCResult
    """
    import time

    n_reps = check_positive_int(n_reps, "n_reps")
    n_draws = check_positive_int(n_draws, "n_draws")
    rng = as_rng(random_state)
    t0 = time.perf_counter()
    rows = []
    for rep in range(n_reps):
        ratings, truth = simulate_fn(rng)
        seed = int(rng.integers(0, 2**31 - 1))
        idata = fit_fn(ratings, seed)
        draws = draws_fn(idata) if draws_fn is not None else quantities_from_idata(idata, pairs)
        row = {}
        for name, value in truth.items():
            d = np.asarray(draws[name], dtype=float)
            if d.size < n_draws:
                raise BayesMFError(
                    f"fit_fn returned {d.size} draws of {name!r}, fewer than n_draws={n_draws}"
                )
            idx = np.linspace(0, d.size - 1, n_draws).round().astype(int)
            row[name] = sbc_rank(value, d[idx], rng)
        rows.append(row)
        if progress:
            print(f"SBC replication {rep + 1}/{n_reps}", flush=True)
    ranks = pd.DataFrame(rows)
    tests = []
    for name in ranks.columns:
        stat, p, b = uniformity_test(ranks[name].to_numpy(), n_draws, bins)
        tests.append({"quantity": name, "chi2": stat, "p_value": p, "bins": b})
    return SBCResult(
        ranks=ranks,
        n_draws=n_draws,
        tests=pd.DataFrame(tests).set_index("quantity"),
        seconds=time.perf_counter() - t0,
    )


def gibbs_fit_fn(
    setup: SBCSetup, *, tune: int = 100, n_draws: int = 99, thin: int = 5, init: str = "random"
) -> Callable[[Ratings, int], Any]:
    """A ``fit_fn`` running one Gibbs chain on the model of ``setup``."""

    def fit(ratings: Ratings, seed: int) -> Any:
        g = GibbsPMF(
            rank=setup.rank,
            biases=setup.biases,
            hyperprior=setup.hyperprior,
            chains=1,
            draws=n_draws * thin,
            tune=tune,
            thin=thin,
            store="float64",
            init=init,
            priors=setup.priors,
            random_state=seed,
            progress=False,
        )
        return g.fit(ratings).idata_

    return fit


def sbc_gibbs(
    setup: SBCSetup | None = None,
    *,
    n_reps: int = 200,
    n_draws: int = 99,
    tune: int = 100,
    thin: int = 5,
    random_state: int | np.random.Generator | None = None,
    progress: bool = False,
) -> SBCResult:
    """SBC of :class:`~bayesmf.models.gibbs.GibbsPMF` on a small simulated PMF model."""
    setup = SBCSetup() if setup is None else setup
    return run_sbc(
        gibbs_fit_fn(setup, tune=tune, n_draws=n_draws, thin=thin),
        lambda rng: simulate_pmf_prior(setup, rng),
        n_reps=n_reps,
        n_draws=n_draws,
        pairs=setup.pairs,
        random_state=random_state,
        progress=progress,
    )


def main(argv: Sequence[str] | None = None) -> SBCResult:
    """Full SBC of the Gibbs sampler: ``python -m bayesmf.sbc [--reps 200] [--out file.json]``.

    Prints the rank histogram and the chi-square test of every quantity.
    """
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Simulation-based calibration of GibbsPMF")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--draws", type=int, default=19, help="L posterior draws per replication")
    ap.add_argument("--tune", type=int, default=100)
    ap.add_argument("--thin", type=int, default=5)
    ap.add_argument("--hyperprior", default="normal-wishart", choices=["normal-wishart", "diagonal"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="write ranks and tests as JSON here")
    args = ap.parse_args(argv)
    setup = SBCSetup(hyperprior=args.hyperprior)
    res = sbc_gibbs(setup, n_reps=args.reps, n_draws=args.draws, tune=args.tune,
                    thin=args.thin, random_state=args.seed)
    print(f"SBC of GibbsPMF ({args.hyperprior}), {args.reps} replications, L = {args.draws}, "
          f"{res.seconds:.0f} s")
    for name, row in res.tests.iterrows():
        hist = " ".join(f"{c:3d}" for c in res.histogram(str(name)))
        print(f"{name:10s} chi2 {row['chi2']:7.2f}  p {row['p_value']:.3f}  [{hist}]")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"setup": {"hyperprior": args.hyperprior, "reps": args.reps,
                                 "draws": args.draws, "tune": args.tune, "thin": args.thin,
                                 "n_users": setup.n_users, "n_items": setup.n_items,
                                 "rank": setup.rank},
                       "tests": res.tests.reset_index().to_dict(orient="records"),
                       "ranks": res.ranks.to_dict(orient="list"),
                       "seconds": res.seconds}, fh, indent=2)
    return res


if __name__ == "__main__":
    main()
