"""The bad-input corpus (issue 6), generated on demand into a directory: nothing binary is committed.

This module is the ``tests/bad_inputs/`` of the issue. It is used by the pytest fixtures in ``conftest.py``
(in-process CLI runs) and by ``scripts/reliability_table.py`` (real ``python -m mridiff.cli`` subprocesses), so the
table in ``docs/reliability.md`` and the tests exercise exactly the same files.

Every :class:`BadCase` writes its input(s) into its own directory and returns the command line to run. A case
either fails (exit 2, one line on stderr naming the file, no output written) or warns and continues (exit 0, a
``warning:`` line, all outputs written).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import nibabel as nib
import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # data_prep/ is not an installed package
    sys.path.insert(0, str(ROOT))

from mridiff.data.h5_writer import SimulationSpec, write_simulated_scan  # noqa: E402
from mridiff.data.ismrmrd import build_header  # noqa: E402
from mridiff.models.unet import ConditionalUNet, UNetConfig  # noqa: E402
from mridiff.training.checkpoint import export_model, sha256_file  # noqa: E402

SIZE = 32
SLICES = 3
FOV_MM = (220.0, 220.0, 5.0)
PATIENT_STRINGS = ("DOE^JANE", "MRN-998877", "1961-02-03")
PATIENT_XML = (
    "<subjectInformation><patientName>DOE^JANE</patientName><patientID>MRN-998877</patientID>"
    "<patientBirthdate>1961-02-03</patientBirthdate></subjectInformation>"
)


# ----------------------------------------------------------------------------------------------- good inputs


def tiny_unet_config(channels: tuple[int, int] = (8, 16)) -> UNetConfig:
    """The smallest U-Net the CLI tests use (a few thousand parameters, 32x32 in a few ms on one thread)."""
    return UNetConfig(channels=channels, attention_levels=(False, True), num_head_channels=8, norm_num_groups=4)


def tiny_meta(cfg: UNetConfig, task: str = "recon") -> dict[str, Any]:
    """Exported-model metadata for :func:`tiny_unet_config` networks."""
    return {
        "task": task,
        "model": cfg.to_dict(),
        "diffusion": {"timesteps": 1000, "schedule": "linear", "prediction": "epsilon"},
        "normalisation": {"method": "percentile", "q": 99.0},
        "training": {"image_size": [SIZE, SIZE]},
    }


def write_tiny_model(path: Path, task: str = "recon", seed: int = 0) -> Path:
    """Export an untrained tiny U-Net (``.safetensors`` + ``.json`` + ``.sha256``) to ``path``."""
    torch.manual_seed(seed)
    cfg = tiny_unet_config()
    return export_model(ConditionalUNet(cfg), tiny_meta(cfg, task), path, overwrite=True)


def blob_images(num: int = SLICES, size: int = SIZE) -> np.ndarray:
    """``num`` float32 ``(size, size)`` ellipse phantoms with some structure, zero background."""
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    out = []
    for i in range(num):
        r2 = (x / (0.8 - 0.05 * i)) ** 2 + (y / 0.7) ** 2
        out.append(np.where(r2 < 1.0, 1.0 + 0.4 * np.cos(6 * x + i) * np.sin(4 * y), 0.0))
    return np.asarray(out, dtype=np.float32)


def write_good_scan(path: Path, slices: int = SLICES, size: int = SIZE, coils: int = 1, seed: int = 0) -> Path:
    """A fully sampled fastMRI-layout file with simulated k-space, written by ``data_prep``'s real writer."""
    spec = SimulationSpec(coils=coils, seed=seed)
    return write_simulated_scan(path, blob_images(slices, size), np.arange(slices), spec, fov_mm=FOV_MM,
                                source_volume=path.stem, overwrite=True)


def good_kspace(slices: int = SLICES, size: int = SIZE) -> np.ndarray:
    """Complex64 ``(S, H, W)`` k-space of :func:`blob_images` (centred orthonormal FFT)."""
    img = blob_images(slices, size).astype(np.complex64)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    return k.astype(np.complex64)


