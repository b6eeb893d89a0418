"""Reconstruct many files into one output directory: every file is attempted, finished files are skipped.

A file that fails, for a bad input or any other reason, is reported and the run goes on with the next one.
``metrics.json`` is updated after every finished file, so a run that is killed keeps the metrics of the files it
finished, and a rerun adds to it instead of replacing it.

A file's outputs and its ``metrics.json`` entry appear together or not at all, even across SIGKILL: they are staged
in ``OUT/.mridiff-partial/`` and moved into place under a journal (:mod:`mridiff.io.staging`). Rerunning an
interrupted directory run without ``--overwrite`` skips the finished files and redoes the interrupted one.

Under ``torchrun`` (:mod:`mridiff.workflows.distributed`) each rank does its share of the sorted files with the
same staging, keeps its metrics entries in its own partial file, and rank 0 merges them into ``metrics.json``
after every rank has finished.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mridiff.errors import InputError, user_errors
from mridiff.inference.reconstruct import Reconstructor
from mridiff.io.atomic import check_writable
from mridiff.io.staging import OutputStage, lock_output_dir, recover_all, terminate_as_interrupt
from mridiff.workflows.common import crash_message
from mridiff.workflows.distributed import Rank, wait_for_all
from mridiff.workflows.metrics_log import MetricsLog
from mridiff.workflows.recon import ReconOptions, output_paths, reconstruct_file


@dataclass
class DirRun:
    """What a directory run did.

    Attributes:
        results: the metrics entries of the files finished in this run (this rank's, under ``torchrun``).
        failures: one line per failed file.
        crashed: whether a failure was not a bad input (a bug, out of memory).
        skipped: finished files left as they were.
        rank_failures: under ``torchrun``, after the barrier: ``(failures, crashed)`` of every rank.

    """

    results: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    crashed: bool = False
    skipped: list[Path] = field(default_factory=list)
    rank_failures: list[tuple[int, bool]] = field(default_factory=list)


def is_finished(path: Path, out_dir: Path) -> bool:
    """A file is finished when its submission HDF5 exists and no journal of a killed commit names it."""
    return output_paths(path, out_dir)["h5"].exists() and not OutputStage(out_dir, path.name).journal.exists()


def reconstruct_staged(path: Path, out_dir: Path, rec: Reconstructor, opts: ReconOptions, log: MetricsLog,
                       note: Callable[[str], None] | None = None,
                       on_placed: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Reconstruct one file into its staging folder, then commit its outputs and its metrics entry together.

    ``on_placed`` is called with the entry once the outputs are in place, inside the commit (e.g. to start the
    inference log).

    Raises:
        InputError: For a bad input, or outputs that exist without ``--overwrite`` (unless a killed run left them).

    """
    stage = OutputStage(out_dir, path.name)
    stage.recover()
    finals = output_paths(path, out_dir, with_std=opts.samples > 1, calibrated=opts.samples > 1)
    for p in finals.values():  # before any work: a killed run's outputs (named by its journal) may be replaced
        check_writable(p, opts.overwrite or p in stage.stale)
    with stage:
        result = reconstruct_file(path, stage.root, rec, opts, note=note)
        result["outputs"] = {k: str(stage.final_path(v)) if isinstance(v, str) else v
                             for k, v in result.get("outputs", {}).items()}
        replaceable = [p for p in output_paths(path, out_dir).values() if opts.overwrite or p in stage.stale]
        def placed() -> None:
            log.add(result)
            if on_placed is not None:
                on_placed(result)

        stage.commit(remove=replaceable, last=[finals["h5"]], on_placed=placed)
    return result


def _error(line: str) -> None:
    print(f"mridiff: error: {line}", file=sys.stderr)


def reconstruct_dir(files: list[Path], out_dir: Path, rec: Reconstructor, opts: ReconOptions, log: MetricsLog, *,
                    many: bool = True, rank: Rank | None = None, note: Callable[[str], None] | None = None,
                    on_finished: Callable[[dict[str, Any]], None] | None = None) -> DirRun:
    """Reconstruct ``files`` into ``out_dir`` (this rank's share under ``torchrun``), skipping finished files.

    Args:
        files: the inputs (see :func:`~mridiff.workflows.recon.collect_inputs`), sorted.
        out_dir: the ``--out`` directory.
        rec: the reconstructor.
        opts: what to do with each file.
        log: ``metrics.json`` (made with ``rank=rank.rank`` under ``torchrun``).
        many: a directory run: finished files are skipped and a failing file does not stop the run (a single file's
            error is raised instead).
        rank: this process's rank under ``torchrun``, or ``None``.
        note: where one-line notes go (e.g. the retrospective-mask line).
        on_finished: called with each finished file's entry as it is committed (e.g. to start the inference
            log).

    Raises:
        InputError: for a single file's bad input, or an output directory another run is writing into.

    """
    run = DirRun()
    mine = rank.shard(files) if rank is not None else files
    with lock_output_dir(out_dir, shared=rank is not None), terminate_as_interrupt():
        if rank is None:
            recover_all(out_dir)  # what a killed run staged goes; its journals say which outputs are stale
            log.merge_partials()  # entries a killed torchrun job left in per-rank files
        else:  # the same for this rank's inputs only: the other ranks' staging folders are theirs
            for path in mine:
                OutputStage(out_dir, path.name).recover()
        for path in mine:
            if (many or rank is not None) and not opts.overwrite and is_finished(path, out_dir):
                run.skipped.append(path)
                continue
            try:
                with user_errors(path):
                    result = reconstruct_staged(path, out_dir, rec, opts, log, note, on_finished)
            except InputError as exc:
                if not many and rank is None:
                    raise
                run.failures.append(exc.message())
                _error(exc.message())
                continue
            except Exception as exc:  # noqa: BLE001 - one crashing scan (GPU out of memory, a bug) must not stop the rest
                if not many and rank is None:
                    raise
                run.crashed = True
                logging.getLogger(__name__).info("%s failed", path, exc_info=True)
                run.failures.append(crash_message(path, exc))
                _error(run.failures[-1])
                continue
            run.results.append(result)
        if rank is not None:
            run.rank_failures = wait_for_all(rank, (len(run.failures), run.crashed))
            if rank.is_main:
                log.merge_partials()
    return run
