"""One generated clip: its frames, the settings it was sampled with, and its encodings (a format in a look, under a
byte budget, or as a chat app's preset takes it)."""

from dataclasses import dataclass, field

import numpy as np

from ..checks import check_max_kb
from ..errors import MemeError
from ..media.fit import fit_to_preset
from ..media.look import Look, apply_look
from ..media.presets import get_preset
from ..media.writers import ENCODERS, encode_media, fit_to_kb


@dataclass
class Generation:
    prompt: str
    frames: np.ndarray  # f h w 3, uint8
    fps: float
    settings: dict
    seconds: dict  # of the batch this clip was sampled in
    warnings: list[str] = field(default_factory=list)
    batch_size: int = 1

    def encode(
        self, fmt: str = "gif", max_kb: float | None = None, look: Look | None = None
    ) -> tuple[bytes, str | None]:
        """The clip as GIF/MP4/WebP bytes in `look`; with `max_kb`, fitted under that size (the note says how)."""
        if fmt not in ENCODERS:
            raise MemeError(f"unknown format {fmt!r}: use gif, mp4 or webp")
        look = (look or Look()).check(self.frames.shape[1], fmt)
        frames = apply_look(self.frames, look)
        if check_max_kb(max_kb) is None:
            return encode_media(frames, fmt, self.fps), None
        return fit_to_kb(frames, fmt, self.fps, max_kb)

    def encode_for(self, preset: str, look: Look | None = None) -> tuple[bytes, str]:
        """The clip in `look` as the chat app `preset` takes it (`media/presets.py`: canvas, container, timing, byte
        budget), and a note saying what fitting it gave up; a one-line error naming the limit it cannot meet."""
        app = get_preset(preset)
        look = (look or Look()).check(app.side)
        return fit_to_preset(apply_look(self.frames, look, app.side), self.fps, app)
