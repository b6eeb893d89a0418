from mridiff.diffusion.loop import ConsistencySettings, reverse_diffusion
from mridiff.diffusion.samplers import DDIMSampler, DDPMSampler, Sampler, make_sampler
from mridiff.diffusion.schedules import NoiseSchedule

__all__ = [
    "ConsistencySettings",
    "DDIMSampler",
    "DDPMSampler",
    "NoiseSchedule",
    "Sampler",
    "make_sampler",
    "reverse_diffusion",
]
