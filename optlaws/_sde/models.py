"""SDE models of SGD and Adam on a spectral noisy-quadratic landscape."""

from __future__ import annotations

import abc
import functools
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._model import AbstractLossModel, Parameter
from .._precision import canonical
from .._run import Run, as_run
from .dynamics import heavy_ball_equilibrium_factor, heavy_ball_log_contraction
from .segments import DEFAULT_BLOCK, integrate, make_plan
from .spectrum import AbstractSpectrum, PowerLawSpectrum

__all__ = ["AbstractSDEModel", "AdamModel", "SGDModel"]

DYNAMICS = ("discrete", "sde")
# Structural defaults of AdamModel: medians over the peak-LR sweep of the independent 124M Llama
# runs of Schaipp et al. (benchmarks/calibrate.py; none of the Multi-Power Law curves is used).
DEFAULT_NOISE_EXPONENT = 0.06
DEFAULT_NORM_INIT = 0.69
DEFAULT_MOBILITY_EXPONENT = 0.69
# Leave-one-curve-out's choice on the 15k-step runs of the same sweep (AbstractSDEModel: the
# signal's mobility; calibrated with the signal at the noise's mobility, the three above).
DEFAULT_SIGNAL_MOBILITY_EXPONENT = 0.8
# Loss in the sharpest direction at step 0, relative to loss_inf: small enough to change no stable
# prediction, large enough that a blow-up crosses DIVERGENCE_RATIO within tens of unstable steps.
EDGE_LOSS_INIT = 1e-6
# The sharpest direction flattens toward this fraction of the stability edge. A network hovers at
# the edge, its oscillation bounded by non-linear self-stabilisation, which a linear moment model
# lacks: there ``rho = 1`` at the edge, and tracking it with any lag grows the mode's loss without
# bound (by about exp(0.05) per step for a 0.1% lag at b1 = 0.9).
EDGE_MARGIN = 0.9
# Where a fit starts a parameter that is 0 (a mechanism off, or the sharpening's flat start) when it
# is freed: fitted in log space, it could not leave 0 (fitted on the 124M sweep: area ceiling 30-50,
# peak-LR floor 0.019-0.030, sharpening time about 100, sharpening start 0-0.1).
FREED_FROM_ZERO = {"area_ceiling": 10.0, "peak_floor": 0.01, "sharpening_time": 300.0, "sharpening_start": 0.1}
# Curves whose peak LRs differ by more than this factor are a peak-LR sweep (see ``sweep_free``).
SWEEP_PEAK_RATIO = 1.5


def _peak_lrs(curves: Sequence) -> list[float]:
    """Each curve's peak learning rate."""
    return [float(np.max(np.asarray(c.run.lr))) for c in curves]


