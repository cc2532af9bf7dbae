"""One chain of the Bayesian PMF Gibbs sampler, its draw storage, and running several chains.

:class:`ChainSampler` holds a chain's state and performs one sweep (the maths is in
:mod:`bayesmf.kernels.gibbs`); :class:`DrawStorage` holds the kept draws of every chain;
:func:`run_chain` runs one chain into the storage; :func:`run_chains_in_processes` runs the
chains in worker processes (one chain per core at a time), writing into memory-mapped files.

Kept apart from :mod:`bayesmf.models.gibbs` (the user-facing estimator) so that a worker process
imports only NumPy and the numba kernels, not ArviZ.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError
from bayesmf.kernels.als import als_half_sweep, predict_observed
from bayesmf.kernels.gibbs import (
    factor_mean_shift_move,
    gibbs_draw_factorised,
    gibbs_draw_factorised_serial,
    gibbs_factorise,
    gibbs_factorise_serial,
    gibbs_half_sweep,
    gibbs_half_sweep_serial,
    residual_sums,
    residual_sums_serial,
    sample_collapsed_precision,
    sample_gamma_overrelaxed,
    sample_gamma_precision,
    sample_global_mean,
    sample_normal_wishart,
    sample_scale_move,
    shear_moves,
    shift_rows,
    transform_rows,
    translation_move,
)

logger = logging.getLogger("bayesmf")

#: below this many ratings the serial kernels are used (thread wake-up costs more than the work)
PARALLEL_MIN_RATINGS = 20_000

#: ``ratings x sweeps x chains`` from which chains run in worker processes by default (below
#: it, starting the processes -- about a second each -- costs more than it saves)
PROCESS_MIN_WORK = 100_000_000


class DrawStorage:
    """Preallocated arrays for the kept draws of all chains.

    ``arrays`` holds the arrays of :meth:`layout`; names starting with ``_`` (the runners'
    bookkeeping: counts, probe sums) are not draws and are left out.
    """

    def __init__(self, arrays: dict[str, np.ndarray], n_kept: int, biases: bool,
                 hyperprior: str) -> None:
        self.n_kept = n_kept
        self.biases = biases
        self.hyperprior = hyperprior
        self.stats: dict[str, np.ndarray] = {"loglik": arrays["loglik"]}
        self.post: dict[str, np.ndarray] = {
            n: a for n, a in arrays.items() if n != "loglik" and not n.startswith("_")
        }

    @staticmethod
    def layout(chains: int, n_kept: int, n_u: int, n_i: int, k: int, dtype: np.dtype,
               biases: bool, hyperprior: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Name -> (shape, dtype) of every stored array (posterior variables and ``loglik``)."""
        shp = (chains, n_kept)
        f8 = np.dtype(np.float64)
        out = {
            "U": (shp + (n_u, k), dtype),
            "V": (shp + (n_i, k), dtype),
            "mu": (shp, f8),
            "sigma": (shp, f8),
            "sigma_u": (shp + (k,), f8),
            "sigma_v": (shp + (k,), f8),
        }
        if hyperprior == "normal-wishart":
            out["mu_u"] = (shp + (k,), f8)
            out["mu_v"] = (shp + (k,), f8)
            out["Lambda_u"] = (shp + (k, k), f8)
            out["Lambda_v"] = (shp + (k, k), f8)
        if biases:
            out["user_bias"] = (shp + (n_u,), dtype)
            out["item_bias"] = (shp + (n_i,), dtype)
            out["sigma_user_bias"] = (shp, f8)
            out["sigma_item_bias"] = (shp, f8)
        out["loglik"] = (shp, f8)
        return out

    def record(self, c: int, t: int, s: ChainSampler) -> None:
        k = s.k
        p = self.post
        p["U"][c, t] = s.Ux[:, :k]
        p["V"][c, t] = s.Vx[:, :k]
        p["mu"][c, t] = s.mu
        p["sigma"][c, t] = 1.0 / math.sqrt(s.tau)
        p["sigma_u"][c, t] = s.sigma_factors(s.prec_u)
        p["sigma_v"][c, t] = s.sigma_factors(s.prec_v)
        if self.hyperprior == "normal-wishart":
            p["mu_u"][c, t] = s.mean_u
            p["mu_v"][c, t] = s.mean_v
            p["Lambda_u"][c, t] = s.prec_u
            p["Lambda_v"][c, t] = s.prec_v
        if self.biases:
            p["user_bias"][c, t] = s.Ux[:, k]
            p["item_bias"][c, t] = s.Vx[:, k]
            p["sigma_user_bias"][c, t] = 1.0 / math.sqrt(s.tau_bu)
            p["sigma_item_bias"][c, t] = 1.0 / math.sqrt(s.tau_bi)
        self.stats["loglik"][c, t] = s.loglik

    def trim(self, chains: np.ndarray, n: int) -> None:
        for d in (self.post, self.stats):
            for name in d:
                d[name] = d[name][chains, :n]
        self.n_kept = n

    def as_dicts(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return self.post, self.stats


class ChainSampler:
    """The state of one chain and its sweep (hyperparameters, factors, mu, tau).

    ``priors`` is a :class:`~bayesmf.models.gibbs.GibbsPriors` or any object with the same
    attributes (worker processes get a ``SimpleNamespace`` of them).
    """

    def __init__(self, ratings: Ratings, k: int, biases: bool, hyperprior: str,
                 priors: Any, rng: np.random.Generator, moves: bool = True,
                 parallel: bool = True, overrelax: float = 0.0) -> None:
        self.r = ratings
        self.moves = moves
        self.alpha = float(overrelax)
        self.k = k
        self.biases = bool(biases)
        self.d = k + 1 if biases else k
        self.hyperprior = hyperprior
        self.pr = priors
        self.rng = rng
        self.n_u, self.n_i = ratings.n_users, ratings.n_items
        self.bu_csr = ratings.by_user
        self.bi_csr = ratings.by_item
        self.nu0 = float(k if priors.nu0 is None else priors.nu0)
        self.W0_inv = np.eye(k) / priors.w0
        self.mu0 = np.zeros(k)
        self.zeros_u = np.zeros(self.n_u)
        self.zeros_i = np.zeros(self.n_i)
        parallel = parallel and ratings.nnz >= PARALLEL_MIN_RATINGS
        self._half_sweep = gibbs_half_sweep if parallel else gibbs_half_sweep_serial
        self._factorise = gibbs_factorise if parallel else gibbs_factorise_serial
        self._draw_factorised = gibbs_draw_factorised if parallel else gibbs_draw_factorised_serial
        self._residual_sums = residual_sums if parallel else residual_sums_serial
        self.collapsed = self.biases and moves
        if self.collapsed:  # per-row statistics kept between the two passes of a side
            m = self.d - 1
            self._pass1 = {side: (np.empty(n), np.empty(n), np.empty((n, m)), np.empty((n, m)))
                           for side, n in (("u", self.n_u), ("v", self.n_i))}

    # -------------------------------------------------------------- initialisation
    def initialise(self, init: str) -> None:
        rng, k, d = self.rng, self.k, self.d
        self.mu = float(self.r.values.mean())
        self.Ux = 0.1 * rng.standard_normal((self.n_u, d))
        self.Vx = 0.1 * rng.standard_normal((self.n_i, d))
        if self.biases:
            self.Ux[:, k] = 0.0
            self.Vx[:, k] = 0.0
        if init == "map":
            self._als_init(n_sweeps=5, reg=2.0)
        # hyperparameters consistent with the start (they are redrawn first in each sweep)
        self.prec_u = np.eye(k)
        self.prec_v = np.eye(k)
        self.mean_u = np.zeros(k)
        self.mean_v = np.zeros(k)
        self.tau_bu = 1.0
        self.tau_bi = 1.0
        s1, s2 = self._residuals()
        n = self.r.nnz
        sse = s2 - 2 * self.mu * s1 + n * self.mu**2
        self.tau = float(n / max(sse, 1e-12 * n))
        self.loglik = self._loglik(sse)

    def _als_init(self, n_sweeps: int, reg: float) -> None:
        """A few ridge ALS sweeps from the random start (a rough MAP point)."""
        d = self.d
        regv = np.full(d, reg)
        und_u = np.zeros(self.n_u, dtype=np.bool_)
        und_i = np.zeros(self.n_i, dtype=np.bool_)
        for _ in range(n_sweeps):
            Y, off = self._design(self.Vx, self.n_i)
            als_half_sweep(self.bu_csr.indptr, self.bu_csr.indices, self.bu_csr.data, Y, off,
                           regv, self.Ux, und_u)
            Y, off = self._design(self.Ux, self.n_u)
            als_half_sweep(self.bi_csr.indptr, self.bi_csr.indices, self.bi_csr.data, Y, off,
                           regv, self.Vx, und_i)

    def _design(self, X: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The other side's design matrix (ones column for the bias) and offsets."""
        if self.biases:
            Y = X.copy()
            Y[:, self.k] = 1.0
            off = self.mu + X[:, self.k]
        else:
            Y = X
            off = np.full(n, self.mu)
        return Y, off

    # -------------------------------------------------------------- one sweep
    def _hyper(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Draw the factor prior of one side given its factors; return (mean, precision)."""
        k, pr = self.k, self.pr
        F = X[:, :k]
        if self.hyperprior == "normal-wishart":
            mean, prec = sample_normal_wishart(self.rng, F, self.mu0, pr.beta0, self.W0_inv, self.nu0)
        else:
            lam = sample_gamma_precision(self.rng, (F * F).sum(axis=0), F.shape[0],
                                         pr.factor_shape, pr.factor_rate)
            mean, prec = np.zeros(k), np.diag(lam)
        return mean, prec

    def _prior_block(self, mean: np.ndarray, prec: np.ndarray, tau_b: float) -> tuple[np.ndarray, np.ndarray]:
        k, d = self.k, self.d
        P0 = np.zeros((d, d))
        P0[:k, :k] = prec
        shift = np.zeros(d)
        shift[:k] = prec @ mean
        if self.biases:
            P0[k, k] = tau_b
        return P0, shift

    def sweep(self) -> None:
        rng, pr = self.rng, self.pr
        # users: hyperparameters, then (tau_b and) every (u_i, b_i); then the items alike
        self.mean_u, self.prec_u = self._hyper(self.Ux)
        self.tau_bu, bad = self._draw_side("u", self.mean_u, self.prec_u, self.tau_bu)
        self.mean_v, self.prec_v = self._hyper(self.Vx)
        self.tau_bi, bad_i = self._draw_side("v", self.mean_v, self.prec_v, self.tau_bi)
        bad += bad_i
        if bad:
            raise BayesMFError(
                f"{bad} row posterior precision(s) were not positive definite; the sampler "
                "diverged (check the data scale or the priors)"
            )
        # global mean and noise precision
        n = self.r.nnz
        s1, s2 = self._residuals()
        self.mu = sample_global_mean(rng, s1, n, self.tau, pr.mu_mean, pr.mu_sd, self.alpha, self.mu)
        sse = max(s2 - 2.0 * self.mu * s1 + n * self.mu**2, 0.0)
        self.tau = sample_gamma_overrelaxed(rng, self.tau, pr.noise_shape + 0.5 * n,
                                            pr.noise_rate + 0.5 * sse, self.alpha)
        self.loglik = self._loglik(sse)
        # moves along the directions the likelihood does not see (exact conditionals)
        if self.moves:
            self._rescale()
            if self.biases:
                self._shift_factors()
                self._translate()

    def _draw_side(self, side: str, mean: np.ndarray, prec: np.ndarray,
                   tau_b: float) -> tuple[float, int]:
        """Draw one side's rows (and its bias precision); return (tau_b, failed rows).

        With biases and ``moves`` the bias precision is drawn with the side's rows --
        factors *and* biases -- integrated out, then the rows given it (a blocked draw of
        ``(tau_b, rows)``): :func:`~bayesmf.kernels.gibbs.gibbs_factorise` builds each row's
        conditional without the bias prior, the precision gets its exact collapsed
        conditional (:func:`~bayesmf.kernels.gibbs.sample_collapsed_precision`), and
        :func:`~bayesmf.kernels.gibbs.gibbs_draw_factorised` completes the factors with it.
        Otherwise the plain conditional draws: ``tau_b | b``, then the rows.
        """
        X, other, n_other, csr = ((self.Ux, self.Vx, self.n_i, self.bu_csr) if side == "u"
                                  else (self.Vx, self.Ux, self.n_u, self.bi_csr))
        Y, off = self._design(other, n_other)
        Z = self.rng.standard_normal((X.shape[0], self.d), dtype=np.float32)
        if self.collapsed:
            P0, shift = self._prior_block(mean, prec, 0.0)
            s2, rr, a, g = self._pass1[side]
            bad = self._factorise(csr.indptr, csr.indices, csr.data, Y, off, self.tau, P0, shift,
                                  Z, self.alpha, s2, rr, a, g)
            if not bad:
                tau_b = sample_collapsed_precision(self.rng, s2, rr, tau_b, self.pr.bias_shape,
                                                   self.pr.bias_rate)
                self._draw_factorised(s2, rr, a, g, tau_b, Z, X, self.alpha)
            return tau_b, int(bad)
        if self.biases:
            b = X[:, self.k]
            tau_b = float(sample_gamma_precision(self.rng, b @ b, X.shape[0], self.pr.bias_shape,
                                                 self.pr.bias_rate))
        P0, shift = self._prior_block(mean, prec, tau_b)
        bad = self._half_sweep(csr.indptr, csr.indices, csr.data, Y, off, self.tau, P0, shift, Z, X,
                               self.alpha)
        return tau_b, int(bad)

    def _rescale(self) -> None:
        """Group moves ``u -> T u``, ``v -> T^-T v`` with the hyperparameters moving along.

        ``T`` is drawn by exact conditionals given the hyperparameters only: per-factor
        scales (both hyperpriors, :func:`~bayesmf.kernels.gibbs.sample_scale_move`), then,
        for Normal-Wishart, shears between every pair of factors
        (:func:`~bayesmf.kernels.gibbs.shear_moves`).
        """
        k, pr = self.k, self.pr
        if self.hyperprior == "normal-wishart":
            w = 1.0 / pr.w0  # W0^-1 = I / w0
            c = sample_scale_move(self.rng, w * np.diag(self.prec_u), w * np.diag(self.prec_v))
        else:
            c = sample_scale_move(self.rng, 2 * pr.factor_rate * np.diag(self.prec_u),
                                  2 * pr.factor_rate * np.diag(self.prec_v))
        prec_u = self.prec_u / np.outer(c, c)
        prec_v = self.prec_v * np.outer(c, c)
        T = np.diag(c)
        if self.hyperprior == "normal-wishart":
            A = shear_moves(self.rng, prec_u, prec_v, pr.w0)
            T = A @ T
        T_inv = np.linalg.inv(T)
        transform_rows(self.Ux, T, k)  # U <- U T^T
        transform_rows(self.Vx, np.ascontiguousarray(T_inv.T), k)  # V <- V T^-1
        self.mean_u = T @ self.mean_u
        self.mean_v = T_inv.T @ self.mean_v
        pu = T_inv.T @ self.prec_u @ T_inv
        pv = T @ self.prec_v @ T.T
        self.prec_u = 0.5 * (pu + pu.T)
        self.prec_v = 0.5 * (pv + pv.T)

    def _shift_factors(self) -> None:
        """Moves ``u_i + w, c_j - w.v_j`` and ``v_j + z, b_i - z.u_i`` (factor means vs biases)."""
        k, pr = self.k, self.pr
        sides = ((self.Ux, self.Vx, "u", self.tau_bi), (self.Vx, self.Ux, "v", self.tau_bu))
        for X, Y, name, tau_other in sides:
            prec = self.prec_u if name == "u" else self.prec_v
            if self.hyperprior == "normal-wishart":
                mean = self.mean_u if name == "u" else self.mean_v
                P0 = pr.beta0 * prec
                l0 = -P0 @ mean
            else:
                P0 = X.shape[0] * prec
                l0 = -prec @ X[:, :k].sum(axis=0)
            w, delta = factor_mean_shift_move(self.rng, P0, l0, Y[:, :k], Y[:, k], tau_other,
                                              self.mu, pr.mu_mean, pr.mu_sd,
                                              self.alpha)
            shift_rows(X, w, Y, delta, k)  # X[:, :k] += w; Y[:, k] -= Y[:, :k] @ w + delta
            self.mu += delta
            if self.hyperprior == "normal-wishart":
                if name == "u":
                    self.mean_u = self.mean_u + w
                else:
                    self.mean_v = self.mean_v + w

    def _translate(self) -> None:
        """Shift moves mu + d, user biases - d (then the same with item biases)."""
        k, pr = self.k, self.pr
        for X, tau_b in ((self.Ux, self.tau_bu), (self.Vx, self.tau_bi)):
            d = translation_move(self.rng, self.mu, X[:, k], tau_b, pr.mu_mean, pr.mu_sd)
            self.mu += d
            X[:, k] -= d

    def _residuals(self) -> tuple[float, float]:
        r, k = self.r, self.k
        if self.biases:
            bu = np.ascontiguousarray(self.Ux[:, k])
            bi = np.ascontiguousarray(self.Vx[:, k])
        else:
            bu, bi = self.zeros_u, self.zeros_i
        s1, s2 = self._residual_sums(r.users, r.items, r.values, self.Ux, self.Vx, bu, bi, k)
        return float(s1), float(s2)

    def _loglik(self, sse: float) -> float:
        n = self.r.nnz
        return float(0.5 * n * math.log(self.tau / (2.0 * math.pi)) - 0.5 * self.tau * sse)

    @staticmethod
    def sigma_factors(prec: np.ndarray) -> np.ndarray:
        """Prior sd of each factor: ``sqrt(diag(Lambda^-1))``."""
        return np.sqrt(np.diag(np.linalg.inv(prec)))

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        k = self.k
        U = np.ascontiguousarray(self.Ux[:, :k])
        V = np.ascontiguousarray(self.Vx[:, :k])
        bu = np.ascontiguousarray(self.Ux[:, k]) if self.biases else self.zeros_u
        bi = np.ascontiguousarray(self.Vx[:, k]) if self.biases else self.zeros_i
        out = np.empty(len(users))
        predict_observed(users, items, U, V, self.mu, bu, bi, out)
        return out


# ---------------------------------------------------------------------- running chains
def run_chain(
    sampler: ChainSampler,
    c: int,
    storage: DrawStorage,
    tune: int,
    draws: int,
    thin: int,
    counts: np.ndarray,
    probe: tuple[np.ndarray, np.ndarray] | None,
    probe_acc: np.ndarray | None,
    sweep: Callable[[ChainSampler], None],
    on_sweep: Callable[[], None],
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Run chain ``c`` for ``tune + draws`` sweeps, recording every ``thin``-th kept draw.

    ``counts[c]`` is the number of draws recorded so far (a Ctrl-C keeps them);
    ``probe_acc[c]`` accumulates the sum and sum of squares of the probe pairs' latent
    means; ``on_sweep`` is called after every sweep and ``stop()`` before every sweep (a
    worker process stops early when the parent asks).
    """
    for s in range(tune + draws):
        if stop():
            return
        sweep(sampler)
        on_sweep()
        t = s - tune + 1
        if t > 0 and t % thin == 0 and counts[c] < storage.n_kept:
            storage.record(c, int(counts[c]), sampler)
            if probe is not None and probe_acc is not None:
                pred = sampler.predict(probe[0], probe[1])
                probe_acc[c, 0] += pred
                probe_acc[c, 1] += pred * pred
            counts[c] += 1


def scratch_dir(nbytes: int) -> str:
    """Directory for the draws the worker processes write: ``/dev/shm`` if it has room.

    Memory-backed where possible; otherwise the system temporary directory (files in the
    page cache, written to disk only under memory pressure).
    """
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        try:
            if shutil.disk_usage(shm).free > 1.1 * nbytes + (64 << 20):
                return shm
        except OSError:  # pragma: no cover - unusual mounts
            pass
    return tempfile.gettempdir()


def _open_arrays(spec: dict[str, tuple[tuple[int, ...], np.dtype]], directory: str,
                 create: bool) -> dict[str, np.ndarray]:
    """Memory-mapped arrays ``directory/<name>.bin`` laid out as in ``spec``."""
    mode = "w+" if create else "r+"
    return {key: np.memmap(os.path.join(directory, key + ".bin"), dtype=dtype, mode=mode,
                           shape=shape)
            for key, (shape, dtype) in spec.items()}


def _worker_main(job_path: str) -> None:
    """Entry point of a worker process (``python -m bayesmf.models.gibbs_chain JOB``).

    Runs its chains into the parent's memory-mapped arrays; stops early when the parent sets
    the stop flag or goes away. An error is written to ``JOB.err`` and the exit code is 1.
    """
    import pickle
    import types

    with open(job_path, "rb") as fh:
        chain_ids, job, spec, directory = pickle.load(fh)
    parent = os.getppid()
    n_threads = job["n_threads"]  # None: serial kernels, one worker per core already
    if n_threads is not None and n_threads > 1:
        import numba

        numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        a = _open_arrays(spec, directory, create=False)
        storage = DrawStorage(a, job["n_kept"], job["biases"], job["hyperprior"])
        counts, progress, stop_flag = a["_counts"], a["_progress"], a["_stop"]
        probe_acc = a.get("_probe")
        priors = types.SimpleNamespace(**job["priors"])

        def stop() -> bool:
            return bool(stop_flag[0]) or os.getppid() != parent

        for c in chain_ids:
            if stop():
                break
            sampler = ChainSampler(job["ratings"], job["k"], job["biases"], job["hyperprior"],
                                   priors, np.random.default_rng(job["seeds"][c]),
                                   moves=job["moves"],
                                   parallel=n_threads is not None and n_threads > 1,
                                   overrelax=job["overrelax"])
            sampler.initialise(job["init"])

            def tick(c: int = c) -> None:
                progress[c] += 1

            run_chain(sampler, c, storage, job["tune"], job["draws"], job["thin"], counts,
                      job["probe"], probe_acc, ChainSampler.sweep, tick, stop=stop)
        for arr in a.values():
            arr.flush()
    except BaseException as exc:  # reported to the parent, which raises it
        with open(job_path + ".err", "w") as fh:
            fh.write(f"{type(exc).__name__}: {exc}")
        sys.exit(1)


def run_chains_in_processes(
    n_workers: int,
    job: dict[str, Any],
    spec: dict[str, tuple[tuple[int, ...], np.dtype]],
    on_progress: Callable[[int], None],
) -> tuple[dict[str, np.ndarray], bool]:
    """Run the chains of ``job`` in ``n_workers`` processes; return (arrays, interrupted).

    Chain ``c`` runs in worker ``c % n_workers`` with its own seed (``job["seeds"][c]``),
    so the draws are the very ones a sequential run gives. Workers are fresh interpreters
    (``python -m bayesmf.models.gibbs_chain``: no ``if __name__ == "__main__"`` guard is
    needed in the user's script, and no fork of a process with thread pools) in their own
    session, so Ctrl-C reaches only this process. They write the stored draws, the per-chain
    counts and probe sums into memory-mapped files (``spec``, plus the bookkeeping arrays
    ``_counts``, ``_progress``, ``_stop``) in :func:`scratch_dir`; ``on_progress(total
    sweeps done)`` is called about ten times a second. Ctrl-C asks the workers to stop after
    their current sweep and returns what they have recorded (``interrupted=True``); an error
    in a worker is raised here as :class:`~bayesmf.exceptions.BayesMFError` with its message.
    """
    import pickle
    import subprocess

    chains = len(job["seeds"])
    full = dict(spec)
    full["_counts"] = ((chains,), np.dtype(np.int64))
    full["_progress"] = ((chains,), np.dtype(np.int64))
    full["_stop"] = ((1,), np.dtype(np.int64))
    nbytes = sum(int(np.prod(shape)) * np.dtype(dt).itemsize for shape, dt in full.values())
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="bayesmf-gibbs-", dir=scratch_dir(nbytes)) as tmp:
        arrays = _open_arrays(full, tmp, create=True)
        for key in ("_counts", "_progress", "_stop", "_probe"):
            if key in arrays:
                arrays[key][...] = 0
        for arr in arrays.values():
            arr.flush()
        procs, jobs = [], []
        # the workers import this very copy of bayesmf, wherever it was imported from
        pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [pkg_parent] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        try:
            for w in range(n_workers):
                path = os.path.join(tmp, f"job-{w}.pkl")
                with open(path, "wb") as fh:
                    pickle.dump((list(range(w, chains, n_workers)), job, full, tmp), fh)
                jobs.append(path)
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "bayesmf.models.gibbs_chain", path],
                    start_new_session=True, env=env))
            progress = arrays["_progress"]
            while any(p.poll() is None for p in procs):
                try:
                    time.sleep(0.1)
                    on_progress(int(progress.sum()))
                except KeyboardInterrupt:
                    interrupted = True
                    arrays["_stop"][0] = 1
                    arrays["_stop"].flush()
        finally:
            if any(p.poll() is None for p in procs):  # an error here: do not leave them running
                arrays["_stop"][0] = 1
                arrays["_stop"].flush()
                for p in procs:
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:  # pragma: no cover - stuck worker
                        p.kill()
        try:
            on_progress(int(arrays["_progress"].sum()))
        except KeyboardInterrupt:  # a second Ctrl-C while finishing: the draws are kept anyway
            interrupted = True
        messages = []
        for p, path in zip(procs, jobs, strict=True):
            if p.returncode != 0:
                err = path + ".err"
                if os.path.exists(err):
                    with open(err) as fh:
                        messages.append(fh.read())
                else:
                    messages.append(f"exit code {p.returncode}")
        if messages:
            raise BayesMFError("a Gibbs worker process failed: " + "; ".join(messages))
        out = {key: np.array(a) for key, a in arrays.items()}
        del arrays
    return out, interrupted


def default_workers(chains: int, nnz: int, sweeps: int) -> int:
    """Worker processes for a run: one per core (at most one per chain) for long runs, else 1."""
    cpus = os.cpu_count() or 1
    if chains < 2 or cpus < 2 or nnz * sweeps * chains < PROCESS_MIN_WORK:
        return 1
    return min(chains, cpus)


if __name__ == "__main__":  # a worker process started by run_chains_in_processes
    _worker_main(sys.argv[1])
