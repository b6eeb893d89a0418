"""Data consistency: exact projection, conjugate gradient on the normal equations, and a Gaussian MAP ("soft") step.

All solvers are batched: inner products, step sizes, noise levels and stopping are per batch element (axis 0), so
one badly conditioned slice neither stalls nor perturbs the others, and a slice's result does not depend on the
batch it runs in. The reverse loop takes one :class:`DataConsistency` object; :func:`make_consistency` is the only
place that turns a name into one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Protocol

import numpy as np
import torch

from mridiff.physics.operators import Operator, expand_scale
from mridiff.utils import parse_choice, per_sample


class DCMode(str, Enum):
    """Data-consistency kinds by name (``str``-valued, so YAML and CLI strings compare equal)."""

    HARD = "hard"
    CG = "cg"
    SOFT = "soft"
    NONE = "none"

# Fewer usable corner samples than this gives a noise estimate too unstable to trust.
_MIN_NOISE_SAMPLES = 16
# MAD -> standard deviation for a Gaussian.
_MAD_TO_STD = 1.4826
# A search direction whose Rayleigh quotient is this many machine epsilons below the largest seen is numerically
# in the null space (see conjugate_gradient).
_BREAKDOWN = 10.0


def _batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real part of ``<a, b>`` per batch element; ``(B, ...)`` complex -> ``(B,)`` real.

    ``Re <a, b>`` is the real dot product of the interleaved real and imaginary parts. A row-wise sum (not a
    batched matrix product, whose kernel changes with the batch size) keeps each slice's result independent of
    the batch it runs in.
    """
    real_a = torch.view_as_real(a.resolve_conj()).reshape(a.shape[0], -1)
    real_b = torch.view_as_real(b.resolve_conj()).reshape(b.shape[0], -1)
    return (real_a * real_b).sum(dim=1)


def conjugate_gradient(
    normal: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    x0: torch.Tensor,
    max_iter: int,
    tol: float,
) -> tuple[torch.Tensor, list[float]]:
    """Solve ``normal(x) = rhs`` for a Hermitian positive (semi-)definite ``normal``, batched.

    Each batch element stops updating once ``||rhs - normal(x)|| <= tol * ||rhs||``, or when roundoff leaves
    nothing to fit (a search direction in the operator's null space); the loop ends when all have stopped.

    Args:
        normal: The linear map, ``(B, ...)`` complex -> ``(B, ...)`` complex.
        rhs: Right-hand side ``(B, ...)`` complex.
        x0: Starting point, same shape/dtype as ``rhs`` (not modified).
        max_iter: Maximum number of iterations.
        tol: Relative residual tolerance.

    Returns:
        ``(x, residual_norms)``: the solution ``(B, ...)`` and the residual norm over the whole batch before the
        first and after every iteration (so ``len(residual_norms) - 1`` iterations ran).

    """
    x = x0
    r = rhs - normal(x)
    p = r.clone()  # r is updated in place below
    rs = _batch_dot(r, r)
    tiny, eps = torch.finfo(rs.dtype).tiny, torch.finfo(rs.dtype).eps
    rhs_norm = torch.sqrt(_batch_dot(rhs, rhs)).clamp_min(tiny)
    rq_max = torch.zeros_like(rs)
    done = torch.zeros_like(rs, dtype=torch.bool)
    residuals = [float(torch.sqrt(rs.sum()))]
    for _ in range(max_iter):
        done |= torch.sqrt(rs) / rhs_norm <= tol
        if bool(done.all()):
            break
        ap = normal(p)
        p_ap = _batch_dot(p, ap)
        rayleigh = p_ap / _batch_dot(p, p).clamp_min(tiny)
        rq_max = torch.maximum(rq_max, rayleigh)
        # In exact arithmetic p never enters the null space of a semidefinite normal operator (lam = 0 and an
        # undersampling mask); once roundoff is all that is left, p lies there, its Rayleigh quotient collapses
        # and the step rs / p_ap would explode. Such an element has converged as far as the precision allows.
        done |= rayleigh <= _BREAKDOWN * eps * rq_max
        if bool(done.all()):
            break
        step = ~done
        alpha = per_sample(torch.where(step, rs / p_ap.clamp_min(tiny), 0.0), x)
        # In place after the first update (x0 and rhs belong to the caller); addcmul_ saves a temporary.
        x = x + alpha * p if x is x0 else x.addcmul_(alpha, p)
        r = r.addcmul_(alpha, ap, value=-1.0)
        rs_new = _batch_dot(r, r)
        beta = torch.where(step, rs_new / rs.clamp_min(tiny), 0.0)
        p = torch.addcmul(r, per_sample(beta, p), p)
        rs = rs_new
        residuals.append(float(torch.sqrt(rs.sum())))
    return x, residuals


