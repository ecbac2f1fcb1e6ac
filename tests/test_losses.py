"""Motion losses: what each one weighs (appearance shared by all frames against motion between them), how they are
asked for, and a tuning run with them through `meme train`."""

import math

import pytest
import torch
import torch.nn.functional as F

from memestar.errors import MemeError
from memestar.formats.meme_folder import read_meme
from memestar.train.command import train_meme
from memestar.train.losses import debiased_loss, motion_loss, residual_loss
from memestar.train.options import parse_motion_loss


def errors():
    """A target, and predictions off by the same amount in every frame (appearance) or by a per-frame amount."""
    g = torch.Generator().manual_seed(0)
    target = torch.randn(1, 4, 8, 6, 6, generator=g)
    static = torch.randn(1, 4, 1, 6, 6, generator=g).expand_as(target)  # b c 1 h w: the same in every frame
    moving = torch.randn(1, 4, 8, 6, 6, generator=g)
    return target, target + 0.3 * static, target + 0.3 * moving


def test_debiased_down_weights_what_frames_share_and_residual_ignores_it():
    target, off_static, off_moving = errors()
    share = debiased_loss(off_static, target, anchor=3) / F.mse_loss(off_static, target)
    assert share == pytest.approx((math.sqrt(2) - 1) ** 2, rel=1e-5)  # 0.17 of its weight in mse
    assert debiased_loss(off_moving, target, anchor=3) > 0.9 * F.mse_loss(off_moving, target)  # motion keeps it
    assert residual_loss(off_static, target) < 1e-6  # a shared error leaves every frame difference right
    assert residual_loss(off_moving, target) > 0.01  # a per-frame error turns the frame differences
    assert residual_loss(-target, target) == pytest.approx(2.0)  # opposite motion: cosine -1


def test_weighted_combinations_add_up():
    target, _, pred = errors()
    g = torch.Generator().manual_seed(1)
    both = motion_loss(pred, target, {"mse": 1.0, "residual": 0.5}, g)
    assert both == pytest.approx(float(F.mse_loss(pred, target) + 0.5 * residual_loss(pred, target)), rel=1e-5)


@pytest.mark.parametrize(
    "spec, words",
    [("l1", "'l1' is not a loss"), ("mse=x", "is not a number"), ("mse=0", "above 0"), ("mse,mse", "each loss once")],
)
def test_bad_specs_are_one_line(spec, words):
    with pytest.raises(MemeError, match=words):
        parse_motion_loss(spec)
    assert parse_motion_loss("mse=1, debiased=0.5") == {"mse": 1.0, "debiased": 0.5}


def test_train_with_motion_losses_records_them(slide_gif, train_options, tmp_path, meme_main):
    out = tmp_path / "meme"
    summary = train_meme(
        train_options(
            slide_gif, out, motion_loss="mse=1,debiased=1,residual=0.5", steps=3, inversion_steps=2, tune="temporal"
        )
    )
    assert math.isfinite(summary["final_loss"])
    training = read_meme(out).training
    assert training.motion_loss == {"mse": 1.0, "debiased": 1.0, "residual": 0.5} and training.tuned == "temporal"
    code, _, stderr = meme_main("train", slide_gif, "--text", "x", "--motion-loss", "huber", "--out", tmp_path / "b")
    assert code == 2 and "'huber' is not a loss" in stderr and not (tmp_path / "b").exists()
    code, _, stderr = meme_main("train", slide_gif, "--text", "x", "--tune", "spatial", "--out", tmp_path / "b")
    assert code == 2 and "--tune" in stderr and "temporal" in stderr and not (tmp_path / "b").exists()
