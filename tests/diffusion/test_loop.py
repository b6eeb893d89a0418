import pytest
import torch

from mridiff.diffusion.loop import reverse_diffusion
from mridiff.diffusion.noise import SampleNoise, noise_seed
from mridiff.diffusion.samplers import DDIMSampler, complex_randn
from mridiff.diffusion.schedules import NoiseSchedule
from mridiff.models.unet import ConditionalUNet, UNetConfig
from mridiff.physics.consistency import CG, Hard, NoConsistency
from mridiff.physics.fft import fft2c
from mridiff.physics.masks import MaskSpec, make_mask
from mridiff.physics.operators import MultiCoil, Operator, SingleCoil
from mridiff.tasks.problem import InverseProblem

TINY = UNetConfig(channels=(8, 16), attention_levels=(False, True), num_head_channels=8, norm_num_groups=4)


@pytest.fixture(scope="module")
def net() -> ConditionalUNet:
    torch.manual_seed(0)
    return ConditionalUNet(TINY).eval()


def _problem(op: Operator, y: torch.Tensor) -> InverseProblem:
    return InverseProblem(op, y, op.adjoint(y), torch.ones(y.shape[0]))


def _single(shape: tuple[int, int] = (64, 64), batch: int = 2) -> tuple[InverseProblem, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, dtype=torch.complex64, generator=gen)
    mask = make_mask(MaskSpec("random", 4), shape, 0)
    op = SingleCoil(mask)
    return _problem(op, op.forward(x)), mask


def _noise(seed: int, batch: int = 2) -> SampleNoise:
    return SampleNoise([noise_seed(seed, i, 0) for i in range(batch)])


def _x_init(noise: SampleNoise, problem: InverseProblem) -> torch.Tensor:
    assert problem.image_shape is not None
    return noise.draw(torch.zeros(problem.batch_size, *problem.image_shape, dtype=torch.complex64))


def test_ddim_hard_dc_keeps_measured_kspace(net: ConditionalUNet) -> None:
    sched = NoiseSchedule(1000)
    problem, mask = _single()
    out = reverse_diffusion(net, sched, DDIMSampler(sched, 5), problem, Hard(), _x_init(_noise(0), problem))
    k = fft2c(out)
    measured = mask.expand_as(k) > 0
    assert problem.y is not None
    # float32 FFT round trip: the error scales with the largest k-space value (an untrained net's output is large)
    assert torch.allclose(k[measured], problem.y[measured], rtol=1e-5, atol=1e-6 * float(k.abs().max()))


def test_same_seed_same_output_different_seed_differs(net: ConditionalUNet) -> None:
    sched = NoiseSchedule(1000)
    problem, _ = _single()

    def run(seed: int) -> torch.Tensor:
        noise = _noise(seed)
        return reverse_diffusion(net, sched, DDIMSampler(sched, 3, eta=1.0), problem, Hard(),
                                 _x_init(noise, problem), noise=noise)

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_step_noise_comes_from_each_samples_stream(net: ConditionalUNet) -> None:
    """With eta > 0 the sampler's later noise is drawn per sample: another stream for slice 1 leaves slice 0 alone."""
    sched = NoiseSchedule(1000)
    problem, _ = _single()
    calls: list[int] = []

    class Counting(SampleNoise):
        def draw(self, like: torch.Tensor) -> torch.Tensor:
            calls.append(like.shape[0])
            return super().draw(like)

    a_noise = Counting([11, 12])
    b_noise = Counting([11, 99])
    sampler = DDIMSampler(sched, 4, eta=1.0)
    a = reverse_diffusion(net, sched, sampler, problem, Hard(), _x_init(a_noise, problem), noise=a_noise)
    b = reverse_diffusion(net, sched, sampler, problem, Hard(), _x_init(b_noise, problem), noise=b_noise)
    assert calls == [2] * 8  # x_T and three noisy steps per run (the last step adds none)
    assert torch.allclose(a[0], b[0], rtol=1e-5, atol=1e-5) and not torch.allclose(a[1], b[1])


def test_no_dc_ignores_measurement(net: ConditionalUNet) -> None:
    sched = NoiseSchedule(1000)
    problem, _ = _single()
    x_init = _x_init(_noise(0), problem)
    a = reverse_diffusion(net, sched, DDIMSampler(sched, 3), problem, NoConsistency(), x_init)
    free = InverseProblem(None, None, problem.cond, problem.scale)
    b = reverse_diffusion(net, sched, DDIMSampler(sched, 3), free, Hard(), x_init)
    assert torch.equal(a, b)


def test_cg_dc_on_sense_reduces_residual(net: ConditionalUNet) -> None:
    sched = NoiseSchedule(1000)
    gen = torch.Generator().manual_seed(0)
    sens = torch.randn(1, 4, 32, 32, dtype=torch.complex64, generator=gen)
    sens = sens / sens.abs().pow(2).sum(1, keepdim=True).sqrt()
    mask = make_mask(MaskSpec("equispaced_fraction", 4), (32, 32), 0)
    op = MultiCoil(mask, sens)
    x = torch.randn(1, 32, 32, dtype=torch.complex64, generator=gen)
    y = op.forward(x)
    problem = _problem(op, y)
    x_init = complex_randn(x, torch.Generator().manual_seed(0))
    free = reverse_diffusion(net, sched, DDIMSampler(sched, 3), problem, NoConsistency(), x_init)
    dc = reverse_diffusion(net, sched, DDIMSampler(sched, 3), problem, CG(iters=20), x_init)
    res = lambda img: float((op.forward(img) - y).abs().norm() / y.abs().norm())  # noqa: E731
    assert res(dc) < 0.1 * res(free)


def test_problem_repeat_and_to_keep_each_slice_with_its_measurement() -> None:
    problem, _ = _single(batch=2)
    problem.noise_var = torch.tensor([0.1, 0.2])
    rep = problem.repeat(3).to("cpu")
    assert rep.batch_size == 6 and rep.image_shape == problem.image_shape
    assert rep.y is not None and problem.y is not None and rep.noise_var is not None
    assert torch.equal(rep.y[3:6], problem.y[1:2].expand(3, -1, -1))
    assert rep.noise_var.tolist() == pytest.approx([0.1] * 3 + [0.2] * 3)
    assert rep.operator is not None and rep.cond is not None
    torch.testing.assert_close(rep.operator.forward(rep.cond), rep.y, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        InverseProblem(None, problem.y, None, torch.ones(2))
