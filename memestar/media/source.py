"""Files from users, opened with what they declare held to the caps before a frame is decoded.

A file can declare far more than its bytes hold: an 85-byte GIF a 30000 x 30000 canvas, a 23 KB GIF 999 frames
of 655 s each, a 2 KB APNG two billion frames. Whatever reads one (training clips, uploads, `meme check`) opens
it here: the canvas, the frame count, the display time and the pixels a full decode would produce are held to the
caps in `checks.py` first, and a damaged file (a truncated WebM, an APNG frame outside its canvas) is reported as
damaged, in one line, whatever the decoder raised.
"""

import contextlib
import io
import re
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..checks import (
    MAX_DECODE_PIXELS,
    MAX_SOURCE_FRAMES,
    MAX_SOURCE_PIXELS,
    MAX_SOURCE_SECONDS,
    MAX_VIDEO_DECODE_PIXELS,
)
from ..errors import MemeError

# Pillow's own guard at our cap: past it `Image.open` warns, past twice it raises; both become our one line.
Image.MAX_IMAGE_PIXELS = MAX_SOURCE_PIXELS
SHORTER = "cut it shorter or scale it down first (e.g. ffmpeg -t 5 -vf scale=512:-2)"
# an ffmpeg message from a video decoder ("[h264 @ 0x...]", "[vist#0:0/h264 @ 0x...]"), not from the input
DECODER_LINE = re.compile(
    r"\[(?:vist#\d+:\d+/)?(?:h264|hevc|vp8|vp9|libvpx[-\w]*|av1|libdav1d|mpeg4|mpeg2video|mjpeg|"
    r"prores) @ 0x[0-9a-f]+\] "
)


def check_declared(
    name: str, width: int, height: int, frames: int, seconds: float | None, decode_cap: int = MAX_DECODE_PIXELS
) -> None:
    """Refuses a file whose canvas, frame count, display time or full decode (`decode_cap`) is over the caps."""
    if width < 1 or height < 1:
        raise MemeError(f"{name} declares a {width}x{height} canvas: it is damaged")
    if width * height > MAX_SOURCE_PIXELS:
        raise MemeError(
            f"{name} declares a {width}x{height} canvas, over the cap of {MAX_SOURCE_PIXELS:,} pixels a "
            f"frame: {SHORTER}"
        )
    if frames > MAX_SOURCE_FRAMES:
        raise MemeError(f"{name} declares {frames:,} frames, over the cap of {MAX_SOURCE_FRAMES:,}: {SHORTER}")
    if seconds is not None and seconds > MAX_SOURCE_SECONDS:
        raise MemeError(
            f"{name} declares {seconds:,.0f} s of display time, over the cap of {MAX_SOURCE_SECONDS:g} s: {SHORTER}"
        )
    if width * height * frames > decode_cap:
        raise MemeError(
            f"{name} would decode to {width * height * frames / 1e9:.1f} G pixels ({frames} frames of "
            f"{width}x{height}), over the cap of {decode_cap / 1e9:.1f} G: {SHORTER}"
        )


@contextlib.contextmanager
def open_image(path: Path, what: str = "an image", data: bytes | None = None):
    """The Pillow image at `path` (still or animated; or in `data`, an upload that `path` names), its canvas and
    frame count held to the caps; anything the decoder raises inside the block, on this file's bytes, becomes one
    line naming the file as damaged."""
    name = path.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as image:
                check_declared(name, image.width, image.height, getattr(image, "n_frames", 1), None)
                yield image
    except MemeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        declared = re.search(r"\((\d+) pixels\)", str(e))  # Pillow: "Image size (900000000 pixels) exceeds ..."
        raise MemeError(
            f"{name} declares a canvas of {int(declared.group(1)) if declared else 0:,} pixels, over "
            f"the cap of {MAX_SOURCE_PIXELS:,} a frame: {SHORTER}"
        ) from None
    except FileNotFoundError as e:
        raise MemeError(f"{name} not found") from e
    except Image.UnidentifiedImageError as e:
        raise MemeError(f"{name} is not {what} Pillow can read") from e
    except Exception as e:  # noqa: BLE001 (hostile bytes make Pillow raise OSError, ValueError, SyntaxError, ...)
        raise MemeError(f"{name} is damaged ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else '?'})") from e


