"""The models: surgery on a stock diffusers UNet, bases, adapters. The names below are imported on first use, so
that a light module of this package (the base-source options) imports without torch and diffusers."""

import importlib

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


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