def write_scan(path: Path, kspace: np.ndarray | None, *, header: bytes | None | Literal["auto"] = "auto",
               mask: np.ndarray | None = None, attrs: dict[str, Any] | None = None,
               recon_size: tuple[int, int] | None = None) -> Path:
    """Write a fastMRI-layout file with exactly the given pieces (``header="auto"`` builds a matching one)."""
    with h5py.File(path, "w") as hf:
        if kspace is not None:
            hf.create_dataset("kspace", data=kspace)
        if mask is not None:
            hf.create_dataset("mask", data=mask)
        if header == "auto":
            enc = (SIZE, SIZE) if kspace is None or kspace.ndim < 2 else (int(kspace.shape[-2]), int(kspace.shape[-1]))
            header = build_header(enc, recon_size or enc, FOV_MM)
        if header is not None:
            hf.create_dataset("ismrmrd_header", data=np.bytes_(header))
        for key, value in (attrs or {}).items():
            hf.attrs[key] = value
    return path


def write_nifti_volume(path: Path, data: np.ndarray, affine: np.ndarray | None = None,
                       header: nib.Nifti1Header | None = None) -> Path:
    """Save ``data`` with nibabel (no validation: the point is to write bad files too)."""
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None and header is None else affine, header=header), path)
    return path


def blob_volume(shape: tuple[int, int, int] = (SIZE, SIZE, 6)) -> np.ndarray:
    """A float32 ellipsoid volume for NIfTI cases."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    r2 = (x / 0.8) ** 2 + (y / 0.7) ** 2 + (z / 1.6) ** 2
    return np.where(r2 < 1.0, 100.0 + 40.0 * np.cos(6 * x) * np.sin(4 * y), 0.0).astype(np.float32)


def tiny_train_config(path: Path, data_root: Path, out_dir: Path, **train: Any) -> Path:
    """Write a valid tiny training config (32x32 single-coil, the tiny U-Net) and return its path."""
    cfg = {
        "task": "recon",
        "out_dir": str(out_dir),
        "data": {"root": str(data_root)},
        "model": tiny_unet_config().to_dict(),
        "diffusion": {"timesteps": 100, "schedule": "linear", "prediction": "epsilon"},
        "masks": {"kinds": ["random"], "accelerations": [4]},
        "train": {"batch_size": 2, "lr": 1e-3, "max_steps": 2, "precision": "32-true", "num_workers": 0,
                  "val_every": 0, "ckpt_every": 1, "log_every": 1, **train},
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class MaliciousPayload:
    """Unpickling this creates ``marker`` (through ``builtins.open``): proof that code ran during a load."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def write_malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A Lightning-looking checkpoint whose pickle creates ``marker`` when loaded without ``weights_only``."""
    state = {"state_dict": {"net.w": torch.zeros(2)}, "global_step": 3, "epoch": 0,
             "pytorch-lightning_version": "2.6.0", "callbacks": {"payload": MaliciousPayload(marker)}}
    torch.save(state, path)
    return path


# ------------------------------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Assets:
    """Good files shared by all cases (built once per corpus)."""

    root: Path
    model: Path
    sr_model: Path
    scan: Path
    train_data: Path


def build_assets(root: Path) -> Assets:
    """Write the tiny recon and SR models, a good scan and a tiny training set under ``root / "_assets"``."""
    base = root / "_assets"
    base.mkdir(parents=True, exist_ok=True)
    model = write_tiny_model(base / "tiny.safetensors")
    sr_model = write_tiny_model(base / "tiny_sr.safetensors", task="sr")
    scan = write_good_scan(base / "good.h5")
    data = base / "train_data"
    data.mkdir(exist_ok=True)
    for i in range(2):
        write_good_scan(data / f"train{i}.h5", seed=i)
    return Assets(root=base, model=model, sr_model=sr_model, scan=scan, train_data=data)


Tool = Literal["mridiff", "nifti_to_fastmri"]


@dataclass(frozen=True)
class Invocation:
    """What to run for a case: the tool, its arguments, the output directory to watch, and files to watch."""

    tool: Tool
    argv: list[str]
    out_dir: Path
    subject: Path  # the file the message must name
    watch: tuple[Path, ...] = ()  # files that must not be created (e.g. a pickle marker)


