"""Chat-app presets: every preset's file, read back by the checker, meets the app's published limits; each limit
broken on purpose is refused (fitting) or reported (checking) in one line."""

import dataclasses
import io
import os

import numpy as np
import pytest

from memestar.errors import MemeError
from memestar.media.check import breaches, probe
from memestar.media.fit import fit_timing, fit_to_preset
from memestar.media.presets import PRESETS
from memestar.media.writers import (
    OverBudget,
    encode_apng,
    encode_gif,
    encode_mp4,
    encode_webm,
    encode_webp,
    write_bytes,
)
from memestar.runtime import Meme


@pytest.fixture(scope="module")
def clip(small_meme_dir):
    """A generated clip (8 frames of 64 px) and its rate."""
    g = Meme.load(small_meme_dir).generate("a blue circle sliding", steps=3)
    return g.frames, g.fps


def with_hole(frames: np.ndarray) -> np.ndarray:
    """RGBA frames whose left quarter is transparent, as a sticker's background would be."""
    alpha = np.full(frames.shape[:3] + (1,), 255, np.uint8)
    alpha[:, :, : frames.shape[2] // 4] = 0
    return np.concatenate([frames, alpha], axis=-1)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_writes_what_its_app_takes(name, clip, tmp_path):
    preset, (frames, fps) = PRESETS[name], clip
    for rgba in (False, True):
        data, note = fit_to_preset(with_hole(frames) if rgba else frames, fps, preset)
        path = write_bytes(data, tmp_path / f"clip{preset.suffix}")
        report = probe(path)
        assert breaches(report, preset) == [], (name, rgba, report)
        assert (report.container, report.codec, report.bytes) == (preset.container, preset.codec, len(data))
        assert abs(report.duration_s - len(frames) / fps) < 0.1  # the whole motion, if in fewer frames
        assert report.frames == len(frames) or f"{report.frames} frames" in note
        assert name in note and preset.budget in note
        if rgba:
            assert report.alpha == ("binary" if preset.alpha == "binary" else "full"), report
        elif preset.container == "webm":
            assert report.alpha == "none", report  # VP9 codes alpha as a second stream: not for an opaque clip


def test_a_gif_sticker_keeps_its_hole_in_every_frame(clip, tmp_path):
    from PIL import Image, ImageSequence

    frames, fps = clip
    path = write_bytes(encode_gif(with_hole(frames), fps), tmp_path / "hole.gif")
    with Image.open(path) as image:
        for frame in ImageSequence.Iterator(image):
            alpha = np.asarray(frame.convert("RGBA"))[..., 3]
            assert (alpha[:, :16] == 0).all() and (alpha[:, 16:] == 255).all()


@pytest.mark.parametrize("rgba", [False, True])
def test_an_apng_in_fewer_colours_holds_every_frame(rgba):
    """A plain background with a square moving over it: each frame's palette starts with the background, the case
    that Pillow's "clear to the background" disposal refused (ValueError: images do not match)."""
    from PIL import Image, ImageSequence

    frames = np.full((6, 32, 32, 3), (240, 235, 220), np.uint8)
    for i, f in enumerate(frames):
        f[8:16, 4 * i : 4 * i + 8] = (200, 40, 30)
    if rgba:
        frames = with_hole(frames)
    with Image.open(io.BytesIO(encode_apng(frames, 8.0, colors=16))) as image:
        back = np.stack([np.asarray(frame.convert("RGBA")) for frame in ImageSequence.Iterator(image)])
    assert back.shape == frames.shape[:3] + (4,)
    visible = back[..., 3] > 0
    assert np.array_equal(visible, frames[..., 3] > 0 if rgba else np.ones(frames.shape[:3], bool))
    assert np.array_equal(back[..., :3][visible], frames[..., :3][visible])  # three colours: 16 entries hold them


def test_an_apng_in_fewer_colours_is_a_palette_png_with_one_palette():
    """Frames of many colours each: a palette per frame would make Pillow write RGBA, four bytes a pixel."""
    from PIL import Image, ImageSequence

    frames = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 4), dtype=np.uint8)
    data = encode_apng(frames, 8.0, colors=64)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "P" and len(image.getpalette()) <= 3 * 64
        back = np.stack([np.asarray(frame.convert("RGBA")) for frame in ImageSequence.Iterator(image)])
    assert back.shape == frames.shape and len(np.unique(back.reshape(-1, 4), axis=0)) <= 64
    assert len(data) < 0.5 * len(encode_apng(frames, 8.0))  # a byte a pixel against four


def apng_frame_controls(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """Each fcTL chunk of an APNG as (width, height, x, y, milliseconds), every chunk's CRC checked on the way (the
    readers here skip it for frame data; a browser's libpng does not)."""
    import struct
    import zlib

    controls, at = [], 8
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at : at + 4]), data[at + 4 : at + 8]
        body, (crc,) = data[at + 8 : at + 8 + length], struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body), f"{kind} chunk at byte {at}: bad CRC"
        if kind == b"fcTL":
            _, w, h, x, y, num, den = struct.unpack(">IIIIIHH", body[:24])
            controls.append((w, h, x, y, round(1000 * num / den)))
        at += 12 + length
    return controls


