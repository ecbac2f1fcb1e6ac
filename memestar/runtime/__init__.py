"""The lean runtime: memes in memory (one base shared by many), prompts in, frames or encoded GIF/MP4/WebP out."""

from .generation import Generation
from .meme import Meme
from .settings import GenRequest, GenSettings, variant_requests
from .store import MemeStore

__all__ = ["GenRequest", "GenSettings", "Generation", "Meme", "MemeStore", "variant_requests"]
