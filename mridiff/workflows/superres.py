"""The ``mridiff superres`` file workflow: a low-resolution volume in; a super-resolved NIfTI, a panel and metrics out.

    from mridiff.workflows.superres import SRFileOptions, superres_file
    summary = superres_file(Path("lr.nii.gz"), Path("out/sr.nii.gz"), SRFileOptions(scale=2, steps=20))

Three steps, each usable alone: :func:`read_input` (LR slices and where they sit), :func:`run` (the sampling) and
:func:`write_outputs` (NIfTI, std map for K > 1, PNG panel; returns the metrics entry). :func:`superres_file` runs
them and records the entry in ``metrics.json`` beside the output.

The input is a NIfTI volume (super-resolved slice by slice along ``axis``) or a fastMRI HDF5 scan (its k-space
is the measured centre; multi-coil data are SENSE-combined first). The output's affine follows the grid
convention of :mod:`mridiff.physics.grids`: a world point keeps its coordinate. ``from_highres`` treats the input
as the high-resolution truth, simulates its low resolution and scores mridiff and the baselines against it; the
output then lies on the input's own grid. An in-plane size the scale does not divide is zero-padded at its end to
the next multiple (said in a note and in ``metrics.json``) and the output cropped back. ``reference`` scores
against a high-resolution NIfTI on the output's grid. ``slices="a:b"`` does part of a volume.

Outputs, for ``--out DIR/sr.nii.gz``: ``DIR/sr.nii.gz``, ``DIR/sr_std.nii.gz`` (K > 1), ``DIR/sr.png`` and an entry
``sr.nii.gz`` in ``DIR/metrics.json`` (see :mod:`mridiff.workflows.metrics_log`); all of them or none.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mridiff.data.fastmri_h5 import open_scan, read_slice
from mridiff.data.nifti import read_nifti, slice_volume, stack_slices, write_nifti
from mridiff.data.transforms import center_crop
from mridiff.diffusion.samplers import SamplerName
from mridiff.errors import InputError
from mridiff.inference.options import SamplingOptions
from mridiff.inference.pipeline import SamplingResult
from mridiff.inference.superres import SuperResolver, bicubic_upsample, check_scale, hr_affine, simulate_lowres
from mridiff.io.atomic import check_writable
from mridiff.io.outputs import fastmri_affine, volume_to_nifti_array
from mridiff.metrics import volume_metrics
from mridiff.tasks.recon import full_image
from mridiff.workflows.common import parse_slices
from mridiff.workflows.metrics_log import MetricsLog
from mridiff.workflows.panels import pick_rows, write_panel

MIN_INPLANE = 4
SR_METHODS = ("mridiff", "sinc", "bicubic")


@dataclass
class SRFileOptions:
    """What ``mridiff superres`` does (CLI flags map one to one).

    ``slices`` is ``"a:b"`` (0-based, ``b`` excluded) or ``None``; ``reference`` a high-resolution NIfTI on the
    output's grid to score against, or ``None``.
    """

    scale: int = 2
    axis: int = 2
    lr_model: str = "kspace"
    steps: int | None = None
    sampler: str = "ddim"
    samples: int = 1
    seed: int = 0
    batch_size: int = 4
    volume: int | None = None
    from_highres: bool = False
    overwrite: bool = False
    progress: bool = True
    slices: str | None = None
    reference: str | None = None
    png_slices: int = 3
    cg_iters: int = 5

    def sampling(self) -> SamplingOptions:
        """The sampling part of these options (data consistency is hard: the measurement is kept exactly)."""
        return SamplingOptions(steps=self.steps, sampler=SamplerName(self.sampler), samples=self.samples,
                               seed=self.seed, batch_size=self.batch_size, progress=self.progress,
                               cg_iters=self.cg_iters)


@dataclass
class LowresInput:
    """The LR slices to super-resolve and where they sit.

    Attributes:
        slices: real or complex LR slices ``(S, h, w)`` (the selected ones).
        affine: LR voxel-to-world (4, 4) of the selected slices in the NIfTI layout.
        shape: LR volume shape (selected slices) in the NIfTI layout.
        axis: slice axis in the NIfTI layout (the other two are upsampled).
        fastmri: the input was a fastMRI scan (slices ``(S, h, w)`` are stored as ``(w, h, S)``).
        indices: the slice indices of ``slices`` in the input volume.
        header: input NIfTI header (units) or ``None``.
        truth: HR magnitude slices ``(S, H, W)`` to score against (``from_highres`` or ``reference``), else ``None``.
        hr_size: the output's in-plane size when it differs from ``scale`` x the LR size (a padded input).
        notes: what was changed about the input (e.g. padding), for the user and ``metrics.json``.

    """

    slices: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]
    axis: int
    fastmri: bool
    indices: list[int]
    header: Any = None
    truth: np.ndarray | None = None
    hr_size: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)


def sibling(out: Path, tag: str = "", ext: str | None = None) -> Path:
    """``DIR/sr.nii.gz`` -> ``DIR/sr{tag}.nii.gz``, or ``DIR/sr{tag}{ext}`` with another extension."""
    suffix = ".nii.gz" if out.name.endswith(".nii.gz") else out.suffix
    return out.with_name(out.name[: len(out.name) - len(suffix)] + tag + (suffix if ext is None else ext))


def std_path(out: Path) -> Path:
    """``OUT.nii.gz`` -> ``OUT_std.nii.gz`` (same for ``.nii``)."""
    return sibling(out, "_std")


def output_paths(out: Path, samples: int) -> dict[str, Path]:
    """The files one run writes: ``nifti``, ``std`` (K > 1) and ``png``."""
    outs = {"nifti": out, "png": sibling(out, ext=".png")}
    if samples > 1:
        outs["std"] = std_path(out)
    return outs


def _read_fastmri(path: Path) -> tuple[list[np.ndarray], tuple[int, int], tuple[float, float, float] | None]:
    """A fully sampled fastMRI scan as complex slice images ``(h, w)`` cropped to the recon size, and its geometry."""
    info = open_scan(path)
    if info.mask is not None:
        raise InputError(path, "holds undersampled k-space (a 'mask' dataset)", "run `mridiff reconstruct` first")
    images = [center_crop(full_image(torch.from_numpy(read_slice(info, i).kspace), None), info.recon_size).numpy()
              for i in range(info.num_slices)]
    return images, info.recon_size, info.fov_mm


def _pad_to_multiple(hr: np.ndarray, scale: int) -> np.ndarray:
    """Zero-pad HR slices ``(S, H, W)`` at the end of each in-plane axis to a multiple of ``scale``."""
    pad = [(0, 0)] + [(0, -n % scale) for n in hr.shape[-2:]]
    return np.pad(hr, pad)


def _lowres_of(hr: np.ndarray, inp: LowresInput, scale: int, lr_model: str, inplane: tuple[int, int]) -> None:
    """Replace ``inp``'s slices by the simulated LR of ``hr`` ``(S, H, W)`` (a multiple of ``scale``) and its grid."""
    lr = simulate_lowres(torch.as_tensor(hr).to(torch.complex64), scale, lr_model).numpy()
    shape = list(inp.shape)
    for dim, a in zip((-2, -1), inplane, strict=True):
        shape[a] = hr.shape[dim] // scale
    lr_shape = (shape[0], shape[1], shape[2])
    to_hr = hr_affine(np.eye(4), lr_shape, list(inplane), scale, lr_model)
    inp.slices, inp.affine, inp.shape = lr, inp.affine @ np.linalg.inv(to_hr), lr_shape