def cg_consistency(
    op: Operator, x0: torch.Tensor, y: torch.Tensor, lam: float | torch.Tensor = 0.0, max_iter: int = 10,
    tol: float = 1e-6,
) -> torch.Tensor:
    """Solve ``(A^H A + lam I) x = A^H y + lam x0`` by CG started at ``x0``.

    With ``lam = 0`` CG keeps the null-space part of ``x0`` and fits the measured part, giving the consistent
    image closest to ``x0``; ``lam > 0`` trades data fit against staying near ``x0``.

    Args:
        op: Measurement operator.
        x0: Current image estimate ``(B, H, W)`` complex.
        y: Measurements, shape of ``op.forward(x0)``.
        lam: Tikhonov weight towards ``x0`` (>= 0), a float or one per sample ``(B,)``.
        max_iter: Maximum CG iterations.
        tol: Relative residual tolerance.

    Returns:
        ``(B, H, W)`` complex image.

    """
    if bool(torch.as_tensor(lam).lt(0).any()):
        raise ValueError(f"lam must be >= 0, got {lam}")
    weight = per_sample(lam, x0) if isinstance(lam, torch.Tensor) else lam
    rhs = op.adjoint(y) + weight * x0

    def normal(v: torch.Tensor) -> torch.Tensor:
        return op.normal(v) + weight * v

    x, _ = conjugate_gradient(normal, rhs, x0, max_iter, tol)
    return x


def soft_consistency(
    op: Operator,
    x0: torch.Tensor,
    y: torch.Tensor,
    noise_var: float | torch.Tensor,
    prior_var: float,
    *,
    max_iter: int = 10,
    tol: float = 1e-6,
) -> torch.Tensor:
    """MAP estimate for ``y = A x + n``, ``n ~ N(0, noise_var)``, with prior ``x ~ N(x0, prior_var)``.

    Variances are per real component (use ``estimate_noise_std(...) ** 2``). For operators with an exact
    projection (sampling of orthonormal k-space) the solution is closed form on each measured sample,
    ``k = (prior_var * scale * y + noise_var * k0) / (prior_var * scale**2 + noise_var)``, unmeasured samples keep
    ``k0``; otherwise CG with ``lam = noise_var / prior_var``. ``noise_var = 0`` is hard consistency.

    Args:
        op: Measurement operator.
        x0: Prior mean / current estimate ``(B, H, W)`` complex.
        y: Measurements, shape of ``op.forward(x0)``.
        noise_var: Noise variance of ``y`` (>= 0), a float or one per sample ``(B,)``.
        prior_var: Prior variance around ``x0`` (> 0).
        max_iter: CG iterations (operators without exact projection only).
        tol: CG relative tolerance.

    Returns:
        ``(B, H, W)`` complex image.

    """
    var = torch.as_tensor(noise_var, dtype=torch.float64)
    if bool(var.lt(0).any()) or prior_var <= 0:
        raise ValueError(f"need noise_var >= 0 and prior_var > 0, got {noise_var} and {prior_var}")
    if op.has_exact_projection:
        # On measured samples the MAP value is a convex combination of y / scale and k0 with this weight, so it
        # equals x0 moved a fraction `weight` of the way to the hard projection.
        s2 = expand_scale(op.scale, x0) ** 2
        nv = per_sample(var.to(torch.float32).expand(x0.shape[0]), x0)
        weight = prior_var * s2 / (prior_var * s2 + nv)
        return x0 + weight * (op.project(x0, y) - x0)
    lam = noise_var / prior_var if isinstance(noise_var, float | int) else noise_var.to(torch.float32) / prior_var
    return cg_consistency(op, x0, y, lam=lam, max_iter=max_iter, tol=tol)


class DataConsistency(Protocol):
    """One data-consistency step of the reverse loop: the network's x0 in, an x0 that respects ``y`` out.

    Attributes:
        uses_noise: whether the step weighs the data by their noise variance (the caller must then supply it).

    """

    uses_noise: ClassVar[bool]

    def __call__(self, op: Operator, x0: torch.Tensor, y: torch.Tensor, *, prior_var: float,
                 noise_var: torch.Tensor | None = None) -> torch.Tensor:
        """Return the corrected ``(B, H, W)`` image.

        Args:
            op: The measurement operator.
            x0: Image estimate ``(B, H, W)`` complex.
            y: Measurements, shape of ``op.forward(x0)``.
            prior_var: Variance of the network's x0 around the truth at this step.
            noise_var: Noise variance of ``y`` per sample ``(B,)`` (soft consistency), or ``None``.

        """
        ...


@dataclass(frozen=True)
class NoConsistency:
    """Ignore the measurement (the prior alone; the ``none`` mode)."""

    uses_noise: ClassVar[bool] = False

    def __call__(self, op: Operator, x0: torch.Tensor, y: torch.Tensor, *, prior_var: float,
                 noise_var: torch.Tensor | None = None) -> torch.Tensor:
        """Return ``x0`` unchanged."""
        return x0


