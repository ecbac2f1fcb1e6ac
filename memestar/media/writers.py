"""Encoding frames as GIF, animated WebP or APNG (Pillow), WebM (VP9) or MP4 (H.264, yuv420p) (PyAV), to bytes
or to files, within a size budget.

Files are written to a temporary name beside the target and renamed into place, so an interrupted
write never leaves a half file under the real name.
"""

import functools
import io
import struct
import tempfile
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import GifImagePlugin, Image

from ..errors import MemeError
from ..files import atomic_path
from .resize import resize_frames


def _check_frames(frames: np.ndarray, alpha: bool = False) -> np.ndarray:
    """Frames as `f h w 3` uint8 (RGB), or `f h w 4` (RGBA) where the format carries transparency."""
    frames = np.asarray(frames)
    channels = (3, 4) if alpha else (3,)
    if frames.ndim != 4 or frames.shape[-1] not in channels or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(
            f"frames must be a non-empty f h w {'3 or 4' if alpha else '3'} uint8 array, got "
            f"{frames.dtype} {frames.shape}"
        )
    return frames


class OverBudget(Exception):
    """The file would be larger than the `max_bytes` an encoder was given. Each encoder checks as it writes and stops
    at the first byte over (the GIF after each frame, APNG at each chunk, WebM and MP4 at each packet; WebP, whose
    file Pillow assembles at the end, once it is whole), so a fitter passes over a setting that cannot fit for a
    part of its cost."""


