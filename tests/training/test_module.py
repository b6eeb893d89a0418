from __future__ import annotations

from pathlib import Path

import torch

from mridiff.training.module import DiffusionModule
from tests.helpers import tiny_config


def _batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(3, 16, 16, dtype=torch.complex64, generator=gen)
    return {"target": target, "cond": target + 0.1 * torch.randn(3, 16, 16, dtype=torch.complex64, generator=gen)}


def _per_sample_error(module: DiffusionModule, batch: dict[str, torch.Tensor], t: torch.Tensor,
                      eps: torch.Tensor) -> torch.Tensor:
    x0 = batch["target"]
    pred = module.net(module.schedule.add_noise(x0, eps, t), batch["cond"], t)
    diff = torch.view_as_real(pred - module.schedule.training_target(x0, eps, t))
    return diff.pow(2).reshape(3, -1).mean(dim=1)


def test_min_snr_loss_weights_each_sample(tmp_path: Path) -> None:
    torch.manual_seed(0)
    plain = DiffusionModule(tiny_config(tmp_path, tmp_path / "a"))
    weighted = DiffusionModule(tiny_config(tmp_path, tmp_path / "b", min_snr_gamma=5.0))
    weighted.net.load_state_dict(plain.net.state_dict())
    batch = _batch()
    t = torch.tensor([5, 400, 900])
    eps = torch.randn(3, 16, 16, dtype=torch.complex64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        err = _per_sample_error(plain, batch, t, eps)
        weight = weighted.schedule.min_snr_weight(t, 5.0).float()
        assert torch.allclose(plain.loss(batch, t, eps), err.mean(), rtol=1e-5)
        assert torch.allclose(weighted.loss(batch, t, eps), (err * weight).mean(), rtol=1e-5)
    assert not torch.allclose(weight, torch.ones(3, dtype=weight.dtype))
