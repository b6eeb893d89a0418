"""Data consistency: exact projection, conjugate gradient on the normal equations, and a Gaussian MAP ("soft") step.

All solvers are batched: inner products, step sizes and stopping are per batch element (axis 0), so one badly
conditioned slice neither stalls nor perturbs the others.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mridiff.errors import InputError
from mridiff.physics.operators import Operator, expand_scale

DC_MODES = ("hard", "cg", "soft", "none")

# Fewer usable corner samples than this gives a noise estimate too unstable to trust.
_MIN_NOISE_SAMPLES = 16
# MAD -> standard deviation for a Gaussian.
_MAD_TO_STD = 1.4826
# A search direction whose Rayleigh quotient is this many machine epsilons below the largest seen is numerically
# in the null space (see conjugate_gradient).
_BREAKDOWN = 10.0


def _batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real part of ``<a, b>`` per batch element; ``(B, ...)`` complex -> ``(B,)`` real."""
    return (a.conj() * b).real.reshape(a.shape[0], -1).sum(dim=1)


def _per_batch(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.ndim - 1)))


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
    p = r
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
        alpha = torch.where(step, rs / p_ap.clamp_min(tiny), 0.0)
        x = x + _per_batch(alpha, x) * p
        r = r - _per_batch(alpha, r) * ap
        rs_new = _batch_dot(r, r)
        beta = torch.where(step, rs_new / rs.clamp_min(tiny), 0.0)
        p = r + _per_batch(beta, p) * p
        rs = rs_new
        residuals.append(float(torch.sqrt(rs.sum())))
    return x, residuals


def cg_consistency(
    op: Operator, x0: torch.Tensor, y: torch.Tensor, lam: float = 0.0, max_iter: int = 10, tol: float = 1e-6
) -> torch.Tensor:
    """Solve ``(A^H A + lam I) x = A^H y + lam x0`` by CG started at ``x0``.

    With ``lam = 0`` CG keeps the null-space part of ``x0`` and fits the measured part, giving the consistent
    image closest to ``x0``; ``lam > 0`` trades data fit against staying near ``x0``.

    Args:
        op: Measurement operator.
        x0: Current image estimate ``(B, H, W)`` complex.
        y: Measurements, shape of ``op.forward(x0)``.
        lam: Tikhonov weight towards ``x0`` (>= 0).
        max_iter: Maximum CG iterations.
        tol: Relative residual tolerance.

    Returns:
        ``(B, H, W)`` complex image.

    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    rhs = op.adjoint(y) + lam * x0 if lam else op.adjoint(y)

    def normal(v: torch.Tensor) -> torch.Tensor:
        return op.normal(v) + lam * v if lam else op.normal(v)

    x, _ = conjugate_gradient(normal, rhs, x0, max_iter, tol)
    return x


def soft_consistency(
    op: Operator,
    x0: torch.Tensor,
    y: torch.Tensor,
    noise_var: float,
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
        noise_var: Noise variance of ``y`` (>= 0).
        prior_var: Prior variance around ``x0`` (> 0).
        max_iter: CG iterations (operators without exact projection only).
        tol: CG relative tolerance.

    Returns:
        ``(B, H, W)`` complex image.

    """
    if noise_var < 0 or prior_var <= 0:
        raise ValueError(f"need noise_var >= 0 and prior_var > 0, got {noise_var} and {prior_var}")
    if op.has_exact_projection:
        # On measured samples the MAP value is a convex combination of y / scale and k0 with this weight, so it
        # equals x0 moved a fraction `weight` of the way to the hard projection.
        s2 = expand_scale(op.scale, x0) ** 2
        weight = prior_var * s2 / (prior_var * s2 + noise_var)
        return x0 + weight * (op.project(x0, y) - x0)
    return cg_consistency(op, x0, y, lam=noise_var / prior_var, max_iter=max_iter, tol=tol)


def apply_consistency(
    mode: str,
    op: Operator | None,
    x0: torch.Tensor,
    y: torch.Tensor | None,
    *,
    noise_var: float = 0.0,
    prior_var: float = 1.0,
    cg_iters: int = 10,
    cg_tol: float = 1e-6,
) -> torch.Tensor:
    """Apply one data-consistency step chosen by name.

    Args:
        mode: One of :data:`DC_MODES`: ``hard`` (exact projection, or CG with ``lam = 0`` from ``x0`` when the
            operator has none), ``cg`` (CG with ``lam = noise_var / prior_var``), ``soft`` (MAP step) or ``none``.
            Every mode but ``none`` first zeroes ``x0`` where the operator sees nothing (:meth:`Operator.restrict`).
        op: Measurement operator (may be ``None`` for ``none``).
        x0: Image estimate ``(B, H, W)`` complex.
        y: Measurements (may be ``None`` for ``none``).
        noise_var: Noise variance of ``y`` per real component.
        prior_var: Prior variance around ``x0``.
        cg_iters: Maximum CG iterations.
        cg_tol: CG relative tolerance.

    Returns:
        ``(B, H, W)`` complex image (``x0`` itself for ``none``).

    Raises:
        InputError: For an unknown mode.

    """
    if mode not in DC_MODES:
        raise InputError(None, f"unknown data-consistency mode {mode!r}", f"choose one of {', '.join(DC_MODES)}")
    if mode == "none":
        return x0
    if op is None or y is None:
        raise ValueError(f"data-consistency mode {mode!r} needs an operator and measurements")
    # Outside the coil support the image is zero; every mode below then stays there (CG moves only in range(A^H)).
    x0 = op.restrict(x0)
    if mode == "hard":
        return op.project(x0, y) if op.has_exact_projection else cg_consistency(op, x0, y, 0.0, cg_iters, cg_tol)
    if mode == "cg":
        return cg_consistency(op, x0, y, noise_var / prior_var, cg_iters, cg_tol)
    return soft_consistency(op, x0, y, noise_var, prior_var, max_iter=cg_iters, tol=cg_tol)


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
        InputError: If the edge of k-space holds too few measured samples.

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
        raise InputError(None, "too few measured k-space samples at the edge to estimate the noise level")
    values = torch.view_as_real(samples).reshape(-1).double().numpy() if samples.is_complex() else samples.numpy()
    return float(_MAD_TO_STD * np.median(np.abs(values - np.median(values))))
