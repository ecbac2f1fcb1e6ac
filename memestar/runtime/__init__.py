"""The lean runtime: a meme in memory, prompts in, frames or encoded GIF/MP4/WebP out."""

from .meme import Generation, Meme

__all__ = ["Generation", "Meme"]
