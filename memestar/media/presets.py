"""What each chat app accepts as a sticker or emoji, as the apps publish it (`../shared/FACTS.md`, 2026).

One `AppPreset` per app: container and codec, canvas, byte budget, duration and frame-rate limits, and what
transparency the format carries. `fit_to_preset` (media/fit.py) writes a clip into one; `check_media`
(media/check.py) reads a written file back and holds it against the same record. Byte budgets follow the unit
each app states: KB = 1000 bytes, KiB = 1024.
"""

from dataclasses import dataclass

from ..errors import MemeError


@dataclass(frozen=True)
class AppPreset:
    name: str
    app: str  # what it is, in the app's words
    container: str  # webm, webp, gif, apng
    codec: str  # as ffmpeg or Pillow names it: vp9, webp, gif, apng
    side: int  # the canvas: side x side (exact), or the longest side when `side_rule` is "longest"
    side_rule: str  # "exact": side x side; "longest": one side exactly `side`, the other at most; "max": both <=
    max_bytes: int
    max_duration_s: float | None = None
    max_fps: float | None = None
    min_frame_ms: float | None = None
    alpha: str = "full"  # full (8-bit), binary (1-bit, GIF), none
    audio: bool = False

    @property
    def media_type(self) -> str:
        return {"webm": "video/webm", "webp": "image/webp", "gif": "image/gif", "apng": "image/apng"}[self.container]

    @property
    def suffix(self) -> str:
        return {"apng": ".png"}.get(self.container, f".{self.container}")

    @property
    def budget(self) -> str:
        """The byte budget in the unit the app states it."""
        return f"{self.max_bytes // 1024} KiB" if self.max_bytes % 1000 else f"{self.max_bytes // 1000} KB"

    def canvas_problem(self, width: int, height: int) -> str | None:
        """Why a width x height canvas breaks this preset, or None."""
        if self.side_rule == "exact" and (width, height) != (self.side, self.side):
            return f"canvas {width}x{height}, {self.name} needs exactly {self.side}x{self.side}"
        if self.side_rule == "longest" and (max(width, height) != self.side or min(width, height) > self.side):
            return f"canvas {width}x{height}, {self.name} needs one side exactly {self.side} and the other at most"
        if self.side_rule == "max" and max(width, height) > self.side:
            return f"canvas {width}x{height}, {self.name} allows at most {self.side}x{self.side}"
        return None


PRESETS = {
    p.name: p
    for p in (
        AppPreset(
            "telegram",
            "Telegram video sticker",
            "webm",
            "vp9",
            512,
            "longest",
            256_000,
            max_duration_s=3.0,
            max_fps=30.0,
        ),
        AppPreset(
            "telegram-emoji",
            "Telegram custom emoji",
            "webm",
            "vp9",
            100,
            "exact",
            256_000,
            max_duration_s=3.0,
            max_fps=30.0,
        ),
        AppPreset(
            "whatsapp",
            "WhatsApp animated sticker",
            "webp",
            "webp",
            512,
            "exact",
            500_000,
            max_duration_s=10.0,
            min_frame_ms=8.0,
        ),
        AppPreset("slack", "Slack custom emoji", "gif", "gif", 128, "exact", 128_000, alpha="binary"),
        AppPreset("discord", "Discord sticker", "apng", "apng", 320, "exact", 512_000, max_duration_s=5.0),
        AppPreset("discord-emoji", "Discord emoji", "gif", "gif", 128, "exact", 256 * 1024, alpha="binary"),
        AppPreset("signal", "Signal sticker", "apng", "apng", 512, "max", 300_000, max_duration_s=3.0),
        AppPreset("imessage", "iMessage sticker", "apng", "apng", 408, "exact", 500_000),
    )
}


def get_preset(name: str) -> AppPreset:
    if name not in PRESETS:
        raise MemeError(f"--preset {name!r} is not a chat-app preset: use one of {', '.join(PRESETS)}")
    return PRESETS[name]
