"""``mridiff train --task recon|sr|augment -c CONFIG``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from mridiff.commands.common import positive_int
from mridiff.config import RunConfig
from mridiff.errors import InputError


def apply_overrides(cfg: RunConfig, items: list[str], source: str) -> RunConfig:
    """Apply ``section.key=value`` overrides (values parsed as YAML) and validate the result like the file.

    Raises:
        InputError: for a malformed item, an unknown key or a value of the wrong type.
    """
    from mridiff.config import config_from_dict

    data = cfg.to_dict()
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(source, f"--set {item!r}: expected section.key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise InputError(source, f"--set {item!r}: the value is not valid YAML") from None
        if isinstance(value, str):  # YAML 1.1 reads 5e-4 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise InputError(source, f"--set {item!r}: unknown config section '{part}'")
            node = node[part]
        node[leaf] = value
    return config_from_dict(data, f"{source} (with --set)")


def apply_data_dir(cfg: RunConfig, data_dir: str, source: str) -> str:
    """Point every data root of ``cfg`` (``data.root``, ``data.extra_roots``, ``data.val_root``) at ``data_dir``.

    ``data_dir`` is either a dataset folder laid out like the config's (each root becomes the folder of the same
    name inside it: ``work_data/default/multicoil_train`` -> ``DIR/multicoil_train``), or a folder of ``.h5``
    scans (then it is the only training folder, and validation uses its last file). File lists
    (``train_list``, ``val_list``) stay relative to the new roots. An image-bank config (``data.images``) is
    refused: its bank is one file, not a folder.

    Returns:
        One line saying what ``--data`` changed.

    Raises:
        InputError: For an image-bank config, a missing folder, or a folder that fits neither layout.

    """
    from pathlib import Path

    if cfg.data.images:
        raise InputError(source, "--data replaces data folders, but this config trains on an image bank "
                         f"(data.images: {cfg.data.images})",
                         "use --set data.images=FILE (and --set data.val_root=DIR for validation) instead")
    base = Path(data_dir)
    if not base.is_dir():
        raise InputError(base, "--data: folder not found")
    roots = {"data.root": cfg.data.root, **{f"data.extra_roots[{i}]": r for i, r in enumerate(cfg.data.extra_roots)}}
    if cfg.data.val_root:
        roots["data.val_root"] = cfg.data.val_root
    moved = {key: base / Path(old).name for key, old in roots.items()}
    if all(p.is_dir() for p in moved.values()):
        cfg.data.root = str(moved["data.root"])
        cfg.data.extra_roots = [str(moved[f"data.extra_roots[{i}]"]) for i in range(len(cfg.data.extra_roots))]
        if cfg.data.val_root:
            cfg.data.val_root = str(moved["data.val_root"])
        return "--data: " + ", ".join(f"{key}={p}" for key, p in moved.items())
    if any(base.glob("*.h5")):
        cfg.data.root, cfg.data.extra_roots, cfg.data.val_root = str(base), [], None
        return (f"--data: data.root={base} (its .h5 files); data.extra_roots and data.val_root cleared"
                + ("" if cfg.data.val_list else ", validation on the last training file"))
    wanted = ", ".join(sorted({Path(old).name for old in roots.values()}))
    raise InputError(base, "--data: holds neither .h5 scans nor the config's data folders",
                     f"expected .h5 files, or the folders {wanted}")


def run(args: argparse.Namespace) -> int:
    """Train from a YAML config, with a few command-line overrides."""
    from mridiff.config import load_config
    from mridiff.training.run import train

    cfg = load_config(args.config)
    if args.set:
        cfg = apply_overrides(cfg, args.set, args.config)
    if args.task and args.task != cfg.task:
        raise InputError(args.config, f"config is for task '{cfg.task}' but --task {args.task} was given")
    if args.data:
        print(f"mridiff: note: {apply_data_dir(cfg, args.data, args.config)}", file=sys.stderr)
    if args.out:
        cfg.out_dir = args.out
    if args.max_steps:
        cfg.train.max_steps = args.max_steps
    if args.max_minutes:
        cfg.train.max_minutes = args.max_minutes
    if args.init_from:
        cfg.train.init_from = args.init_from
    devices: Any = int(args.devices) if str(args.devices).isdigit() else args.devices
    out = train(cfg, devices=devices, num_nodes=args.num_nodes, accelerator=args.accelerator,
                resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    if out is not None:
        print(f"exported model: {out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export the EMA weights of a training-state checkpoint."""
    from pathlib import Path

    from mridiff.training.run import export_checkpoint

    out = export_checkpoint(Path(args.checkpoint), Path(args.out), overwrite=args.overwrite)
    print(f"exported model: {out}")
    return 0


def register(sub: Any) -> None:
    """Add the ``train`` and ``export`` sub-commands."""
    e = sub.add_parser("export", help="export EMA weights from a training checkpoint (.ckpt) for inference")
    e.add_argument("checkpoint", help="e.g. runs/recon/checkpoints/last.ckpt")
    e.add_argument("--out", required=True, help="output .safetensors (a .json and .sha256 are written beside it)")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(func=run_export)
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("--task", choices=["recon", "sr", "augment"])
    p.add_argument("-c", "--config", required=True, help="YAML run config (see configs/)")
    p.add_argument("--data", metavar="DIR",
                   help="move every data root (data.root, data.extra_roots, data.val_root) to DIR: a folder holding "
                        "the config's data folders by name, or a folder of .h5 scans; for an image-bank config use "
                        "--set data.images=FILE")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config field (YAML value), validated like the file; repeatable")
    p.add_argument("--out", help="override out_dir")
    p.add_argument("--devices", default="auto", help="devices per node (int or 'auto')")
    p.add_argument("--num-nodes", type=positive_int, default=1)
    p.add_argument("--accelerator", default="auto", choices=["auto", "gpu", "cpu"])
    p.add_argument("--max-steps", type=positive_int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--resume", action="store_true",
                   help="continue from out_dir/checkpoints/last.ckpt (with the same task, network and schedule)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in an out_dir that holds an earlier run or model.safetensors (its "
                        "last.ckpt is removed, the model replaced at the end)")
    p.add_argument("--init-from", metavar="MODEL.safetensors",
                   help="start a new run from an exported model's weights; its training totals carry over")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
