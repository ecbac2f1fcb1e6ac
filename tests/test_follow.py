"""Following the clip's subject track while sampling (`sampling/follow.py`, `meme gen --follow`)."""

import json
import shutil

import numpy as np
import pytest
import torch

from memestar.errors import MemeError
from memestar.formats.meme_folder import MEME_JSON, SubjectTrackRecord, read_meme, write_meme_json
from memestar.runtime import Meme
from memestar.sampling.ddim import DDIMSchedule
from memestar.sampling.follow import FOLLOW_UNTIL, following, moving, plain_background, subject_track, warp_to_track

PROMPT = "a blue circle sliding"
CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
}


def square_frames(places, side=64, square=12, colour=(220, 40, 40)):
    """`(1, f, side, side, 3)` float frames: grey, with a `square`-px square whose top-left corner is each place."""
    frames = torch.full((1, len(places), side, side, 3), 128.0)
    for i, (x, y) in enumerate(places):
        frames[0, i, y : y + square, x : x + square] = torch.tensor(colour, dtype=torch.float32)
    return frames


def half_widths(px, side=64):
    return px * 2 / (side - 1) - 1


def as_latents(frames):  # n f H W 3 in [0, 255] -> n 3 f H W in [-1, 1]: "latents" that decode by a permute
    return frames.permute(0, 4, 1, 2, 3) / 127.5 - 1


def as_pixels(latents):
    return (latents.permute(0, 2, 3, 4, 1) + 1) * 127.5


def test_subject_track_reads_the_square_place_and_size():
    track = subject_track(square_frames([(4, 10), (30, 40), (50, 20)]))[0]
    centre = torch.tensor([[4 + 5.5, 10 + 5.5], [30 + 5.5, 40 + 5.5], [50 + 5.5, 20 + 5.5]])
    assert torch.allclose(track[:, :2], half_widths(centre), atol=0.01), track
    assert torch.allclose(track[:, 2], torch.full((3,), 12 * 2 / 63), atol=0.01), track  # 12 px wide
    bigger = subject_track(square_frames([(20, 20)], square=24))[0, 0, 2]
    assert abs(bigger / track[0, 2] - 2) < 0.05


def test_plain_background_tells_a_sticker_from_a_scene():
    assert plain_background(square_frames([(4, 10), (30, 40)])[0])
    noise = torch.randint(0, 256, (4, 64, 64, 3)).float()
    assert not plain_background(noise)
    scene = torch.zeros(4, 64, 64, 3)
    scene[:, :, 32:] = 255  # half dark, half bright: no colour is most of the border
    assert not plain_background(scene)


def test_moving_names_the_quantities_that_change_over_the_frames():
    sliding = subject_track(square_frames([(4 + 6 * i, 26) for i in range(8)]))
    assert moving(sliding).tolist() == [[True, False, False]]
    still = subject_track(square_frames([(26, 26)] * 8))
    assert moving(still).tolist() == [[False, False, False]]


def test_warp_moves_and_scales_the_subject_onto_the_track_in_what_is_held():
    start = square_frames([(8, 8), (40, 30)])
    target = subject_track(square_frames([(40, 36), (10, 40)], square=18))
    current = subject_track(start)
    everything = torch.ones(1, 3, dtype=torch.bool)
    warped = subject_track(as_pixels(warp_to_track(as_latents(start), current, target, everything)))
    assert (warped - target).abs().max() < 0.04, (warped, target)
    only_x = torch.tensor([[True, False, False]])
    warped = subject_track(as_pixels(warp_to_track(as_latents(start), current, target, only_x)))
    assert (warped[..., 0] - target[..., 0]).abs().max() < 0.04
    assert (warped[..., 1:] - current[..., 1:]).abs().max() < 0.04  # y and size kept


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_following_warps_the_predicted_clean_latents_in_the_first_steps_only(prediction):
    """A model whose clean prediction is a square at the centre: in the followed steps the output the sampler gets
    predicts it on the track instead, whatever the prediction type; later steps get the model's output as it is."""
    config = {**CONFIG, "prediction_type": prediction}
    schedule = DDIMSchedule(config, 10)
    places = [(6 + 5 * i, 10) for i in range(6)]
    track = subject_track(square_frames(places))  # 1 f 3: moving right, y still
    centre = as_latents(square_frames([(26, 26)] * 6))
    x = torch.randn(centre.shape, generator=torch.Generator().manual_seed(0))
    seen = []

    def model_fn(x, t):
        a = schedule.alpha[schedule.timestep_list.index(int(t))]
        eps = (x - a.sqrt() * centre) / (1 - a).sqrt()
        return eps if prediction == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * centre

    fn = following(model_fn, lambda x0: subject_track(as_pixels(x0)), track, config, schedule.timestep_list)
    for i, t in enumerate(schedule.timesteps):
        out = fn(x, t)
        x0, _ = schedule._x0_eps(out, x, schedule.alpha[i])
        followed = schedule.timestep_list[i] >= FOLLOW_UNTIL * 1000
        seen.append(followed)
        got = subject_track(as_pixels(x0))
        if followed:
            assert (got[..., 0] - track[..., 0]).abs().max() < 0.04, i  # x onto the track
            assert (got[..., 1] - half_widths(torch.tensor(26 + 5.5))).abs().max() < 0.04  # y not held: its own
        else:
            assert torch.equal(out, model_fn(x, t))
    assert seen == [True] * 7 + [False] * 3  # timesteps 901 ... 301 followed, 201, 101, 1 not