@dataclass(frozen=True)
class BadCase:
    """One entry of the corpus.

    Attributes:
        case_id: Short identifier (pytest id, table row).
        group: ``scan``, ``nifti``, ``model``, ``config`` or ``output``.
        what: What is wrong with the input, in words.
        expected: ``"error"`` (exit 2, nothing written) or ``"warning"`` (exit 0, outputs written).
        needle: Lower-case text the message must contain.
        build: Writes the input(s) into a directory and returns the invocation.
    """

    case_id: str
    group: str
    what: str
    expected: Literal["error", "warning"]
    needle: str
    build: Callable[[Path, Assets], Invocation]


def _recon(path: Path, assets: Assets, case_dir: Path, *extra: str, ckpt: Path | None = None,
           watch: tuple[Path, ...] = (), subject: Path | None = None) -> Invocation:
    out = case_dir / "out"
    argv = ["reconstruct", str(path), "--ckpt", str(ckpt or assets.model), "--steps", "2", "--device", "cpu",
            "--out", str(out), "--no-progress", *extra]
    return Invocation("mridiff", argv, out, subject or path, watch)


def _scan_case(make: Callable[[Path], Path]) -> Callable[[Path, Assets], Invocation]:
    def build(case_dir: Path, assets: Assets) -> Invocation:
        return _recon(make(case_dir), assets, case_dir)

    return build


