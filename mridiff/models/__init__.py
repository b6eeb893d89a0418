from mridiff.models.unet import ConditionalUNet, UNetConfig, channels_to_complex, complex_to_channels

__all__ = ["ConditionalUNet", "UNetConfig", "channels_to_complex", "complex_to_channels"]