class AbstractSDEModel(AbstractLossModel):
    r"""Expected loss from the exact moment equations of a spectral noisy-quadratic SDE.

    Mode ``k`` (curvature ``h_k``, see :class:`PowerLawSpectrum`) carries a signal loss that
    decays and a noise loss that relaxes toward its stationary value:

        signal_k <- rho_k^n signal_k
        noise_k  <- e_k + rho_k^n (noise_k - e_k),     e_k = lr_eff * noise_weight_k * q_k

    over ``n`` updates at constant learning rate, where ``rho_k`` and ``q_k`` are the optimizer's
    exact per-step contraction and stationary factor (:mod:`optlaws._sde.dynamics`) and the loss is
    ``L = loss_inf + sum_k signal_k + noise_k``. With ``dynamics="sde"`` the continuous-time limit
    ``rho = exp(-2 lr_eff h)``, ``q = 1`` is used: the moments of

        d theta_k = -lr_eff h_k theta_k dt + lr_eff sqrt(4 noise_k) dW_k.

    The model is the landscape; the optimizer settings (batch size, weight decay, momentum) come
    from the :class:`~optlaws.Run`. Decoupled weight decay ``lambda`` moves the weight norm, and
    with it the effective learning rate of scale-invariant weights: ``z`` (the squared norm, or
    its square for SGD, relative to its equilibrium at ``reference_lr`` and
    ``reference_weight_decay = lambda_0``) follows ``dz/dt = 2 c lr (lambda_0 r - lambda z)``
    with ``r = (lr / reference_lr)^norm_exponent``: gradient noise pushes the norm out, weight
    decay pulls it in. Over ``n`` updates

        z <- z exp(-2 c lr lambda n) + r lambda_0 (1 - exp(-2 c lr lambda n)) / lambda,

    which without weight decay is ``z + 2 c lr n r lambda_0`` (the norm grows without bound), and
    ``lr_eff = lr * batch_factor / sqrt(z)``. The equilibrium ``z = r lambda_0 / lambda`` is
    AdamW's ``lr / lambda`` (``norm_exponent = 1``, the default and the rotational equilibrium,
    Kosson et al. 2024; Wang & Aitchison 2024), so there ``lr_eff`` grows like ``sqrt(lr lambda)``,
    in general like ``lr^(1 - norm_exponent / 2) sqrt(lambda)``; early in training the norm is
    still moving, so the noise floor per unit LR falls as training proceeds. ``norm_init`` is
    ``z`` at step 0. On a real AdamW sweep over weight decay (``benchmarks/weight_decay.py``) a
    fit to three weight decays predicts the fourth with mean error 1.2% (2.2% when the norm
    settled alike for every weight decay). Fitted to the 124M
    sweep, ``norm_exponent`` comes out at 1.17-1.32 in every
    fit and puts the optimal LR within 11% of the measured one, at the cost of the lowest peak LR
    held out (docs/model.md, "Across peak learning rates"): free it with ``free=`` to try it.

    The learning rate plays two parts: a temperature, which sets the stationary noise loss
    (``e_k`` above, proportional to ``lr_eff``), and a mobility, which sets how fast every mode
    relaxes (``rho_k``, evaluated at ``x = alpha(m) h``). On a quadratic both are ``lr_eff``;
    here the mobility is

        m = lr_eff * (lr / lr_max) ** (mobility_exponent - 1),    lr_max = max LR so far,

    so the two agree while the LR rises or holds (warmup, a constant phase) and, once it has come
    down from its peak, with ``mobility_exponent < 1`` modes relax faster than LR area alone
    predicts: the finding behind the ``eta^-gamma`` rescaling of post-drop LR area in the
    Multi-Power Law (Luo et al., 2025), whose loss-drop term also sees only LR decreases. Each
    mode is still the linear SDE above with drift ``m h`` and diffusion set by the temperature.
    ``mobility_exponent = 1`` is the quadratic (and the SGD default); Adam's default is
    calibrated on the 124M runs (``benchmarks/calibrate.py``).

    The signal (what is left to learn) and the noise (what the temperature put in) of a mode
    relax with mobilities of their own: the noise at ``mobility_exponent``, the signal at

        m_signal = lr_eff * (lr / lr_max) ** (signal_mobility_exponent - 1),

    so that a cooldown can drain the noise faster than it speeds up learning. The linear SDE
    keeps both: its mean follows the drift ``m_signal h``, its fluctuation about the mean the
    drift ``m h``. Equal exponents are the single mobility above; the Multi-Power Law is near the
    limit ``signal_mobility_exponent = 1`` (its constant-LR term sees plain LR area, its loss drop
    the rescaled one). Adam's default, 0.8, is where leave-one-curve-out is lowest when each peak
    LR of the 124M sweep is fitted to its 15k-step runs and trunk (0.078 / 0.123 / 0.167% at
    5e-4 / 1e-3 / 2e-3, against 0.112 / 0.149 / 0.185% at 0.69 = the noise's and 0.234 / 0.206 /
    0.223% at 1; freed there, it fits at 0.76 / 0.84 / 0.78). With it those fits rank their 25k
    runs at rank correlation 0.95 or above at every peak LR (``benchmarks/ranking.py``), and the
    Multi-Power Law curves, which chose nothing here, are predicted as well as before
    (docs/model.md, "Temperature and mobility"). SGD's default is 1.

    **Flattening with training.** With ``area_ceiling = c > 0`` every curvature is capped by the
    LR area travelled so far, ``A = sum of lr`` up to the middle of the current segment:

        h_k <- min(h_k, c / (reference_lr (A / reference_lr)^gamma)),    gamma = ceiling_exponent,

    ``c / A`` for ``gamma = 1``. A network flattens as it trains, and the further (in LR area) and
    the faster (a larger LR) it has gone, the flatter the directions that hold the noise loss
    (the edge-of-stability picture: Cohen et al. 2021, 2022). At a constant LR a capped mode
    relaxes at ``c lr^(1 - gamma) t^-gamma`` per step (in reference-LR units): for
    ``gamma = 1`` at ``c / t``, so the noise it holds drains in a cooldown of a fixed *fraction*
    of the run, not a fixed number of steps; for ``gamma > 1`` more slowly after a higher peak
    LR too. Fitted to the 124M sweep of every peak LR, this makes the predicted optimal peak LR
    fall with the horizon, as the real one does (docs/model.md, "Across peak learning rates";
    ``tests/test_sde.py`` checks it on the fitted landscapes). ``area_ceiling = 0`` (the
    default) leaves the spectrum as it is; freed in a fit, it starts at 10
    (:data:`FREED_FROM_ZERO`); free ``ceiling_exponent`` too. Sample paths
    (:func:`~optlaws.sample_paths`) do not model it.

    **What a high LR leaves.** With ``peak_floor = f > 0`` the loss carries, on top of the modes,

        f * lr_max / reference_lr,    lr_max = max LR so far,

    a loss that grows with the peak LR and that no cooldown removes. Fitted separately per peak
    LR, the 124M sweep's irreducible loss rises linearly with it (2.661, 2.695, 2.744 at 5e-4,
    1e-3, 2e-3); with the floor, one landscape fits every peak LR better, predicts longer runs
    from shorter ones within 0.3% and puts the optimal LR within 2% and 8% of the measured one at
    15k and 25k steps (docs/model.md, "Across peak learning rates"; ``tests/test_sde.py`` checks
    it on the fitted landscape). ``peak_floor = 0`` (the default) is off; freed in a fit, it
    starts at 0.01. Curves at several peak LRs free both mechanisms, with the structural
    parameters, unless ``fit`` is told otherwise (:meth:`free_for`, ``sweep_free``).

    **Sharpening from a flat start.** With ``sharpening_time = t0 > 0`` every curvature starts at
    ``g0 = sharpening_start`` (0 by default: flat) of the spectrum's and sharpens in (progressive
    sharpening, Cohen et al. 2021):

        h_k <- g h_k,    g = 1 - (1 - g0) exp(-clock / t0),
        clock = (A / reference_lr) (reference_lr / lr_max)^k,    k = sharpening_clock_exponent,

    before the area ceiling caps it. The clock counts LR area for ``k = 0`` and updates at the
    peak LR for ``k = 1``; the default ``k = 0.5`` lies between: at a constant LR ``lr`` the clock
    runs at ``sqrt(lr / reference_lr)`` per update, so a run at a quarter of the LR takes twice
    the updates to sharpen as far. Fitted to the 124M sweep, ``t0`` is about a hundred clock steps
    (with ``g0`` free too it goes to 0-0.1): learning starts late, the later the lower the LR,
    which mends the sweep's fit at its lowest LR in the first thousand steps. With the norm
    exponent free as well (:attr:`transfer_free`, which frees the signal's mobility too), one
    landscape fits every peak LR within 0.14%, and fitted on the 15k-step runs it puts the
    optimal LR at 25k steps 4% below the measured one (13% above without). ``k`` itself is not
    pinned by the runs (0.25-0.75 fit alike; free, 0.8 jointly and 2.5 on the 15k runs): 0.5 is
    the value whose transfer held best on that sweep
    (docs/model.md, "Across peak learning rates"; ``tests/test_sde.py`` checks the clock, a fit
    recovering ``g0`` and ``t0``, and the fitted landscape's optimal LR). ``sharpening_time = 0``
    (the default) is exactly off; freed in a fit, it starts at 300. Sample paths do not model it.

    **Stability.** One more mode, the sharpest direction, carries what the spectrum leaves out:
    whether training blows up. Its curvature ``s`` starts at ``sharpness_init`` and, like a
    network at the edge of stability (Cohen et al. 2021; for Adam's preconditioned sharpness
    2022), flattens toward just below the edge, ``s_edge = 0.9 * 2 (1 + mu) / alpha``
    (``EDGE_MARGIN``), whenever the step ``alpha`` puts it past that, but no faster than
    ``flattening_rate`` per step and never below ``sharpness_floor``:

        s <- max(sharpness_floor, min(s, max(s_edge, s exp(-flattening_rate n)))).

    Its loss ``e`` (``1e-6 loss_inf`` at step 0) follows the same moment recursion, ``e <- e
    rho^n`` at ``x = alpha s``: it vanishes while the mode is stable and grows geometrically once
    the LR outruns the flattening (a peak LR past ``x = 2 (1 + mu)`` with too short a warmup, a
    peak past the floor's edge whatever the warmup, a larger batch through ``alpha``). Then the
    predicted loss blows up and :class:`~optlaws.Prediction` reports ``diverged_at``.
    ``sharpness_init = 0`` (the default) leaves the mode out: stable curves say nothing about
    where training diverges (only the spectrum's stiffest mode, ``h = 1 / reference_lr``, has an
    edge, far out: ``x = 2 (1 + mu)`` at several times the reference LR);
    :func:`~optlaws.fit_stability` calibrates the three parameters on runs that did and did not
    diverge. Within a segment ``x`` is taken at the geometric mean of the sharpness before and
    after it: with ``block=16`` the predicted divergence step moves by less than a segment
    (``tests/test_stability.py``).
    """

    spectrum: AbstractSpectrum
    loss_inf: Float[Array, ""]
    norm_init: Float[Array, ""]
    reference_batch_size: Float[Array, ""]
    reference_lr: Float[Array, ""]
    reference_weight_decay: Float[Array, ""]
    mobility_exponent: Float[Array, ""]
    signal_mobility_exponent: Float[Array, ""]
    sharpness_init: Float[Array, ""]
    sharpness_floor: Float[Array, ""]
    flattening_rate: Float[Array, ""]
    area_ceiling: Float[Array, ""]
    ceiling_exponent: Float[Array, ""]
    peak_floor: Float[Array, ""]
    norm_exponent: Float[Array, ""]
    sharpening_start: Float[Array, ""]
    sharpening_time: Float[Array, ""]
    sharpening_clock_exponent: Float[Array, ""]
    block: int = eqx.field(static=True)
    dynamics: str = eqx.field(static=True)

    holds_every_step: ClassVar[bool] = False  # the moments advance segment by segment
    default_free: ClassVar[tuple[str, ...]] = (
        "loss_inf",
        "signal_amplitude",
        "signal_exponent",
        "noise_amplitude",
    )
    # One landscape for runs at several peak LRs: the structural parameters, the area ceiling and
    # the peak-LR floor too (on the 124M sweep, mean error per peak LR 0.10-0.18% against
    # 0.67-2.1% with default_free; docs/model.md, "Across peak learning rates").
    sweep_free: ClassVar[tuple[str, ...]] = default_free + (
        "noise_exponent",
        "norm_init",
        "mobility_exponent",
        "area_ceiling",
        "peak_floor",
    )
    # The optimal peak LR across horizons from a sweep: sweep_free with the weight norm's
    # equilibrium exponent, the sharpening and the signal's mobility too (on the 124M sweep, every
    # peak LR within 0.14% and LR* at 15k / 25k from the 15k runs 9% / 4% below the measured one,
    # against 0.19% and 3% / 13% above; the signal's mobility fixed at its default: 15% / 11%
    # below; docs/model.md, "Across peak learning rates").
    transfer_free: ClassVar[tuple[str, ...]] = sweep_free + ("norm_exponent", "sharpening_time",
                                                             "signal_mobility_exponent")
    norm_power: ClassVar[float]
    # The optimizer's usual values, for runs that do not record them.
    default_momentum: ClassVar[float]
    default_weight_decay: ClassVar[float]

    def __check_init__(self):
        if self.dynamics not in DYNAMICS:
            raise ValueError(f"`dynamics` must be one of {DYNAMICS}, got {self.dynamics!r}.")
        if self.block < 1:
            raise ValueError(f"`block` must be a positive number of steps, got {self.block}.")
        # The reference weight decay may be 0 (a norm that does not grow); the other scales not.
        for name, zero_allowed in (("reference_batch_size", False), ("reference_lr", False),
                                   ("reference_weight_decay", True)):
            value = getattr(self, name)
            if isinstance(value, jax.core.Tracer):
                continue
            value = float(value)
            if not np.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
                raise ValueError(f"`{name}` must be {'finite and >= 0' if zero_allowed else 'positive'}, "
                                 f"got {value!r}.")

    @abc.abstractmethod
    def _heavy_ball(self, lr_eff: Array, momentum: Array) -> tuple[Array, Array]:
        """Step size ``alpha`` and momentum ``mu`` of the equivalent heavy-ball update."""

    @abc.abstractmethod
    def _batch_lr_factor(self, batch_size: Array) -> Array:
        """Factor on the learning rate from running at ``batch_size`` instead of the reference."""

    def free_for(self, curves: Sequence) -> tuple[str, ...]:
        """``sweep_free`` when the curves' peak LRs differ by more than ``SWEEP_PEAK_RATIO``
        (1.5x), else ``default_free``: within one peak LR the floor is a constant that
        ``loss_inf`` already holds."""
        peaks = _peak_lrs(curves)
        return self.sweep_free if max(peaks) > SWEEP_PEAK_RATIO * min(peaks) else self.default_free

    def resolve(self, run: Run) -> Run:
        """``run`` with its unrecorded settings filled: the reference batch size, and the
        optimizer's usual weight decay and momentum (``default_weight_decay``, ``default_momentum``)."""
        return as_run(run).fill(batch_size=self.reference_batch_size, weight_decay=self.default_weight_decay,
                                momentum=self.default_momentum)

    def parameters(self) -> dict[str, Parameter]:
        spectrum = {
            name: Parameter("spectrum." + p.path, p.positive, p.doc)
            for name, p in self.spectrum.parameters().items()
        }
        return {
            "loss_inf": Parameter("loss_inf", True, "irreducible loss L_inf"),
            **spectrum,
            "norm_init": Parameter("norm_init", True, "initial weight norm relative to equilibrium"),
            "mobility_exponent": Parameter(
                "mobility_exponent", True, "noise relaxation rate ~ lr_eff (lr / max LR so far)^(p-1)"
            ),
            "signal_mobility_exponent": Parameter(
                "signal_mobility_exponent", True, "signal relaxation rate ~ lr_eff (lr / max LR so far)^(q-1)"
            ),
            "sharpness_init": Parameter("sharpness_init", True, "sharpest curvature at step 0 (stability)"),
            "sharpness_floor": Parameter("sharpness_floor", True, "flattest the sharpest direction can get"),
            "flattening_rate": Parameter("flattening_rate", True, "fastest log-decrease of the sharpness per step"),
            "area_ceiling": Parameter("area_ceiling", True,
                                      "curvatures flatten to area_ceiling / (LR area so far); 0 = off"),
            "ceiling_exponent": Parameter("ceiling_exponent", True,
                                          "the area ceiling falls as (LR area)^-ceiling_exponent"),
            "peak_floor": Parameter("peak_floor", True,
                                    "loss that no cooldown removes, per peak LR / reference_lr; 0 = off"),
            "norm_exponent": Parameter("norm_exponent", True,
                                       "the weight norm's equilibrium grows as (lr / reference_lr)^norm_exponent"),
            "sharpening_start": Parameter("sharpening_start", True,
                                          "curvatures at step 0, as a fraction of the spectrum's"),
            "sharpening_time": Parameter("sharpening_time", True,
                                         "the curvatures sharpen in over this many steps of its clock; 0 = off"),
            "sharpening_clock_exponent": Parameter(
                "sharpening_clock_exponent", True,
                "sharpening clock: LR area / reference_lr * (reference_lr / max LR)^exponent"),
        }

    def _contraction(self, x: Array, mu: Array) -> tuple[Array, Array]:
        """Per-step ``log rho`` and stationary factor ``q`` at ``x = alpha h``."""
        if self.dynamics == "discrete":
            return heavy_ball_log_contraction(x, mu), heavy_ball_equilibrium_factor(x, mu)
        return -2.0 * x / (1.0 - mu), 1.0

    @staticmethod
    def _mobility(lr_eff: Array, lr: Array, lr_max: Array, exponent: Array) -> Array:
        """``lr_eff * (lr / lr_max)^(exponent - 1)``; ``lr_max >= lr`` is the LR's running maximum."""
        # Double wheres: a zero LR (warmup start, end of a decay) has zero mobility and finite
        # gradients.
        lr_fraction = jnp.where(lr_max > 0, lr / jnp.where(lr_max > 0, lr_max, 1.0), 1.0)
        safe = jnp.where(lr_fraction > 0, lr_fraction, 1.0)
        return jnp.where(lr_fraction > 0, lr_eff * safe ** (exponent - 1.0), 0.0)

    def _curvatures(self, area: Array, lr_max: Array) -> Array:
        """``min(g h_k, area_ceiling / (reference_lr (area / reference_lr)^ceiling_exponent))``: the
        spectrum, sharpened in from the start (``g``, :meth:`_sharpening`) and flattened where the
        LR area travelled would put a mode past the ceiling (``area_ceiling = 0``: no ceiling)."""
        on = (self.area_ceiling > 0) & (area > 0)
        steps = jnp.where(on, area / self.reference_lr, 1.0)  # the area in steps at the reference LR
        cap = jnp.where(on, self.area_ceiling / (self.reference_lr * steps ** self.ceiling_exponent), jnp.inf)
        return jnp.minimum(self._sharpening(area, lr_max) * self.spectrum.curvatures, cap)  # inf: off

    def _sharpening(self, area: Array, lr_max: Array) -> Array:
        """``g = 1 - (1 - sharpening_start) exp(-clock / sharpening_time)`` with ``clock = (area /
        reference_lr) (reference_lr / lr_max)^sharpening_clock_exponent``; exactly 1 when
        ``sharpening_time = 0`` (off)."""
        on = self.sharpening_time > 0
        ratio = jnp.where(lr_max > 0, self.reference_lr / jnp.where(lr_max > 0, lr_max, 1.0), 1.0)
        clock = area / self.reference_lr * ratio ** self.sharpening_clock_exponent
        ramp = jnp.exp(-clock / jnp.where(on, self.sharpening_time, 1.0))  # double where: finite gradients when off
        return jnp.where(on, 1.0 - (1.0 - self.sharpening_start) * ramp, 1.0)

    def _floor(self, lr_max: Array) -> Array:
        """``peak_floor * lr_max / reference_lr``: the loss a peak LR leaves for good."""
        return self.peak_floor * lr_max / self.reference_lr

    def _sharpest_mode(self, sharpness, edge_loss, alpha, mu, n):
        """Flatten the sharpest direction toward the edge of ``alpha`` (at most ``flattening_rate``
        per step, not below ``sharpness_floor``) and advance its loss over ``n`` updates."""
        edge = EDGE_MARGIN * 2.0 * (1.0 + mu) / jnp.maximum(alpha, 1e-30)
        flattened = jnp.maximum(edge, sharpness * jnp.exp(-self.flattening_rate * n))
        new = jnp.maximum(self.sharpness_floor, jnp.minimum(sharpness, flattened))
        product = sharpness * new
        mean = jnp.where(product > 0, jnp.sqrt(jnp.where(product > 0, product, 1.0)), 0.0)  # finite gradients at 0
        log_rho, _ = self._contraction(alpha * mean, mu)
        return new, edge_loss * jnp.exp(n * log_rho)

    def _segment_step(self, run: Run, noise_weight: Array, state, lr, n):
        """Advance ``state`` by ``n`` updates at learning rate ``lr`` under ``run``'s settings
        (``noise_weight``: the spectrum's noise, computed once outside the loop)."""
        signal, noise, norm, lr_max, area, sharpness, edge_loss = state
        lr_max = jnp.maximum(lr_max, lr)
        h = self._curvatures(area + 0.5 * lr * n, lr_max)
        lr_eff = lr * self._batch_lr_factor(run.batch_size) / jnp.sqrt(norm)
        temperature, _ = self._heavy_ball(lr_eff, run.momentum)
        mobility = self._mobility(lr_eff, lr, lr_max, self.mobility_exponent)
        alpha, mu = self._heavy_ball(mobility, run.momentum)
        log_rho, q = self._contraction(alpha * h, mu)
        # The signal's log-contraction scaled from the noise's by the ratio of their mobilities
        # (one contraction, not two: 1.1e8 against 7.4e7 schedule-steps/s): exact where it is
        # linear in x (dynamics="sde"); with Adam's discrete heavy ball the signal decays within
        # 5e-4 of exact on a mode still learning at a drop, and the loss of the 124M fits moves
        # by under 6e-7 (tests/test_sde.py::test_the_signals_contraction_is_the_noises_scaled).
        # (lr / lr_max)^(q - p): _mobility of a unit rate with exponent q - p + 1
        signal_ratio = self._mobility(1.0, lr, lr_max, self.signal_mobility_exponent - self.mobility_exponent + 1)
        signal_log_rho = log_rho * signal_ratio
        decay = jnp.exp(n * log_rho)
        noise_scale = self.reference_batch_size / run.batch_size
        stationary = temperature / (1.0 - mu) * noise_weight * noise_scale * q
        signal = signal * jnp.exp(n * signal_log_rho)
        noise = stationary + (noise - stationary) * decay
        rate = 2.0 * self.norm_power * lr * n  # the decay's exponent per unit of weight decay
        shrink = jnp.expm1(-rate * run.weight_decay)  # exp(-rate lambda) - 1
        decayed = run.weight_decay > 0
        # (1 - exp(-rate lambda)) / lambda, which tends to `rate` without weight decay
        grown = jnp.where(decayed, -shrink / jnp.where(decayed, run.weight_decay, 1.0), rate)
        growth = (lr / self.reference_lr) ** self.norm_exponent * self.reference_weight_decay
        norm = norm * (1.0 + shrink) + growth * grown
        sharpness, edge_loss = self._sharpest_mode(sharpness, edge_loss, temperature, run.momentum, n)
        return signal, noise, norm, lr_max, area + lr * n, sharpness, edge_loss

    def _integrate(self, run: Run, steps, block: int, observe) -> Array:
        """``observe(state)`` after each of ``steps`` updates of ``run``."""
        run = self.resolve(run)
        plan = make_plan(run.total_steps, steps, block)
        step = functools.partial(self._segment_step, run, self.spectrum.noise())
        return integrate(step, self._initial_state(), run.lr, plan, observe)

    def _initial_state(self):
        """Signal and noise loss per mode, relative squared weight norm, running max of the LR,
        LR area so far, and the sharpest direction's curvature and loss."""
        signal = self.spectrum.signal()
        scalar = functools.partial(jnp.asarray, dtype=signal.dtype)
        edge_loss = jnp.where(self.sharpness_init > 0, EDGE_LOSS_INIT * self.loss_inf, 0.0)
        return (signal, jnp.zeros_like(signal), scalar(self.norm_init), scalar(0.0), scalar(0.0),
                scalar(self.sharpness_init), scalar(edge_loss))

    def _loss(self, run: Run, steps) -> Float[Array, " n"]:
        def observe(state):
            signal, noise, _, lr_max, *_, edge_loss = state
            return self.loss_inf + jnp.sum(signal) + jnp.sum(noise) + edge_loss + self._floor(lr_max)

        return self._integrate(run, steps, self.block, observe)

    def effective_lr(self, run: Run | Float[ArrayLike, " T"]) -> Float[Array, " T"]:
        """Per-step effective learning rate ``lr * batch_factor / sqrt(z)`` (weight-norm dynamics)."""
        model, run = canonical((self, self.resolve(run)))
        norms = model._integrate(run, np.arange(run.total_steps), 1, lambda state: state[2])
        return run.lr * model._batch_lr_factor(run.batch_size) / jnp.sqrt(norms)

    def temperature_and_mobility(
        self, run: Run | Float[ArrayLike, " T"]
    ) -> tuple[Float[Array, " T"], Float[Array, " T"], Float[Array, " T"]]:
        """Per-step ``(temperature, mobility, signal_mobility)`` as rates ``alpha / (1 - mu)`` of
        the linear SDE ``theta_k = mean_k + xi_k`` with

            d mean_k = -signal_mobility h_k mean_k dt,
            d xi_k = -mobility h_k xi_k dt + sqrt(4 mobility temperature noise_k) dW_k,

        whose stationary noise loss is ``temperature * noise_k``; used by :func:`sample_paths`.
        """
        run = self.resolve(run)
        lr_eff = self.effective_lr(run)
        lr_max = jax.lax.cummax(run.lr)
        rates = (lr_eff, *(self._mobility(lr_eff, run.lr, lr_max, exponent)
                           for exponent in (self.mobility_exponent, self.signal_mobility_exponent)))
        return tuple(alpha / (1.0 - mu) for alpha, mu in (self._heavy_ball(rate, run.momentum) for rate in rates))

    def initial_guess(self, curves: Sequence) -> AbstractSDEModel:
        """Re-grid the spectrum at the curves' peak LR, take the reference LR and batch size
        from the runs (the largest of each), and the reference weight decay where the model has
        none, set the other scales from the data, and start the
        parameters that are 0 where :data:`FREED_FROM_ZERO` says."""
        peak = max(_peak_lrs(curves))
        batches = [float(c.run.batch_size) for c in curves if c.run.batch_size is not None]
        reference_batch = max(batches) if batches else self.reference_batch_size
        # The norm's unit: kept where set (AdamW's usual 0.1 by default); a model without one
        # (SGD's default, 0: no growth) takes the largest weight decay of the runs.
        decays = [float(c.run.weight_decay) for c in curves if c.run.weight_decay is not None]
        reference_decay = self.reference_weight_decay
        if float(reference_decay) == 0 and decays:
            reference_decay = max(decays)
        low = min(float(np.min(c.loss)) for c in curves)
        first = max(curves, key=lambda c: float(c.loss[0]))
        cumulative = float(np.sum(np.asarray(first.run.lr)[: first.steps[0]])) or peak
        loss_inf = 0.85 * low
        alpha = 0.5
        spectrum = self.spectrum
        if isinstance(spectrum, PowerLawSpectrum):
            spectrum = PowerLawSpectrum(
                signal_amplitude=max(first.loss[0] - low, 0.05 * low) * cumulative**alpha,
                signal_exponent=alpha,
                noise_amplitude=0.3 * (low - loss_inf) / peak,
                noise_exponent=spectrum.noise_exponent,
                noise_cutoff=spectrum.noise_cutoff,
                reference_lr=peak,
                num_modes=spectrum.curvatures.shape[0],
            )
        guess = eqx.tree_at(
            lambda m: (m.spectrum, m.loss_inf, m.reference_lr, m.reference_batch_size, m.reference_weight_decay),
            self,
            (spectrum, *map(_scalar, (loss_inf, peak, reference_batch, reference_decay))),
        )
        # A parameter at 0 starts from a positive value, which a fit uses only where it is freed
        # (fit keeps non-free ones as given).
        return guess.replace(**{name: start for name, start in FREED_FROM_ZERO.items() if float(self.get(name)) == 0})


