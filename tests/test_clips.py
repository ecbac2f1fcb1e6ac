import tracemalloc

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from memestar.errors import MemeError
from memestar.media.clips import frame_indices, read_clip
from memestar.media.writers import write_gif, write_mp4, write_webp


def write_ffmpeg(frames, path, codec, fps=10):
    h, w = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec=codec,
        macro_block_size=2,
        quality=None,
        output_params=["-crf", "10", "-b:v", "0"],
    )
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()


def write_folder(frames, path):
    path.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(path / f"frame_{i:04d}.{'png' if i % 2 else 'jpg'}", quality=98)


WRITE = {
    "mp4": lambda f, p: write_mp4(f, p, fps=10),
    "mov": lambda f, p: write_ffmpeg(f, p, "libx264"),
    "webm": lambda f, p: write_ffmpeg(f, p, "libvpx-vp9"),
    "gif": lambda f, p: write_gif(f, p, fps=10),
    "webp": lambda f, p: write_webp(f, p, fps=10, quality=95),
    "folder": write_folder,
}


@pytest.mark.parametrize("kind", list(WRITE))
def test_every_format_round_trips_with_the_right_frames(kind, tmp_path, numbered_frames, frame_numbers):
    frames = numbered_frames()
    path = tmp_path / ("frames" if kind == "folder" else f"clip.{kind}")
    WRITE[kind](frames, path)
    every = read_clip(path, 20, 48, stride=1)
    assert every.frames.shape == (20, 48, 48, 3) and every.frames.dtype == np.uint8
    assert frame_numbers(every.frames) == list(range(20))
    # the centre crop keeps the middle 48 of 64 columns: the square of frame 0 (x 4..11) is cut away
    crop = frames[:, :, 8:56]
    assert np.abs(every.frames.astype(int) - crop).mean() < 6
    spread = read_clip(path, 5, 32)
    assert spread.indices == [0, 4, 8, 12, 16] and frame_numbers(spread.frames) == spread.indices
    strided = read_clip(path, 4, 24, start=3, stride=5)
    assert frame_numbers(strided.frames) == [3, 8, 13, 18] and strided.frames.shape[1:] == (24, 24, 3)
    if kind != "folder":
        assert strided.fps == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("kind", ["gif", "webp"])
def test_repeated_frames_keep_their_time(kind, tmp_path, numbered_frames, frame_numbers):
    """An encoder stores a held frame once with a longer delay; reading keeps the clip's timeline (a meme's pause),
    not the stored frames."""
    held = numbered_frames(6)[[0, 1, 1, 1, 2, 3, 3, 4]]
    path = WRITE[kind](held, tmp_path / f"held.{kind}")
    with Image.open(path) as im:
        assert im.n_frames < 8  # the writer merged the repeats: the case under test
    clip = read_clip(path, 8, 32, stride=1)
    assert frame_numbers(clip.frames) == [0, 1, 1, 1, 2, 3, 3, 4]
    assert clip.source_frames == 8 and clip.fps == pytest.approx(10, rel=0.05)
    assert frame_numbers(read_clip(path, 4, 32).frames) == [0, 1, 2, 3]


def test_gif_delays_set_the_timeline(tmp_path, numbered_frames, frame_numbers):
    """Uneven delays (100, 300, 100 ms) and a zero delay (played as 100 ms) are read as ticks of the shortest one."""
    frames = [Image.fromarray(f) for f in numbered_frames(4)]
    path = tmp_path / "uneven.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[100, 300, 100, 0], loop=0)
    clip = read_clip(path, 6, 32, stride=1)
    assert frame_numbers(clip.frames) == [0, 1, 1, 1, 2, 3] and clip.fps == pytest.approx(10)
    with pytest.raises(MemeError, match="6 frames"):
        read_clip(path, 7, 32, stride=1)


def test_frame_indices():
    assert frame_indices(80, 8) == [0, 10, 20, 30, 40, 50, 60, 70]
    assert frame_indices(10, 10) == list(range(10))
    assert frame_indices(20, 3, start=5) == [5, 10, 15]
    assert frame_indices(20, 4, start=2, stride=5) == [2, 7, 12, 17]
    for args in [(5, 6), (20, 4, 2, 7), (20, 0), (20, 2, -1), (20, 2, 0, 0)]:
        with pytest.raises(MemeError):
            frame_indices(*args)