def _truncated(d: Path) -> Path:
    raw = write_good_scan(d / "src.h5").read_bytes()
    (d / "src.h5").unlink()
    path = d / "truncated.h5"
    path.write_bytes(raw[: len(raw) * 6 // 10])
    return path


def _not_hdf5(d: Path) -> Path:
    path = d / "not_hdf5.h5"
    path.write_text("Patient scan exported as text, not HDF5.\n" * 20)
    return path


def _empty(d: Path) -> Path:
    path = d / "empty.h5"
    path.touch()
    return path


def _with_kspace(name: str, kspace: Callable[[], np.ndarray | None], **kwargs: Any) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        return write_scan(d / name, kspace(), **kwargs)

    return make


def _nan() -> np.ndarray:
    k = good_kspace()
    k[0, 5, 7] = np.nan
    return k


def _inf() -> np.ndarray:
    k = good_kspace()
    k[0, 5, 7] = np.inf
    return k


def _nan_last_slice() -> np.ndarray:
    k = good_kspace()
    k[-1, 3, 3] = np.nan
    return k


def _missing_kspace(d: Path) -> Path:
    path = write_scan(d / "no_kspace.h5", None)
    with h5py.File(path, "a") as hf:
        hf.create_dataset("reconstruction_esc", data=blob_images())
    return path


def _external_storage(d: Path) -> Path:
    """``kspace`` whose bytes live in a raw file outside the HDF5 file (h5py ``external=[...]``)."""
    k = good_kspace()
    raw = d / "kspace.raw"
    raw.write_bytes(k.tobytes())
    path = write_scan(d / "external_storage.h5", None)
    with h5py.File(path, "a") as hf:
        hf.create_dataset("kspace", shape=k.shape, dtype=k.dtype, external=[(str(raw), 0, k.nbytes)])
    return path


def _external_link(d: Path) -> Path:
    """``kspace`` is an ``h5py.ExternalLink`` into another (good) scan."""
    other = write_scan(d / "elsewhere.h5", good_kspace())
    path = write_scan(d / "external_link.h5", None)
    with h5py.File(path, "a") as hf:
        hf["kspace"] = h5py.ExternalLink(str(other), "/kspace")
    return path


def _virtual_kspace(d: Path) -> Path:
    """``kspace`` is a virtual dataset (VDS) mapped from another (good) scan."""
    other = write_scan(d / "elsewhere.h5", good_kspace())
    layout = h5py.VirtualLayout(shape=(SLICES, SIZE, SIZE), dtype=np.complex64)
    layout[:] = h5py.VirtualSource(str(other), "kspace", shape=(SLICES, SIZE, SIZE))
    path = write_scan(d / "virtual.h5", None)
    with h5py.File(path, "a") as hf:
        hf.create_virtual_dataset("kspace", layout)
    return path


def _nifti_case(make: Callable[[Path], Path], tool: Tool = "mridiff") -> Callable[[Path, Assets], Invocation]:
    """A NIfTI case through ``mridiff superres`` or through ``data_prep.nifti_to_fastmri``."""

    def build(case_dir: Path, assets: Assets) -> Invocation:
        src = make(case_dir)
        out = case_dir / "out"
        if tool == "mridiff":
            argv = ["superres", str(src), "--ckpt", str(assets.sr_model), "--steps", "2", "--device", "cpu",
                    "--out", str(out / "sr.nii.gz"), "--no-progress"]
        else:
            argv = [str(src), str(out), "--coils", "1", "--size", str(SIZE)]
        return Invocation(tool, argv, out, src)

    return build


def _nifti_2d(d: Path) -> Path:
    return write_nifti_volume(d / "flat_2d.nii.gz", blob_volume()[:, :, 3])


def _nifti_5d(d: Path) -> Path:
    return write_nifti_volume(d / "vol_5d.nii.gz", np.ones((SIZE, SIZE, 4, 2, 3), np.float32))


def _nifti_bad_affine(d: Path) -> Path:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((SIZE, SIZE, 6))
    hdr.set_data_dtype(np.float32)
    hdr["srow_x"] = [1.0, 0.0, 0.0, np.nan]
    hdr["srow_y"] = [0.0, 1.0, 0.0, 0.0]
    hdr["srow_z"] = [0.0, 0.0, 1.0, np.inf]
    hdr["sform_code"], hdr["qform_code"] = 1, 0
    return write_nifti_volume(d / "nan_affine.nii.gz", blob_volume(), None, header=hdr)


def _nifti_gzip_corrupt(d: Path) -> Path:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(nib.Nifti1Image(blob_volume(), np.diag([1.0, 1.0, 2.0, 1.0])).to_bytes())
    data = bytearray(raw.getvalue())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0x5A for b in data[mid : mid + 16])
    path = d / "corrupt.nii.gz"
    path.write_bytes(bytes(data))
    return path


def _model_case(make: Callable[[Path, Assets], tuple[Path, list[str], tuple[Path, ...]]]
                ) -> Callable[[Path, Assets], Invocation]:
    def build(case_dir: Path, assets: Assets) -> Invocation:
        ckpt, extra, watch = make(case_dir, assets)
        return _recon(assets.scan, assets, case_dir, *extra, ckpt=ckpt, watch=watch, subject=ckpt)

    return build


def _other_task(d: Path, assets: Assets) -> tuple[Path, list[str], tuple[Path, ...]]:
    return write_tiny_model(d / "sr_model.safetensors", task="sr"), [], ()


def _shape_mismatch(d: Path, assets: Assets) -> tuple[Path, list[str], tuple[Path, ...]]:
    path = write_tiny_model(d / "mismatch.safetensors")
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["model"] = tiny_unet_config((16, 32)).to_dict()  # the weights are (8, 16); the sha256 stays valid
    meta_path.write_text(json.dumps(meta))
    return path, [], ()


def _sha_mismatch(d: Path, assets: Assets) -> tuple[Path, list[str], tuple[Path, ...]]:
    return assets.model, ["--expect-sha256", "0" * 64], ()


def _tampered(d: Path, assets: Assets) -> tuple[Path, list[str], tuple[Path, ...]]:
    path = write_tiny_model(d / "tampered.safetensors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))
    return path, [], ()


def _pickle_ckpt(d: Path, assets: Assets) -> tuple[Path, list[str], tuple[Path, ...]]:
    marker = d / "PWNED"
    path = write_malicious_checkpoint(d / "evil.safetensors", marker)
    # A metadata file that vouches for it (right format, right checksum): only the weights loader stands in the way.
    meta = {"format": "mridiff-model", "version": 1, "sha256": sha256_file(path), **tiny_meta(tiny_unet_config())}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path, [], (marker,)


LastCkptWriter = Callable[[Path, Path], tuple[Path, ...]]


def _config_case(mutate: Callable[[dict[str, Any]], str | None],
                 last_ckpt: LastCkptWriter | None = None) -> Callable[[Path, Assets], Invocation]:
    """A ``mridiff train`` case; with ``last_ckpt`` it plants ``out/checkpoints/last.ckpt`` and runs ``--resume``."""

    def build(case_dir: Path, assets: Assets) -> Invocation:
        out = case_dir / "out"
        cfg_path = tiny_train_config(case_dir / "bad.yaml", assets.train_data, out)
        cfg = yaml.safe_load(cfg_path.read_text())
        text = mutate(cfg)
        cfg_path.write_bytes((text if text is not None else yaml.safe_dump(cfg, sort_keys=False)).encode(
            "utf-8", errors="surrogateescape"))
        argv = ["train", "-c", str(cfg_path), "--accelerator", "cpu", "--no-progress"]
        if last_ckpt is None:
            return Invocation("mridiff", argv, out, cfg_path)
        last = out / "checkpoints" / "last.ckpt"
        last.parent.mkdir(parents=True)
        watch = last_ckpt(last, case_dir)
        return Invocation("mridiff", [*argv, "--resume"], out, last, watch)

    return build


def _evil_last(last: Path, case_dir: Path) -> tuple[Path, ...]:
    write_malicious_checkpoint(last, case_dir / "PWNED")
    return (case_dir / "PWNED",)


def _half_written_last(last: Path, case_dir: Path) -> tuple[Path, ...]:
    buf = io.BytesIO()
    torch.save({"state_dict": {"net.w": torch.zeros(64)}, "global_step": 3, "epoch": 0}, buf)
    last.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return ()


def _unknown_key(cfg: dict[str, Any]) -> None:
    cfg["train"]["ckpt_evry"] = cfg["train"].pop("ckpt_every")


def _wrong_type(cfg: dict[str, Any]) -> None:
    cfg["train"]["batch_size"] = "eight"


def _not_yaml(cfg: dict[str, Any]) -> str:
    return "task: recon\ntrain: {batch_size: 2\n"


def _model_wrong_type(cfg: dict[str, Any]) -> None:
    cfg["model"]["channels"] = [8, "16"]


def _not_utf8(cfg: dict[str, Any]) -> str:
    return "task: recon\nout_dir: caf\udce9\n"  # written with surrogateescape: a Latin-1 byte 0xE9


def _no_change(cfg: dict[str, Any]) -> None:
    return None


def _output_exists(case_dir: Path, assets: Assets) -> Invocation:
    existing = case_dir / "out" / "reconstructions" / assets.scan.name
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"an earlier result that must survive")
    return _recon(assets.scan, assets, case_dir, subject=existing)


def _train_argv(cfg_path: Path, *extra: str) -> list[str]:
    return ["train", "-c", str(cfg_path), "--accelerator", "cpu", "--no-progress", *extra]


def _existing_model(case_dir: Path, assets: Assets) -> Invocation:
    """``train`` into an ``--out`` that holds an exported model but no checkpoint (issue 14: it was replaced)."""
    out = case_dir / "out"
    out.mkdir()
    model = write_tiny_model(out / "model.safetensors")
    cfg = tiny_train_config(case_dir / "cfg.yaml", assets.train_data, out)
    return Invocation("mridiff", _train_argv(cfg), out, model)


def _existing_run(case_dir: Path, assets: Assets) -> Invocation:
    out = case_dir / "out"
    cfg = tiny_train_config(case_dir / "cfg.yaml", assets.train_data, out)
    last = out / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"mridiff_config": json.dumps(yaml.safe_load(cfg.read_text())), "global_step": 1}, last)
    return Invocation("mridiff", _train_argv(cfg), out, last)


