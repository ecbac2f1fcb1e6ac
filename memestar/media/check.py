"""`meme check FILE --preset APP`: reads a written file back and holds it against an app's published limits.

GIF, animated WebP and APNG are read with Pillow (every frame's duration, the canvas, the colour mode); WebM
with the bundled ffmpeg (container, codec, canvas, frame rate, the VP9 alpha flag, audio streams) and its
frame count from a decode. Both are opened through `source.py`: the caps first, and damage reported as damage.
What is reported is what the file holds, not what meme-star meant to write.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from ..errors import MemeError
from .presets import AppPreset
from .source import decode_video, frame_durations_ms, open_image, video_header


@dataclass
class MediaReport:
    container: str  # gif, webp, apng, png, webm, or what ffmpeg calls it
    codec: str
    width: int
    height: int
    frames: int
    duration_s: float
    fps: float
    bytes: int
    alpha: str  # none, binary (GIF transparency), full (an alpha channel)
    min_frame_ms: float
    audio: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def probe(path: str | Path) -> MediaReport:
    """What the file at `path` holds, or a one-line error when it is no animation meme-star can read or it is damaged
    (every frame is decoded: a file cut short, or with a frame outside its canvas, is reported, not measured)."""
    path = Path(path)
    if not path.is_file():
        raise MemeError(f"{path} not found: pass a file written by `meme gen`")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(16)
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska / WebM
        return _probe_ffmpeg(path, size)
    with open_image(path, "a GIF, WebP, PNG/APNG or WebM file") as image:
        return _probe_pillow(image, size)


def _probe_pillow(image: Image.Image, size: int) -> MediaReport:
    fmt = image.format.lower()
    animated = getattr(image, "n_frames", 1) > 1
    container = "apng" if fmt == "png" and animated else fmt
    durations, alpha = [], "none"
    for duration in frame_durations_ms(image):  # one pass: `image` is each frame in turn
        durations.append(duration)
        if "A" in image.mode or image.info.get("transparency") is not None:
            alpha = "binary" if fmt == "gif" else "full"  # GIF holds one transparent index, never more
    total_s = sum(durations) / 1000
    return MediaReport(
        container=container,
        codec=container,
        width=image.width,
        height=image.height,
        frames=len(durations),
        duration_s=round(total_s, 4),
        fps=round(len(durations) / total_s, 3) if total_s else 0.0,
        bytes=size,
        alpha=alpha,
        min_frame_ms=min(durations),
    )


def _probe_ffmpeg(path: Path, size: int) -> MediaReport:
    header = video_header(path)
    frames = decode_video(path, header)
    fps = header.fps or (frames / header.seconds if header.seconds else 0.0)
    duration = frames / fps if fps else header.seconds
    return MediaReport(
        container=header.container,
        codec=header.codec,
        width=header.width,
        height=header.height,
        frames=frames,
        duration_s=round(duration, 4),
        fps=round(fps, 3),
        bytes=size,
        alpha="full" if header.alpha else "none",
        min_frame_ms=round(1000 / fps, 3) if fps else 0.0,
        audio=header.audio,
    )


def breaches(report: MediaReport, preset: AppPreset) -> list[str]:
    """Each limit of `preset` the file breaks, as one line; empty when it meets them all."""
    found = []
    if report.container != preset.container:
        found.append(f"container {report.container}, {preset.name} needs {preset.container}")
    elif report.codec != preset.codec:
        found.append(f"codec {report.codec}, {preset.name} needs {preset.codec}")
    canvas = preset.canvas_problem(report.width, report.height)
    if canvas:
        found.append(canvas)
    if report.bytes > preset.max_bytes:
        found.append(f"{report.bytes} bytes, over {preset.name}'s {preset.budget} ({preset.max_bytes} bytes)")
    if preset.max_duration_s is not None and report.duration_s > preset.max_duration_s + 1e-3:
        found.append(f"{report.duration_s:g} s long, {preset.name} allows {preset.max_duration_s:g} s")
    if preset.max_fps is not None and report.fps > preset.max_fps + 1e-3:
        found.append(f"{report.fps:g} fps, {preset.name} allows {preset.max_fps:g}")
    if preset.min_frame_ms is not None and report.min_frame_ms < preset.min_frame_ms:
        found.append(
            f"a frame of {report.min_frame_ms:g} ms, {preset.name} needs every frame >= {preset.min_frame_ms:g} ms"
        )
    if report.audio and not preset.audio:
        found.append(f"an audio stream, {preset.name} allows none")
    if report.frames < 2:
        found.append(f"{report.frames} frame: not an animation")
    return found