def _scalar(value: ArrayLike) -> Array:
    return jnp.asarray(value, dtype=float)


class SGDModel(AbstractSDEModel):
    r"""Minibatch SGD with heavy-ball momentum (optax ``sgd(lr, momentum)``) on the landscape.

    Update: ``v <- momentum * v + g``, ``theta <- theta - lr * v`` with ``g`` the minibatch
    gradient, whose noise variance in mode ``k`` is ``sigma_k^2 / B``. The SDE is

        d theta_k = -lr/(1-momentum) h_k theta_k dt + lr/(1-momentum) sqrt(sigma_k^2 / B) dW_k,

    the noise floor of a mode is ``lr/(1 - momentum) sigma_k^2 / (4 B)`` (so it scales as
    ``1 / batch_size``) and the stability edge is ``lr h = 2 (1 + momentum)``.
    Weight decay acts on the squared norm's square (``c = 2`` in :class:`AbstractSDEModel`).
    ``momentum``, ``batch_size`` and ``weight_decay`` are the run's (:class:`~optlaws.Run`);
    unrecorded, they are 0, the reference batch size and 0.

    Example:
        >>> import optlaws
        >>> model = optlaws.SGDModel()
        >>> run = optlaws.Run(optlaws.cosine(0.1, 1000, warmup=50), momentum=0.9)
        >>> model.loss(run, [100, 1000]).shape
        (2,)
    """

    norm_power: ClassVar[float] = 2.0
    default_momentum: ClassVar[float] = 0.0
    default_weight_decay: ClassVar[float] = 0.0

    def __init__(
        self,
        *,
        spectrum: AbstractSpectrum | None = None,
        loss_inf: ArrayLike = 1.0,
        reference_batch_size: ArrayLike = 1.0,
        norm_init: ArrayLike = 1.0,
        reference_lr: ArrayLike = 0.1,
        reference_weight_decay: ArrayLike = 0.0,
        mobility_exponent: ArrayLike = 1.0,
        signal_mobility_exponent: ArrayLike = 1.0,
        sharpness_init: ArrayLike = 0.0,
        sharpness_floor: ArrayLike = 0.0,
        flattening_rate: ArrayLike = 0.0,
        area_ceiling: ArrayLike = 0.0,
        ceiling_exponent: ArrayLike = 1.0,
        peak_floor: ArrayLike = 0.0,
        norm_exponent: ArrayLike = 1.0,
        sharpening_start: ArrayLike = 0.0,
        sharpening_time: ArrayLike = 0.0,
        sharpening_clock_exponent: ArrayLike = 0.5,
        block: int = DEFAULT_BLOCK,
        dynamics: str = "discrete",
    ):
        self.spectrum = spectrum if spectrum is not None else PowerLawSpectrum(reference_lr=float(reference_lr))
        self.loss_inf = _scalar(loss_inf)
        self.reference_batch_size = _scalar(reference_batch_size)
        self.norm_init = _scalar(norm_init)
        self.reference_lr = _scalar(reference_lr)
        self.reference_weight_decay = _scalar(reference_weight_decay)
        self.mobility_exponent = _scalar(mobility_exponent)
        self.signal_mobility_exponent = _scalar(signal_mobility_exponent)
        self.sharpness_init = _scalar(sharpness_init)
        self.sharpness_floor = _scalar(sharpness_floor)
        self.flattening_rate = _scalar(flattening_rate)
        self.area_ceiling = _scalar(area_ceiling)
        self.ceiling_exponent = _scalar(ceiling_exponent)
        self.peak_floor = _scalar(peak_floor)
        self.norm_exponent = _scalar(norm_exponent)
        self.sharpening_start = _scalar(sharpening_start)
        self.sharpening_time = _scalar(sharpening_time)
        self.sharpening_clock_exponent = _scalar(sharpening_clock_exponent)
        self.block = int(block)
        self.dynamics = dynamics

    def _heavy_ball(self, lr_eff, momentum):
        return lr_eff, momentum

    def _batch_lr_factor(self, batch_size):
        return jnp.ones_like(batch_size)