def _stored_run(change: Callable[[dict[str, Any]], None] | None) -> LastCkptWriter:
    """A ``last.ckpt`` whose stored config is the case's config, changed by ``change`` (``None``: no config)."""

    def write(last: Path, case_dir: Path) -> tuple[Path, ...]:
        state: dict[str, Any] = {"state_dict": {"net.w": torch.zeros(2)}, "global_step": 1, "epoch": 0}
        if change is not None:
            stored = yaml.safe_load((case_dir / "bad.yaml").read_text())
            change(stored)
            state["mridiff_config"] = json.dumps(stored)
        torch.save(state, last)
        return ()

    return write


def _stored_wider_network(stored: dict[str, Any]) -> None:
    stored["model"]["channels"] = [16, 32]


def _stored_sr_task(stored: dict[str, Any]) -> None:
    stored["task"] = "sr"


def _data_for_image_bank(case_dir: Path, assets: Assets) -> Invocation:
    out = case_dir / "out"
    cfg = tiny_train_config(case_dir / "bank.yaml", assets.train_data, out)
    data = yaml.safe_load(cfg.read_text())
    data["data"].update({"images": str(case_dir / "train_images.h5"), "val_root": str(assets.train_data)})
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return Invocation("mridiff", _train_argv(cfg, "--data", str(assets.train_data)), out, cfg)


