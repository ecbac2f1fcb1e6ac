import numpy as np
import pytest

from memestar.tiny.recognise import read_frame
from memestar.tiny.train import make_bank, write_tokenizer
from memestar.tiny.world import COLOURS, MOTIONS, SHAPES, Sprite, motion, random_sprite, render, render_clip, vocabulary
from memestar.tiny.worlds import WORLDS


def test_world_is_deterministic():
    a_images, a_captions = make_bank(30, seed=4)
    b_images, b_captions = make_bank(30, seed=4)
    assert np.array_equal(a_images, b_images) and a_captions == b_captions
    c_images, _ = make_bank(30, seed=5)
    assert not np.array_equal(a_images, c_images)
    star = Sprite("red", "star")
    assert np.array_equal(render_clip(star, "spinning"), render_clip(star, "spinning"))


def test_world_covers_colours_shapes_and_captions():
    assert len(COLOURS) >= 6 and set(SHAPES) >= {"circle", "square", "triangle", "star"}
    assert set(MOTIONS) >= {"bouncing", "sliding", "growing", "spinning", "popping"}
    _, captions = make_bank(200, seed=0)
    assert any(c.startswith("a small ") for c in captions) and any(c.count(" ") == 2 for c in captions)
    assert Sprite("blue", "star", radius=8).caption(size_word=True) == "a small blue star"


def test_recogniser_reads_clean_renders():
    rng = np.random.default_rng(123)
    sprites = [random_sprite(rng) for _ in range(500)]
    readings = [read_frame(render(s)) for s in sprites]
    colour = np.mean([r.colour == s.colour for s, r in zip(sprites, readings)])
    shape = np.mean([r.shape == s.shape for s, r in zip(sprites, readings)])
    assert colour >= 0.98 and shape >= 0.98, (colour, shape)
    assert max(abs(r.x - s.x) + abs(r.y - s.y) for s, r in zip(sprites, readings)) < 2.0
    assert read_frame(render(None)).colour is None


@pytest.mark.parametrize("name", MOTIONS)
def test_motions_move_as_named(name):
    frames = render_clip(Sprite("green", "square"), name)
    readings = [read_frame(f) for f in frames]
    assert frames.shape == (16, 64, 64, 3)
    xs, sizes = np.array([r.x for r in readings]), np.array([r.size for r in readings])
    expected = motion(Sprite("green", "square"), name)
    assert np.nanmax(np.abs(xs - np.array([s.x for s in expected]))) < 1.5
    if name in ("bouncing", "sliding"):
        assert xs[-1] - xs[0] > 20
    if name == "growing":
        assert np.all(np.diff(sizes) >= 0) and sizes[-1] > 2.5 * sizes[0]
    if name == "popping":
        assert sizes[0] < 5 < sizes[-1]


def test_tokenizer_has_one_token_per_world_word(tmp_path):
    tokenizer = write_tokenizer(tmp_path / "tok")
    for word in vocabulary():
        assert len(tokenizer(word).input_ids) == 3, word  # start, word, end
    assert tokenizer.model_max_length == 16
    assert len(tokenizer("running blueberry-elephant").input_ids) > 16  # unknown words fall back to bytes


def test_eval_scores_the_trajectory_only_where_the_source_moves():
    """Spinning turns in place: no quantity moves, so no correlation is taken (NaN, skipped by the means, null in
    the JSON report) instead of a free 1.0; a generated clip that follows a moving source scores 1."""
    import json

    from memestar.tiny.evaluate import json_safe, mean_scores, quality, trajectory, trajectory_scores
    from memestar.tiny.recognise import read_clip_frames

    spinning = trajectory(read_clip_frames(render_clip(Sprite("purple", "star"), "spinning")))
    correlation, distance = trajectory_scores(spinning, spinning)
    assert np.isnan(correlation) and distance == 0
    sliding = trajectory(read_clip_frames(render_clip(Sprite("blue", "square"), "sliding")))
    assert trajectory_scores(sliding, sliding)[0] == pytest.approx(1.0)
    assert trajectory_scores(sliding, sliding[::-1])[0] < -0.9
    rows = [{"trajectory_correlation": float("nan")}, {"trajectory_correlation": 0.5}]
    assert mean_scores(rows, ("trajectory_correlation",)) == {"trajectory_correlation": 0.5}
    assert np.isnan(mean_scores(rows[:1], ("trajectory_correlation",))["trajectory_correlation"])
    assert json.loads(json.dumps(json_safe({"a": [float("nan"), 1.0]}), allow_nan=False)) == {"a": [None, 1.0]}
    no_motion = {"colour_right": 1.0, "shape_right": 0.5, "trajectory_correlation": float("nan")}
    assert quality(no_motion) == 0.75 and quality({**no_motion, "shape_right": 1.0}) > quality(no_motion)


