"""Make an exported model a bundled default: ``mridiff/weights/<name>.safetensors`` + ``.json`` + ``.sha256``.

    python scripts/bundle_model.py training_state/recon_real.safetensors --name recon
    OMP_NUM_THREADS=1 python -m tests.golden.make_golden        # then: the golden values of the bundled recon model

The source is what ``mridiff export`` / ``mridiff train`` / ``scripts/save_training_state.py`` write: the weights,
the model card ``SRC.json`` (format ``mridiff-model``; task, network, schedule, training record, domain, and a
``calibration`` table when ``mridiff calibrate`` made it) and ``SRC.sha256``. Before anything is replaced the
source is loaded as inference loads it (checksum, task, weights fit the network config); the three files are staged
in a temporary folder inside the destination, the SHA-256 is recomputed on the staged copy and written into the card
and the ``.sha256`` file, every other card entry (calibration included) is kept, and the staged model is loaded
again. Only then are the files renamed into place (each rename atomic; the checksum file last, so an interruption in
between leaves a mismatch that loading refuses and a rerun repairs). Afterwards the bundled model is loaded once
more and ``mridiff info`` must report it ``ok``. Rerunning with the same or a newer source is safe.

The training-budget table of the model card (``mridiff/weights/MODEL_CARD.md``, between the markers
``<!-- bundle_model.py:NAME begin -->`` and ``<!-- bundle_model.py:NAME end -->``) is regenerated from the card
(``--no-card`` leaves it alone).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mridiff.errors import InputError
from mridiff.inference.model import load_model
from mridiff.io.bundled import DEFAULT_MODELS
from mridiff.io.hashing import sha256_file
from mridiff.io.models import load_exported

WEIGHTS = Path(__file__).resolve().parents[1] / "mridiff" / "weights"
CARD = "MODEL_CARD.md"
SUFFIXES = (".safetensors", ".json", ".sha256")  # the order files are renamed into place: checksum file last


@dataclass(frozen=True)
class Bundled:
    """What :func:`bundle` placed: the weights path, their SHA-256, the task and the network's parameter count."""

    path: Path
    sha256: str
    task: str
    parameters: int


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _slot_task(name: str) -> str | None:
    """The task whose bundled default is ``<name>.safetensors`` (``None`` for a name no default uses)."""
    return next((task for task, file in DEFAULT_MODELS.items() if file == f"{name}.safetensors"), None)


