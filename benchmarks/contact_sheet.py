"""A contact sheet of one meme in every chat-app preset and style, each read back from the file written, with
transparent areas drawn on a checkerboard.

    python benchmarks/contact_sheet.py [--meme demo/meme-popping] [--prompt "a cat face popping"]

Needs a meme (`make demo` leaves two: demo/meme-popping and demo/meme-running). Writes docs/contact-sheet.png:
one tile per preset (the plain look, then the sticker look) and per style, the middle frame of the file as the app
would show it, labelled with the preset or style, the canvas, the frame count and the bytes.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageSequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from memestar.media.captions import FONT  # noqa: E402
from memestar.media.check import probe  # noqa: E402
from memestar.media.look import Look  # noqa: E402
from memestar.media.presets import PRESETS  # noqa: E402
from memestar.runtime import Meme  # noqa: E402
from memestar.runtime.command import GenOptions, run_gen  # noqa: E402
from memestar.runtime.settings import GenSettings  # noqa: E402
from memestar.runtime.styles import load_styles  # noqa: E402

TILE, LABEL = 160, 34


def middle_frame(path: Path) -> Image.Image:
    """The file's middle frame as RGBA, decoded as an app would (VP9 through libvpx, which keeps the alpha)."""
    if probe(path).container == "webm":
        import imageio_ffmpeg

        report = probe(path)
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgba", bpp=4, input_params=["-c:v", "libvpx-vp9"])
        next(reader)  # the header
        frames = [np.frombuffer(f, np.uint8).reshape(report.height, report.width, 4) for f in reader]
        return Image.fromarray(frames[len(frames) // 2], "RGBA")
    with Image.open(path) as image:
        frames = [f.convert("RGBA") for f in ImageSequence.Iterator(image)]
    return frames[len(frames) // 2]


def tile(path: Path, label: str) -> Image.Image:
    frame = middle_frame(path).resize((TILE, TILE), Image.Resampling.LANCZOS)
    cells = (np.indices((TILE, TILE)) // 10).sum(axis=0) % 2
    board = Image.fromarray(np.where(cells[..., None], 205, 150).repeat(3, -1).astype(np.uint8)).convert("RGBA")
    board.alpha_composite(frame)
    out = Image.new("RGB", (TILE, TILE + LABEL), "white")
    out.paste(board.convert("RGB"), (0, 0))
    report = probe(path)
    font = ImageFont.truetype(str(FONT), 12)
    draw = ImageDraw.Draw(out)
    draw.text((4, TILE + 2), label, fill="black", font=font)
    draw.text(
        (4, TILE + 17),
        f"{report.width}x{report.height} {report.frames}f {report.bytes / 1000:.0f} KB",
        fill=(90, 90, 90),
        font=font,
    )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meme", type=Path, default=ROOT / "demo" / "meme-popping")
    parser.add_argument("--prompt", default="a cat face popping")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "contact-sheet.png")
    args = parser.parse_args(argv)
    g = Meme.load(args.meme).generate(args.prompt, steps=args.steps)
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, preset in PRESETS.items():
            for look, tag in ((Look(), ""), (Look(sticker=True, top="meme-star"), " sticker")):
                path = Path(tmp) / f"{name}{'-s' if tag else ''}{preset.suffix}"
                path.write_bytes(g.encode_for(name, look)[0])
                tiles.append(tile(path, f"{name}{tag}"))
        for name in load_styles():
            out = Path(tmp) / f"style-{name}"
            out.mkdir()
            [result] = run_gen(
                GenOptions(
                    meme=args.meme,
                    prompt=args.prompt,
                    out=out / "x",
                    style=name,
                    settings=GenSettings(steps=args.steps),
                    quiet=True,
                ),
                log=lambda *a: None,
            )
            tiles.append(tile(Path(result["output"]), f"style {name}"))
    columns = 6
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (TILE + 8) + 8, rows * (TILE + LABEL + 8) + 8), "white")
    for i, t in enumerate(tiles):
        sheet.paste(t, (8 + (i % columns) * (TILE + 8), 8 + (i // columns) * (TILE + LABEL + 8)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({len(tiles)} tiles)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
