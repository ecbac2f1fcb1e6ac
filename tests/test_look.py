"""The look of a clip: loops and their seam, captions in every script the font covers, the sticker matte against
the tiny world's true matte, the outline, and all of it through `meme gen` and the checker."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from memestar.errors import MemeError
from memestar.media.captions import caption_overlay, draw_captions, layout
from memestar.media.look import Look, apply_look
from memestar.media.loops import make_loop, seam_score
from memestar.media.matte import add_outline, fill_holes, grow, grow_float, matte, median3, paint_under, with_matte
from memestar.media.resize import resize_frames
from memestar.tiny.world import motion, random_sprite, render, render_mask


def test_loops_and_their_seam(sliding_square):
    frames = sliding_square(n=12)
    assert seam_score(frames) > 1.9  # the square jumps back across the canvas: twice a step's change
    there_and_back = make_loop(frames, "pingpong")
    assert len(there_and_back) == 22 and np.array_equal(there_and_back[12], frames[10])
    assert seam_score(there_and_back) < 1.2
    faded = make_loop(frames, "crossfade")
    assert len(faded) == 9 and seam_score(faded) < 1.2
    assert np.array_equal(make_loop(frames, "forward"), frames)
    with pytest.raises(MemeError, match="--loop 'boomerang' is not a loop"):
        make_loop(frames, "boomerang")


@pytest.mark.parametrize("text", ["ONE DOES NOT SIMPLY", "когда код работает", "ΣΤΗΝ ΠΑΡΑΓΩΓΗ"])
def test_captions_are_drawn_in_latin_cyrillic_and_greek(text):
    font, lines, stroke = layout(text, 256)
    assert all(font.getmask(ch).getbbox() for ch in text if not ch.isspace())  # every glyph has ink (no tofu)
    layer = np.asarray(caption_overlay(256, text, None))
    top, rest = layer[: 256 // 3], layer[256 // 3 :]
    assert rest[..., 3].max() == 0  # only the top band
    white = (top[..., :3] == 255).all(axis=-1) & (top[..., 3] == 255)
    black = (top[..., :3] == 0).all(axis=-1) & (top[..., 3] == 255)
    assert white.sum() > 200 and black.sum() > 200  # white letters, black stroke


@pytest.fixture
def emoji_font():
    from memestar.media.captions import emoji_font_path

    path = emoji_font_path()
    if path is None or not path.is_file():
        pytest.skip("no emoji font: apt-get install fonts-noto-color-emoji (.ci/run does)")
    return path


@pytest.mark.parametrize("text", ["when the build is green 🎉🚀", "me 👍🏽 🇫🇷 ❤️ 👨‍👩‍👧", "שלום 😀"])
def test_emoji_in_captions_are_drawn_in_colour(text, emoji_font):
    """Issue 30, 10: emoji (with skin tones, flags, ZWJ families, VS16) come out in colour from Noto Color Emoji,
    not as the text font's empty boxes or its black-and-white faces."""
    layer = np.asarray(caption_overlay(256, text, None)).astype(int)
    top = layer[: 256 // 3]
    opaque = top[..., 3] == 255
    spread = top[..., :3].max(axis=-1) - top[..., :3].min(axis=-1)  # 0 for white, black and greys
    assert (opaque & (spread > 60)).sum() > 100, "no colour where the emoji should be"
    plain = np.asarray(caption_overlay(256, "when the build is green", None)).astype(int)
    assert (plain[..., :3].max(axis=-1) - plain[..., :3].min(axis=-1))[plain[..., 3] == 255].max() == 0


@pytest.mark.parametrize(
    "text, words",
    [
        ("你好 world", "你 (U+4F60 Cjk Unified Ideograph-4F60), which no bundled font draws"),
        ("こんにちは", "U+3053 Hiragana Letter Ko"),
        ("bell\x07", "U+0007 (Cc"),
        ("private \ue000", "U+E000 (Co"),
        ("flip \u202eit", "U+202E (Cf"),
    ],
)
def test_captions_refuse_what_no_font_draws(text, words):
    with pytest.raises(MemeError, match=re.escape(words)) as e:
        layout(text, 256)
    assert "\n" not in str(e.value)


def test_emoji_without_an_emoji_font_is_one_line_naming_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMESTAR_EMOJI_FONT", str(tmp_path / "missing.ttf"))
    with pytest.raises(MemeError, match="no emoji font is installed: apt-get install fonts-noto-color-emoji"):
        layout("party 🎉", 256)
    assert layout("no emoji here", 256)  # text alone needs no emoji font


def test_cli_refuses_an_undrawable_caption_before_sampling(small_meme_dir, tmp_path, meme_main):
    code, _, err = meme_main(
        "gen", "a red square sliding", "--meme", small_meme_dir, "--top", "你好", "-o", tmp_path / "x.gif", "--quiet"
    )
    assert code == 2 and "no bundled font draws" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.gif").exists()


def test_captions_wrap_shrink_and_refuse_what_cannot_fit():
    _, one, _ = layout("short", 128)
    _, many, _ = layout("a much longer caption that needs several lines to fit", 128)
    assert len(one) == 1 and len(many) > 1
    with pytest.raises(MemeError, match="does not fit a 128x128 canvas even at 10 px: shorten it"):
        layout("Pneumonoultramicroscopicsilicovolcanoconiosis", 128)
    with pytest.raises(MemeError, match="at most 200 characters"):
        layout("word " * 50, 512)
    sticker = np.zeros((2, 128, 128, 4), np.uint8)  # fully transparent: the text makes its pixels opaque
    assert draw_captions(sticker, None, "hello")[..., 3].max() == 255


def test_the_matte_cuts_the_tiny_worlds_subject_steadily():
    rng = np.random.default_rng(3)
    for name in ("sliding", "spinning"):
        steps = motion(random_sprite(rng), name)
        frames = np.stack([render(s) for s in steps])
        noisy = (frames + rng.normal(0, 4, frames.shape)).round().clip(0, 255).astype(np.uint8)
        truth = np.stack([render_mask(s) for s in steps]) > 0.5
        alpha = matte(noisy)
        cut = alpha > 0.5
        assert ((cut & truth).sum() / (cut | truth).sum()) > 0.9, name
        steady = truth[1:] == truth[:-1]
        assert np.abs(np.diff(alpha, axis=0))[steady].mean() < 0.01, name  # no flicker where nothing moved
        assert alpha[:, :2].max() == 0  # the border is background


def test_the_matte_fills_holes_inside_the_subject_but_not_bays_open_to_the_border():
    y, x = np.mgrid[0:64, 0:64]
    r = np.hypot(x - 32, y - 32)
    ring = (r < 20) & (r >= 8)  # background inside: a hole
    bay = ring & ~((np.abs(y - 32) < 4) & (x > 32))  # a ring cut open on the right: the inside reaches the border
    for shape, inside_is_subject in ((ring, True), (bay, False)):
        frames = np.where(shape[None, ..., None], np.uint8([200, 30, 30]), np.uint8([90, 160, 90]))
        alpha = matte(np.repeat(frames, 3, axis=0))
        assert (alpha[:, r < 5] == 1).all() == inside_is_subject and (alpha[:, r < 5] == 0).all() != inside_is_subject
        assert (alpha[:, (r < 18) & (r > 10) & (np.abs(y - 32) >= 6)] == 1).all()  # the ring itself
        assert alpha[:, 0].max() == 0  # the border stays background


def test_the_outline_is_white_and_as_wide_as_asked():
    frames = np.zeros((1, 64, 64, 3), np.uint8) + 128
    frames[:, 24:40, 24:40] = (200, 30, 30)
    rgba = with_matte(frames)
    lined = add_outline(paint_under(rgba), 4)
    ring = (lined[0, ..., 3] > 0) & (rgba[0, ..., 3] == 0)
    assert ring.any() and (lined[0][ring][:, :3] == 255).all()
    ys, xs = np.nonzero(lined[0, ..., 3])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (20, 43, 20, 43)
    assert np.array_equal(lined[0, 30, 30], [200, 30, 30, 255])  # the subject itself untouched


def test_the_matte_filters_work_frame_by_frame_in_their_shapes():
    """OpenCV's filters, frame by frame: each frame's own holes; a lone speck out and a block kept; the outline an
    octagon (a square's corners cut, further than a diamond's); the float grown in a square; the white painted
    under in the blend's proportions."""
    y, x = np.mgrid[0:33, 0:33]
    r = np.hypot(x - 16, y - 16)
    ring = (r > 6) & (r < 10)
    bay = ring & ~((np.abs(y - 16) < 3) & (x > 16))
    filled = fill_holes(np.stack([bay, ring, bay]))
    assert [bool(f[16, 16]) for f in filled] == [False, True, False] and (filled[1] == (r < 10)).all()

    alpha = np.zeros((2, 33, 33), np.uint8)
    alpha[0, 5, 5] = 255  # a speck
    alpha[1, 10:15, 10:15] = 255  # a block
    smooth = median3(alpha)
    assert smooth[0].max() == 0 and (smooth[1, 11:14, 11:14] == 255).all() and smooth[1, 10, 10] == 0

    dot = np.zeros((1, 33, 33), np.uint8)
    dot[0, 16, 16] = 200
    octagon = grow(dot, 4)[0]
    assert octagon[16, 12] == octagon[20, 16] == octagon[19, 19] == 200  # 4 along an axis, 3 along a diagonal
    assert octagon[20, 20] == 0 and octagon[16, 11] == 0 and (octagon > 0).sum() == 69

    peak = np.zeros((1, 9, 9), np.float32)
    peak[0, 4, 4] = 3.5
    assert np.array_equal(grow_float(peak, 2)[0] > 0, (np.abs(y[:9, :9] - 4) <= 2) & (np.abs(x[:9, :9] - 4) <= 2))

    rgba = np.zeros((1, 4, 4, 4), np.uint8)
    rgba[0, ..., :3] = (200, 30, 0)
    rgba[0, ..., 3] = [[0, 51, 128, 255]] * 4
    painted = paint_under(rgba)[0, 0]
    assert painted[:, :3].tolist() == [[255, 255, 255], [244, 210, 204], [227, 142, 127], [200, 30, 0]]
    assert painted[:, 3].tolist() == [0, 51, 128, 255]


def test_resize_frames_matches_pillows_bicubic_up_and_down_on_any_frames():
    import warnings

    rng = np.random.default_rng(0)
    for channels in (3, 4):
        frames = rng.integers(0, 256, (3, 40, 40, channels), dtype=np.uint8)
        frames.flags.writeable = False  # e.g. frames read from a file
        assert resize_frames(frames, 40) is frames
        mode = {3: "RGB", 4: "RGBa"}[channels]  # RGBa: colour and alpha alike, not premultiplied by Pillow
        for side in (24, 100):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                out = resize_frames(frames, side)
            assert out.shape == (3, side, side, channels) and out.dtype == np.uint8
            pillow = [
                Image.frombytes(mode, (40, 40), f.tobytes()).resize((side, side), Image.Resampling.BICUBIC)
                for f in frames
            ]
            assert np.abs(out.astype(int) - np.stack([np.asarray(p) for p in pillow])).max() <= 2


def test_a_cut_out_painted_over_white_scales_as_a_premultiplied_resample_would():
    """The sticker look paints the outline's white under the cut-out subject, then scales colour and alpha alike:
    the colour comes out as Pillow's premultiplied resample composited over white (within the alpha's overshoot at
    the edge, which Pillow clamps), whatever lay under the transparent background; scaled as it was cut, the
    background's colour would bleed into the edge."""
    y, x = np.mgrid[0:64, 0:64]
    alpha = (255 * np.clip((20 - np.hypot(x - 32, y - 30)) / 4, 0, 1)).round().astype(np.uint8)  # a soft disc
    subject = np.stack([200 + 0 * x, 30 + 2 * x, 30 + 3 * y], -1)
    ours, bled = [], []
    for background in ((128, 128, 128), (0, 0, 255)):
        rgb = np.where(alpha[..., None] > 0, subject, background).astype(np.uint8)
        cut = np.concatenate([rgb, alpha[..., None]], -1)[None]
        pillow = np.asarray(Image.fromarray(cut[0], "RGBA").resize((192, 192), Image.Resampling.BICUBIC)) / 255.0
        over_white = 255 * (pillow[..., 3:] * pillow[..., :3] + 1 - pillow[..., 3:])
        ours.append(resize_frames(paint_under(cut), 192)[0])
        assert np.abs(ours[-1][..., :3] - over_white).max() < 6, background
        scaled_as_cut = resize_frames(cut, 192)[0] / 255.0
        bled.append(255 * (scaled_as_cut[..., 3:] * scaled_as_cut[..., :3] + 1 - scaled_as_cut[..., 3:]))
    assert np.array_equal(ours[0], ours[1])
    assert np.abs(bled[0] - bled[1]).max() > 3


def test_the_shadow_falls_below_right_and_leaves_the_subject(sliding_square):
    frames = sliding_square(n=2, size=64)
    plain = apply_look(frames, Look(sticker=True), side=128)
    shaded = apply_look(frames, Look(sticker=True, shadow=True), side=128)
    solid = plain[..., 3] == 255
    assert np.array_equal(shaded[solid], plain[solid])  # the subject and its outline untouched
    column = plain[0, :, 40, 3]  # through the square and its outline
    edge = np.nonzero(column >= 128)[0].max()  # the outline's last solid row
    below, above = shaded[0, edge + 3, 40], shaded[0, np.nonzero(column >= 128)[0].min() - 3, 40]
    assert column[edge + 3] < 10 and below[3] > column[edge + 3] + 15 and below[:3].max() < 60  # dark shade under
    assert above[3] <= plain[0, np.nonzero(column >= 128)[0].min() - 3, 40, 3] + 5  # next to none above
    with pytest.raises(MemeError, match="--shadow falls on a transparent background"):
        Look(shadow=True).check()


def test_apply_look_scales_then_outlines_then_captions(sliding_square):
    frames = sliding_square(n=6, size=64)
    out = apply_look(frames, Look(loop="pingpong", sticker=True, bottom="hi"), side=256)
    assert out.shape == (10, 256, 256, 4)
    assert out[:, 0, 0, 3].max() == 0  # a transparent corner
    pixel = apply_look(frames, Look(pixel=4), side=128)
    assert len(np.unique(pixel.reshape(-1, 3), axis=0)) <= 4 and pixel.shape == (6, 128, 128, 3)
    block = pixel[0, :2, :2].reshape(-1, 3)
    assert (block == block[0]).all()  # nearest-neighbour: each source pixel a 2x2 block
    with pytest.raises(MemeError, match="pixel style takes 2 to 64 colours"):
        Look(pixel=300).check()


def test_cli_sticker_with_captions_meets_telegram(small_meme_dir, tmp_path, meme_main):
    out = tmp_path / "sticker.webm"
    code, _, stderr = meme_main(
        "gen",
        "a blue circle sliding",
        "--meme",
        small_meme_dir,
        "--steps",
        "2",
        "--preset",
        "telegram",
        "--sticker",
        "--top",
        "when it works",
        "--loop",
        "pingpong",
        "-o",
        out,
    )
    assert code == 0, stderr
    code, stdout, _ = meme_main("check", out, "--preset", "telegram", "--json")
    assert code == 0 and '"alpha": "full"' in stdout and '"frames": 14' in stdout
    code, stdout, _ = meme_main(
        "gen",
        "x",
        "--meme",
        small_meme_dir,
        "--steps",
        "2",
        "--loop",
        "crossfade",
        "--json",
        "-o",
        tmp_path / "loop.gif",
    )
    assert code == 0 and json.loads(stdout)["loop"] == "crossfade" and json.loads(stdout)["loop_seam"] > 0
    gif = tmp_path / "sticker.gif"
    assert meme_main("gen", "x", "--meme", small_meme_dir, "--steps", "2", "--sticker", "-o", gif)[0] == 0
    with Image.open(gif) as image:
        assert image.info.get("transparency") is not None
    code, _, stderr = meme_main("gen", "x", "--meme", small_meme_dir, "--sticker", "-o", tmp_path / "x.mp4")
    assert code == 2 and "an MP4 has no transparency" in stderr
    code, _, stderr = meme_main("gen", "x", "--meme", small_meme_dir, "--top", "y" * 150, "-o", tmp_path / "y.gif")
    assert code == 2 and "does not fit a 64x64 canvas" in stderr and not (tmp_path / "y.gif").exists()