def _missing_val(case_dir: Path, assets: Assets) -> Invocation:
    out = case_dir / "out"
    cfg = tiny_train_config(case_dir / "cfg.yaml", assets.train_data, out)
    data = yaml.safe_load(cfg.read_text())
    data["data"]["val_root"] = str(case_dir / "val")
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return Invocation("mridiff", _train_argv(cfg), out, case_dir / "val")


def _evaluate(prediction: np.ndarray | None) -> Callable[[Path, Assets], Invocation]:
    """``mridiff evaluate`` of the good scan against a prediction (``None``: the prediction file is missing)."""

    def build(case_dir: Path, assets: Assets) -> Invocation:
        targets, preds = case_dir / "targets", case_dir / "preds"
        targets.mkdir()
        preds.mkdir()
        write_good_scan(targets / "scan.h5")
        if prediction is not None:
            with h5py.File(preds / "scan.h5", "w") as hf:
                hf.create_dataset("reconstruction", data=prediction)
        argv = ["evaluate", "--target-path", str(targets), "--predictions-path", str(preds)]
        return Invocation("mridiff", argv, preds, preds / "scan.h5")

    return build


def _header_malformed(d: Path) -> Path:
    return write_scan(d / "bad_header.h5", good_kspace(), header=b"<ismrmrdHeader><encoding><encodedSpace>")


def _recon_larger(d: Path) -> Path:
    return write_scan(d / "recon_larger.h5", good_kspace(), recon_size=(40, 24))


_NIFTI_TOOLS: tuple[tuple[str, str, Tool], ...] = (("", "nifti", "mridiff"), ("prep_", "prep", "nifti_to_fastmri"))

