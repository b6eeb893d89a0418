r"""Directory runs spread over ``torchrun`` processes: one per GPU (or CPU socket), on any number of nodes.

    torchrun --nproc-per-node 4 --no-python mridiff reconstruct scans/ --out out/
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 --no-python \
        mridiff augment --n 10000 --out synthetic/

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each process; :func:`torchrun_rank` reads them.
Work is split deterministically (input files sorted, rank ``r`` of ``w`` takes ``files[r::w]``; augmentation
sample ``i`` goes to rank ``i % w``), so every rank knows its share without talking to the others, a rerun after
a kill gives each rank the same share again, and the results are those of one process (bit-identical on the CPU:
a slice's noise depends on its seed and index only). Ranks meet once, at the end, in a barrier; rank 0 then
merges the per-rank partial files (``metrics.json``, the augmentation manifest).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")
# The ranks meet only at the end: the barrier must outwait the slowest rank's share of the work.
BARRIER_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class Rank:
    """This process's place in a ``torchrun`` job.

    Attributes:
        rank: global rank, 0 to ``world_size - 1``.
        world_size: number of processes over all nodes.
        local_rank: rank on this node (the GPU index on a GPU node).

    """

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0 merges and summarises."""
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items`` (``items[rank::world_size]``; sort ``items`` first)."""
        return list(items[self.rank :: self.world_size])

    def owns(self, index: int) -> bool:
        """Whether item ``index`` of a numbered set (augmentation samples) is this rank's."""
        return index % self.world_size == self.rank


def torchrun_rank(environ: Mapping[str, str] | None = None) -> Rank | None:
    """The rank ``torchrun`` gave this process, or ``None`` outside ``torchrun`` (or with one process).

    Raises:
        ValueError: for ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` values that are not consistent whole numbers.

    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        world, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
        local = int(env.get("LOCAL_RANK", rank))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (as torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return None if world == 1 else Rank(rank, world, local)


def rank_device(rank: Rank, requested: str | None) -> str | None:
    """The device of a rank: ``cuda:LOCAL_RANK`` for ``None``/``auto``/``cuda`` when CUDA is usable, else as asked.

    An explicit ``cuda:N`` or ``cpu`` is kept (several CPU processes per node, or a custom GPU mapping).
    """
    import torch

    if requested in (None, "auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{rank.local_rank}"
    return requested


@contextlib.contextmanager
def process_group(rank: Rank, device: Any) -> Iterator[None]:
    """Join the job's process group for the ``with`` block: gloo on the CPU, NCCL on CUDA.

    ``torchrun`` provides the rendezvous (``MASTER_ADDR``, ``MASTER_PORT``); the group is left at the end.
    """
    import torch
    import torch.distributed as dist

    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend, rank=rank.rank, world_size=rank.world_size, timeout=BARRIER_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def wait_for_all(rank: Rank, value: T) -> list[T]:
    """Barrier: wait until every rank is here, and return each rank's ``value`` (in rank order)."""
    import torch.distributed as dist

    values: list[Any] = [None] * rank.world_size
    dist.all_gather_object(values, value)  # a barrier as well: every rank must contribute
    return values