class AdamModel(AbstractSDEModel):
    r"""Adam / AdamW as a preconditioned SDE (Malladi et al., 2022) on the landscape.

    Update: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``theta <- theta - lr (m_hat / (sqrt(v_hat) + eps) + weight_decay * theta)``.
    Where gradient noise dominates, ``v_k ~ sigma_k^2 / B``: Adam is heavy ball with step
    ``lr (1 - b1)`` and momentum ``b1`` in preconditioned coordinates ``h~_k = h_k / sqrt(v_k)``,
    whose noise has unit variance per coordinate. Hence:

    - curvatures here are preconditioned, and scale as ``sqrt(B)``; the noise floor of a mode is
      ``lr * noise_k * B_ref / B`` in units where ``lr_eff = lr sqrt(B / B_ref)``: learning rate
      and batch size trade as ``lr ~ sqrt(B)`` (the square-root scaling rule);
    - ``b1`` (the run's ``momentum``) sets the per-step contraction (at most ``b1`` per step
      once a mode is under-damped) and the stability edge ``lr h~ = 2 (1 + b1) / (1 - b1)``;
    - ``b2`` and ``eps`` only fix the preconditioner, absorbed into the fitted curvatures: they
      matter when building a model of a known problem (``LeastSquaresProblem.adam_model``).

    Decoupled weight decay enters through the weight-norm dynamics of
    :class:`AbstractSDEModel` (``c = 1``); ``norm_init`` defaults to the value calibrated on the
    124M runs of Schaipp et al. (see ``benchmarks/calibrate.py``). ``b1``, ``batch_size`` and
    ``weight_decay`` are the run's (:class:`~optlaws.Run`); unrecorded, they are AdamW's usual
    0.9, the reference batch size and 0.1.

    Example:
        >>> import optlaws
        >>> model = optlaws.AdamModel(reference_lr=3e-4)
        >>> run = optlaws.Run(optlaws.wsd(3e-4, 24000, warmup=2160, decay_frac=0.2), weight_decay=0.1)
        >>> model.loss(run, [8000, 24000]).shape
        (2,)
    """

    norm_power: ClassVar[float] = 1.0
    default_momentum: ClassVar[float] = 0.9
    default_weight_decay: ClassVar[float] = 0.1

    def __init__(
        self,
        *,
        spectrum: AbstractSpectrum | None = None,
        loss_inf: ArrayLike = 2.0,
        reference_batch_size: ArrayLike = 1.0,
        norm_init: ArrayLike = DEFAULT_NORM_INIT,
        reference_lr: ArrayLike = 1e-3,
        reference_weight_decay: ArrayLike = 0.1,
        mobility_exponent: ArrayLike = DEFAULT_MOBILITY_EXPONENT,
        signal_mobility_exponent: ArrayLike = DEFAULT_SIGNAL_MOBILITY_EXPONENT,
        sharpness_init: ArrayLike = 0.0,
        sharpness_floor: ArrayLike = 0.0,
        flattening_rate: ArrayLike = 0.0,
        area_ceiling: ArrayLike = 0.0,
        ceiling_exponent: ArrayLike = 1.0,
        peak_floor: ArrayLike = 0.0,
        norm_exponent: ArrayLike = 1.0,
        sharpening_start: ArrayLike = 0.0,
        sharpening_time: ArrayLike = 0.0,
        sharpening_clock_exponent: ArrayLike = 0.5,
        block: int = DEFAULT_BLOCK,
        dynamics: str = "discrete",
    ):
        if spectrum is None:
            spectrum = PowerLawSpectrum(noise_exponent=DEFAULT_NOISE_EXPONENT, reference_lr=float(reference_lr))
        self.spectrum = spectrum
        self.loss_inf = _scalar(loss_inf)
        self.reference_batch_size = _scalar(reference_batch_size)
        self.norm_init = _scalar(norm_init)
        self.reference_lr = _scalar(reference_lr)
        self.reference_weight_decay = _scalar(reference_weight_decay)
        self.mobility_exponent = _scalar(mobility_exponent)
        self.signal_mobility_exponent = _scalar(signal_mobility_exponent)
        self.sharpness_init = _scalar(sharpness_init)
        self.sharpness_floor = _scalar(sharpness_floor)
        self.flattening_rate = _scalar(flattening_rate)
        self.area_ceiling = _scalar(area_ceiling)
        self.ceiling_exponent = _scalar(ceiling_exponent)
        self.peak_floor = _scalar(peak_floor)
        self.norm_exponent = _scalar(norm_exponent)
        self.sharpening_start = _scalar(sharpening_start)
        self.sharpening_time = _scalar(sharpening_time)
        self.sharpening_clock_exponent = _scalar(sharpening_clock_exponent)
        self.block = int(block)
        self.dynamics = dynamics

    def _heavy_ball(self, lr_eff, momentum):
        return lr_eff * (1.0 - momentum), momentum

    def _batch_lr_factor(self, batch_size):
        return jnp.sqrt(batch_size / self.reference_batch_size)
