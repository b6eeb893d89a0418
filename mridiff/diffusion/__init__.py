from mridiff.diffusion.loop import reverse_diffusion
from mridiff.diffusion.noise import SampleNoise, noise_seed
from mridiff.diffusion.samplers import DDIMSampler, DDPMSampler, DPMSolverPP2M, Sampler, SamplerName, make_sampler
from mridiff.diffusion.schedules import NoiseSchedule, Prediction, ScheduleKind

__all__ = [
    "DDIMSampler",
    "DDPMSampler",
    "DPMSolverPP2M",
    "NoiseSchedule",
    "Prediction",
    "Sampler",
    "SampleNoise",
    "SamplerName",
    "ScheduleKind",
    "make_sampler",
    "noise_seed",
    "reverse_diffusion",
]
