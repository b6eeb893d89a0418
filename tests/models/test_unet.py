import pytest
import torch

from mridiff.models.unet import ConditionalUNet, UNetConfig, channels_to_complex, complex_to_channels


def test_complex_channel_round_trip() -> None:
    x = torch.randn(3, 5, 7, dtype=torch.complex64)
    ch = complex_to_channels(x)
    assert ch.shape == (3, 2, 5, 7)
    assert torch.equal(channels_to_complex(ch), x)


@pytest.mark.parametrize("shape", [(64, 64), (60, 52)])
def test_output_matches_input_shape_any_size(shape: tuple[int, int]) -> None:
    net = ConditionalUNet(UNetConfig(channels=(8, 16, 16), attention_levels=(False, False, True),
                                     num_head_channels=8, norm_num_groups=4))
    x = torch.randn(2, *shape, dtype=torch.complex64)
    out = net(x, x, torch.tensor([1, 500]))
    assert out.shape == x.shape and out.is_complex()


def test_unconditional_magnitude_model() -> None:
    cfg = UNetConfig(channels=(8, 16), attention_levels=(False, False), norm_num_groups=4, num_head_channels=8,
                     cond_channels=0, state_channels=1)
    net = ConditionalUNet(cfg)
    x = torch.randn(2, 32, 32)
    assert net(x, None, torch.tensor([0, 1])).shape == x.shape


def test_config_round_trip_and_unknown_key() -> None:
    cfg = UNetConfig(channels=(8, 16), attention_levels=(False, True))
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KeyError):
        UNetConfig.from_dict({"chanels": [8]})


def test_fused_attention_equals_monais_einsum_attention_forward_and_backward() -> None:
    torch.manual_seed(0)
    net = ConditionalUNet(UNetConfig(channels=(8, 16, 16), attention_levels=(False, False, True),
                                     num_head_channels=8, norm_num_groups=4))
    blocks = [m for m in net.modules() if hasattr(m, "use_flash_attention")]
    assert blocks and all(b.use_flash_attention for b in blocks)  # torch's SDPA on every device, the CPU too
    x = torch.randn(2, 32, 32, dtype=torch.complex64)
    t = torch.tensor([3, 700])
    fused = net(x, x, t)
    grads_fused = torch.autograd.grad(fused.abs().sum(), list(net.parameters()))
    for b in blocks:
        b.use_flash_attention = False
    plain = net(x, x, t)
    grads_plain = torch.autograd.grad(plain.abs().sum(), list(net.parameters()))
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-4)
    for a, b in zip(grads_fused, grads_plain, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
