"""The frame count, shared by every inflated layer of one video UNet, set only while a clip runs through it.

A video latent is `b c f h w`; 2D layers see `(b f) c h w` and cannot tell where one clip ends. The video
UNet's forward enters `use(f)` with `f = sample.shape[2]`; the attention processors, the frame-spanning
GroupNorms and the temporal branch read `num_frames`, which is an error outside it (a 2D layer called on
its own would otherwise reuse whatever count the last clip left). Training enters `use(f)` around forward
and backward together, so gradient checkpointing's recomputation sees the same count. The count is a plain
int, so traced and exported graphs see it as a constant (static frames per meme).
"""

from contextlib import contextmanager


class FrameContext:
    def __init__(self):
        self._frames: int | None = None

    @property
    def num_frames(self) -> int:
        if self._frames is None:
            raise RuntimeError(
                "the frame count is unset: run clips through the VideoUNet (b c f h w), not its 2D layers on their own"
            )
        return self._frames

    @contextmanager
    def use(self, frames: int):
        """Sets the frame count for the block; nested uses must agree (a clip cannot change length mid-run)."""
        if self._frames is not None and self._frames != frames:
            raise RuntimeError(f"a {frames}-frame clip inside a {self._frames}-frame run")
        previous, self._frames = self._frames, frames
        try:
            yield
        finally:
            self._frames = previous