@dataclass(frozen=True)
class _Iterative(ABC):
    """A step that may run CG: ``iters`` iterations at most, relative tolerance ``tol``.

    Subclasses implement :meth:`_apply` on ``op.restrict(x0)``: outside the coil support the image is zero, and the
    steps stay there (CG moves only in range(A^H)).
    """

    iters: int = 5
    tol: float = 1e-6
    uses_noise: ClassVar[bool] = False

    def __call__(self, op: Operator, x0: torch.Tensor, y: torch.Tensor, *, prior_var: float,
                 noise_var: torch.Tensor | None = None) -> torch.Tensor:
        """Return the corrected ``(B, H, W)`` image (see :class:`DataConsistency`)."""
        return self._apply(op, op.restrict(x0), y, prior_var, noise_var)

    @abstractmethod
    def _apply(self, op: Operator, x0: torch.Tensor, y: torch.Tensor, prior_var: float,
               noise_var: torch.Tensor | None) -> torch.Tensor:
        """The step on the restricted ``x0``."""


class Hard(_Iterative):
    """Exact projection onto ``{x : A x = y}``; for an operator without one (SENSE), CG from x0 with ``lam = 0``.

    CG from x0 keeps x0's null-space part and fits the measured part: the minimum-change consistent image.
    ``iters`` and ``tol`` apply to that CG only.
    """

    def _apply(self, op: Operator, x0: torch.Tensor, y: torch.Tensor, prior_var: float,
               noise_var: torch.Tensor | None) -> torch.Tensor:
        return op.project(x0, y) if op.has_exact_projection else cg_consistency(op, x0, y, 0.0, self.iters, self.tol)


class CG(_Iterative):
    """``iters`` CG iterations on ``A^H A x = A^H y`` from x0, for every operator (exact or not)."""

    def _apply(self, op: Operator, x0: torch.Tensor, y: torch.Tensor, prior_var: float,
               noise_var: torch.Tensor | None) -> torch.Tensor:
        return cg_consistency(op, x0, y, 0.0, self.iters, self.tol)


class Soft(_Iterative):
    """The Gaussian MAP step of :func:`soft_consistency`, with each sample's own noise variance (zeros: hard).

    ``iters`` and ``tol`` apply to operators without an exact projection.
    """

    uses_noise: ClassVar[bool] = True

    def _apply(self, op: Operator, x0: torch.Tensor, y: torch.Tensor, prior_var: float,
               noise_var: torch.Tensor | None) -> torch.Tensor:
        var = torch.zeros(x0.shape[0]) if noise_var is None else noise_var
        return soft_consistency(op, x0, y, var.to(x0.device), prior_var, max_iter=self.iters, tol=self.tol)


# The one name -> step table; each entry takes (CG iterations, CG tolerance).
CONSISTENCY: dict[DCMode, Callable[[int, float], DataConsistency]] = {
    DCMode.HARD: Hard, DCMode.CG: CG, DCMode.SOFT: Soft, DCMode.NONE: lambda iters, tol: NoConsistency()}


def make_consistency(mode: str | DCMode, iters: int = 5, tol: float = 1e-6) -> DataConsistency:
    """The data-consistency step named ``mode`` (``hard``, ``cg``, ``soft`` or ``none``).

    Args:
        mode: The kind, a :class:`DCMode` or its string.
        iters: CG iterations (where the kind uses CG).
        tol: CG relative tolerance.

    Raises:
        ValueError: For an unknown name.

    """
    return CONSISTENCY[parse_choice(DCMode, mode, "data-consistency mode")](iters, tol)


def estimate_noise_std(kspace: torch.Tensor, mask: torch.Tensor) -> float:
    """Robust noise standard deviation per real component from measured samples at the k-space edge.

    Uses the four outer corners (outer 1/8 of each axis), where signal is weakest; when a mask leaves the corners
    empty (e.g. Poisson-disc with cropped corners) it uses the whole outer 1/8 border. Std = 1.4826 * MAD of the
    real and imaginary parts, so residual signal outliers barely move it.

    Args:
        kspace: ``(H, W)`` or ``(C, H, W)`` complex k-space (zero-filled where not measured).
        mask: ``(H, W)`` mask (nonzero = measured), broadcastable to the last two axes.

    Returns:
        The noise standard deviation of the real (and of the imaginary) part.

    Raises:
        ValueError: If the edge of k-space holds too few measured samples.

    """
    height, width = kspace.shape[-2:]
    eh, ew = max(height // 8, 1), max(width // 8, 1)
    rows = torch.zeros(height, dtype=torch.bool)
    cols = torch.zeros(width, dtype=torch.bool)
    rows[:eh], rows[-eh:], cols[:ew], cols[-ew:] = True, True, True, True
    measured = torch.broadcast_to(mask.detach().cpu() > 0, (height, width))
    k = kspace.detach().cpu()
    samples = torch.empty(0, dtype=k.dtype)
    for region in (rows[:, None] & cols[None, :], rows[:, None] | cols[None, :]):
        samples = k[..., region & measured].reshape(-1)
        samples = samples[samples != 0]  # exact zeros are padding, not noise
        if samples.numel() >= _MIN_NOISE_SAMPLES:
            break
    if samples.numel() < _MIN_NOISE_SAMPLES:
        raise ValueError("too few measured k-space samples at the edge to estimate the noise level")
    values = torch.view_as_real(samples).reshape(-1).double().numpy() if samples.is_complex() else samples.numpy()
    return float(_MAD_TO_STD * np.median(np.abs(values - np.median(values))))
