"""Where a GIF's milliseconds go: 16 frames at 128 and 256 px on one CPU core, the encoder's parts timed apart,
and what was tried in their place.

    python benchmarks/gif_parts.py [--out benchmarks/results] [--core 0] [--repeat 9]

Parts of `writers.encode_gif` (the default clip's file): the exact-palette check (Pillow's colour counter), the
octree palette over a sample, the mapping of every dithered pixel through that new palette (Pillow fills its
nearest-colour cache box by box as colours arrive), and the container: Pillow's LZW of each stored frame's box.
Tried in their place, on the same frames: giflib's LZW of every frame whole, beside Pillow's timed the same way
(imagecodecs' `gif_encode`, when installed: it is no dependency), and Pillow's fast octree over every dithered
pixel, which draws the palette and maps the pixels in one pass. Content as in `media_encode.py` (`noise`,
`gradients`, `blocks`); error: the mean absolute difference of the palette's colours from the frames, levels per
pixel and channel.
"""

import os
import sys
from pathlib import Path

import numpy as np
from PIL import GifImagePlugin, Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from media_encode import content, median_ms, one_core_options, report_head, write_report  # noqa: E402

from memestar.media import writers  # noqa: E402


def shipped(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    palette = writers._octree_palette(rgb, 256)
    colours = np.frombuffer(bytes(palette.getpalette()), np.uint8).reshape(-1, 3)
    return writers._palette_indices(rgb, palette, True), colours


def octree_of_every_pixel(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f, h, w, _ = rgb.shape
    tall = Image.fromarray(writers._ordered_dither(rgb).reshape(f * h, w, 3))  # (f h) w 3
    quantized = tall.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    colours = np.frombuffer(bytes(quantized.getpalette()), np.uint8).reshape(-1, 3)
    return np.asarray(quantized).reshape(f, h, w), colours


def error(indices: np.ndarray, colours: np.ndarray, rgb: np.ndarray) -> float:
    return round(float(np.abs(colours[indices].astype(np.int16) - rgb).mean()), 2)


def pillow_lzw_ms(indices: np.ndarray, repeat: int) -> float:
    """Pillow's LZW of every frame whole, as giflib's below is timed."""
    images = [Image.fromarray(frame, "L") for frame in indices]
    return median_ms(lambda: [b"".join(GifImagePlugin.getdata(image)) for image in images], repeat)


def giflib_ms(indices: np.ndarray, colours: np.ndarray, repeat: int) -> float | None:
    try:
        import imagecodecs
    except ImportError:
        return None
    colormap = np.zeros((256, 3), np.uint8)
    colormap[: len(colours)] = colours
    room = indices.size * 2 + 65536  # its own estimate is too small for noise
    return median_ms(lambda: imagecodecs.gif_encode(indices, colormap=colormap, out=room), repeat)


def run(repeat: int) -> list[dict]:
    rows = []
    for side in (128, 256):
        for kind in ("noise", "gradients", "blocks"):
            rgb = np.ascontiguousarray(content(kind, side))
            indices, colours = shipped(rgb)
            octree_indices, octree_colours = octree_of_every_pixel(rgb)
            palette_ms = median_ms(lambda: writers._octree_palette(rgb, 256), repeat)
            row = {
                "side": side,
                "content": kind,
                "gif_ms": median_ms(lambda: writers.encode_gif(rgb, 8), repeat),
                "exact_check_ms": median_ms(lambda: writers._exact_palette(rgb, 256), repeat),
                "octree_sample_ms": palette_ms,
                "mapping_ms": median_ms(lambda: shipped(rgb), repeat) - palette_ms,
                "container_ms": median_ms(lambda: writers._gif_container(indices, colours.tobytes(), 8, None), repeat),
                "pillow_lzw_ms": pillow_lzw_ms(indices, repeat),
                "giflib_ms": giflib_ms(indices, colours, repeat),
                "error": error(indices, colours, rgb),
                "octree_every_pixel_ms": median_ms(lambda: octree_of_every_pixel(rgb), repeat),
                "octree_every_pixel_error": error(octree_indices, octree_colours, rgb),
            }
            rows.append(row)
            print(row, flush=True)
    return rows


def markdown(report: dict) -> str:
    ms = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [
        "# Where a GIF's milliseconds go: 16 frames on one CPU core",
        "",
        f"Date: {report['date']}. Machine: {report['machine']}, pinned to one core. Median of {report['repeat']} "
        "after one (`benchmarks/gif_parts.py`). Each part is timed apart, and this machine's speed drifts within a "
        "run, so the parts need not add up to the whole.",
        "",
        "| px | content | GIF ms | exact check | octree (sample) | mapping | LZW and container "
        "| LZW of whole frames: Pillow's | giflib's | error | octree of every pixel: ms | its error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['side']} | {r['content']} | {ms(r['gif_ms'])} | {ms(r['exact_check_ms'])} | "
            f"{ms(r['octree_sample_ms'])} | {ms(r['mapping_ms'])} | {ms(r['container_ms'])} | "
            f"{ms(r['pillow_lzw_ms'])} | {ms(r['giflib_ms'])} | "
            f"{r['error']:.2f} | {ms(r['octree_every_pixel_ms'])} | {r['octree_every_pixel_error']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = one_core_options(__doc__, repeat=9).parse_args(argv)
    os.sched_setaffinity(0, {args.core})
    report = {**report_head("gif parts", args.repeat), "rows": run(args.repeat)}
    write_report(report, args.out / f"gif-parts-{report['date']}", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
