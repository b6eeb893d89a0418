"""DDP check run as a subprocess by test_training.py: 2 CPU processes (gloo) vs one process.

1. Gradients: the same 4-sample batch with fixed t and eps per sample; each DDP rank takes half. DDP's
   all-reduce averages gradients, so they must equal the single-process gradients of the full batch.
2. Lightning: `ddp_spawn` with 2 CPU devices runs 2 training steps of mridiff's own training loop.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mridiff.diffusion.samplers import complex_randn  # noqa: E402
from mridiff.training.module import DiffusionModule  # noqa: E402
from mridiff.training.run import train  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402


def make_inputs(module: DiffusionModule) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    shape = torch.empty(4, 32, 32, dtype=torch.complex64)
    return {"target": complex_randn(shape, gen), "cond": complex_randn(shape, gen), "eps": complex_randn(shape, gen),
            "t": torch.randint(0, module.schedule.num_train_timesteps, (4,), generator=gen)}


def build(cfg_dir: str) -> DiffusionModule:
    torch.manual_seed(0)
    return DiffusionModule(tiny_config(Path(cfg_dir), Path(cfg_dir) / "unused"))


def grads(module: DiffusionModule) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in module.net.parameters()]


def worker(rank: int, cfg_dir: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    module = build(cfg_dir)
    inputs = make_inputs(module)
    part = slice(2 * rank, 2 * rank + 2)
    ddp = DistributedDataParallel(module.net)
    module.net = ddp  # type: ignore[assignment]
    loss = module.loss({"target": inputs["target"][part], "cond": inputs["cond"][part]}, inputs["t"][part],
                       inputs["eps"][part])
    loss.backward()
    if rank == 0:
        torch.save([p.grad.detach().clone() for p in ddp.module.parameters()], out)
    dist.destroy_process_group()


def main() -> None:
    data_dir, tmp = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    module = build(data_dir)
    inputs = make_inputs(module)
    loss = module.loss({"target": inputs["target"], "cond": inputs["cond"]}, inputs["t"], inputs["eps"])
    loss.backward()
    single = grads(module)
    out = str(Path(tmp) / "ddp_grads.pt")
    mp.spawn(worker, args=(data_dir, out), nprocs=2, join=True)
    ddp_grads = torch.load(out, weights_only=True)
    diff = max(float((a - b).abs().max()) for a, b in zip(single, ddp_grads, strict=True))
    print(f"max grad difference {diff:.3e}")

    cfg = tiny_config(Path(data_dir), Path(tempfile.mkdtemp(dir=tmp)), max_steps=2)
    train(cfg, devices=2, accelerator="cpu", strategy="ddp_spawn", progress=False)
    ckpt = torch.load(Path(cfg.out_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    print(f"lightning ddp_spawn global_step {ckpt['global_step']}")


if __name__ == "__main__":
    main()
