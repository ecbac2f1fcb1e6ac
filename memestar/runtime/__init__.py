"""The lean runtime: memes in memory (one base shared by many), prompts in, frames or encoded GIF/MP4/WebP out.

`from memestar.runtime import Meme` loads torch and the models; the names are imported on first use, so that the
light modules here (the settings, the options of `meme gen`) import without them."""

import importlib

_WHERE = {
    "Generation": ".generation",
    "Meme": ".meme",
    "GenRequest": ".settings",
    "GenSettings": ".settings",
    "variant_requests": ".settings",
    "MemeStore": ".store",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
