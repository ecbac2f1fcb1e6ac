"""The bundled tiny base: it loads offline as `--base tiny`, draws what it is asked, and tuning transfers motion."""

import json

import pytest
import torch

from memestar.models.base import BUNDLED_TINY, load_base
from memestar.tiny.evaluate import EvalOptions, evaluate
from memestar.tiny.train import base_quality

pytestmark = pytest.mark.skipif(not (BUNDLED_TINY / "model_index.json").exists(),
                                reason="the bundled tiny weights are absent: python -m memestar.tiny.train")


def test_tiny_loads_offline_and_is_small():
    base = load_base("tiny")
    assert base.reference == "tiny" and base.tokenizer.model_max_length == 16
    size = sum(p.stat().st_size for p in BUNDLED_TINY.rglob("*") if p.is_file())
    assert size <= 20 * 2 ** 20, size
    recipe = json.loads((BUNDLED_TINY / "recipe.json").read_text())
    assert recipe["quality"]["images"] >= 48 and "unet" in recipe["seconds"]


def test_tiny_draws_the_asked_subject():
    """Every colour x shape pair drawn once and read back (the recipe measured colour 100%, shape 73% with two
    seeds at 25 steps)."""
    base = load_base("tiny")
    with torch.no_grad():
        quality = base_quality(base.unet, base.vae, base.text_encoder, base.tokenizer, seeds=(0,), steps=20)
    print(f"\ntiny base, one seed: colour {quality['colour']:.2f}, shape {quality['shape']:.2f}")
    assert quality["images"] == 24
    assert quality["colour"] >= 0.9 and quality["shape"] >= 0.5, quality


def test_reduced_eval_transfers_the_motion_from_the_inversion():
    """One motion, two new subjects: started from the stored inversion the new subjects follow the source's
    trajectory; from fresh noise they do not (the temporal attention has no frame-position signal, so one-shot
    tuning alone does not teach a trajectory: README)."""
    report = evaluate(EvalOptions(motions=("bouncing",), subjects=2, group_norms=("per-frame",), gen_steps=15),
                      log=lambda *a: None)
    inversion = report["variants"]["per-frame/inversion"]["overall"]
    noise = report["variants"]["per-frame/noise"]["overall"]
    print(f"\ntrajectory correlation: from the inversion {inversion['trajectory_correlation']:.2f}, "
          f"from noise {noise['trajectory_correlation']:.2f}")
    assert inversion["trajectory_correlation"] > 0.5
    assert inversion["trajectory_correlation"] > noise["trajectory_correlation"] + 0.3
    assert inversion["colour_right"] > 0.8 and inversion["trajectory_distance_px"] < noise["trajectory_distance_px"]
    assert report["best"] == "per-frame/inversion"