def frame_durations_ms(image: Image.Image) -> Iterator[float]:
    """Seeks to each stored frame in turn, loads it and yields its declared duration (ms; 0 where none), the display
    time held to the cap as it adds up; between yields, `image` is that frame."""
    total = 0.0
    for i in range(getattr(image, "n_frames", 1)):
        image.seek(i)
        image.load()  # WebP and APNG set a frame's duration as they load it
        d = float(image.info.get("duration", 0) or 0)
        total += d
        if total > MAX_SOURCE_SECONDS * 1000:
            check_declared(Path(image.filename or "the file").name, image.width, image.height, i + 1, total / 1000)
        yield d


@dataclass
class VideoHeader:
    """What ffmpeg reads from a video's header, before decoding it."""

    container: str
    codec: str
    width: int
    height: int
    fps: float
    seconds: float
    alpha: bool
    audio: bool

    @property
    def frames(self) -> int:
        return round(self.fps * self.seconds)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # only videos need ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def video_header(path: Path) -> VideoHeader:
    """The header of the video at `path`, held to the caps (canvas, display time, frames, decode)."""
    info = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    ).stderr
    container = re.search(r"Input #0, ([^,]+(?:,[^,\s]+)*), from", info)
    video = re.search(r"Stream #0:\d+.*?: Video: (\w+).*?, (\d+)x(\d+)", info)
    if not container or not video:
        raise MemeError(f"{path.name} is not a video ffmpeg can read ({(info.strip().splitlines() or ['?'])[-1]})")
    rate = re.search(r"(\d+(?:\.\d+)?) fps", info) or re.search(r"(\d+(?:\.\d+)?) tbr", info)
    duration = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", info)
    seconds = (
        3600 * int(duration.group(1)) + 60 * int(duration.group(2)) + float(duration.group(3)) if duration else 0.0
    )
    header = VideoHeader(
        container="webm" if "webm" in container.group(1) else container.group(1),
        codec=video.group(1),
        width=int(video.group(2)),
        height=int(video.group(3)),
        fps=float(rate.group(1)) if rate else 0.0,
        seconds=seconds,
        alpha=bool(re.search(r"alpha_mode\s*:\s*1", info, re.IGNORECASE)),
        audio=" Audio: " in info,
    )
    check_declared(path.name, header.width, header.height, header.frames, header.seconds, MAX_VIDEO_DECODE_PIXELS)
    return header


def decode_video(path: Path, header: VideoHeader, strict: bool = True) -> int:
    """Decodes every frame of the video at `path` (whose `header` passed the caps) and returns how many there were.
    Damage is reported: a container error (a cut or garbled file), fewer frames than the header declares, and,
    when `strict` (`meme check`: a file about to be sent), any decoder error too. Not strict (a clip to tune on),
    errors the decoder concealed are let through: a phone clip trimmed without re-encoding starts mid-GOP, and
    H.264 says so while it decodes every frame."""
    r = subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=600,
    )
    counted = re.findall(r"^frame=(\d+)$", r.stdout, re.MULTILINE)
    frames = int(counted[-1]) if counted else 0
    problems = [line for line in r.stderr.strip().splitlines() if strict or not DECODER_LINE.match(line)]
    if r.returncode or problems:
        said = problems[0].split("] ")[-1] if problems else f"exit {r.returncode}"
        raise MemeError(f"{path.name} is damaged: ffmpeg says {said}")
    return check_frame_count(path.name, header, frames)


def check_frame_count(name: str, header: VideoHeader, counted: int) -> int:
    """`counted` frames, unless far fewer than the header declares: a file cut short keeps its header."""
    if counted < 0.8 * header.frames - 1:  # 0.8: rounding, and a header's rate that is an average
        raise MemeError(f"{name} is damaged: its header declares {header.frames} frames, it holds {counted}")
    return counted