def read_input(path: Path, opts: SRFileOptions, note: Callable[[str], None] | None = None) -> LowresInput:
    """Read a NIfTI volume or a fastMRI HDF5 scan as LR slices (simulating them with ``from_highres``).

    Raises:
        InputError: unreadable or 2D input, an undersampled HDF5 scan, in-plane size below 4 voxels, a slice range
            that selects nothing, or a reference that does not match the output.

    """
    header = None
    fastmri = path.name.endswith((".h5", ".hdf5"))
    if fastmri:
        images, recon, fov = _read_fastmri(path)
        slices: np.ndarray = np.stack(images)
        shape: tuple[int, int, int] = (recon[1], recon[0], len(images))
        affine, axis, inplane = fastmri_affine(fov, recon, len(images)), 2, (1, 0)
    else:
        vol = read_nifti(path, opts.volume)
        if opts.axis not in (0, 1, 2):
            raise InputError(None, f"--axis must be 0, 1 or 2, got {opts.axis}")
        slices, affine, axis, header = slice_volume(vol.data, opts.axis), vol.affine, opts.axis, vol.header
        shape = (vol.data.shape[0], vol.data.shape[1], vol.data.shape[2])
        inplane = (tuple(a for a in range(3) if a != axis)[0], tuple(a for a in range(3) if a != axis)[1])
    try:
        indices = parse_slices(opts.slices).indices(len(slices)) if opts.slices else list(range(len(slices)))
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    shift = np.eye(4)
    shift[axis, 3] = indices[0]  # part of a volume: it keeps its place in the world
    sub_shape = tuple(len(indices) if a == axis else n for a, n in enumerate(shape))
    inp = LowresInput(np.asarray(slices[indices[0] : indices[-1] + 1]), np.asarray(affine) @ shift,
                      (sub_shape[0], sub_shape[1], sub_shape[2]), axis, fastmri, indices, header)
    lr_size = tuple(int(n) // (opts.scale if opts.from_highres else 1) for n in inp.slices.shape[-2:])
    if min(lr_size) < MIN_INPLANE:
        raise InputError(path, f"low-resolution in-plane size {lr_size} is too small",
                         f"at least {MIN_INPLANE} voxels; check --axis")
    if opts.from_highres:
        hr = inp.slices
        size = (int(hr.shape[-2]), int(hr.shape[-1]))
        inp.truth = np.abs(hr).astype(np.float32)
        if size[0] % opts.scale or size[1] % opts.scale:
            hr = _pad_to_multiple(hr, opts.scale)
            inp.hr_size = size
            inp.notes.append(f"in-plane size {size} is not a multiple of the scale {opts.scale}: zero-padded to "
                             f"{tuple(hr.shape[-2:])} at the high-index edges for the simulation, output cropped "
                             f"back to {size}")
        _lowres_of(hr, inp, opts.scale, opts.lr_model, inplane)
    if opts.reference is not None:
        inp.truth = _reference(Path(opts.reference), inp, opts)
    for line in inp.notes:
        if note is not None:
            note(line)
    return inp


def _reference(path: Path, inp: LowresInput, opts: SRFileOptions) -> np.ndarray:
    """The selected slices of a high-resolution reference NIfTI on the output's grid, as magnitudes ``(S, H, W)``."""
    ref = slice_volume(read_nifti(path).data, inp.axis)
    if inp.fastmri:  # the output stores fastMRI slices (S, h, w) as (w, h, S)
        ref = ref.transpose(0, 2, 1)
    want = (inp.slices.shape[-2] * opts.scale, inp.slices.shape[-1] * opts.scale)
    if tuple(ref.shape[-2:]) != want or ref.shape[0] < inp.indices[-1] + 1:
        raise InputError(path, f"reference slices {tuple(ref.shape)} do not match the output's "
                               f"({inp.indices[-1] + 1}, {want[0]}, {want[1]})",
                         "the reference must lie on the super-resolved grid")
    return np.abs(ref[inp.indices[0] : inp.indices[-1] + 1]).astype(np.float32)


def run(inp: LowresInput, sr: SuperResolver, opts: SRFileOptions) -> SamplingResult:
    """Super-resolve the input's slices (a slice's noise is keyed by its index in the volume)."""
    trained = sr.model.meta.get("training", {}).get("image_size")
    hr_size = (inp.slices.shape[-2] * opts.scale, inp.slices.shape[-1] * opts.scale)
    if trained and tuple(trained) != hr_size:
        warnings.warn(f"output slices {hr_size} differ from the model's training size {tuple(trained)}",
                      stacklevel=2)
    return sr.superresolve(inp.slices, opts.scale, lr_model=opts.lr_model, options=opts.sampling(),
                           indices=inp.indices)


def write_outputs(path: Path, out: Path, inp: LowresInput, result: SamplingResult,
                  opts: SRFileOptions) -> dict[str, Any]:
    """Write the NIfTI (and std map for K > 1) and the PNG panel; return the ``metrics.json`` entry.

    Metrics are computed before anything is written, and a failure part-way removes what this call wrote.
    """
    axes = [a for a in range(3) if a != inp.axis]
    affine = hr_affine(inp.affine, inp.shape, axes, opts.scale, opts.lr_model)
    crop = inp.hr_size or result.mean.shape[-2:]
    mean, std, sinc = (a[..., : crop[0], : crop[1]] for a in (result.mean, result.std, result.sinc))
    bicubic = bicubic_upsample(np.abs(inp.slices), opts.scale, opts.lr_model)[..., : crop[0], : crop[1]]

    def volume(slices: np.ndarray) -> np.ndarray:
        return volume_to_nifti_array(slices) if inp.fastmri else stack_slices(slices, inp.axis)

    entry: dict[str, Any] = {
        "file": out.name, "input": str(path), "scale": opts.scale, "lr_model": opts.lr_model,
        "slices": len(inp.indices), "slice_range": [inp.indices[0], inp.indices[-1] + 1], "nfe": result.nfe,
        "seconds_per_slice": result.seconds_per_slice, "shape": list(volume(mean).shape), "options": vars(opts)}
    if inp.notes:
        entry["notes"] = list(inp.notes)
    if inp.hr_size is not None:
        entry["size_adjustment"] = {"input": list(inp.hr_size), "padded_to": [int(n) for n in result.mean.shape[-2:]],
                                    "how": "zero-padded at the high-index edges; output cropped back"}
    if inp.truth is not None:  # before writing: a failure here must leave no output behind
        entry["reference"] = "simulated from the input (--from-highres)" if opts.from_highres else opts.reference
        entry.update({name: volume_metrics(inp.truth, pred) for name, pred in
                      (("mridiff", mean), ("sinc", sinc), ("bicubic", bicubic))})
    outs = output_paths(out, opts.samples)
    rows = pick_rows(len(inp.indices), opts.png_slices)
    written: list[Path] = []
    try:
        written.append(write_nifti(outs["nifti"], volume(mean), affine, inp.header, overwrite=opts.overwrite))
        if "std" in outs:
            written.append(write_nifti(outs["std"], volume(std), affine, inp.header, overwrite=opts.overwrite))
        written.append(write_panel(outs["png"], {"sinc": sinc, "bicubic": bicubic, "mridiff": mean}, inp.truth,
                                   std if opts.samples > 1 else None, rows,
                                   [f"slice {inp.indices[i]}" for i in rows], overwrite=opts.overwrite))
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    entry["outputs"] = {k: str(v) for k, v in outs.items()}
    return entry


def check_outputs(path: Path, out: Path, opts: SRFileOptions) -> MetricsLog:
    """Check the options and every output before any work; return the ``metrics.json`` beside the output.

    Raises:
        InputError: for bad options, an output that exists without ``overwrite`` or would replace the input, or a
            ``metrics.json`` that is not mridiff's.

    """
    check_scale(opts.scale)
    opts.sampling()  # bad sampling flags fail before any work
    if opts.reference is not None and opts.from_highres:
        raise InputError(None, "--reference and --from-highres both give the truth", "use one of them")
    if not out.name.endswith((".nii", ".nii.gz")):
        raise InputError(out, "output must end in .nii or .nii.gz")
    for p in output_paths(out, opts.samples).values():
        if p.resolve() == path.resolve():
            raise InputError(p, "output would overwrite the input")
        check_writable(p, opts.overwrite)
    return MetricsLog(out.parent / "metrics.json", {}, opts.overwrite, methods=SR_METHODS)


def superres_file(path: Path, out: Path, opts: SRFileOptions, ckpt: str | None = None, device: str | None = None,
                  expect_sha256: str | None = None, note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Super-resolve one file to ``out`` with its std map, panel and ``metrics.json`` entry; return the entry.

    Outputs are checked before any work and written atomically; a failure part-way removes what was written.
    """
    from mridiff.inference.provenance import run_provenance

    log = check_outputs(path, out, opts)
    inp = read_input(path, opts, note)
    sr = SuperResolver(ckpt, device=device, expect_sha256=expect_sha256)
    entry = write_outputs(path, out, inp, run(inp, sr, opts), opts)
    log.provenance, log.options = run_provenance(sr.model), vars(opts)
    try:
        log.add(entry)
    except BaseException:
        for p in output_paths(out, opts.samples).values():
            p.unlink(missing_ok=True)
        raise
    return entry