CASES: tuple[BadCase, ...] = (
    # --- scans through `mridiff reconstruct`
    BadCase("truncated_hdf5", "scan", "HDF5 file cut at 60% of its length", "error", "truncated",
            _scan_case(_truncated)),
    BadCase("not_hdf5", "scan", "text file named .h5", "error", "not an hdf5 file", _scan_case(_not_hdf5)),
    BadCase("empty_file", "scan", "empty (0-byte) .h5 file", "error", "empty", _scan_case(_empty)),
    BadCase("missing_kspace", "scan", "no `kspace` dataset", "error", "no 'kspace'", _scan_case(_missing_kspace)),
    BadCase("real_kspace", "scan", "real-valued (float32) k-space", "error", "real-valued",
            _scan_case(_with_kspace("real.h5", lambda: good_kspace().real.copy()))),
    BadCase("integer_kspace", "scan", "integer (int16) k-space", "error", "integer",
            _scan_case(_with_kspace("int.h5", lambda: (good_kspace().real * 100).astype(np.int16)))),
    BadCase("kspace_2d", "scan", "2-D k-space (H, W)", "error", "2 dimensions",
            _scan_case(_with_kspace("k2d.h5", lambda: good_kspace()[0]))),
    BadCase("kspace_5d", "scan", "5-D k-space (1, S, C, H, W)", "error", "5 dimensions",
            _scan_case(_with_kspace("k5d.h5", lambda: good_kspace()[None, :, None]))),
    BadCase("nan_kspace", "scan", "NaN in k-space", "error", "nan", _scan_case(_with_kspace("nan.h5", _nan))),
    BadCase("inf_kspace", "scan", "Inf in k-space", "error", "inf", _scan_case(_with_kspace("inf.h5", _inf))),
    BadCase("nan_last_slice", "scan", "NaN in the last slice only (found mid-run)", "error", "slice 2",
            _scan_case(_with_kspace("nan_last.h5", _nan_last_slice))),
    BadCase("zero_kspace", "scan", "all-zero k-space", "error", "all zeros",
            _scan_case(_with_kspace("zero.h5", lambda: np.zeros((SLICES, SIZE, SIZE), np.complex64)))),
    BadCase("mask_mismatch", "scan", "mask of 35 columns for 32-column k-space", "error", "mask shape",
            _scan_case(_with_kspace("mask.h5", good_kspace, mask=np.ones(SIZE + 3, bool)))),
    BadCase("external_storage", "scan", "`kspace` stored in an external raw file (HDF5 external storage)", "error",
            "external raw files", _scan_case(_external_storage)),
    BadCase("external_link", "scan", "`kspace` is an HDF5 external link to another file", "error", "external link",
            _scan_case(_external_link)),
    BadCase("virtual_dataset", "scan", "`kspace` is a virtual dataset (VDS) mapped from another file", "error",
            "virtual dataset", _scan_case(_virtual_kspace)),
    BadCase("header_missing", "scan", "no `ismrmrd_header`", "warning", "no ismrmrd_header",
            _scan_case(_with_kspace("no_header.h5", good_kspace, header=None))),
    BadCase("header_malformed", "scan", "`ismrmrd_header` is malformed XML", "warning", "malformed ismrmrd_header",
            _scan_case(_header_malformed)),
    BadCase("recon_larger_than_encoded", "scan", "header recon size (40, 24) > encoded (32, 32)", "warning",
            "exceeds encoded size", _scan_case(_recon_larger)),
    # --- NIfTI volumes, through `mridiff superres` and through data_prep's converter
    *(BadCase(f"{prefix}nifti_2d", group, "2-D NIfTI image", "error", "2 dimensions", _nifti_case(_nifti_2d, tool))
      for prefix, group, tool in _NIFTI_TOOLS),
    *(BadCase(f"{prefix}nifti_5d", group, "5-D NIfTI image", "error", "5 dimensions", _nifti_case(_nifti_5d, tool))
      for prefix, group, tool in _NIFTI_TOOLS),
    *(BadCase(f"{prefix}nifti_affine", group, "NaN/Inf in the sform affine", "error", "affine is not finite",
              _nifti_case(_nifti_bad_affine, tool)) for prefix, group, tool in _NIFTI_TOOLS),
    *(BadCase(f"{prefix}nifti_gzip", group, "16 corrupted bytes inside the gzip stream", "error", "cannot read",
              _nifti_case(_nifti_gzip_corrupt, tool)) for prefix, group, tool in _NIFTI_TOOLS),
    # --- models and checkpoints
    BadCase("ckpt_other_task", "model", "exported model trained for task `sr`", "error", "task 'sr'",
            _model_case(_other_task)),
    BadCase("ckpt_shape_mismatch", "model", "weights do not fit the model config (8,16 vs 16,32 channels)", "error",
            "weights do not match", _model_case(_shape_mismatch)),
    BadCase("ckpt_expect_sha256", "model", "`--expect-sha256` differs from the model file", "error",
            "sha-256 mismatch", _model_case(_sha_mismatch)),
    BadCase("ckpt_tampered", "model", "one bit of the weights flipped (sidecar checksum no longer matches)", "error",
            "sha-256 mismatch", _model_case(_tampered)),
    BadCase("ckpt_pickle", "model", "pickle with a code-running payload passed as --ckpt", "error",
            "cannot read safetensors", _model_case(_pickle_ckpt)),
    BadCase("resume_pickle", "model", "`train --resume` from a last.ckpt with a code-running payload", "error",
            "refused to load checkpoint", _config_case(_no_change, _evil_last)),
    BadCase("resume_truncated", "model", "`train --resume` from a half-written last.ckpt (cut at 50%)", "error",
            "cannot read checkpoint", _config_case(_no_change, _half_written_last)),
    # --- training configs
    BadCase("config_unknown_key", "config", "config key `train.ckpt_evry` (typo)", "error", "train.ckpt_evry",
            _config_case(_unknown_key)),
    BadCase("config_wrong_type", "config", "`train.batch_size: eight`", "error", "train.batch_size",
            _config_case(_wrong_type)),
    BadCase("config_not_yaml", "config", "config is not valid YAML", "error", "not valid yaml",
            _config_case(_not_yaml)),
    BadCase("config_model_type", "config", "`model.channels: [8, \"16\"]` (a string in the network section)", "error",
            "model.channels", _config_case(_model_wrong_type)),
    BadCase("config_not_utf8", "config", "config file is not UTF-8 (a Latin-1 byte)", "error", "not utf-8",
            _config_case(_not_utf8)),
    # --- training runs (issue 14): no model lost, no mislabelled export, errors before Lightning starts
    BadCase("train_existing_model", "train", "`--out` holds a `model.safetensors` (no checkpoint), no `--overwrite`",
            "error", "a model exported by an earlier run", _existing_model),
    BadCase("train_existing_run", "train", "`--out` holds `checkpoints/last.ckpt`, neither `--resume` nor "
            "`--overwrite`", "error", "a previous run exists", _existing_run),
    BadCase("resume_other_network", "train", "`--resume` with `model.channels` changed from the checkpoint's run",
            "error", "cannot resume", _config_case(_no_change, _stored_run(_stored_wider_network))),
    BadCase("resume_other_task", "train", "`--resume` of a run of task `sr` with a `recon` config", "error",
            "cannot resume", _config_case(_no_change, _stored_run(_stored_sr_task))),
    BadCase("resume_foreign", "train", "`--resume` from a last.ckpt without mridiff's stored config", "error",
            "not an mridiff training checkpoint", _config_case(_no_change, _stored_run(None))),
    BadCase("train_data_image_bank", "train", "`--data DIR` with an image-bank config (`data.images`)", "error",
            "image bank", _data_for_image_bank),
    BadCase("train_missing_val", "train", "`data.val_root` does not exist", "error", "not found", _missing_val),
    # --- evaluation
    BadCase("evaluate_no_prediction", "evaluate", "a target without a submission file of the same name", "error",
            "no prediction", _evaluate(None)),
    BadCase("evaluate_smaller", "evaluate", "a 20x20 prediction for a 32x32 target", "error",
            "smaller than the evaluated", _evaluate(np.ones((SLICES, 20, 20), np.float32))),
    BadCase("evaluate_nan", "evaluate", "NaN in the prediction", "error", "nan or inf",
            _evaluate(np.full((SLICES, SIZE, SIZE), np.nan, np.float32))),
    # --- outputs
    BadCase("output_exists", "output", "output exists and no `--overwrite`", "error", "output already exists",
            _output_exists),
)