def test_gif_has_one_palette_loops_and_keeps_time(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)  # far more than 256 colours
    path = write_gif(frames, tmp_path / "a.gif", fps=25)
    data = path.read_bytes()
    assert data[10] & 0x80, "global colour table"
    assert _local_colour_tables(data) == 0
    with Image.open(path) as im:
        assert im.n_frames == 6 and im.info["loop"] == 0 and im.info["duration"] == 40


def _gif_read(data: bytes) -> tuple[np.ndarray, list[tuple[int, int, int, int]], list[int]]:
    """The frames as a player shows them (RGBA), each stored frame's box (x0, y0, x1, y1) and milliseconds."""
    import io

    from PIL import ImageSequence

    with Image.open(io.BytesIO(data)) as im:
        frames, boxes, durations = [], [], []
        for frame in ImageSequence.Iterator(im):
            boxes.append(frame.dispose_extent)
            durations.append(frame.info["duration"])
            frames.append(np.asarray(frame.convert("RGBA")))
    return np.stack(frames), boxes, durations


def test_gif_frames_store_only_what_changed_and_read_back_exactly():
    """A flat clip (the palette holds every colour) reads back pixel for pixel, each frame stored as the box that
    changed, a repeated frame as a longer delay; a sticker's frames (holes) keep their transparency with only their
    opaque box stored, an empty one as one pixel."""
    from memestar.media.writers import encode_gif

    flat = np.full((5, 40, 40, 3), 240, np.uint8)
    for i, x in enumerate((3, 7, 11, 11, 15)):
        flat[i, 10:20, x : x + 10] = (20, 30, 200)
    back, boxes, durations = _gif_read(encode_gif(flat, 8))
    assert np.array_equal(back[..., :3], flat[[0, 1, 2, 4]]) and (back[..., 3] == 255).all()
    assert boxes == [(0, 0, 40, 40), (3, 10, 17, 20), (7, 10, 21, 20), (11, 10, 25, 20)]
    assert durations == [120, 120, 250, 120]  # 125 ms in hundredths of a second; the held frame twice that
    sticker = np.zeros((4, 40, 40, 4), np.uint8)
    for i in (0, 1, 3):  # frame 2 is empty
        sticker[i, 10:20, 3 + 6 * i : 13 + 6 * i] = (0, 0, 0, 255)  # black: the colour a padded palette holds
    back, boxes, _ = _gif_read(encode_gif(sticker, 8))
    assert np.array_equal(back[..., 3] > 0, sticker[..., 3] > 0)
    assert np.array_equal(back[..., :3][sticker[..., 3] > 0], sticker[..., :3][sticker[..., 3] > 0])
    assert boxes[1:] == [(9, 10, 19, 20), (0, 0, 1, 1), (21, 10, 31, 20)]


def test_gif_dither_holds_still_where_the_clip_does():
    """A smooth field (far more colours than a palette holds) is dithered, and what does not move keeps its indices
    from frame to frame: only the box around the moving square is stored again. (Floyd-Steinberg diffuses each
    change down and right, so its frames differ everywhere after the square.)"""
    from memestar.media.writers import encode_gif

    y, x = np.mgrid[0:64, 0:64]
    field = np.stack([x * 4, y * 4, (x + y) * 2], -1).astype(np.uint8)
    frames = np.repeat(field[None], 4, 0)
    for i in range(4):
        frames[i, 8:16, 8 + 4 * i : 16 + 4 * i] = (250, 20, 20)
    back, boxes, _ = _gif_read(encode_gif(frames, 8))
    assert boxes[1:] == [(8, 8, 20, 16), (12, 8, 24, 16), (16, 8, 28, 16)]  # the square's old and new places
    still = np.ones((64, 64), bool)
    still[8:16, 8:28] = False
    assert all(np.array_equal(back[i][still], back[0][still]) for i in range(4))
    error = np.abs(back[0, ..., :3].astype(int) - field).mean()
    assert error < 10 and len(np.unique(back[0, 20:, 20:, :3].reshape(-1, 3), axis=0)) > 64  # dithered, close