def test_the_eval_tunes_from_every_frame_of_a_clip_with_repeated_frames(tmp_path):
    """Popping holds identical frames, which the GIF stores once with a longer delay: both the GIF (on its timeline)
    and the eval's PNG frames read back all 16, the PNGs exactly."""
    from PIL import Image

    from memestar.media.clips import read_clip
    from memestar.tiny.evaluate import write_world_clip

    frames = render_clip(Sprite("orange", "star"), "popping")
    clip = write_world_clip(frames, tmp_path, "an orange star popping")
    gif = tmp_path / "an-orange-star-popping.gif"
    with Image.open(gif) as im:
        assert im.n_frames < len(frames)
    assert read_clip(gif, len(frames), frames.shape[1], stride=1).source_frames == len(frames)
    read = read_clip(clip, len(frames), frames.shape[1]).frames
    assert np.array_equal(read, frames)


def test_eval_compares_every_guidance_scale_as_its_own_variant():
    """`meme eval --guidance 3,5`: each scale gets each subject's requests (the inversion once, the mix once per
    seed), carried into the request's settings and the variant's name; a scale below 1 is refused."""
    from memestar.errors import MemeError
    from memestar.tiny.evaluate import EvalOptions, eval_requests, variant_name

    o = EvalOptions(
        motions=("sliding",), subjects=2, starts=("inversion", "mix"), gen_steps=(12,), guidances=(3.0, 5.0)
    )
    wanted = eval_requests(o, "sliding", WORLDS["shapes"])
    assert len(wanted) == 2 * 2 * (1 + o.seeds)
    for g in o.guidances:
        mine = [w for w in wanted if w["guidance"] == g]
        assert len(mine) == 2 * (1 + o.seeds) and {w["request"].settings.guidance for w in mine} == {g}
    names = {variant_name({"tuning": "mse", **w}) for w in wanted}
    assert names == {
        f"mse / {s} / ddim 12 / follow on (latents) / guidance {g} until 0.2 / cache 2"
        for s in ("inversion", "mix")
        for g in (3, 5)
    }
    with pytest.raises(MemeError, match="below 1"):
        EvalOptions(guidances=(0.5,)).check()


def test_eval_compares_the_work_savers_each_as_its_own_variant():
    """`--follow-measure latents,pixels --guidance-until 0,0.2 --cache-interval 1,2`: every combination, carried into
    each request's settings; without following, the measure changes nothing and runs once."""
    from memestar.errors import MemeError
    from memestar.tiny.evaluate import EvalOptions, eval_requests, variant_name

    o = EvalOptions(
        motions=("sliding",),
        subjects=1,
        starts=("inversion",),
        follows=(True, False),
        follow_measures=("latents", "pixels"),
        guidance_untils=(0.0, 0.2),
        cache_intervals=(1, 2),
    )
    wanted = eval_requests(o.check(), "sliding", WORLDS["shapes"])
    assert len(wanted) == (2 + 1) * 2 * 2  # (followed on latents, on pixels, not followed) x untils x intervals
    for w in wanted:
        s = w["request"].settings
        assert (s.follow_measure, s.guidance_until, s.cache_interval) == (
            w["follow_measure"],
            w["guidance_until"],
            w["cache_interval"],
        )
    names = {variant_name({"tuning": "mse", **w}) for w in wanted}
    assert len(names) == len(wanted)
    assert "mse / inversion / ddim 10 / follow on (pixels) / guidance 5 / cache 2" in names
    assert "mse / inversion / ddim 10 / follow off / guidance 5 until 0.2" in names
    for bad in (dict(follow_measures=("decoder",)), dict(guidance_untils=(1.5,)), dict(cache_intervals=(0,))):
        with pytest.raises(MemeError):
            EvalOptions(**bad).check()