def test_an_apng_reads_back_as_its_frames_in_pillow_and_ffmpeg():
    """Random clips of 1 to 5 frames, 1 to 40 px a side, RGB and RGBA, some frames repeated and some changed in one
    pixel: lossless, both readers give back every frame that differs from the one before, exactly; a repeat
    lengthens the frame before it, and a frame changed in one pixel stores that pixel alone."""
    import av
    from PIL import Image, ImageSequence

    rng = np.random.default_rng(0)
    for _ in range(40):
        f, h, w = (int(n) for n in rng.integers(1, (6, 41, 41)))
        c = int(rng.choice([3, 4]))
        frames = rng.integers(0, 256, (f, h, w, c), dtype=np.uint8)
        if f > 2:
            frames[1] = frames[0]  # a repeat
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            frames[2] = frames[1]
            frames[2, y, x] ^= 1  # one pixel changed
        stored = [0, *[i for i in range(1, f) if not np.array_equal(frames[i], frames[i - 1])]]
        data = encode_apng(frames, 12.0)
        with Image.open(io.BytesIO(data)) as image:
            pillow = np.stack([np.asarray(frame.convert("RGBA")) for frame in ImageSequence.Iterator(image)])
        with av.open(io.BytesIO(data), format="apng") as container:
            ffmpeg = np.stack([frame.to_ndarray(format="rgba") for frame in container.decode(video=0)])
        expected = frames[stored]
        if c == 3:
            expected = np.concatenate([expected, np.full((*expected.shape[:3], 1), 255, np.uint8)], -1)
        assert np.array_equal(pillow, expected) and np.array_equal(ffmpeg, expected)
        controls = apng_frame_controls(data)
        assert [ms for *_, ms in controls] == [83 * (b - a) for a, b in zip(stored, [*stored[1:], f])]
        assert controls[0][:4] == (w, h, 0, 0)
        if f > 2 and 2 in stored:
            assert controls[stored.index(2)][:4] == (1, 1, x, y)


def test_a_palette_is_reduced_to_its_weighted_clusters():
    """Entries in three tight clusters, one of them mostly a single heavy entry: three colours are the clusters'
    means weighted by pixel count, each entry maps to its own cluster's, and the same palette gives the same."""
    from memestar.media.writers import reduced_palette

    rng = np.random.default_rng(0)
    centres = np.array([(220, 30, 30), (30, 200, 60), (40, 50, 230)])
    palette = np.clip(np.repeat(centres, 10, 0) + rng.integers(-6, 7, (30, 3)), 0, 255).astype(np.uint8)
    counts = rng.integers(1, 50, 30)
    counts[20] = 10_000  # the blue cluster's weight is nearly all this entry's
    colours, nearest = reduced_palette(palette, counts, 3)
    for cluster in range(3):
        members = slice(10 * cluster, 10 * cluster + 10)
        mean = (palette[members].astype(float) * counts[members, None]).sum(0) / counts[members].sum()
        assert len(set(nearest[members])) == 1
        assert np.abs(colours[nearest[10 * cluster]].astype(float) - mean).max() <= 0.5
    assert np.abs(colours[nearest[20]].astype(int) - palette[20]).max() <= 1  # the heavy entry pulls its cluster
    again = reduced_palette(palette, counts, 3)
    assert np.array_equal(again[0], colours) and np.array_equal(again[1], nearest)


