"""Fixtures shared by the suite: tiny bases, clips, small tuned memes, and the CLI run as a user runs it.

Helpers that several modules use live here as fixtures (no test module imports another).
"""

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# Before any test module imports huggingface_hub, which reads this once: no test may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TRAIN_PROMPT = "a red square sliding"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Built-in bases are built into a cache folder: keep the suite's out of the user's home."""
    os.environ["MEMESTAR_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    # one core each when pytest-xdist runs tests side by side (`make test`), else two
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // workers))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    from memestar.models.random_base import build_random_base

    return build_random_base("random-tiny", tmp_path_factory.mktemp("base") / "random-tiny")


@pytest.fixture
def tiny(tiny_dir):
    """A fresh random-tiny base (its UNet may be inflated in place by the test)."""
    from memestar.models.base import load_base

    return load_base(str(tiny_dir))


@pytest.fixture(scope="session")
def text_embedding():
    """`text_embedding(base, prompt)`: the prompt's (1, 77, d) CLIP embedding."""

    def embed(base, prompt: str = "a red circle bouncing") -> torch.Tensor:
        ids = base.tokenizer(
            [prompt],
            padding="max_length",
            max_length=base.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        with torch.no_grad():
            return base.text_encoder(ids)[0]

    return embed


@pytest.fixture(scope="session")
def run_meme():
    """`run_meme(*args)`: the CLI in a subprocess, as a user runs it."""

    def run(*args, env=None, cwd=None):
        return subprocess.run(
            [sys.executable, "-m", "memestar.cli", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd
        )

    return run


@pytest.fixture(scope="session")
def meme_main():
    """`meme_main(*args) -> (exit code, stdout, stderr)`: the CLI in this process (fast; monkeypatches apply)."""
    from memestar.cli import main

    def run(*args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return code, out.getvalue(), err.getvalue()

    return run


LEVEL0, LEVEL_STEP = 20, 9  # frame i of `numbered_frames` is grey LEVEL0 + LEVEL_STEP * i


@pytest.fixture(scope="session")
def numbered_frames():
    """`numbered_frames(n, h, w)`: frame i is flat grey `20 + 9 i` with a white square moving right, so its number
    survives lossy codecs (read back with `frame_numbers`)."""

    def frames(n=20, h=48, w=64):
        out = np.empty((n, h, w, 3), np.uint8)
        for i in range(n):
            out[i] = LEVEL0 + LEVEL_STEP * i
            x = 4 + 2 * i
            out[i, h // 2 - 4 : h // 2 + 4, x : x + 8] = 255
        return out

    return frames


@pytest.fixture(scope="session")
def frame_numbers():
    """`frame_numbers(frames)`: which `numbered_frames` frame each one is, read from its top-left corner."""

    def numbers(frames):
        corner = frames[:, :4, :4].reshape(len(frames), -1).mean(axis=1)
        return [round((c - LEVEL0) / LEVEL_STEP) for c in corner]

    return numbers


@pytest.fixture(scope="session")
def sliding_square():
    """`sliding_square(n, size)`: a red square sliding right on grey."""

    def frames(n=8, size=64):
        out = np.full((n, size, size, 3), 128, np.uint8)
        for i in range(n):
            x = 8 + 5 * i
            out[i, 24:40, x : x + 16] = (220, 40, 40)
        return out

    return frames


@pytest.fixture(scope="session")
def train_options():
    """`train_options(clip, out, **changes)`: `meme train` on random-tiny, 8 frames of 64 px, 60 steps."""
    from memestar.train.command import TrainOptions

    def options(clip_path, out, **kw):
        base = dict(
            clip=clip_path,
            prompt=TRAIN_PROMPT,
            base="random-tiny",
            out=out,
            frames=8,
            size=64,
            steps=60,
            lr=1e-2,
            checkpoint_every=20,
            inversion_steps=20,
            quiet=True,
        )
        return TrainOptions(**{**base, **kw})

    return options


@pytest.fixture(scope="session")
def make_small_meme(sliding_square, train_options):
    """`make_small_meme(root, **train_changes)`: a meme on random-tiny tuned for 3 steps on the sliding square (its
    temporal layers are no longer zero), in `root/meme`."""
    from memestar.media.writers import write_gif
    from memestar.train.command import train_meme

    def make(root: Path, **changes) -> Path:
        clip = write_gif(sliding_square(), root / "slide.gif", fps=8)
        train_meme(train_options(clip, root / "meme", steps=3, inversion_steps=4, **changes))
        return root / "meme"

    return make


@pytest.fixture(scope="session")
def slide_gif(tmp_path_factory, sliding_square) -> Path:
    """The sliding square as a GIF clip."""
    from memestar.media.writers import write_gif

    return write_gif(sliding_square(), tmp_path_factory.mktemp("clip") / "slide.gif", fps=8)


@pytest.fixture(scope="session")
def small_meme_dir(tmp_path_factory, make_small_meme) -> Path:
    """One small meme for tests that only read it (copy it before changing it; export it only in a copy)."""
    return make_small_meme(tmp_path_factory.mktemp("small-meme"))


@pytest.fixture(scope="session")
def meme_variant():
    """`meme_variant(src, dst, seed)`: a copy of the meme `src` in `dst` whose adapter differs (its temporal
    output projections redrawn from `seed`), so another meme on the same base, with meme.json rewritten."""
    import shutil

    from safetensors import safe_open

    from memestar.files import save_safetensors
    from memestar.formats.meme_folder import ADAPTER, read_meme, write_meme_json

    def make(src: Path, dst: Path, seed: int) -> Path:
        shutil.copytree(src, dst)
        with safe_open(dst / ADAPTER, framework="pt") as f:
            metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
        g = torch.Generator().manual_seed(seed)
        for name, t in tensors.items():
            if "attn_temp.to_out" in name:
                tensors[name] = (torch.randn(t.shape, generator=g) * 0.2).to(t.dtype)
        save_safetensors(tensors, dst / ADAPTER, metadata)
        manifest = read_meme(src)
        write_meme_json(dst, **{k: getattr(manifest, k) for k in manifest.__dataclass_fields__ if k != "files"})
        return dst

    return make


@pytest.fixture(scope="session")
def car_clip() -> Path:
    """The real clip in ../shared, or a skip when the checkout has no ../shared beside it."""
    path = SHARED / "clips" / "car-turn.mp4"
    if not path.exists():
        pytest.skip(f"the real clip {path} is absent (../shared beside the checkout)")
    return path


# `make check` (the inner loop) leaves out what trains, exports, compiles or starts other processes: these fixtures
# tune a meme, these modules do the rest (`make test` runs everything)
SLOW_FIXTURES = {"small_meme_dir", "make_small_meme", "meme_variant", "tiny_dir", "tiny"}
SLOW_MODULES = {
    "test_bench",
    "test_compile_cache",
    "test_emoji_base",
    "test_export",
    "test_gpu",
    "test_gpu_check",
    "test_playground",
    "test_ray",
    "test_serve_restart",
    "test_tiny_model",
    "test_train",
    "test_fuzz",
}


def pytest_collection_modifyitems(config, items):
    """Marks the slow tests (`-m "not slow"`: `make check`); `-m gpu` selects the GPU tests, and without CUDA they
    skip with the reason (README: make gpu-check)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA: run `make gpu-check` on one")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _patch_png(data: bytes, kind: bytes, patch, nth: int = 0) -> bytes:
    """The PNG `data` with its `nth` chunk of `kind` rewritten by `patch(body) -> body` (its CRC made right)."""
    import struct

    out, at, seen = bytearray(data[:8]), 8, 0
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        chunk_kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if chunk_kind == kind:
            body = patch(body) if seen == nth else body
            seen += 1
        out += _png_chunk(chunk_kind, body)
        at += 12 + length
    assert seen > nth, kind
    return bytes(out)


@pytest.fixture(scope="session")
def hostile_media(tmp_path_factory, numbered_frames) -> dict:
    """Files that declare far more than their bytes hold, or are damaged (issue 30's review, rebuilt): name -> path.
    Every one must be refused in one line, at once, without decoding what it declares."""
    import struct

    from PIL import Image

    from memestar.media.writers import write_gif, write_webp

    root = tmp_path_factory.mktemp("hostile")
    files = {}

    def gif_with_screen(name: str, frames: int, width: int, height: int) -> None:
        small = [Image.new("RGB", (2, 2), (i * 37 % 256, i * 91 % 256, i * 13 % 256)) for i in range(frames)]
        path = root / name
        small[0].save(path, save_all=True, append_images=small[1:], duration=100)
        data = bytearray(path.read_bytes())
        data[6:10] = struct.pack("<HH", width, height)  # the logical screen: Pillow's canvas
        path.write_bytes(bytes(data))
        files[name] = path

    gif_with_screen("bomb-30000.gif", 1, 30000, 30000)  # 85 bytes in the review
    gif_with_screen("bomb-9000x20.gif", 20, 9000, 9000)  # 20 distinct frames
    gif_with_screen("warn-4100.gif", 1, 4100, 4100)  # over the cap, under twice it: Pillow's warning, not its error
    gif_with_screen("decode-2000x300.gif", 300, 2000, 2000)  # each frame fine, the whole decode over the cap

    # the display timeline: one 20 ms frame, then 999 frames of 655 s
    frames = [Image.new("RGB", (2, 2), (i % 2 * 255, 0, 0)) for i in range(1000)]
    for suffix in ("gif", "webp"):
        path = root / f"timeline.{suffix}"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=[20] + [655_350] * 999, lossless=True)
        files[path.name] = path

    # an APNG whose second frame is wider than its canvas, also named .webp; one declaring 2^31 - 1 frames
    apng = root / "ok.png"
    Image.new("RGB", (8, 8), "red").save(apng, save_all=True, append_images=[Image.new("RGB", (8, 8), "blue")])
    ok = apng.read_bytes()
    wide = _patch_png(ok, b"fcTL", lambda body: body[:4] + struct.pack(">I", 64) + body[8:], nth=1)  # width 64
    for name in ("wide-frame.png", "wide-frame.webp"):
        (root / name).write_bytes(wide)
        files[name] = root / name
    many = _patch_png(ok, b"acTL", lambda body: struct.pack(">I", 2**31 - 1) + body[4:])
    (root / "many-frames.png").write_bytes(many)
    files["many-frames.png"] = root / "many-frames.png"

    # WebM (VP9) cut in half, cut after 2000 bytes, and with a run of garbage in its clusters
    import imageio_ffmpeg

    webm = root / "whole.webm"
    writer = imageio_ffmpeg.write_frames(
        str(webm),
        (64, 48),
        fps=10,
        codec="libvpx-vp9",
        macro_block_size=2,
        quality=None,
        output_params=["-crf", "10", "-b:v", "0", "-g", "4"],
    )
    writer.send(None)
    rng = np.random.default_rng(0)
    for f in numbered_frames(16, 48, 64):  # noise, so that each frame takes kilobytes and 2000 bytes cut one short
        writer.send(np.ascontiguousarray(f // 2 + rng.integers(0, 128, f.shape, dtype=np.uint8)))
    writer.close()
    whole = webm.read_bytes()
    garbage = bytearray(whole)
    middle = len(whole) // 2
    garbage[middle : middle + 400] = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
    for name, data in {
        "half.webm": whole[: len(whole) // 2],
        "cut-2000.webm": whole[:2000],
        "garbage.webm": bytes(garbage),
    }.items():
        (root / name).write_bytes(data)
        files[name] = root / name
    files["whole.webm"] = webm
    write_gif(numbered_frames(8, 16, 16), root / "fine.gif", fps=10)
    write_webp(numbered_frames(8, 16, 16), root / "fine.webp", fps=10)
    files["fine.gif"], files["fine.webp"] = root / "fine.gif", root / "fine.webp"
    return files


@pytest.fixture(scope="session")
def emoji_popping_meme(tmp_path_factory) -> Path:
    """A meme of the emoji world's popping cat face on the bundled emoji base, 4 tuning steps (skips without the
    base's weights)."""
    from memestar.models.base import bundled_missing
    from memestar.tiny.evaluate import tune_on_world_clip
    from memestar.tiny.worlds import WORLDS

    missing = bundled_missing("emoji")
    if missing:
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("emoji-popping")
    world = WORLDS["emoji"]
    tune_on_world_clip(
        "popping", world.plan["popping"][0], root, root / "meme", steps=4, lr=1e-4, inversion_steps=10, world=world
    )
    return root / "meme"
