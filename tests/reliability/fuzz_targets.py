"""Hypothesis strategies and targets for fuzzing the HDF5 reader, the NIfTI reader and the config loader.

Shared by ``test_rel_fuzz.py`` (bounded, derandomized) and ``scripts/fuzz_long.py`` (longer runs). A target passes
when the reader returns normally or raises :class:`~mridiff.errors.InputError` (warnings are allowed); any other
exception is a crash and propagates.
"""

from __future__ import annotations

import gzip
import io
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import nibabel as nib
import numpy as np
import yaml
from hypothesis import strategies as st

from mridiff.config import RunConfig, load_config
from mridiff.data.fastmri_h5 import open_scan, read_slice
from mridiff.data.ismrmrd import build_header
from mridiff.data.nifti import read_nifti
from mridiff.errors import InputError

CASES_RUN: Counter[str] = Counter()  # examples executed per target (for the reports)

# ------------------------------------------------------------------------------------------------------ helpers

_DTYPES = ("complex64", "complex128", "float32", "float64", "int16", "uint8", "bool")
small_dims = st.integers(min_value=0, max_value=5)
_NO_NUL = st.characters(exclude_characters="\x00")  # h5py cannot store NUL in a str attribute
special = st.sampled_from([0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e38, 1e-45])


def _fill(shape: tuple[int, ...], dtype: str, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "zeros":
        base = np.zeros(shape)
    elif kind == "nan":
        base = rng.normal(size=shape)
        if base.size:
            base.flat[seed % base.size] = np.nan
    elif kind == "inf":
        base = rng.normal(size=shape)
        if base.size:
            base.flat[seed % base.size] = np.inf
    else:
        base = rng.normal(size=shape)
    if dtype.startswith("complex"):
        return (base + 1j * rng.normal(size=shape)).astype(dtype)
    if dtype == "bool":
        return (base > 0).astype(bool)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.nan_to_num(base * 50).astype(dtype) if dtype.startswith(("int", "uint")) else base.astype(dtype)


def _in_tmp(suffix: str, data: bytes | None = None) -> Path:
    fd, name = tempfile.mkstemp(prefix="mridiff_fuzz_", suffix=suffix)
    with open(fd, "wb") as fh:
        if data is not None:
            fh.write(data)
    return Path(name)


def _only_input_errors(fn: Any, *args: Any, **kwargs: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fn(*args, **kwargs)
        except InputError as exc:
            message = exc.message()
            assert message and "\n" not in message, repr(message)


# ------------------------------------------------------------------------------------------------- HDF5 reader


@dataclass
class H5Spec:
    """A fastMRI-like file with every part optional and any shape or dtype."""

    kspace: tuple[tuple[int, ...], str, str, int] | None
    kspace_is_group: bool = False
    target: tuple[str, tuple[int, ...], str] | None = None
    mask: tuple[tuple[int, ...], str, int] | None = None
    header: bytes | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@st.composite
def h5_specs(draw: st.DrawFn) -> H5Spec:
    """Random fastMRI-layout-ish files: shapes of 0-5 dimensions, all dtypes, NaN/Inf/zeros, odd headers."""
    ndim = draw(st.integers(min_value=0, max_value=5))
    shape = tuple(draw(st.lists(small_dims, min_size=ndim, max_size=ndim)))
    kspace: tuple[tuple[int, ...], str, str, int] | None = (
        shape, draw(st.sampled_from(_DTYPES)), draw(st.sampled_from(["ok", "ok", "zeros", "nan", "inf"])),
        draw(st.integers(0, 2**16)))
    if draw(st.integers(0, 9)) == 0:
        kspace = None  # no k-space at all
    target = None
    if draw(st.booleans()):
        tshape = tuple(draw(st.lists(small_dims, min_size=0, max_size=4)))
        target = (draw(st.sampled_from(["reconstruction_esc", "reconstruction_rss"])), tshape,
                  draw(st.sampled_from(["float32", "int16", "complex64"])))
    mask = None
    if draw(st.booleans()):
        mshape = tuple(draw(st.lists(small_dims, min_size=0, max_size=4)))
        mask = (mshape, draw(st.sampled_from(["bool", "float32", "int16", "complex64"])), draw(st.integers(0, 99)))
    header_kind = draw(st.sampled_from(["none", "valid", "sizes", "text", "bytes"]))
    header: bytes | None = None
    if header_kind == "valid" and len(shape) >= 2:
        header = build_header((max(shape[-2], 1), max(shape[-1], 1)), (max(shape[-2], 1), max(shape[-1], 1)),
                              (200.0, 200.0, 5.0))
    elif header_kind in ("valid", "sizes"):
        h, w, rh, rw = (draw(st.integers(-3, 9)) for _ in range(4))
        fov = draw(st.sampled_from(["200", "0", "-5", "nan", "inf", "x"]))
        header = (f"<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>{h}</x><y>{w}</y><z>1</z></matrixSize>"
                  f"<fieldOfView_mm><x>{fov}</x><y>200</y><z>5</z></fieldOfView_mm></encodedSpace><reconSpace>"
                  f"<matrixSize><x>{rh}</x><y>{rw}</y><z>1</z></matrixSize><fieldOfView_mm><x>{fov}</x><y>1</y>"
                  f"<z>1</z></fieldOfView_mm></reconSpace></encoding></ismrmrdHeader>").encode()
    elif header_kind == "text":
        header = draw(st.text(max_size=60)).encode("utf-8", errors="surrogatepass")
    elif header_kind == "bytes":
        header = draw(st.binary(max_size=60))
    attrs = draw(st.dictionaries(st.sampled_from(["acquisition", "max", "norm", "PatientName", "x", "acceleration"]),
                                 st.one_of(st.integers(-5, 5), st.text(_NO_NUL, max_size=8), special), max_size=3))
    return H5Spec(kspace, draw(st.integers(0, 19)) == 0, target, mask, header, attrs)


def write_h5_spec(spec: H5Spec, path: Path) -> Path:
    """Write the file a :class:`H5Spec` describes."""
    with h5py.File(path, "w") as hf:
        if spec.kspace_is_group:
            hf.create_group("kspace")
        elif spec.kspace is not None:
            shape, dtype, kind, seed = spec.kspace
            hf.create_dataset("kspace", data=_fill(shape, dtype, kind, seed))
        if spec.target is not None:
            key, tshape, tdtype = spec.target
            hf.create_dataset(key, data=_fill(tshape, tdtype, "ok", 1))
        if spec.mask is not None:
            mshape, mdtype, seed = spec.mask
            hf.create_dataset("mask", data=_fill(mshape, mdtype, "ok", seed))
        if spec.header is not None:
            hf.create_dataset("ismrmrd_header", data=np.void(spec.header) if b"\x00" in spec.header
                              else np.bytes_(spec.header))
        for key, value in spec.attrs.items():
            hf.attrs[key] = value
    return path


def read_all(path: Path) -> None:
    """What ``mridiff reconstruct`` does to a file before the network: open it and read every slice."""
    info = open_scan(path)
    for i in range(info.num_slices):
        read_slice(info, i)


def check_h5_spec(spec: H5Spec) -> None:
    """Fuzz target: a structurally odd file gives a result or an InputError."""
    CASES_RUN["hdf5_structure"] += 1
    path = _in_tmp(".h5")
    try:
        write_h5_spec(spec, path)
        _only_input_errors(read_all, path)
    finally:
        path.unlink()


def _good_h5_bytes() -> bytes:
    k = _fill((2, 8, 8), "complex64", "ok", 0)
    path = _in_tmp(".h5")
    try:
        with h5py.File(path, "w") as hf:
            hf.create_dataset("kspace", data=k, chunks=(1, 8, 8))
            hf.create_dataset("reconstruction_esc", data=np.abs(k).astype(np.float32))
            hf.create_dataset("mask", data=np.ones(8, bool))
            hf.create_dataset("ismrmrd_header", data=np.bytes_(build_header((8, 8), (8, 8), (200.0, 200.0, 5.0))))
            hf.attrs["acquisition"] = "AXT1"
        return path.read_bytes()
    finally:
        path.unlink()


GOOD_H5 = _good_h5_bytes()
mutations = st.lists(st.tuples(st.integers(0, len(GOOD_H5) - 1), st.integers(0, 255)), min_size=1, max_size=12)


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    """Overwrite bytes at the given offsets, then optionally truncate."""
    buf = bytearray(data)
    for offset, value in edits:
        buf[offset % len(buf)] = value
    return bytes(buf[:cut] if cut is not None else buf)


def check_h5_bytes(edits: list[tuple[int, int]], cut: int | None) -> None:
    """Fuzz target: a valid file with random bytes overwritten (and maybe truncated)."""
    CASES_RUN["hdf5_bytes"] += 1
    path = _in_tmp(".h5", mutate(GOOD_H5, edits, cut))
    try:
        _only_input_errors(read_all, path)
    finally:
        path.unlink()


# ------------------------------------------------------------------------------------------------- NIfTI reader


@dataclass
class NiftiSpec:
    """A NIfTI file with any shape, dtype, affine and compression."""

    shape: tuple[int, ...]
    dtype: str
    fill: str
    affine: list[float]
    gz: bool
    volume_index: int | None
    canonical: bool


@st.composite
def nifti_specs(draw: st.DrawFn) -> NiftiSpec:
    """Random NIfTI volumes: 1-6 dimensions, several dtypes, non-finite or singular affines."""
    ndim = draw(st.integers(1, 6))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    affine = draw(st.one_of(
        st.just([1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0]),
        st.lists(st.one_of(st.floats(-10, 10), special), min_size=12, max_size=12)))
    return NiftiSpec(shape, draw(st.sampled_from(["uint8", "int16", "float32", "float64", "complex64"])),
                     draw(st.sampled_from(["ok", "nan", "inf", "zeros"])), affine, draw(st.booleans()),
                     draw(st.one_of(st.none(), st.integers(-3, 3))), draw(st.booleans()))


def nifti_bytes(spec: NiftiSpec) -> bytes:
    """Serialise a :class:`NiftiSpec` (gzip-compressed when ``spec.gz``)."""
    aff = np.eye(4)
    aff[:3, :] = np.asarray(spec.affine, dtype=np.float64).reshape(3, 4)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(spec.shape)
    hdr.set_data_dtype(np.dtype(spec.dtype))
    for i, row in enumerate(("srow_x", "srow_y", "srow_z")):
        hdr[row] = aff[i]
    hdr["sform_code"], hdr["qform_code"] = 1, 0
    data = _fill(spec.shape, spec.dtype, spec.fill, 3)
    raw = nib.Nifti1Image(data, None, header=hdr).to_bytes()
    if not spec.gz:
        return raw
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw)
    return out.getvalue()


def check_nifti_spec(spec: NiftiSpec) -> None:
    """Fuzz target: any well-formed-but-odd NIfTI gives a volume or an InputError."""
    CASES_RUN["nifti_structure"] += 1
    path = _in_tmp(".nii.gz" if spec.gz else ".nii", nifti_bytes(spec))
    try:
        _only_input_errors(read_nifti, path, volume_index=spec.volume_index, canonical=spec.canonical)
    finally:
        path.unlink()


GOOD_NII = nifti_bytes(NiftiSpec((6, 5, 4), "float32", "ok", [1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 2.0, 0], False, None,
                                 False))
GOOD_NII_GZ = nifti_bytes(NiftiSpec((6, 5, 4), "float32", "ok", [1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 2.0, 0], True,
                                    None, False))
nifti_header_edits = st.lists(st.tuples(st.integers(0, 351), st.integers(0, 255)), min_size=1, max_size=8)
nifti_any_edits = st.lists(st.tuples(st.integers(0, len(GOOD_NII_GZ) - 1), st.integers(0, 255)), min_size=1,
                           max_size=8)


def check_nifti_bytes(edits: list[tuple[int, int]], gz: bool, cut: int | None) -> None:
    """Fuzz target: header bytes (plain .nii) or stream bytes (.nii.gz) overwritten, maybe truncated."""
    CASES_RUN["nifti_bytes"] += 1
    path = _in_tmp(".nii.gz" if gz else ".nii", mutate(GOOD_NII_GZ if gz else GOOD_NII, edits, cut))
    try:
        _only_input_errors(read_nifti, path)
    finally:
        path.unlink()


# ------------------------------------------------------------------------------------------------ config loader

_SECTIONS: dict[str, list[str]] = {
    "data": ["root", "extra_roots", "train_list", "val_root", "val_list", "patch", "challenge"],
    "diffusion": ["timesteps", "schedule", "prediction"],
    "masks": ["kinds", "accelerations", "sr_scales"],
    "train": list(RunConfig().train.__dataclass_fields__),
    "model": ["channels", "attention_levels", "num_res_blocks", "num_head_channels", "norm_num_groups",
              "cond_channels", "state_channels", "extra"],
}
_TOP = ["task", "out_dir", *_SECTIONS]
_KEYS = sorted({k for keys in _SECTIONS.values() for k in keys} | set(_TOP))

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["recon", "sr", "augment", "linear", "epsilon", "auto"]))
yaml_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(_KEYS), st.text(max_size=6), st.integers(-3, 3)), inner, max_size=4)),
    max_leaves=12)