@pytest.fixture(scope="module")
def tracked_meme(small_meme_dir):
    return Meme.load(small_meme_dir)


def test_train_stores_the_clips_subject_track(small_meme_dir, sliding_square):
    manifest = read_meme(small_meme_dir)
    stored = manifest.subject_track.tensor()
    assert stored.shape == (manifest.frames, 3)
    expected = subject_track(torch.from_numpy(sliding_square()).float()[None])[0]
    assert (stored - expected).abs().max() < 0.03  # the GIF's palette moves it a little
    assert moving(stored[None]).tolist() == [[True, False, False]]


def test_generation_follows_by_default_where_the_meme_has_a_track(tracked_meme):
    on = tracked_meme.generate(PROMPT, steps=4, guidance=5.0, follow="on")
    auto = tracked_meme.generate(PROMPT, steps=4, guidance=5.0)
    off = tracked_meme.generate(PROMPT, steps=4, guidance=5.0, follow="off")
    assert on.settings["follow"] is True and auto.settings["follow"] is True and off.settings["follow"] is False
    assert np.array_equal(on.frames, auto.frames)
    assert not np.array_equal(on.frames, off.frames)


def test_a_batch_follows_each_clip_as_alone(tracked_meme):
    from memestar.runtime import GenRequest, GenSettings

    settings = [GenSettings(steps=4, guidance=5.0, seed=s, start="noise") for s in (1, 2)]
    batch = tracked_meme.generate_batch([GenRequest(PROMPT, s) for s in settings])
    for s, g in zip(settings, batch):
        alone = tracked_meme.generate_batch([GenRequest(PROMPT, s)])[0]
        assert np.abs(alone.frames.astype(int) - g.frames.astype(int)).max() <= 2


@pytest.fixture(scope="module")
def untracked_meme_dir(small_meme_dir, tmp_path_factory):
    """The small meme as one made from a clip with no plain background (or before tracks): no subject track."""
    folder = tmp_path_factory.mktemp("untracked") / "meme"
    shutil.copytree(small_meme_dir, folder)
    manifest = read_meme(folder)
    write_meme_json(
        folder,
        **{k: getattr(manifest, k) for k in manifest.__dataclass_fields__ if k not in ("files", "subject_track")},
    )
    return folder


def test_follow_on_without_a_track_is_one_line_and_auto_does_not_follow(untracked_meme_dir, meme_main, tmp_path):
    meme = Meme.load(untracked_meme_dir)
    assert meme.generate(PROMPT, steps=2).settings["follow"] is False
    with pytest.raises(MemeError, match="no subject track"):
        meme.generate(PROMPT, steps=2, follow="on")
    code, _, err = meme_main("gen", PROMPT, "--meme", untracked_meme_dir, "--follow", "on", "-o", tmp_path / "x.gif")
    assert code == 2 and "no subject track" in err and "--follow off" in err and len(err.strip().splitlines()) == 1
    code, _, err = meme_main("gen", PROMPT, "--meme", untracked_meme_dir, "--follow", "maybe", "-o", tmp_path / "x.gif")
    assert code == 2 and "--follow" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "track, message",
    [
        ({"x": [0.0], "y": [0.0], "size": [0.2]}, "has 1 frames"),
        ({"x": [0.0] * 8, "y": [0.0] * 7, "size": [0.2] * 8}, "one value per frame"),
        ({"x": [3.0] * 8, "y": [0.0] * 8, "size": [0.2] * 8}, "from -1 to 1"),
        ({"x": [0.0] * 8, "y": [0.0] * 8, "size": [0.0] * 8}, "subject_track.size"),
    ],
)
def test_a_damaged_subject_track_is_refused_naming_the_field(track, message, small_meme_dir, tmp_path, meme_main):
    folder = tmp_path / "meme"
    shutil.copytree(small_meme_dir, folder)
    meta = json.loads((folder / MEME_JSON).read_text())
    (folder / MEME_JSON).write_text(json.dumps({**meta, "subject_track": track}))
    code, _, err = meme_main("gen", PROMPT, "--meme", folder, "-o", tmp_path / "x.gif", "--steps", 1)
    assert code == 2 and message in err and "subject_track" in err, err


def test_the_track_record_round_trips():
    track = torch.tensor([[0.1, -0.2, 0.3], [0.4, 0.5, 0.6]])
    assert torch.equal(SubjectTrackRecord.from_tensor(track).tensor(), track)
