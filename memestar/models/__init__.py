"""The models: surgery on a stock diffusers UNet, bases, adapters. The names below are imported on first use, so
that a light module of this package (the base-source options) imports without torch and diffusers."""

from ..lazy import lazy_exports

_WHERE = {
    "load_adapter": ".adapter",
    "save_adapter": ".adapter",
    "BaseFingerprint": ".base",
    "BaseModel": ".base",
    "load_base": ".base",
    "GROUP_NORM_MODES": ".video_unet",
    "VideoUNet": ".video_unet",
}
__all__ = sorted(_WHERE)

__getattr__ = lazy_exports(__name__, _WHERE)