CASES_BY_ID = {c.case_id: c for c in CASES}


# ------------------------------------------------------------------------------------------------ running cases


@dataclass(frozen=True)
class Outcome:
    """What a CLI run did."""

    exit_code: int
    stdout: str
    stderr: str

    def lines(self, kind: str) -> list[str]:
        """Stderr lines of one kind: ``"error"`` or ``"warning"``."""
        return [ln for ln in self.stderr.splitlines() if f"{kind}: " in ln]


def run_inprocess(inv: Invocation) -> Outcome:
    """Run the CLI's ``main`` in this process, capturing stdout and stderr (and every warning)."""
    from mridiff import cli

    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.simplefilter("always")  # a repeated warning in one process must still be shown
        if inv.tool == "mridiff":
            code = cli.main(inv.argv)
        else:
            from data_prep import nifti_to_fastmri

            code = nifti_to_fastmri.main(inv.argv)
    return Outcome(code, out.getvalue(), err.getvalue())


def subprocess_command(inv: Invocation) -> list[str]:
    """The real command line for an invocation."""
    module = "mridiff.cli" if inv.tool == "mridiff" else "data_prep.nifti_to_fastmri"
    return [sys.executable, "-m", module, *inv.argv]


def run_subprocess(inv: Invocation, timeout: float = 600.0) -> Outcome:
    """Run the invocation as a real subprocess (one thread) from the repository root."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(subprocess_command(inv), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def snapshot(directory: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``directory`` (empty when it does not exist)."""
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def temp_leftovers(directory: Path) -> list[Path]:
    """Temporary ``.part`` files the atomic writers might have left behind."""
    return sorted(p for p in directory.rglob("*") if p.name.endswith(".part")) if directory.exists() else []


def prepare(case: BadCase, root: Path, assets: Assets) -> Invocation:
    """Create the case's directory under ``root`` and build its input(s)."""
    case_dir = root / case.case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    return case.build(case_dir, assets)


__all__ = (
    "CASES", "CASES_BY_ID", "PATIENT_STRINGS", "PATIENT_XML", "Assets", "BadCase", "Invocation", "MaliciousPayload",
    "Outcome", "blob_images", "build_assets", "good_kspace", "prepare", "run_inprocess", "run_subprocess",
    "snapshot", "temp_leftovers", "tiny_meta", "tiny_train_config", "tiny_unet_config", "write_good_scan",
    "write_malicious_checkpoint", "write_scan", "write_tiny_model",
)
