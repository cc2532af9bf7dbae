r"""The PMF model as a PyMC graph (one definition of the model and its priors).

The model
---------
For the observed pairs :math:`(i, j)` (user :math:`i`, item :math:`j`), with :math:`k` factors:

.. math::

    r_{ij} &\sim \mathcal N\!\left(f(\eta_{ij}),\ \sigma^2\right), \qquad
        \eta_{ij} = \mu + b_i + c_j + u_i^\top v_j, \\
    u_{i} &\sim \mathcal N\!\left(0,\ \operatorname{diag}(\sigma_{u,1}^2, \dots, \sigma_{u,k}^2)\right),
    \qquad
    v_{j} \sim \mathcal N\!\left(0,\ \operatorname{diag}(\sigma_{v,1}^2, \dots, \sigma_{v,k}^2)\right), \\
    b_i &\sim \mathcal N(0, \sigma_b^2), \qquad c_j \sim \mathcal N(0, \sigma_c^2)
        \quad \text{(only with ``biases=True``; otherwise } b = c = 0), \\
    \tau_{u,f} = \sigma_{u,f}^{-2},\ \tau_{v,f} = \sigma_{v,f}^{-2}
        &\sim \operatorname{Gamma}(a_f, b_f) \ \text{(shape, rate), one per factor } f, \\
    \tau_b = \sigma_b^{-2},\ \tau_c = \sigma_c^{-2} &\sim \operatorname{Gamma}(a_b, b_b), \\
    \tau = \sigma^{-2} &\sim \operatorname{Gamma}(a_\sigma, b_\sigma), \\
    \mu &\sim \mathcal N(m_0, s_0^2).

Every precision has a conjugate Gamma prior, so a Gibbs sampler for the same model (the
"diagonal" hyperprior variant of :mod:`bayesmf.models.gibbs`) draws each of them in closed form:
:math:`\tau_{u,f} \mid U \sim \operatorname{Gamma}(a_f + n_u/2,\ b_f + \tfrac12\sum_i u_{if}^2)`,
likewise for items and biases, :math:`\tau \mid \cdot \sim \operatorname{Gamma}(a_\sigma + N/2,\
b_\sigma + \tfrac12\sum e^2)` and :math:`\mu \mid \cdot` Normal. The default constants are in
:class:`PMFPriors`, equal to those of :class:`bayesmf.models.gibbs.GibbsPriors`:
:math:`a_f = 1, b_f = 0.1` (per-factor precision; prior median :math:`\sigma_{u,f} \approx 0.38`,
95 % range 0.16-2.0), :math:`a_b = 1, b_b = 0.1` for the bias scales, :math:`a_\sigma = 1,
b_\sigma = 1` (noise; median :math:`\sigma \approx 1.2`, 95 % range 0.52-6.3, swamped by any
real data set) and :math:`m_0 = 0, s_0 = 10`. The samplers start ``mu`` at the mean rating.

Links
-----
``link="identity"``: :math:`f(\eta) = \eta`, ratings modelled on their own scale.

``link="logistic"`` (Salakhutdinov & Mnih's PMF paper): ratings are mapped to
:math:`t = (r - r_{\min}) / (r_{\max} - r_{\min}) \in [0, 1]` using the *declared* rating scale,
:math:`f(\eta) = \operatorname{sigmoid}(\eta)` and the Normal likelihood is on :math:`t`
(so :math:`\sigma` is on the mapped scale); a prediction is
:math:`r_{\min} + (r_{\max} - r_{\min})\,\operatorname{sigmoid}(\eta)`; :math:`\mu` is then
on the logit scale. Data without a declared scale raise
:class:`~bayesmf.exceptions.DataError`.

Parametrisation
---------------
``parametrization="noncentered"`` (default) samples standard-normal auxiliaries ``U_z``, ``V_z``,
``user_bias_z``, ``item_bias_z`` and sets ``U = U_z * sigma_u`` (and so on): the scale of each
factor column then moves in one coordinate instead of through thousands of factor entries, which
removes the funnel between :math:`\sigma_{u,f}` and the column and the long ``U * c, V / c`` ridge.
``"centered"`` samples ``U ~ Normal(0, sigma_u)`` directly. The samplers sample the log of every
precision (PyMC's log transform); ``sigma_*`` are deterministic ``tau_* ** -0.5``.

Likelihood implementations
--------------------------
``likelihood="naive"`` builds the textbook graph (gather ``U[user_idx]``, ``V[item_idx]``,
multiply, sum, ``pm.Normal(observed=...)``). ``likelihood="fast"`` adds the same log-likelihood as
one ``pm.Potential`` computed by :class:`PMFLogLikOp`, a PyTensor Op whose ``perform`` (and whose
numba implementation, used by nutpie / ``mode="NUMBA"``) calls the numba kernel
:func:`bayesmf.kernels.pmf_logp.loglik_grad`: value *and* gradient come out of one pass over the
ratings, and PyTensor's merge step makes the gradient graph reuse that same node.

Names follow ``CONVENTIONS.md``: ``U, V, mu, user_bias, item_bias, sigma, sigma_u, sigma_v,
sigma_user_bias, sigma_item_bias``; dims ``user, item, factor, rating`` with raw-id coords.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from bayesmf._validation import check_choice, check_positive_float, check_positive_int
from bayesmf.data import Ratings
from bayesmf.exceptions import BayesMFError, DataError
from bayesmf.kernels.pmf_logp import loglik_grad

LINKS = ("identity", "logistic")
PARAMETRIZATIONS = ("noncentered", "centered")
LIKELIHOODS = ("fast", "naive")

#: names of the posterior variables shared by every Bayesian method (CONVENTIONS.md)
SHARED_NAMES = (
    "U",
    "V",
    "mu",
    "user_bias",
    "item_bias",
    "sigma",
    "sigma_u",
    "sigma_v",
    "sigma_user_bias",
    "sigma_item_bias",
)


@dataclass(frozen=True)
class PMFPriors:
    """Constants of the hierarchical priors (Gamma shape/rate on every precision).

    Parameters
    ----------
    factor_shape, factor_rate : float
        :math:`\\tau_{u,f}, \\tau_{v,f} \\sim \\operatorname{Gamma}(a_f, b_f)` per factor.
    bias_shape, bias_rate : float
        :math:`\\tau_b, \\tau_c \\sim \\operatorname{Gamma}(a_b, b_b)` (bias precisions).
    noise_shape, noise_rate : float
        :math:`\\sigma^{-2} \\sim \\operatorname{Gamma}(a_\\sigma, b_\\sigma)`.
    mu_mean, mu_sd : float
        Normal prior of :math:`\\mu` on the working scale (the identity link's rating scale, the
        logit scale for the logistic link).

    The field names and defaults are those of :class:`bayesmf.models.gibbs.GibbsPriors`
    (its ``hyperprior="diagonal"`` variant is this model).
    """

    factor_shape: float = 1.0
    factor_rate: float = 0.1
    bias_shape: float = 1.0
    bias_rate: float = 0.1
    noise_shape: float = 1.0
    noise_rate: float = 1.0
    mu_mean: float = 0.0
    mu_sd: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "factor_shape",
            "factor_rate",
            "bias_shape",
            "bias_rate",
            "noise_shape",
            "noise_rate",
            "mu_sd",
        ):
            check_positive_float(getattr(self, name), f"PMFPriors.{name}")
        if not np.isfinite(float(self.mu_mean)):
            raise DataError(f"PMFPriors.mu_mean must be finite, got {self.mu_mean!r}")


# ---------------------------------------------------------------------------------------------
# data on the working scale
# ---------------------------------------------------------------------------------------------
def working_values(ratings: Ratings, link: str) -> np.ndarray:
    """Ratings on the scale the likelihood sees: raw (identity) or mapped to [0, 1] (logistic).

    Raises
    ------
    DataError
        For the logistic link when ``ratings.scale`` is None.
    """
    link = check_choice(link, "link", LINKS)
    if link == "identity":
        return ratings.values.astype(np.float64)
    if ratings.scale is None:
        raise DataError(
            "link='logistic' maps ratings to [0, 1] with the declared rating scale, but these "
            "ratings have none; pass scale=(min, max, step) to Ratings.from_frame, or use "
            "link='identity'"
        )
    sc = ratings.scale
    return (ratings.values - sc.min) / sc.span


def initial_mu(values: np.ndarray, link: str) -> float:
    """A starting value of ``mu``: the mean working rating (its logit for the logistic link)."""
    m = float(np.mean(values))
    if link == "logistic":
        m = min(max(m, 1e-3), 1 - 1e-3)
        return math.log(m / (1 - m))
    return m


def _raw_coord(index: object) -> np.ndarray:
    arr = np.asarray(index)
    if arr.dtype.kind in "iufb":
        return arr
    return arr.astype(str).astype(object)


def model_coords(ratings: Ratings, rank: int) -> dict[str, np.ndarray]:
    """Coords ``user``, ``item`` (raw ids), ``factor`` (0..k-1), ``rating`` (0..nnz-1)."""
    return {
        "user": _raw_coord(ratings.user_ids),
        "item": _raw_coord(ratings.item_ids),
        "factor": np.arange(rank),
        "rating": np.arange(ratings.nnz),
    }


# ---------------------------------------------------------------------------------------------
# the fast likelihood Op
# ---------------------------------------------------------------------------------------------
class PMFLogLikOp(Op):
    """Log-likelihood of all ratings *and* its gradient from one numba pass.

    Inputs: ``user_idx, item_idx, values, U, V, mu, user_bias, item_bias, sigma``.
    Outputs: ``logp`` (scalar), then the gradients ``dU, dV, dmu, d_user_bias, d_item_bias,
    dsigma``. The model uses output 0; :meth:`grad` returns ``output_grad * outputs[1:]`` of an
    identical node, which PyTensor merges with the first, so a compiled log-density-and-gradient
    function runs the kernel once. Second derivatives are not implemented.
    """

    __props__ = ("logistic",)

    def __init__(self, logistic: bool = False) -> None:
        self.logistic = bool(logistic)

    def make_node(self, users, items, values, U, V, mu, user_bias, item_bias, sigma) -> Apply:
        users = pt.as_tensor_variable(users)
        items = pt.as_tensor_variable(items)
        floats = [
            pt.cast(pt.as_tensor_variable(x), "float64")
            for x in (values, U, V, mu, user_bias, item_bias, sigma)
        ]
        values, U, V, mu, user_bias, item_bias, sigma = floats
        for var, nd, name in (
            (users, 1, "user_idx"),
            (items, 1, "item_idx"),
            (values, 1, "values"),
            (U, 2, "U"),
            (V, 2, "V"),
            (mu, 0, "mu"),
            (user_bias, 1, "user_bias"),
            (item_bias, 1, "item_bias"),
            (sigma, 0, "sigma"),
        ):
            if var.ndim != nd:
                raise TypeError(f"PMFLogLikOp: {name} must have {nd} dims, got {var.ndim}")
        if not (users.dtype.startswith(("int", "uint")) and items.dtype.startswith(("int", "uint"))):
            raise TypeError("PMFLogLikOp: user_idx and item_idx must be integer tensors")
        outputs = [
            pt.dscalar(),
            U.type(),
            V.type(),
            pt.dscalar(),
            user_bias.type(),
            item_bias.type(),
            pt.dscalar(),
        ]
        return Apply(self, [users, items, *floats], outputs)

    def perform(self, node, inputs, output_storage) -> None:
        users, items, values, U, V, mu, ub, ib, sigma = inputs
        res = loglik_grad(
            users, items, values, U, V, float(mu), ub, ib, float(sigma), self.logistic
        )
        logp, dU, dV, dmu, dub, dib, dsig = res
        output_storage[0][0] = np.asarray(logp)
        output_storage[1][0] = dU
        output_storage[2][0] = dV
        output_storage[3][0] = np.asarray(dmu)
        output_storage[4][0] = dub
        output_storage[5][0] = dib
        output_storage[6][0] = np.asarray(dsig)

    def infer_shape(self, fgraph, node, input_shapes):
        s = input_shapes
        return [(), s[3], s[4], (), s[6], s[7], ()]

    def grad(self, inputs, output_grads):
        for og in output_grads[1:]:
            if not isinstance(og.type, DisconnectedType):
                raise NotImplementedError(
                    "PMFLogLikOp has no second derivatives (its extra outputs are gradients)"
                )
        g = output_grads[0]
        outs = self(*inputs)
        users, items, values = inputs[:3]
        return [
            grad_undefined(self, 0, users, "integer indices"),
            grad_undefined(self, 1, items, "integer indices"),
            grad_not_implemented(self, 2, values, "gradient with respect to the data"),
            g * outs[1],
            g * outs[2],
            g * outs[3],
            g * outs[4],
            g * outs[5],
            g * outs[6],
        ]

    def connection_pattern(self, node):
        # every input influences the value; the data do not need gradients
        return [[True] * 7 for _ in range(9)]


def pmf_loglik(users, items, values, U, V, mu, user_bias, item_bias, sigma, logistic=False):
    """Symbolic total log-likelihood from :class:`PMFLogLikOp` (output 0)."""
    return PMFLogLikOp(logistic)(users, items, values, U, V, mu, user_bias, item_bias, sigma)[0]


def _register_numba() -> bool:
    """Give :class:`PMFLogLikOp` a native numba implementation (nutpie, ``mode="NUMBA"``)."""
    try:
        from pytensor.link.numba.dispatch.basic import (
            numba_njit,
            register_funcify_default_op_cache_key,
        )
    except ImportError:  # pragma: no cover - older pytensor
        return False

    @register_funcify_default_op_cache_key(PMFLogLikOp)
    def _numba_funcify_pmf_loglik(op, node=None, **kwargs):
        logistic = op.logistic

        @numba_njit
        def pmf_loglik_numba(users, items, values, U, V, mu, ub, ib, sigma):
            logp, dU, dV, dmu, dub, dib, dsig = loglik_grad(
                users, items, values, U, V, mu.item(), ub, ib, sigma.item(), logistic
            )
            return (
                np.asarray(logp),
                dU,
                dV,
                np.asarray(dmu),
                dub,
                dib,
                np.asarray(dsig),
            )

        return pmf_loglik_numba

    return True


NUMBA_REGISTERED = _register_numba()


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
def _scale_block(name: str, shape: float, rate: float, dims: str | None) -> pt.TensorVariable:
    tau = pm.Gamma(f"tau_{name}" if name else "tau", alpha=shape, beta=rate, dims=dims)
    return pm.Deterministic(f"sigma_{name}" if name else "sigma", tau**-0.5, dims=dims)


def _latent(name: str, scale, dims, parametrization: str) -> pt.TensorVariable:
    if parametrization == "noncentered":
        z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims)
        return pm.Deterministic(name, z * scale, dims=dims)
    return pm.Normal(name, 0.0, scale, dims=dims)


def build_pmf_model(
    ratings: Ratings,
    rank: int,
    biases: bool = True,
    link: str = "identity",
    parametrization: str = "noncentered",
    likelihood: str = "fast",
    priors: PMFPriors | None = None,
    minibatch_size: int | None = None,
) -> pm.Model:
    """Build the hierarchical PMF model (see the module docstring for the maths).

    Parameters
    ----------
    ratings : Ratings
        Training ratings; their raw ids become the ``user`` / ``item`` coords.
    rank : int
        Number of factors ``k``.
    biases : bool
        Include user and item biases with learned scales.
    link : {"identity", "logistic"}
        Mean ``eta`` or ``sigmoid(eta)`` of the working-scale ratings; the logistic link needs a
        declared rating scale.
    parametrization : {"noncentered", "centered"}
        ``U = U_z * sigma_u`` (default) or ``U ~ Normal(0, sigma_u)``; same for ``V`` and biases.
    likelihood : {"fast", "naive"}
        One-pass numba Op (a ``pm.Potential`` named ``loglik``) or the textbook gather-multiply-sum
        graph with ``pm.Normal("R", observed=...)``. Both give the same log density.
    priors : PMFPriors, optional
        Prior constants (defaults: :class:`PMFPriors`).
    minibatch_size : int, optional
        Naive likelihood only: each logp evaluation sees a random ``pm.Minibatch`` of this many
        ratings, scaled up with ``total_size`` (for minibatch ADVI).

    Returns
    -------
    pymc.Model
        With data ``user_idx``, ``item_idx``, free
        variables ``mu``, ``tau``, ``tau_u``, ``tau_v``, ``U_z``/``U``, ..., deterministics
        ``sigma*``, ``U``, ``V``, ``user_bias``, ``item_bias``.

    Raises
    ------
    DataError
        Empty ratings, or the logistic link without a declared rating scale.
    BayesMFError
        Bad ``rank`` or option strings.
    """
    if not isinstance(ratings, Ratings):
        raise DataError(f"build_pmf_model expects a bayesmf Ratings object, got {type(ratings).__name__}")
    if ratings.nnz == 0:
        raise DataError("cannot build a model on an empty set of ratings")
    k = check_positive_int(rank, "rank")
    link = check_choice(link, "link", LINKS)
    parametrization = check_choice(parametrization, "parametrization", PARAMETRIZATIONS)
    likelihood = check_choice(likelihood, "likelihood", LIKELIHOODS)
    if minibatch_size is not None:
        minibatch_size = check_positive_int(minibatch_size, "minibatch_size")
        if likelihood != "naive":
            raise BayesMFError("minibatch_size needs likelihood='naive'")
    pr = priors if priors is not None else PMFPriors()
    values = working_values(ratings, link)

    coords = model_coords(ratings, k)
    with pm.Model(coords=coords) as model:
        user_idx = pm.Data("user_idx", ratings.users.astype(np.int32), dims="rating")
        item_idx = pm.Data("item_idx", ratings.items.astype(np.int32), dims="rating")

        mu = pm.Normal("mu", pr.mu_mean, pr.mu_sd, initval=initial_mu(values, link))
        sigma = _scale_block("", pr.noise_shape, pr.noise_rate, None)
        sigma_u = _scale_block("u", pr.factor_shape, pr.factor_rate, "factor")
        sigma_v = _scale_block("v", pr.factor_shape, pr.factor_rate, "factor")
        U = _latent("U", sigma_u, ("user", "factor"), parametrization)
        V = _latent("V", sigma_v, ("item", "factor"), parametrization)
        if biases:
            s_b = _scale_block("user_bias", pr.bias_shape, pr.bias_rate, None)
            s_c = _scale_block("item_bias", pr.bias_shape, pr.bias_rate, None)
            user_bias = _latent("user_bias", s_b, "user", parametrization)
            item_bias = _latent("item_bias", s_c, "item", parametrization)
        else:
            user_bias = pt.zeros(ratings.n_users)
            item_bias = pt.zeros(ratings.n_items)

        if likelihood == "fast":
            # item-major order: the kernel then accumulates dV[i] in registers and scatters
            # only into the small, cache-resident dU
            order = np.lexsort((ratings.users, ratings.items))
            pm.Potential(
                "loglik",
                pmf_loglik(
                    pt.constant(ratings.users[order].astype(np.int32)),
                    pt.constant(ratings.items[order].astype(np.int32)),
                    pt.constant(values[order]),
                    U,
                    V,
                    mu,
                    user_bias,
                    item_bias,
                    sigma,
                    logistic=(link == "logistic"),
                ),
            )
        else:
            if minibatch_size is None:
                uu, ii, rr = user_idx, item_idx, values
            else:
                uu, ii, rr = pm.Minibatch(
                    ratings.users.astype(np.int32),
                    ratings.items.astype(np.int32),
                    values,
                    batch_size=minibatch_size,
                )
            eta = mu + (U[uu] * V[ii]).sum(axis=-1)
            if biases:
                eta = eta + user_bias[uu] + item_bias[ii]
            mean = pm.math.sigmoid(eta) if link == "logistic" else eta
            if minibatch_size is None:
                pm.Normal("R", mu=mean, sigma=sigma, observed=rr, dims="rating")
            else:
                pm.Normal("R", mu=mean, sigma=sigma, observed=rr, total_size=ratings.nnz)
    return model