def bundle(src: Path, name: str, dest: Path = WEIGHTS, expect_sha256: str | None = None) -> Bundled:
    """Copy an exported model into ``dest`` as ``<name>.*``, atomically and checked; see the module docstring.

    Args:
        src: The exported ``.safetensors`` file (its ``.json`` card beside it).
        name: The stem of the bundled files (``recon`` is the bundled reconstruction model).
        dest: The folder to write into (the package's ``mridiff/weights`` by default).
        expect_sha256: Refuse the source unless its weights have this SHA-256.

    Raises:
        InputError: A missing, damaged or mismatched source, a model for another task than the slot ``name`` is
            for, or a staged copy that does not load; nothing in ``dest`` is changed then.

    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise InputError(None, f"--name {name!r}: use letters, digits, '_', '-' or '.'")
    _, meta = load_exported(src, expect_sha256=expect_sha256)  # format, checksum against the card, readable
    task = str(meta.get("task"))
    slot = _slot_task(name)
    if slot is not None and slot != task:
        raise InputError(src, f"a model for task '{task}' cannot be bundled as {name} (the bundled {slot} model)")
    parameters = sum(p.numel() for p in load_model(src, task, "cpu").net.parameters())  # weights fit the network
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".bundle-{name}-", dir=dest))
    try:
        weights = staging / f"{name}.safetensors"
        shutil.copyfile(src, weights)
        _fsync(weights)
        digest = sha256_file(weights)
        card = {**meta, "sha256": digest}  # every other entry (training record, domain, calibration) kept as it is
        weights.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        weights.with_suffix(".sha256").write_text(f"{digest}  {weights.name}\n")
        for suffix in SUFFIXES[1:]:
            _fsync(weights.with_suffix(suffix))
        load_model(weights, task, "cpu", expect_sha256=digest)  # the staged copy loads as the bundled one will
        for suffix in SUFFIXES:
            os.replace(weights.with_suffix(suffix), dest / f"{name}{suffix}")
        _fsync(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    placed = dest / f"{name}.safetensors"
    if load_model(placed, task, "cpu").meta["sha256"] != sha256_file(placed):
        raise InputError(placed, "the bundled model's card does not match its weights after bundling")
    return Bundled(placed, digest, task, parameters)


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s ({seconds / 3600:.2f} h)"


def budget_table(meta: dict[str, Any], file: str, parameters: int) -> str:
    """The model card's table for one bundled model, from its card (numbers as at bundling time)."""
    training = meta.get("training") or {}
    cfg = training.get("config") or {}
    data, train = cfg.get("data") or {}, cfg.get("train") or {}
    totals = training.get("totals") or {}
    steps = totals.get("steps", training.get("global_step"))
    seconds = totals.get("seconds", training.get("seconds"))
    cpu = totals.get("cpu_seconds", training.get("cpu_seconds"))
    size = training.get("image_size")
    side = "x".join(str(v) for v in size) if size else "?"
    shape = f"{data['patch']}x{data['patch']} patches of {side} images" if data.get("patch") else f"{side} images"
    domain = meta.get("domain") or {}
    matrix = domain.get("matrix")
    calibration = (meta.get("calibration") or {}).get("table") or {}
    rows = [
        ("file", f"`{file}`, SHA-256 `{meta.get('sha256')}`"),
        ("parameters", f"{parameters:,}"),
        ("training steps", f"{steps} (batch {train.get('batch_size')}, {shape})"),
        ("wall-clock training time", _hours(seconds)),
        ("CPU-seconds counted by the run", _hours(cpu)),
        ("training images", f"`{training.get('data_root')}`"),
        ("augmentation", f"intensity remapping {'on' if data.get('intensity_remap') else 'off'}, geometry "
                         f"{'on' if data.get('geometry') else 'off'}"),
        ("domain in the card (drives the out-of-domain warnings)",
         (f"matrix {matrix[0]}-{matrix[1]} pixels" if matrix else f"matrix {side} only")
         + f", contrast {domain.get('contrast', 'T1')}"),
        ("uncertainty calibration", ", ".join(sorted(calibration)) or "none (`mridiff calibrate`)"),
    ]
    lines = ["| | at bundling time |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)]
    return "\n".join(lines)


def update_card(card: Path, name: str, table: str) -> bool:
    """Replace the block between ``name``'s markers in ``card`` by ``table``; ``False`` when there is no block."""
    if not card.is_file():
        return False
    text = card.read_text()
    begin, end = f"<!-- bundle_model.py:{name} begin -->", f"<!-- bundle_model.py:{name} end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        return False
    new = pattern.sub(lambda _: f"{begin}\n{table}\n{end}", text, count=1)
    tmp = card.with_name(f".{card.name}.part")
    tmp.write_text(new)
    os.replace(tmp, card)
    return True


def check_info(task: str) -> str:
    """Run ``mridiff info`` as a fresh process; return its block for ``task``.

    Raises:
        InputError: when it fails or does not report the model as ``ok``.

    """
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    res = subprocess.run([sys.executable, "-m", "mridiff.cli", "info"], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    block = re.search(rf"^{task}: .*?(?=^\S|\Z)", res.stdout, re.S | re.M)
    if res.returncode != 0 or block is None or "(ok)" not in block.group(0):
        raise InputError(None, f"`mridiff info` is not happy with the bundled {task} model (exit "
                         f"{res.returncode}): {(res.stdout + res.stderr).strip()[-400:]}")
    return block.group(0).rstrip()


def main(argv: list[str] | None = None) -> int:
    """Bundle, update the model card, check ``mridiff info``; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path, help="exported model (.safetensors, with its .json beside it)")
    p.add_argument("--name", required=True, help="bundled file stem: recon, sr_x2 or augment for the defaults")
    p.add_argument("--dest", type=Path, default=WEIGHTS, help="folder to bundle into (default: mridiff/weights)")
    p.add_argument("--expect-sha256", help="refuse the source unless its weights have this SHA-256")
    p.add_argument("--no-card", action="store_true", help="leave MODEL_CARD.md's table alone")
    args = p.parse_args(argv)
    try:
        done = bundle(args.src, args.name, args.dest, args.expect_sha256)
        print(f"bundled {args.src} -> {done.path} (sha256 {done.sha256}, {done.parameters:,} parameters)")
        if not args.no_card:
            meta = json.loads(done.path.with_suffix(".json").read_text())
            if update_card(args.dest / CARD, args.name, budget_table(meta, done.path.name, done.parameters)):
                print(f"updated the {args.name} table of {args.dest / CARD}")
            else:
                print(f"note: {args.dest / CARD} has no {args.name} block; the model card was not changed")
        if _slot_task(args.name) is not None and args.dest.resolve() == WEIGHTS.resolve():
            print(check_info(done.task))
    except InputError as exc:
        print(f"error: {exc.message()}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
