"""meme-star: one-shot video tuning of Stable Diffusion 1.x and fast GIF generation."""

__version__ = "0.1.0"