def _local_colour_tables(gif: bytes) -> int:
    """Counts image descriptors (0x2C) whose local-colour-table flag is set, walking the GIF blocks."""
    pos = 13 + (3 * 2 ** ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)
    count = 0
    while gif[pos] != 0x3B:
        if gif[pos] == 0x21:  # extension: label, then sub-blocks
            pos += 2
        else:  # image descriptor
            flags = gif[pos + 9]
            count += bool(flags & 0x80)
            pos += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        while gif[pos]:
            pos += gif[pos] + 1
        pos += 1
    return count


def test_mp4_is_h264_yuv420p(tmp_path, numbered_frames):
    path = write_mp4(numbered_frames(8, 32, 32), tmp_path / "a.mp4", fps=12)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and meta["fps"] == 12
    assert not list(tmp_path.glob(".*"))


def test_long_clip_is_streamed_not_decoded_whole(tmp_path, numbered_frames):
    path = tmp_path / "long.mp4"
    frames = np.repeat(numbered_frames(24, 270, 480), 5, axis=0)  # 120 frames, 46 MB decoded
    write_mp4(frames, path, fps=30)
    del frames
    tracemalloc.start()
    clip = read_clip(path, 8, 64)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert clip.frames.shape == (8, 64, 64, 3)
    assert peak < 3_000_000, f"peak {peak / 1e6:.1f} MB while reading"


def _file(path, data: bytes):
    path.write_bytes(data)
    return path


def _folder(path):
    path.mkdir()
    return path


BAD_CLIPS = {
    "missing": (lambda p: p / "nope.mp4", "not found"),
    "empty file": (lambda p: _file(p / "empty.mp4", b""), "empty file"),
    "text as mp4": (lambda p: _file(p / "t.mp4", b"not a video\n" * 50), "ffmpeg can read"),
    "empty folder": (lambda p: _folder(p / "none"), "no PNG or JPEG"),
    "unknown suffix": (lambda p: _file(p / "a.txt", b"x"), "unknown suffix"),
}


@pytest.mark.parametrize("case", list(BAD_CLIPS))
def test_bad_clips_raise_one_clear_line(case, tmp_path):
    make, message = BAD_CLIPS[case]
    with pytest.raises(MemeError, match=message) as e:
        read_clip(make(tmp_path), 4, 32)
    assert "\n" not in str(e.value)


def test_too_few_frames_and_bad_size(tmp_path, numbered_frames):
    path = write_gif(numbered_frames(5, 16, 16), tmp_path / "a.gif", fps=10)
    with pytest.raises(MemeError, match="fewer than the 8 asked"):
        read_clip(path, 8, 16)
    for size in (0, 30, 100):
        with pytest.raises(MemeError, match="multiple of 8"):
            read_clip(path, 4, size)


@pytest.mark.parametrize(
    "case, extra",
    [
        ("missing", []),
        ("empty file", []),
        ("text as mp4", []),
        ("empty folder", []),
        ("too few", []),
        ("size", ["--size", "100"]),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(case, extra, tmp_path, numbered_frames, run_meme):
    if case in BAD_CLIPS:
        path = BAD_CLIPS[case][0](tmp_path)
    else:
        path = write_gif(numbered_frames(5, 16, 16), tmp_path / "a.gif", fps=10)
    out = tmp_path / "out.gif"
    out.write_bytes(b"earlier output")
    r = run_meme("clip", path, "-o", out, "--frames", 8 if case == "too few" else 4, *extra)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr and out.read_bytes() == b"earlier output"


def test_real_clip_decodes_and_samples(tmp_path, car_clip, run_meme):
    CAR = car_clip
    every = read_clip(CAR, 80, 64, stride=1)
    assert every.source_frames == 80 and every.frames.shape == (80, 64, 64, 3)
    assert every.frames.std() > 20  # real footage, not a flat frame
    sampled = read_clip(CAR, 8, 64)
    assert sampled.indices == list(range(0, 80, 10)) and sampled.fps == pytest.approx(1.0)
    assert np.array_equal(sampled.frames, every.frames[::10])
    later = read_clip(CAR, 16, 128, start=40, stride=2)
    assert later.indices == list(range(40, 72, 2)) and later.fps == pytest.approx(5.0)
    r = run_meme("clip", CAR, "-o", tmp_path / "car.webp", "--frames", 16, "--size", 64, "--json")
    assert r.returncode == 0, r.stderr
    assert read_clip(tmp_path / "car.webp", 16, 64).frames.shape == (16, 64, 64, 3)
