"""The lean runtime: memes in memory (one base shared by many), prompts in, frames or encoded GIF/MP4/WebP out.

`from memestar.runtime import Meme` loads torch and the models; the names are imported on first use, so that the
light modules here (the settings, the options of `meme gen`) import without them."""

from ..lazy import lazy_exports

_WHERE = {
    "Generation": ".generation",
    "Meme": ".meme",
    "GenRequest": ".settings",
    "GenSettings": ".settings",
    "variant_requests": ".settings",
    "MemeStore": ".store",
}
__all__ = sorted(_WHERE)

__getattr__ = lazy_exports(__name__, _WHERE)
