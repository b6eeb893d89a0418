"""Run configuration: typed dataclasses loaded from YAML and validated early.

An unknown key or a value of the wrong type is rejected when the file is read, naming the key, so that a
typo never surfaces an hour into training. Names map to factories through plain dicts, never dotted imports.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mridiff.errors import InputError
from mridiff.models.config import UNetConfig

TASKS: tuple[str, ...] = ("recon", "sr", "augment")
LOGGERS: tuple[str, ...] = ("csv", "tensorboard")  # train.logger: Lightning's CSVLogger, or TensorBoard as well


@dataclass
class DataConfig:
    """Where the training data are and how slices become examples.

    Attributes:
        root: directory of fully sampled fastMRI-layout HDF5 files.
        extra_roots: further training directories (e.g. single-coil beside multi-coil data, one model for both).
        train_list: optional file listing training file names (one per line), relative to ``root``.
        val_root: directory of validation files (default: the last training file).
        val_list: optional file listing validation file names, relative to ``val_root``.
        patch: train on random square crops of this size (the U-Net is convolutional; 4x cheaper at half size).
        challenge: ``"auto"``, ``"singlecoil"`` or ``"multicoil"``: which files to use.
        images: an image bank (``data_prep.cheng``'s ``train_images.h5``) to train on instead of ``root``: k-space
            is simulated on the fly for each example (smooth phase, ``sim_coils`` coils, noise at ``sim_snr_db``).
        intensity_remap: randomly remap each training image's intensities (contrast-agnostic prior; image bank).
        geometry: random flips, small rotations and zoom before simulation (image bank).
        sim_coils: coil counts drawn per example for the image bank (1 = single-coil).
        sim_snr_db: ``[low, high]`` range of the simulated SNR in dB, drawn uniformly per example.
        image_size: resample the bank's images to this side first (area mean for a factor of 2), e.g. 128 for a
            full-slice generative model that a CPU can train.

    """

    root: str = "work_data/default/multicoil_train"
    extra_roots: list[str] = field(default_factory=list)
    train_list: str | None = None
    val_root: str | None = None
    val_list: str | None = None
    patch: int | None = None
    challenge: str = "auto"
    images: str | None = None
    intensity_remap: bool = False
    geometry: bool = False
    sim_coils: list[int] = field(default_factory=lambda: [1, 8])
    sim_snr_db: list[float] = field(default_factory=lambda: [25.0, 40.0])
    image_size: int | None = None


@dataclass
class DiffusionConfig:
    """Noise schedule and prediction type."""

    timesteps: int = 1000
    schedule: str = "linear"
    prediction: str = "epsilon"


@dataclass
class MaskConfig:
    """Masks drawn per training example (recon) or the scale factors (sr)."""

    kinds: list[str] = field(default_factory=lambda: ["random", "equispaced_fraction", "poisson"])
    accelerations: list[int] = field(default_factory=lambda: [4, 8])
    sr_scales: list[int] = field(default_factory=lambda: [2])


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping."""

    batch_size: int = 8
    lr: float = 2e-4
    max_steps: int = 2000
    max_minutes: float | None = None
    precision: str = "auto"
    ema_decay: float = 0.999
    num_workers: int = 0
    seed: int = 0
    val_every: int = 500
    val_slices: int = 2
    val_steps: int = 10
    ckpt_every: int = 200
    log_every: int = 10
    grad_clip: float = 1.0
    export_half: bool = False
    min_snr_gamma: float | None = None  # None: L_simple; a number: min-SNR-gamma weighting (Hang et al. 2023)
    # An exported model (.safetensors) to continue from in a new run: its EMA weights start the network and the
    # EMA, and its training totals (steps, seconds) carry over into the new model card. Small enough to commit
    # between sessions, unlike a full training checkpoint.
    init_from: str | None = None
    # Experiment tracking: "csv" (out_dir/logs/version_*/metrics.csv), or "tensorboard" (also TensorBoard event files
    # with losses, validation metrics and sample images under out_dir/tensorboard/; needs the tensorboard package).
    logger: str = "csv"


@dataclass
class RunConfig:
    """A whole training run."""

    task: str = "recon"
    out_dir: str = "runs/recon"
    data: DataConfig = field(default_factory=DataConfig)
    model: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for checkpoints and exported model cards)."""
        return {**dataclasses.asdict(self), "model": self.model.to_dict()}


def _check_type(value: Any, annotation: Any, key: str, path: str) -> Any:
    """Validate ``value`` against a (simple) type annotation; ints are accepted where floats are expected."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(value, option, key, path)
            except InputError:
                continue
        raise InputError(path, f"config key '{key}' has the wrong type ({type(value).__name__})")
    if origin is list:
        (inner,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise InputError(path, f"config key '{key}' must be a list, got {type(value).__name__}")
        return [_check_type(v, inner, key, path) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(path, f"config key '{key}' must be a mapping, got {type(value).__name__}")
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if isinstance(value, bool) and annotation is not bool:
            raise InputError(path, f"config key '{key}' must be {annotation.__name__}, got bool")
        if not isinstance(value, annotation):
            raise InputError(path, f"config key '{key}' must be {annotation.__name__}, got {type(value).__name__}")
        return value
    if annotation is UNetConfig:
        return _model_config(value, path)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _build(annotation, value, key, path)
    raise TypeError(f"unsupported annotation {annotation!r}")


def _build(cls: type, data: Any, prefix: str, path: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(path, f"config section '{prefix or 'top level'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise InputError(path, f"unknown config key '{full}'", f"allowed here: {', '.join(sorted(names))}")
        kwargs[key] = _check_type(value, hints[key], full, path)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], source: str = "<config>") -> RunConfig:
    """Validate a plain dict into a :class:`RunConfig`.

    Raises:
        InputError: on an unknown key, a wrong type or an unknown task, naming the key.

    """
    cfg: RunConfig = _build(RunConfig, data, "", source)
    if cfg.task not in TASKS:
        raise InputError(source, f"config key 'task' must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    if cfg.train.logger not in LOGGERS:
        raise InputError(source, f"config key 'train.logger' must be one of {', '.join(LOGGERS)}, "
                         f"got {cfg.train.logger!r}")
    gamma = cfg.train.min_snr_gamma
    if gamma is not None and not gamma > 0:
        raise InputError(source, f"config key 'train.min_snr_gamma' must be positive or null, got {gamma}")
    import torch

    from mridiff.models.unet import ConditionalUNet

    try:
        with torch.device("meta"):  # builds the network's structure without allocating its weights
            ConditionalUNet(cfg.model)
    except (KeyError, TypeError, ValueError, RuntimeError, AssertionError) as exc:
        raise InputError(source, f"config section 'model': {_first_line(exc)}") from None
    return cfg


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _model_config(value: Any, path: str) -> UNetConfig:
    """The ``model`` section as a :class:`UNetConfig`, each key checked like the other sections."""
    if not isinstance(value, dict):
        raise InputError(path, f"config key 'model' must be a mapping, got {type(value).__name__}")
    for key, item in value.items():
        if key in _MODEL_TYPES:
            _check_type(item, _MODEL_TYPES[key], f"model.{key}", path)
            least = _MODEL_MINIMUM.get(key)
            if least is not None and any(v < least for v in (item if isinstance(item, list) else [item])):
                raise InputError(path, f"config key 'model.{key}' must be at least {least}, got {item!r}")
    try:
        return UNetConfig.from_dict(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"config section 'model': {_first_line(exc)}") from None


# Types of the ``model`` section (``UNetConfig``'s fields as YAML gives them), checked like the other sections.
_MODEL_TYPES: dict[str, Any] = {
    "channels": list[int], "attention_levels": list[bool], "num_res_blocks": int | list[int], "num_head_channels": int,
    "norm_num_groups": int, "cond_channels": int, "state_channels": int,
}
_MODEL_MINIMUM = {"channels": 1, "num_res_blocks": 1, "num_head_channels": 1, "norm_num_groups": 1,
                  "cond_channels": 0, "state_channels": 1}


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run configuration.

    Raises:
        InputError: if the file is missing, is not YAML, or does not validate.

    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(p, f"cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(p, "config is not UTF-8 text", "save it as UTF-8 YAML, like the files in configs/") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(p, f"not valid YAML{where} ({str(exc).splitlines()[0]})") from None
    if data is None:
        data = {}
    return config_from_dict(data, str(p))
