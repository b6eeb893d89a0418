"""``mridiff superres IN --scale 2 --out OUT.nii.gz``: a low-resolution volume in, a super-resolved NIfTI out.

The input is a NIfTI volume (super-resolved slice by slice along ``--axis``) or a fastMRI HDF5 scan (its k-space
is the measured centre; multi-coil data are SENSE-combined first). The output's affine follows the grid
convention of :mod:`mridiff.inference.superres`: a world point keeps its coordinate. ``--from-highres`` treats the
input as the high-resolution truth, simulates its low resolution, and prints PSNR/SSIM of mridiff and the
baselines; the output then lies on the input's own grid.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mridiff.commands.common import positive_int
from mridiff.errors import InputError

MIN_INPLANE = 4


@dataclass
class SRFileOptions:
    """What ``mridiff superres`` does (CLI flags map one to one)."""

    scale: int = 2
    axis: int = 2
    lr_model: str = "kspace"
    steps: int = 50
    sampler: str = "ddim"
    samples: int = 1
    seed: int = 0
    batch_size: int = 4
    volume: int | None = None
    from_highres: bool = False
    overwrite: bool = False
    progress: bool = True


@dataclass
class LowresInput:
    """The LR slices to super-resolve and where they sit.

    Attributes:
        slices: real or complex LR slices ``(S, h, w)``.
        affine: LR voxel-to-world (4, 4) of the volume layout.
        shape: LR volume shape in the NIfTI layout.
        axis: slice axis in the NIfTI layout (the other two are upsampled).
        header: input NIfTI header (units) or ``None``.
        truth: HR magnitude slices ``(S, H, W)`` with ``--from-highres``, else ``None``.

    """

    slices: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]
    axis: int
    header: Any = None
    truth: np.ndarray | None = None


def std_path(out: Path) -> Path:
    """``OUT.nii.gz`` -> ``OUT_std.nii.gz`` (same for ``.nii``)."""
    suffix = ".nii.gz" if out.name.endswith(".nii.gz") else out.suffix
    return out.with_name(out.name[: len(out.name) - len(suffix)] + "_std" + suffix)


def _to_lowres(hr: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int], axis: int,
               opts: SRFileOptions) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Simulate LR slices from HR slices ``(S, H, W)``; the LR affine maps back onto the HR grid exactly."""
    import torch

    from mridiff.inference.superres import hr_affine, simulate_lowres

    lr = simulate_lowres(torch.as_tensor(hr).to(torch.complex64), opts.scale, opts.lr_model).numpy()
    axes = [a for a in range(3) if a != axis]
    lr_shape = tuple(n // opts.scale if a in axes else n for a, n in enumerate(shape))
    to_hr = hr_affine(np.eye(4), lr_shape, axes, opts.scale, opts.lr_model)
    return lr, affine @ np.linalg.inv(to_hr), (lr_shape[0], lr_shape[1], lr_shape[2])


def read_input(path: Path, opts: SRFileOptions) -> LowresInput:
    """Read a NIfTI volume or a fastMRI HDF5 scan as LR slices (simulating them with ``from_highres``).

    Raises:
        InputError: unreadable or 2D input, an undersampled HDF5 scan, in-plane size below 4 voxels, or (with
            ``from_highres``) a scale that does not divide the in-plane size.

    """
    from mridiff.data.nifti import read_nifti, slice_volume
    from mridiff.io.outputs import fastmri_affine

    header = None
    if path.name.endswith((".h5", ".hdf5")):
        slices, recon, fov = _read_fastmri(path)
        data_shape: tuple[int, int, int] = (recon[1], recon[0], slices.shape[0])
        affine, axis = fastmri_affine(fov, recon, slices.shape[0]), 2
    else:
        vol = read_nifti(path, opts.volume)
        if opts.axis not in (0, 1, 2):
            raise InputError(None, f"--axis must be 0, 1 or 2, got {opts.axis}")
        slices, affine, axis, header = slice_volume(vol.data, opts.axis), vol.affine, opts.axis, vol.header
        data_shape = (vol.data.shape[0], vol.data.shape[1], vol.data.shape[2])
    lr_size = tuple(int(n) // (opts.scale if opts.from_highres else 1) for n in slices.shape[-2:])
    if min(lr_size) < MIN_INPLANE:
        raise InputError(path, f"low-resolution in-plane size {lr_size} is too small",
                         f"at least {MIN_INPLANE} voxels; check --axis")
    if not opts.from_highres:
        return LowresInput(np.asarray(slices), affine, data_shape, axis, header)
    if slices.shape[-2] % opts.scale or slices.shape[-1] % opts.scale:
        raise InputError(path, f"scale {opts.scale} does not divide the in-plane size {tuple(slices.shape[-2:])}",
                         "crop the volume to a multiple of the scale")
    lr, lr_affine, lr_shape = _to_lowres(np.asarray(slices), affine, data_shape, axis, opts)
    return LowresInput(lr, lr_affine, lr_shape, axis, header, truth=np.abs(np.asarray(slices)).astype(np.float32))


def _read_fastmri(path: Path) -> tuple[np.ndarray, tuple[int, int], tuple[float, float, float] | None]:
    """Read a fully sampled fastMRI scan as complex slice images.

    Returns:
        Images ``(S, h, w)`` cropped to the recon size, that size, and the header's field of view in mm (or None).

    """
    import torch

    from mridiff.data.fastmri_h5 import open_scan, read_slice
    from mridiff.data.transforms import center_crop
    from mridiff.tasks.recon import full_image

    info = open_scan(path)
    if info.mask is not None:
        raise InputError(path, "holds undersampled k-space (a 'mask' dataset)", "run `mridiff reconstruct` first")
    images = []
    for i in range(info.num_slices):
        k = torch.from_numpy(read_slice(info, i).kspace)
        images.append(center_crop(full_image(k, None), info.recon_size).numpy())
    return np.stack(images), info.recon_size, info.fov_mm


def _to_volume(slices: np.ndarray, inp: LowresInput, fastmri: bool) -> np.ndarray:
    from mridiff.data.nifti import stack_slices
    from mridiff.io.outputs import volume_to_nifti_array

    return volume_to_nifti_array(slices) if fastmri else stack_slices(slices, inp.axis)


def superres_file(path: Path, out: Path, opts: SRFileOptions, ckpt: str | None = None, device: str | None = None,
                  expect_sha256: str | None = None) -> dict[str, Any]:
    """Super-resolve one file to ``out`` (and ``OUT_std`` when ``samples > 1``); returns a summary.

    Outputs are checked before any work and written atomically; if the second write fails the first is removed.
    """
    from mridiff.data.nifti import write_nifti
    from mridiff.inference.superres import SuperResolver, bicubic_upsample, check_scale, hr_affine
    from mridiff.io.atomic import check_writable
    from mridiff.metrics import volume_metrics

    check_scale(opts.scale)
    outs = [out] + ([std_path(out)] if opts.samples > 1 else [])
    if not out.name.endswith((".nii", ".nii.gz")):
        raise InputError(out, "output must end in .nii or .nii.gz")
    for p in outs:
        if p.resolve() == path.resolve():
            raise InputError(p, "output would overwrite the input")
        check_writable(p, opts.overwrite)
    inp = read_input(path, opts)
    sr = SuperResolver(ckpt, device=device, expect_sha256=expect_sha256)
    trained = sr.model.meta.get("training", {}).get("image_size")
    hr_size = (inp.slices.shape[-2] * opts.scale, inp.slices.shape[-1] * opts.scale)
    if trained and tuple(trained) != hr_size:
        warnings.warn(f"output slices {hr_size} differ from the model's training size {tuple(trained)}",
                      stacklevel=2)
    result = sr.superresolve(inp.slices, opts.scale, lr_model=opts.lr_model, steps=opts.steps,
                             sampler=opts.sampler, samples=opts.samples, seed=opts.seed,
                             batch_size=opts.batch_size, progress=opts.progress)
    fastmri = path.name.endswith((".h5", ".hdf5"))
    axes = [a for a in range(3) if a != inp.axis]
    affine = hr_affine(inp.affine, inp.shape, axes, opts.scale, opts.lr_model)
    mean = _to_volume(result.mean, inp, fastmri)
    summary: dict[str, Any] = {"file": str(path), "outputs": [str(p) for p in outs], "nfe": result.nfe,
                               "seconds_per_slice": result.seconds_per_slice, "shape": list(mean.shape)}
    if inp.truth is not None:  # before writing: a failure here must leave no output behind
        bicubic = bicubic_upsample(np.abs(inp.slices), opts.scale, opts.lr_model)
        crop = inp.truth.shape[-2] >= inp.truth.shape[-1]  # fastmri crops to (W, W), which needs H >= W
        summary["metrics"] = {name: volume_metrics(inp.truth, pred, crop=crop) for name, pred in
                              (("mridiff", result.mean), ("sinc", result.sinc), ("bicubic", bicubic))}
    write_nifti(out, mean, affine, inp.header, overwrite=opts.overwrite)
    if opts.samples > 1:
        try:
            write_nifti(outs[1], _to_volume(result.std, inp, fastmri), affine, inp.header, overwrite=opts.overwrite)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    return summary


def run(args: argparse.Namespace) -> int:
    """Super-resolve one input and print where the outputs went."""
    opts = SRFileOptions(scale=args.scale, axis=args.axis, lr_model=args.lr_model, steps=args.steps,
                         sampler=args.sampler, samples=args.samples, seed=args.seed, batch_size=args.batch_size,
                         volume=args.volume, from_highres=args.from_highres, overwrite=args.overwrite,
                         progress=not args.no_progress)
    summary = superres_file(Path(args.input), Path(args.out), opts, args.ckpt, args.device, args.expect_sha256)
    print(f"x{opts.scale} super-resolution: {summary['seconds_per_slice']:.2f} s/slice, NFE {summary['nfe']}")
    for name, m in summary.get("metrics", {}).items():
        print(f"  {name:8s} PSNR {m['PSNR']:.2f} dB  SSIM {m['SSIM']:.4f}  NMSE {m['NMSE']:.4f}")
    print("wrote " + ", ".join(summary["outputs"]))
    return 0


def register(sub: Any) -> None:
    """Add the ``superres`` sub-command."""
    p = sub.add_parser("superres", help="super-resolve a low-resolution NIfTI volume or fastMRI scan")
    p.add_argument("input", help="low-resolution .nii/.nii.gz volume or fastMRI .h5 scan")
    p.add_argument("--scale", type=int, choices=[2, 4], default=2, help="in-plane upsampling factor")
    p.add_argument("--axis", type=int, choices=[0, 1, 2], default=2, help="NIfTI slice axis (ignored for .h5)")
    p.add_argument("--lr-model", choices=["kspace", "image"], default="kspace",
                   help="low resolution = centre of k-space (MRI) or block means (other images)")
    p.add_argument("--ckpt", help="exported SR model (.safetensors); default: the bundled x2 model")
    p.add_argument("--expect-sha256", help="refuse a model whose SHA-256 differs")
    p.add_argument("--steps", type=positive_int, default=50, help="DDIM steps (DDPM always takes all T steps)")
    p.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim", help="reverse-diffusion sampler")
    p.add_argument("--samples", type=positive_int, default=1, help="K samples; K > 1 writes OUT_std")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--batch-size", type=positive_int, default=4, help="slices per batch")
    p.add_argument("--volume", type=int, help="volume index of a 4D NIfTI")
    p.add_argument("--from-highres", action="store_true",
                   help="input is high-resolution: simulate its low resolution and report PSNR/SSIM")
    p.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    p.add_argument("--out", required=True, help="output .nii.gz")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