@pytest.mark.parametrize("colors", [16, 32])
def test_a_smooth_ramp_in_few_colours_errs_less_than_the_octree(colors):
    """Pillow's fast octree alone puts few colours far from a ramp's (at 16: 27 levels on average, some pixels 150
    off); APNG and GIF take its 256 reduced by weighted k-means instead."""
    from PIL import Image, ImageSequence

    y, x = np.mgrid[0:64, 0:64] * 4
    frames = np.stack([np.stack([(x + 16 * i) % 256, y, 255 - (x + y) // 2], -1) for i in range(4)]).astype(np.uint8)
    f, h, w, _ = frames.shape
    octree = Image.fromarray(frames.reshape(f * h, w, 3)).quantize(
        colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    octree_error = np.abs(np.asarray(octree.convert("RGB")).reshape(frames.shape).astype(int) - frames).mean()
    for data in (encode_apng(frames, 8.0, colors=colors), encode_gif(frames, 8.0, colors=colors, dither=False)):
        with Image.open(io.BytesIO(data)) as image:
            back = np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])
        assert np.abs(back.astype(int) - frames).mean() < 0.9 * octree_error


@pytest.mark.parametrize("encode", [encode_gif, encode_webp, encode_apng, encode_webm, encode_mp4])
def test_an_encoder_given_a_budget_returns_the_same_file_or_stops_over_it(encode, clip):
    frames, fps = clip
    whole = encode(frames, fps)
    assert encode(frames, fps, max_bytes=len(whole)) == whole
    with pytest.raises(OverBudget):
        encode(frames, fps, max_bytes=len(whole) - 1)
    with pytest.raises(OverBudget) as stopped:
        encode(frames, fps, max_bytes=len(whole) // 4)
    if encode is not encode_webp:  # Pillow assembles a WebP whole; the others stop part-way
        assert stopped.value.args[0] < len(whole)


@pytest.mark.parametrize("fmt", ["mp4", "webm", "webp", "apng", "gif"])
def test_an_encoding_reads_no_memory_it_did_not_write(fmt, clip, tmp_path):
    """The same frames, the same bytes, whatever the heap held before: glibc fills new memory with a pattern of
    MALLOC_PERTURB_'s choosing. x264's B-frames broke this on this very clip."""
    import hashlib
    import subprocess
    import sys

    frames, fps = clip
    np.save(tmp_path / "frames.npy", frames)
    script = (
        "import hashlib, sys, numpy as np; from memestar.media import writers; "
        f"data = writers.encode_{fmt}(np.load(sys.argv[1]), {fps!r}); print(hashlib.sha256(data).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "frames.npy")],
            env={**os.environ, "MALLOC_PERTURB_": perturb},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for perturb in ("0", "77", "200")
    }
    encode = {"mp4": encode_mp4, "webm": encode_webm, "webp": encode_webp, "apng": encode_apng, "gif": encode_gif}[fmt]
    assert digests == {hashlib.sha256(encode(frames, fps)).hexdigest()}


def test_fitting_gives_up_quality_then_frames_and_refuses_an_impossible_budget(clip):
    frames, fps = clip
    slack = PRESETS["slack"]
    best, _ = fit_to_preset(frames, fps, slack)
    tight = dataclasses.replace(slack, max_bytes=len(best) - 1)
    data, note = fit_to_preset(frames, fps, tight)
    assert len(data) <= tight.max_bytes and "colors 256" not in note
    with pytest.raises(MemeError, match=r"cannot fit the clip into slack's 1 KB: .* at the lowest quality"):
        fit_to_preset(frames, fps, dataclasses.replace(slack, max_bytes=1000))


def test_fitting_drops_frames_for_the_apps_rate_and_duration():
    frames = np.zeros((90, 8, 8, 3), np.uint8)
    telegram = PRESETS["telegram"]
    fast, rate = fit_timing(frames, 60.0, telegram)  # 1.5 s at 60 fps: Telegram takes 30 at most
    assert rate <= 30 and abs(len(fast) / rate - 1.5) < 0.05
    long, rate = fit_timing(frames, 10.0, telegram)  # 9 s: Telegram takes 3 s
    assert rate == 10 and len(long) / rate <= 3 and len(long) == 30
    assert len(fit_timing(frames, 10.0, PRESETS["whatsapp"])[0]) == 90  # 9 s is within WhatsApp's 10


def test_the_checker_reports_each_breach(clip, tmp_path):
    frames, fps = clip
    gif = write_bytes(encode_gif(frames, fps), tmp_path / "plain.gif")  # 64 px: not Slack's canvas
    assert breaches(probe(gif), PRESETS["slack"]) == ["canvas 64x64, slack needs exactly 128x128"]
    long = np.concatenate([frames] * 5)  # 40 frames at 8 fps: 5 s
    webm = write_bytes(encode_webm(long, 8.0), tmp_path / "long.webm")
    found = breaches(probe(webm), PRESETS["telegram-emoji"])
    assert found == ["canvas 64x64, telegram-emoji needs exactly 100x100", "5 s long, telegram-emoji allows 3 s"]
    assert breaches(probe(webm), dataclasses.replace(PRESETS["telegram-emoji"], side=64, max_bytes=100)) == [
        f"{webm.stat().st_size} bytes, over telegram-emoji's 0 KiB (100 bytes)",
        "5 s long, telegram-emoji allows 3 s",
    ]
    assert breaches(probe(webm), PRESETS["whatsapp"])[0] == "container webm, whatsapp needs webp"


def test_cli_gen_with_a_preset_and_check(small_meme_dir, tmp_path, meme_main):
    out = tmp_path / "sticker.webp"
    code, stdout, stderr = meme_main(
        "gen",
        "a blue circle sliding",
        "--meme",
        str(small_meme_dir),
        "--steps",
        "2",
        "--preset",
        "whatsapp",
        "-o",
        str(out),
    )
    assert code == 0 and out.is_file(), stderr
    code, stdout, _ = meme_main("check", str(out), "--preset", "whatsapp", "--json")
    assert code == 0 and '"ok": true' in stdout and '"width": 512' in stdout
    code, stdout, stderr = meme_main("check", str(out), "--preset", "slack")
    assert code == 1 and "breach: container webp, slack needs gif" in stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--preset", "myspace"], "--preset 'myspace' is not a chat-app preset"),
        (["--preset", "slack", "--format", "gif"], "fixes the format and the size"),
        (["--preset", "slack", "-o", "x.webp"], "name the output x.gif"),
    ],
)
def test_cli_preset_misuse_is_one_line(args, words, small_meme_dir, meme_main, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = meme_main("gen", "x", "--meme", str(small_meme_dir), *args)
    assert code == 2 and words in stderr and len(stderr.strip().splitlines()) == 1