small_ints = st.integers(-2, 40)
plausible_models = st.fixed_dictionaries({}, optional={
    "channels": st.lists(small_ints, min_size=0, max_size=4),
    "attention_levels": st.lists(st.booleans(), min_size=0, max_size=4),
    "num_res_blocks": st.one_of(small_ints, st.lists(small_ints, max_size=4)),
    "num_head_channels": small_ints, "norm_num_groups": small_ints,
    "cond_channels": small_ints, "state_channels": small_ints,
})


@st.composite
def config_dicts(draw: st.DrawFn) -> Any:
    """A valid-looking config with random keys removed, added or given random values (or any YAML value)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(yaml_values)
    cfg: dict[Any, Any] = {"task": "recon", "out_dir": "runs/x",
                           "model": {"channels": [8, 16], "attention_levels": [False, True]},
                           "train": {"batch_size": 2, "max_steps": 3}}
    if draw(st.booleans()):
        cfg["model"] = draw(plausible_models)  # right types, odd values: reaches the network's own checks
    for _ in range(draw(st.integers(0, 4))):
        top = draw(st.sampled_from([*_TOP, "typo_key"]))
        if top in _SECTIONS and draw(st.booleans()):
            section = cfg.setdefault(top, {})
            if isinstance(section, dict):
                section[draw(st.sampled_from([*_SECTIONS[top], "typo"]))] = draw(yaml_values)
        else:
            cfg[top] = draw(yaml_values)
    return cfg


def check_config_dict(data: Any, path: Path) -> None:
    """Fuzz target: a YAML document from :func:`config_dicts` is loaded or rejected with an InputError."""
    CASES_RUN["config_structure"] += 1
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return
    path.write_text(text, encoding="utf-8")
    _only_input_errors(load_config, path)


def check_config_text(raw: bytes, path: Path) -> None:
    """Fuzz target: arbitrary bytes as a config file."""
    CASES_RUN["config_bytes"] += 1
    path.write_bytes(raw)
    _only_input_errors(load_config, path)


config_text = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", errors="surrogatepass")),
    st.lists(st.sampled_from(["task: recon\n", "train:\n", "  batch_size: 2\n", "  lr: [\n", "model: {", "}\n",
                              "- x\n", "&a [*a]\n", "!!python/object:os.system\n", "data: !!binary aGk=\n",
                              "\t", ":", "'", '"', "\x00", "\xff"]), max_size=12).map(lambda xs: "".join(xs).encode(
                                  "utf-8", errors="surrogatepass")),
)
