"""The ``mridiff augment`` workflow: grow a directory of synthetic samples to ``n``, restartable, on many ranks.

    from mridiff.inference.generate import SampleGenerator
    from mridiff.workflows.augment import augment_dir
    from mridiff.workflows.samples import AugmentOptions
    augment_dir(Path("synthetic"), SampleGenerator(), AugmentOptions(n=500, steps=50))

Sample files are written atomically, then the manifest is rewritten atomically after each batch, so an interrupted
run loses at most one batch; unrecorded sample files from such a run are regenerated, finished samples are never
rewritten. ``contact_sheet.png`` shows the first :data:`SHEET_MAX` samples with their names and seeds.

Under ``torchrun`` rank ``r`` of ``w`` makes the samples ``i`` with ``i % w == r`` and lists them in its own partial
manifest (``.manifest.rankN.csv``); rank 0 merges the partial manifests into ``manifest.csv`` after every rank has
finished, then draws the contact sheet. A run killed before the merge leaves the partial manifests, which the next
run reads (and merges).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mridiff.errors import InputError
from mridiff.inference.generate import SampleGenerator, sample_seed
from mridiff.io.atomic import check_writable
from mridiff.io.figures import contact_sheet_png
from mridiff.workflows.distributed import Rank, wait_for_all
from mridiff.workflows.samples import (
    MANIFEST,
    AugmentOptions,
    read_manifest,
    read_sample,
    sample_name,
    write_manifest,
    write_sample,
)

CONTACT_SHEET = "contact_sheet.png"
SHEET_MAX = 64
PARTIAL_GLOB = ".manifest.rank*.csv"


def partial_manifest(out_dir: Path, rank: int) -> Path:
    """Where rank ``rank`` lists its finished samples until rank 0 merges them."""
    return out_dir / f".manifest.rank{rank}.csv"


def check_compatible(path: Path, rows: list[dict[str, str]], opts: AugmentOptions, sha256: str) -> None:
    """Refuse to continue a directory with settings other than those that produced it."""
    for row in rows:
        wanted = {"checkpoint_sha256": sha256, "steps": str(opts.steps), "mode": opts.mode, "format": opts.fmt,
                  "seed": str(sample_seed(opts.seed, int(row["index"])))}
        for key, value in wanted.items():
            if row[key] != value:
                shown = "seed (from --seed)" if key == "seed" else key
                raise InputError(path, f"was written with another {shown} ({row[key][:16]} vs {value[:16]})",
                                 "continue with the same settings or choose a new --out directory")


def recorded_rows(out_dir: Path) -> dict[int, dict[str, Any]]:
    """Every recorded sample whose file exists: ``manifest.csv`` and partial manifests of ranks, by index."""
    rows: dict[int, dict[str, Any]] = {}
    for path in [out_dir / MANIFEST, *sorted(out_dir.glob(PARTIAL_GLOB))]:
        for row in read_manifest(path):
            if (out_dir / row["file"]).is_file():
                rows[int(row["index"])] = row
    return rows


def merge_manifests(out_dir: Path) -> int:
    """Fold the partial manifests into ``manifest.csv`` and delete them (one process, no rank writing)."""
    partials = sorted(out_dir.glob(PARTIAL_GLOB))
    if partials:
        write_manifest(out_dir / MANIFEST, list(recorded_rows(out_dir).values()))
        for p in partials:
            p.unlink(missing_ok=True)
    return len(partials)


def write_contact_sheet(out_dir: Path, count: int = SHEET_MAX) -> Path | None:
    """Draw the first ``count`` recorded samples with their names and seeds into ``contact_sheet.png``."""
    rows = sorted(read_manifest(out_dir / MANIFEST), key=lambda r: int(r["index"]))[:count]
    if not rows:
        return None
    images = [read_sample(out_dir / r["file"]) for r in rows]
    captions = [f"{Path(r['file']).name.split('.')[0]}\nseed {r['seed']}" for r in rows]
    path = out_dir / CONTACT_SHEET
    contact_sheet_png(images, captions, path, overwrite=True,
                      title=f"first {len(rows)} samples (name, noise seed)")
    return path


def augment_dir(out_dir: Path, gen: SampleGenerator, opts: AugmentOptions, *, rank: Rank | None = None,
                on_written: Callable[[], None] | None = None) -> dict[str, Any]:
    """Grow ``out_dir`` to ``opts.n`` samples; finished samples (in a manifest and on disk) are kept as they are.

    Args:
        out_dir: the output directory.
        gen: the sampler.
        opts: what to write.
        rank: under ``torchrun``, this process's rank (it makes the samples ``i`` with ``i % world_size == rank``).
        on_written: called after each batch is recorded (e.g. to start the inference log).

    Returns:
        ``{"written": new samples (this rank's), "kept": samples already there, "total": samples in the directory,
        "manifest": path, "contact_sheet": path or None}``.

    Raises:
        InputError: bad options, an unwritable directory, or a directory written with other settings.

    """
    opts.validate()
    manifest = check_writable(out_dir / MANIFEST, overwrite=True)
    check_writable(out_dir / sample_name(0, opts.fmt), overwrite=True)  # creates and checks the sample folder
    if rank is None:
        merge_manifests(out_dir)  # what a killed torchrun job left in partial manifests
    done = recorded_rows(out_dir)
    check_compatible(manifest, list(done.values()), opts, gen.sha256)
    todo = [i for i in range(opts.n) if i not in done and (rank is None or rank.owns(i))]
    kept = sum(1 for i in range(opts.n) if i in done and (rank is None or rank.owns(i)))
    target = manifest if rank is None else partial_manifest(out_dir, rank.rank)
    mine: dict[int, dict[str, Any]] = ({} if rank is None else
                                       {int(r["index"]): r for r in read_manifest(target) if int(r["index"]) in done})
    seeds = [sample_seed(opts.seed, i) for i in todo]

    def write(positions: list[int], images: np.ndarray) -> None:
        for pos, image in zip(positions, images, strict=True):
            i, name = todo[pos], sample_name(todo[pos], opts.fmt)
            write_sample(out_dir / name, image, opts, seeds[pos])  # replaces an unrecorded file of an interrupted run
            row = {"file": name, "index": i, "seed": seeds[pos], "checkpoint_sha256": gen.sha256,
                   "steps": opts.steps, "mode": opts.mode, "format": opts.fmt}
            done[i] = mine[i] = row
        write_manifest(target, list(done.values()) if rank is None else list(mine.values()))
        if on_written is not None:
            on_written()

    if todo:
        gen.generate(seeds, opts.steps, progress=opts.progress, batch_size=opts.batch, on_chunk=write)
    summary: dict[str, Any] = {"written": len(todo), "kept": kept, "total": len(done), "manifest": str(target),
                               "contact_sheet": None}
    if rank is not None:
        wait_for_all(rank, len(todo))  # every rank's samples are recorded in its partial manifest
        if not rank.is_main:
            return {**summary, "total": None}
        merge_manifests(out_dir)
        summary.update(total=len(recorded_rows(out_dir)), manifest=str(manifest))
    sheet = write_contact_sheet(out_dir)
    summary["contact_sheet"] = None if sheet is None else str(sheet)
    return summary