def _within(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise OverBudget(size)


TRANSPARENT_BELOW = 128  # GIF's 1-bit transparency: alpha under this is a hole
# Pixels the octree palette is built from (a stride over the clip). 16 frames of 256 px: 0.7 ms here, where 262,144
# (the whole of 16 frames of 128 px) took 62 ms with the same dithered error (benchmarks/results/media-encode-*).
PALETTE_SAMPLE = 16_384
# The ordered dither's amplitude, in levels: about half the spacing of 256 colours spread evenly (256 / 6.35 / 2),
# the usual choice, since the mean error cannot see banding. At 24 that error stays below Floyd-Steinberg's (16
# frames, 256 px: gradients 10.6 against 11.6, blocks 11.6 against 13.3; 16 gives 10.0 / 11.0, 32 gives 11.4 /
# 12.5), and the whole GIF takes 17 to 21 ms where it took 31 to 43 (one core, media-encode-2026-12-06)
DITHER_LEVELS = 24


def _exact_palette(frames: np.ndarray, colors: int) -> Image.Image | None:
    """A palette of the clip's own colours (sorted) when it has no more than `colors`, else None; one pass of
    Pillow's colour counter over every frame (it stops as soon as there are more)."""
    f, h, w, _ = frames.shape
    counted = Image.fromarray(frames.reshape(f * h, w, 3)).getcolors(colors)  # one tall image, no copy
    if counted is None:
        return None
    palette = Image.new("P", (1, 1))
    palette.putpalette(bytes(v for _, colour in sorted(counted, key=lambda c: c[1]) for v in colour))
    return palette


def shared_palette(frames: np.ndarray, colors: int = 256) -> Image.Image:
    """One palette for the whole clip, so a colour keeps its index and GIF frames do not flicker: the clip's own
    colours when it has no more than `colors` (flat memes, stickers: exact), else Pillow's fast octree over a
    sample of `PALETTE_SAMPLE` pixels."""
    return _exact_palette(frames, colors) or _octree_palette(frames, colors)


# Palettes of this many colours or fewer are the octree's 256 reduced by weighted k-means, not the octree's own: a
# 512 px sticker at 32 and 16 colours erred 26.6 and 54.3 levels from the octree, 15.3 and 19.8 reduced, in files
# of about the same size; at 64 and more the octree's files were the smaller for about the same error
# (media-encode-2026-12-07-apng)
REDUCED_UP_TO = 32


def reduced_palette(
    palette: np.ndarray, counts: np.ndarray, colors: int, rounds: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """`colors` colours standing for a palette (`n c` uint8) whose entries cover `counts` pixels, by k-means weighted
    by the counts: started from the commonest entry, then one at a time from the entry farthest from those chosen
    (its distance weighted by its count), so the same palette gives the same colours. Returns them (`colors c`
    uint8) and each entry's nearest of them (`n` uint8)."""
    points, weights = palette.astype(np.float64), counts.astype(np.float64)
    chosen = [int(np.argmax(weights))]
    gap = ((points - points[chosen[0]]) ** 2).sum(1)
    for _ in range(colors - 1):
        chosen.append(int(np.argmax(weights * gap)))
        gap = np.minimum(gap, ((points - points[chosen[-1]]) ** 2).sum(1))
    centres = points[chosen]
    for _ in range(rounds + 1):
        nearest = ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(1)  # (n, colors) distances -> (n,)
        mass = np.bincount(nearest, weights, colors)
        sums = np.stack([np.bincount(nearest, weights * points[:, k], colors) for k in range(points.shape[1])], 1)
        held = mass > 0
        centres[held] = sums[held] / mass[held, None]
    return np.clip(np.round(centres), 0, 255).astype(np.uint8), nearest.astype(np.uint8)


def _octree(image: Image.Image, colors: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's fast octree of an RGB or RGBA `image` in at most `colors` colours, up to `REDUCED_UP_TO` colours its
    256 reduced (`reduced_palette`): each pixel's index (`h w` uint8) and the palette (`n 3` or `n 4` uint8)."""
    quantized = image.quantize(
        256 if colors <= REDUCED_UP_TO else colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    indices = np.asarray(quantized)
    palette = np.frombuffer(bytes(quantized.getpalette(image.mode)), np.uint8).reshape(-1, len(image.mode))
    used = int(indices.max()) + 1
    if used > colors:
        palette, nearest = reduced_palette(palette[:used], np.bincount(indices.ravel(), minlength=used), colors)
        indices = np.take(nearest, indices)
    return indices, palette


def _octree_palette(frames: np.ndarray, colors: int) -> Image.Image:
    """`_octree`'s palette over `PALETTE_SAMPLE` pixels drawn at random (a fixed seed: the same clip, the same
    palette); a regular stride would see the same few columns of every frame."""
    pixels = frames.reshape(-1, 3)
    if len(pixels) > PALETTE_SAMPLE:
        pixels = pixels[np.random.default_rng(0).integers(0, len(pixels), PALETTE_SAMPLE)]
    side = int(np.ceil(np.sqrt(len(pixels))))
    sheet = np.zeros((side * side, 3), np.uint8)
    sheet[: len(pixels)] = pixels
    sheet[len(pixels) :] = pixels[-1]
    palette = Image.new("P", (1, 1))
    palette.putpalette(_octree(Image.fromarray(sheet.reshape(side, side, 3)), colors)[1].tobytes())
    return palette


def _bayer(n: int) -> np.ndarray:
    """The n x n Bayer threshold matrix (n a power of 2), centred on 0: values in (-0.5, 0.5)."""
    m = np.zeros((1, 1), np.int64)
    while len(m) < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return (m + 0.5) / m.size - 0.5


@functools.lru_cache(maxsize=8)
def _ordered_offsets(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The Bayer pattern over an `h w 3` frame, as what it adds and what it takes away (uint8, so the dither is
    four saturating passes; kept: a server encodes clips of a few sizes)."""
    pattern = np.round(np.tile(_bayer(8), (-(-h // 8), -(-w // 8)))[:h, :w] * DITHER_LEVELS)
    pattern = np.repeat(pattern[..., None], 3, -1)  # whole rows of (h, w, 3): numpy broadcasts them fast
    return np.clip(pattern, 0, None).astype(np.uint8), np.clip(-pattern, 0, None).astype(np.uint8)


def _ordered_dither(rgb: np.ndarray) -> np.ndarray:
    """`f h w 3` frames plus the Bayer pattern (`_ordered_offsets`), saturating at 0 and 255: a new array."""
    add, take = _ordered_offsets(*rgb.shape[1:3])
    out = np.minimum(rgb, 255 - add)  # rgb + add - take
    out += add
    np.maximum(out, take, out=out)
    out -= take
    return out


def _palette_indices(rgb: np.ndarray, palette: Image.Image, dither: bool) -> np.ndarray:
    """`f h w 3` frames -> `f h w` indices into `palette`, all frames in one call (one tall image), with ordered
    (Bayer 8x8) dithering where the palette does not hold every colour: a pixel's pattern depends on its place
    alone, so what stands still keeps its indices from frame to frame (error diffusion makes the grain crawl, and
    the changed boxes grow)."""
    f, h, w, _ = rgb.shape
    if dither:
        rgb = _ordered_dither(rgb)
    tall = Image.fromarray(rgb.reshape(f * h, w, 3)).quantize(palette=palette, dither=Image.Dither.NONE)
    return np.asarray(tall).reshape(f, h, w)


def _changed_box(changed: np.ndarray) -> tuple[int, int, int, int]:
    """The smallest box (x0, y0, x1, y1) holding every True of `changed` `(h, w)`, or `(h, w, c)` where any channel
    counts; a 1-px box at the corner when none is (GIF wants an image for every frame's delay)."""
    h, w = changed.shape[:2]
    flat = changed.reshape(h, -1)  # whole rows: numpy reduces a short last axis slowly
    rows, cols = np.flatnonzero(flat.any(1)), np.flatnonzero(flat.any(0).reshape(w, -1).any(1))
    if not len(rows):
        return 0, 0, 1, 1
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _kept_frames(count: int, frame_ms: int, same) -> tuple[list[int], list[int]]:
    """Which of `count` frames to store, and each one's milliseconds: a frame the same as the one kept before it
    (`same(i, j)`) lengthens that one's delay instead of being stored again."""
    kept, durations = [], []
    for i in range(count):
        if kept and same(i, kept[-1]):
            durations[-1] += frame_ms
        else:
            kept.append(i)
            durations.append(frame_ms)
    return kept, durations


def _gif_container(
    indices: np.ndarray, entries: bytes, fps: float, holes: np.ndarray | None, max_bytes: int | None = None
) -> bytes:
    """A looping GIF89a of `f h w` palette indices with one global colour table (`entries`, RGB triplets). A frame
    equal to the one before lengthens its delay instead of being stored again; each stored frame is a graphic
    control block (its delay; with `holes`, the last entry is transparent and each frame is cleared before the next)
    and Pillow's LZW-coded image (`GifImagePlugin.getdata`) of the box that changed: where it differs from the frame
    before, or with holes where it is opaque."""
    f, h, w = indices.shape
    bits = max(1, int(np.ceil(np.log2(max(2, len(entries) // 3)))))
    kept, durations = _kept_frames(
        f,
        round(1000 / fps),
        lambda i, j: np.array_equal(indices[i], indices[j]) and (holes is None or np.array_equal(holes[i], holes[j])),
    )
    hole = len(entries) // 3 - 1
    flags = (2 << 2 | 1) if holes is not None else 1 << 2  # disposal 2 (clear) and transparency, or 1 (keep)
    out = [
        b"GIF89a",
        struct.pack("<HHBBB", w, h, 0x80 | (bits - 1), 0, 0),
        entries.ljust(3 << bits, b"\0"),
        b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00",
    ]  # loop forever
    for k, (i, ms) in enumerate(zip(kept, durations)):
        if holes is not None:
            x0, y0, x1, y1 = _changed_box(~holes[i])
        else:
            x0, y0, x1, y1 = (0, 0, w, h) if k == 0 else _changed_box(indices[i] != indices[kept[k - 1]])
        delay = min(int(ms / 10), 0xFFFF)  # hundredths of a second, as Pillow writes a duration in milliseconds
        out.append(b"!\xf9\x04" + struct.pack("<BHBB", flags, delay, hole if holes is not None else 0, 0))
        out.extend(
            GifImagePlugin.getdata(
                Image.fromarray(np.ascontiguousarray(indices[i, y0:y1, x0:x1]), "L"), offset=(x0, y0)
            )
        )
        _within(sum(map(len, out)) + 1, max_bytes)  # with the trailer
    out.append(b";")
    return b"".join(out)


def encode_gif(
    frames: np.ndarray, fps: float, colors: int = 256, dither: bool = True, max_bytes: int | None = None
) -> bytes:
    """A looping GIF with one palette across all frames and ordered dithering (none needed when the palette
    holds every colour). RGBA frames get GIF's 1-bit transparency: one palette entry is the hole, every frame cleared
    before the next (disposal 2)."""
    frames = _check_frames(frames, alpha=True)
    holes = frames[..., 3] < TRANSPARENT_BELOW if frames.shape[-1] == 4 else None
    rgb = np.ascontiguousarray(frames[..., :3])
    if holes is not None and not holes.any():
        holes = None
    colored = rgb if holes is None else (rgb[~holes] if (~holes).any() else rgb.reshape(-1, 3)[:1])[None, None]
    colors -= holes is not None  # with holes, the last entry is the hole
    palette = _exact_palette(colored, colors)
    exact = palette is not None
    palette = palette or _octree_palette(colored, colors)
    entries = bytes(palette.getpalette())
    indices = _palette_indices(rgb, palette, dither and not exact)
    if holes is None:
        return _gif_container(indices, entries, fps, None, max_bytes)
    indices = indices.copy()
    indices[holes] = colors  # the entry after the palette's: the hole
    entries = entries[: 3 * colors].ljust(3 * colors, b"\0") + b"\0\0\0"
    return _gif_container(indices, entries, fps, holes, max_bytes)


# libwebp's fastest method, and no keyframes after the first (each frame is coded once, as the box that changed, where
# Pillow's kmin 3 / kmax 5 also coded some whole to keep the smaller): 16 frames of 256 px in 26 ms where method 4
# took 120, for 0.06 levels more error and a file up to 20% larger (media-encode-2026-12-07)
WEBP_SPEED = {"method": 0, "kmin": 0, "kmax": 0}


def encode_webp(frames: np.ndarray, fps: float, quality: int = 80, max_bytes: int | None = None) -> bytes:
    """Animated WebP, lossy, with its alpha channel where the frames are RGBA."""
    frames = _check_frames(frames, alpha=True)
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        loop=0,
        duration=round(1000 / fps),
        quality=quality,
        **WEBP_SPEED,
    )
    _within(buffer.tell(), max_bytes)
    return buffer.getvalue()


# PNG's zlib streams, by what they hold (16 frames of 256 px, one core; media-encode-2026-12-07-apng): full colour
# through ISA-L's level 1, 10 ms for gradients where zlib's level 6 took 105, the file 4% smaller (noise the same);
# palette indices through libdeflate's level 6, 13 ms against 35 and the same size, where ISA-L's files were a fifth
# larger (a sticker's fit to a byte budget would give up colours for it)
def _deflate_full_colour(data: bytes) -> bytes:
    from isal import isal_zlib  # only APNG needs them

    return isal_zlib.compress(data, 1)


def _deflate_indices(data: bytes) -> bytes:
    import deflate

    return deflate.zlib_compress(data, 6)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _png_scanlines(pixels: np.ndarray) -> bytes:
    """`h w c` uint8 as PNG's filtered scanlines: palette indices (c 1) as they are (filter 0), full colour as each
    byte less the one above it (filter 2, "Up"; Sub, or a choice of None, Sub and Up per row, gave files within 2%
    of its size for up to a quarter more time)."""
    h, w, c = pixels.shape
    rows = pixels.reshape(h, w * c)
    out = np.empty((h, 1 + w * c), np.uint8)
    out[:, 0] = 0 if c == 1 else 2
    out[:, 1:] = rows
    if c > 1:
        np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])  # modulo 256; the first row has none above it
    return out.tobytes()


def _apng_container(
    pixels: np.ndarray, fps: float, palette: np.ndarray | None = None, max_bytes: int | None = None
) -> bytes:
    """A looping APNG of `f h w c` pixels: RGB or RGBA (c 3 or 4), or indices (c 1) into `palette` (`n 3` or `n 4`
    with alpha). A frame equal to the one before lengthens its delay instead of being stored again; each stored
    frame is the box that changed since the one before, which replaces what was there (disposal none, blend
    source). The first frame is the PNG's image as well; `OverBudget` at the first chunk past `max_bytes`."""
    f, h, w, c = pixels.shape
    colour_type = 3 if palette is not None else {3: 2, 4: 6}[c]
    deflated = _deflate_indices if palette is not None else _deflate_full_colour
    kept, durations = _kept_frames(f, round(1000 / fps), lambda i, j: np.array_equal(pixels[i], pixels[j]))
    out = [
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)),
        _png_chunk(b"acTL", struct.pack(">II", len(kept), 0)),  # 0 plays: forever
    ]
    if palette is not None:
        out.append(_png_chunk(b"PLTE", np.ascontiguousarray(palette[:, :3]).tobytes()))
        if palette.shape[1] == 4:
            out.append(_png_chunk(b"tRNS", np.ascontiguousarray(palette[:, 3]).tobytes()))
    size, sequence = sum(map(len, out)), 0  # fcTL and fdAT chunks share one sequence
    for k, (i, ms) in enumerate(zip(kept, durations)):
        x0, y0, x1, y1 = (0, 0, w, h) if k == 0 else _changed_box(pixels[i] != pixels[kept[k - 1]])
        delay = struct.pack(">HH", min(ms, 0xFFFF), 1000)  # milliseconds, as Pillow writes a duration
        chunks = [_png_chunk(b"fcTL", struct.pack(">IIIII", sequence, x1 - x0, y1 - y0, x0, y0) + delay + b"\0\0")]
        data = deflated(_png_scanlines(pixels[i, y0:y1, x0:x1]))
        if k == 0:
            chunks.append(_png_chunk(b"IDAT", data))
            sequence += 1
        else:
            chunks.append(_png_chunk(b"fdAT", struct.pack(">I", sequence + 1) + data))
            sequence += 2
        out.extend(chunks)
        size += sum(map(len, chunks))
        _within(size + 12, max_bytes)  # with the IEND chunk
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def encode_apng(frames: np.ndarray, fps: float, colors: int | None = None, max_bytes: int | None = None) -> bytes:
    """Animated PNG, lossless, or with `colors` a palette PNG: one palette of that many entries (alpha included) for
    the whole clip, `_octree` over every frame at once (one byte a pixel against three or four: files 2 to 5 times
    smaller). Written here (`_apng_container`): Pillow's writer, with zlib, took 10 to 14 times as long lossless and
    1.1 to 1.4 times in 64 colours (media-encode-2026-12-07-apng)."""
    frames = _check_frames(frames, alpha=True)
    if colors is None:
        return _apng_container(frames, fps, max_bytes=max_bytes)
    f, h, w, c = frames.shape
    indices, palette = _octree(Image.fromarray(frames.reshape(f * h, w, c), {3: "RGB", 4: "RGBA"}[c]), colors)
    indices = indices.reshape(f, h, w, 1)  # one tall image: one palette
    return _apng_container(indices, fps, palette[: int(indices.max()) + 1], max_bytes)


# VP9's realtime deadline at its fastest speed: 16 frames of 256 px with alpha in 39 ms where the "good" deadline took
# 198 (both in the process, one core), for 0.06 levels more error and files of 17 KiB against 9, far under any app's
# budget; a 512-px sticker in 98 ms against 1.3 s. cpu-used 5 is no better and twice as slow (media-encode-2026-12-07)
VP9_SPEED = {"deadline": "realtime", "cpu-used": "8"}
# x264's veryfast preset: 96 ms for 16 frames of 256 px of noise where medium took 354 (in the process, one core),
# the file 5% smaller at the same CRF; with no B-frames, which saved nothing here (gradients: 212 KiB against 210,
# 37 ms against 55) and, with the macroblock tree and adaptive quantisation, made x264 read memory it had not
# written: the same frames gave other bytes under MALLOC_PERTURB_ (media-encode-2026-12-07)
X264_OPTIONS = {"preset": "veryfast", "x264-params": "bframes=0"}


def _av_bytes(
    frames: np.ndarray,
    fps: float,
    container: str,
    codec: str,
    pix_fmt: str,
    options: dict,
    max_bytes: int | None = None,
) -> bytes:
    """`frames` (`f h w 3` or `f h w 4` uint8) encoded by ffmpeg's libraries in this process (PyAV: no ffmpeg process
    to start, which cost 70 to 150 ms a clip) on one thread (a server encodes one clip per core), muxed into a
    temporary file (MP4's faststart rewrites the file by name) and returned as bytes: the same frames, the same bytes
    (bitexact: no random segment id or version strings); `OverBudget` once the packets alone pass `max_bytes`."""
    import av  # only the video formats need ffmpeg's libraries

    _, h, w, c = frames.shape
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip.{container}"
        muxer = {"fflags": "+bitexact", **({"movflags": "+faststart"} if container == "mp4" else {})}
        with av.open(str(path), "w", format=container, options=muxer) as out:
            stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
            stream.width, stream.height, stream.pix_fmt, stream.thread_count = w, h, pix_fmt, 1
            coded = 0
            for frame in [*frames, None]:  # None: flush
                image = None if frame is None else av.VideoFrame.from_ndarray(frame, format={3: "rgb24", 4: "rgba"}[c])
                packets = stream.encode(image)
                coded += sum(p.size for p in packets)
                _within(coded, max_bytes)
                out.mux(packets)
        data = path.read_bytes()
    _within(len(data), max_bytes)  # the container's own bytes too
    return data


def encode_webm(frames: np.ndarray, fps: float, crf: int = 30, max_bytes: int | None = None) -> bytes:
    """VP9 in WebM, no audio; RGBA frames keep their alpha channel (`yuva420p`, as Telegram's video stickers take
    it), opaque ones are coded without one (`yuv420p`: VP9 codes alpha as a second stream, half the time)."""
    frames = _check_frames(frames, alpha=True)
    if frames.shape[-1] == 4 and (frames[..., 3] == 255).all():
        frames = frames[..., :3]
    options = {"crf": str(crf), "b": "0", "auto-alt-ref": "0", "row-mt": "1", **VP9_SPEED}
    pix_fmt = {3: "yuv420p", 4: "yuva420p"}[frames.shape[-1]]
    return _av_bytes(frames, fps, "webm", "libvpx-vp9", pix_fmt, options, max_bytes)


def encode_mp4(frames: np.ndarray, fps: float, crf: int = 18, max_bytes: int | None = None) -> bytes:
    """H.264 in yuv420p, which every phone plays; width and height must be even."""
    frames = _check_frames(frames)
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"H.264 in yuv420p needs even width and height, got {w}x{h}")
    options = {"crf": str(crf), **X264_OPTIONS}
    return _av_bytes(frames, fps, "mp4", "libx264", "yuv420p", options, max_bytes)


ENCODERS = {"gif": encode_gif, "mp4": encode_mp4, "webp": encode_webp}
# What `fit_to_kb` gives up first, per format: the settings it tries at each size, best first.
QUALITY_LADDERS = {
    "gif": [{"colors": c} for c in (256, 128, 64, 32, 16)],
    "mp4": [{"crf": c} for c in (18, 23, 28, 33, 38, 43)],
    "webp": [{"quality": q} for q in (80, 60, 40, 20, 10)],
}


def media_format(path: str | Path, format: str | None = None) -> str:
    """The format named, else the one the file's suffix says."""
    fmt = (format or Path(path).suffix.lstrip(".")).lower()
    if fmt not in ENCODERS:
        raise MemeError(f"cannot tell the output format of {path}: use a .gif, .mp4 or .webp suffix or --format")
    return fmt


def encode_media(frames: np.ndarray, fmt: str, fps: float, **settings) -> bytes:
    return ENCODERS[fmt](frames, fps, **settings)


def first_fit(encode, frames: np.ndarray, fps: float, ladder: list[dict], max_bytes: int) -> tuple[bytes, dict] | None:
    """The encoding at the first of `ladder`'s settings (best first; a setting of None left out) that stays within
    `max_bytes`, and the settings used; None when none does. A rung that cannot fit stops at the budget
    (`OverBudget`)."""
    for settings in ladder:
        chosen = {k: v for k, v in settings.items() if v is not None}
        try:
            return encode(frames, fps, max_bytes=max_bytes, **chosen), chosen
        except OverBudget:
            continue
    return None


def fit_to_kb(frames: np.ndarray, fmt: str, fps: float, max_kb: float) -> tuple[bytes, str]:
    """The best encoding under `max_kb` KiB: lowers quality (colours for GIF) first, then the size.
    Returns the bytes and a sentence saying what was given up."""
    side, budget = frames.shape[1], int(max_kb * 1024)
    while True:
        scaled = frames if side == frames.shape[1] else resize_frames(frames, side)
        fitted = first_fit(ENCODERS[fmt], scaled, fps, QUALITY_LADDERS[fmt], budget)
        if fitted is not None:
            data, settings = fitted
            what = ", ".join(f"{k} {v}" for k, v in settings.items())
            size = "" if side == frames.shape[1] else f", frames shrunk to {side}x{side}"
            return data, f"fitted {len(data) / 1024:.1f} KiB under {max_kb:g} KiB with {what}{size}"
        if side <= 32:
            smallest = len(encode_media(scaled, fmt, fps, **QUALITY_LADDERS[fmt][-1]))
            raise MemeError(
                f"cannot fit the {fmt} under {max_kb:g} KiB even at {side}x{side} with the lowest "
                f"quality ({smallest / 1024:.1f} KiB): raise --max-kb"
            )
        side = max(32, int(side * 0.75) // 2 * 2)


def write_bytes(data: bytes, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_gif(frames: np.ndarray, path: str | Path, fps: float, **settings) -> Path:
    return write_bytes(encode_gif(frames, fps, **settings), path)


def write_webp(frames: np.ndarray, path: str | Path, fps: float, **settings) -> Path:
    return write_bytes(encode_webp(frames, fps, **settings), path)


def write_mp4(frames: np.ndarray, path: str | Path, fps: float, **settings) -> Path:
    return write_bytes(encode_mp4(frames, fps, **settings), path)


def write_media(frames: np.ndarray, path: str | Path, fps: float, format: str | None = None) -> Path:
    return write_bytes(encode_media(frames, media_format(path, format), fps), path)
