"""fastMRI's U-Net baseline (``fastmri.models.Unet``), trained on mridiff's data with a wall-clock budget.

The recipe is fastMRI's ``UnetModule``/``UnetDataTransform``: the input is the magnitude of the zero-filled
image (here the coil-combined A^H y, the same information mridiff is conditioned on), instance-normalised
(mean/std, clamped to ±6); the target is normalised with the same statistics; L1 loss; RMSprop. It sees the
same training files, masks (kinds, accelerations, fastMRI centre fractions) and per-scan normalisation as
``configs/recon_tiny.yaml``, on full 128x128 slices. Weights are saved as safetensors plus a JSON config.

    OMP_NUM_THREADS=1 python benchmarks/unet_baseline.py --minutes 75 --out benchmarks/weights/unet_baseline
    OMP_NUM_THREADS=1 python benchmarks/unet_baseline.py --config configs/recon_real.yaml --minutes 360 \
        --batch 4 --out runs/unet_real/unet_real [--resume]      # the real-data baseline, CPU-time budget
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from fastmri.models import Unet
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from mridiff.config import load_config
from mridiff.io.atomic import atomic_write_text
from mridiff.io.figures import loss_curve_png
from mridiff.tasks.registry import example_builder
from mridiff.training.data import ImageBankDataset, SliceDataset, list_files


def build(config: dict[str, Any]) -> Unet:
    """fastMRI's U-Net with the stored hyper-parameters."""
    return Unet(in_chans=1, out_chans=1, chans=int(config["chans"]), num_pool_layers=int(config["num_pool_layers"]),
                drop_prob=0.0)


def load_unet(path: str | Path) -> Unet:
    """Load ``path`` (.safetensors with a .json beside it); tensors only, nothing unpickled."""
    path = Path(path)
    config = json.loads(path.with_suffix(".json").read_text())
    model = build(config)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def _normalise(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fastmri.data.transforms.normalize_instance per image, then clamp to ±6 as UnetDataTransform does."""
    mean = image.mean(dim=(-2, -1), keepdim=True)
    std = image.std(dim=(-2, -1), keepdim=True)
    return ((image - mean) / (std + 1e-11)).clamp(-6, 6), mean, std


@torch.no_grad()
def unet_reconstruct(model: Unet, cond: torch.Tensor) -> torch.Tensor:
    """Magnitude reconstruction of complex zero-filled images ``cond`` (B, H, W); returns (B, H, W)."""
    x, mean, std = _normalise(cond.abs().float())
    out = model(x.unsqueeze(1)).squeeze(1)
    return (out * std + mean).clamp_min(0)


def training_data(cfg_path: str, seed: int, patch: int | None) -> tuple[Any, list[str]]:
    """The same examples mridiff trains on: the image bank (simulated on the fly) or the config's HDF5 files."""
    cfg = load_config(cfg_path)
    make = example_builder(cfg)
    if cfg.data.images is not None:
        d = cfg.data
        images: str = cfg.data.images
        bank = ImageBankDataset(images, make, seed=seed, patch=patch, remap=d.intensity_remap,
                                geometry=d.geometry, coils=tuple(d.sim_coils), snr_db=(d.sim_snr_db[0],
                                                                                        d.sim_snr_db[-1]))
        return bank, [images]
    files = list_files(cfg.data.root, cfg.data.train_list, cfg.data.challenge)
    for extra in cfg.data.extra_roots:
        files += list_files(extra, None, cfg.data.challenge)
    return SliceDataset(files, make, seed=seed, patch=patch), [str(f) for f in files]


def save_state(path: Path, model: Unet, opt: torch.optim.Optimizer, step: int, cpu_seconds: float) -> None:
    """Training state for --resume (tensors and numbers only: loads with weights_only=True), written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "cpu_seconds": cpu_seconds},
               tmp)
    os.replace(tmp, path)


def train_unet(config_path: str, minutes: float, out: Path, chans: int, pools: int, batch: int, lr: float,
               seed: int, patch: int | None = None, resume: bool = False, ckpt_every: int = 50) -> dict[str, Any]:
    """Train until ``minutes`` of CPU time (this process, all threads) have been spent; write weights, config, log.

    CPU time rather than wall clock, so that a run sharing a core with other work gets the same budget as
    mridiff's model on a dedicated core. Data are built in this process (no loader workers), so they count too.
    """
    torch.manual_seed(seed)
    data, files = training_data(config_path, seed, patch)
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True, num_workers=0)
    model = build({"chans": chans, "num_pool_layers": pools}).train()
    opt = torch.optim.RMSprop(model.parameters(), lr=lr, weight_decay=0.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.with_name(out.name + "_loss.csv")
    state_path = out.with_name(out.name + "_state.pt")
    step, spent = 0, 0.0
    if resume:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, spent = int(state["step"]), float(state["cpu_seconds"])
    elif log_path.exists():
        raise SystemExit(f"error: {log_path}: a previous run exists; pass --resume or choose --out")
    start = time.process_time() - spent
    with log_path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if not resume:
            writer.writerow(["step", "seconds", "l1"])
        while time.process_time() - start < minutes * 60:
            for batch_ex in loader:
                x, mean, std = _normalise(batch_ex["cond"].abs())
                y = ((batch_ex["target"].abs() - mean) / (std + 1e-11)).clamp(-6, 6)
                loss = torch.nn.functional.l1_loss(model(x.unsqueeze(1)).squeeze(1), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if step % 10 == 0:
                    writer.writerow([step, round(time.process_time() - start, 1), loss.item()])
                    fh.flush()
                if step % ckpt_every == 0:
                    save_state(state_path, model, opt, step, time.process_time() - start)
                if time.process_time() - start >= minutes * 60:
                    break
    save_state(state_path, model, opt, step, time.process_time() - start)
    config = {"chans": chans, "num_pool_layers": pools, "steps": step, "batch_size": batch, "lr": lr,
              "patch": patch, "train_seconds": round(time.process_time() - start, 1), "budget": "CPU seconds",
              "data_config": config_path, "files": files, "threads": torch.get_num_threads(),
              "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}",
              "date": time.strftime("%Y-%m-%d")}
    tmp = out.with_name(out.name + ".tmp.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, out.with_suffix(".safetensors"))
    atomic_write_text(out.with_suffix(".json"), json.dumps(config, indent=2) + "\n", overwrite=True)
    write_loss_png(log_path)
    return config


def write_loss_png(log_path: Path) -> None:
    """The training log as a PNG beside it."""
    with log_path.open() as fh:
        history = [(int(r["step"]), float(r["l1"])) for r in csv.DictReader(fh)]
    if len(history) > 1:
        loss_curve_png(history, log_path.with_suffix(".png"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/recon_tiny.yaml", help="data and mask settings to share")
    p.add_argument("--minutes", type=float, required=True, help="CPU-time training budget (cumulative with --resume)")
    p.add_argument("--patch", type=int, default=None, help="random square crops (default: full slices, fastMRI)")
    p.add_argument("--resume", action="store_true", help="continue from OUT_state.pt")
    p.add_argument("--out", default="benchmarks/weights/unet_baseline", help="output stem (.safetensors/.json)")
    p.add_argument("--chans", type=int, default=16, help="16: 1.9 M parameters, close to mridiff's 2.2 M")
    p.add_argument("--pools", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    info = train_unet(args.config, args.minutes, Path(args.out), args.chans, args.pools, args.batch, args.lr,
                      args.seed, args.patch, args.resume)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
