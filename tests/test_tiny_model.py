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


def test_reduced_eval_tuning_adds_motion_and_the_inversion_carries_it():
    """One motion, two new subjects. Tuned and started from the stored inversion, the new subjects follow the
    source's trajectory closer than an untuned meme started from its own inversion does; from fresh noise they
    do not follow it at all; the mix keeps some of it and gives each seed its own clip (README: `meme eval`)."""
    report = evaluate(EvalOptions(motions=("sliding",), subjects=2, gen_steps=(15,)), log=lambda *a: None)
    scores = {name.split(" / ")[0] + "/" + name.split(" / ")[1]: v["overall"] for name, v in report["variants"].items()}
    tuned, mix, noise = scores["mse/inversion"], scores["mse/mix"], scores["mse/noise"]
    untuned = scores["untuned/inversion"]
    print("\n" + ", ".join(f"{k}: corr {v['trajectory_correlation']:.2f} shape {v['shape_right']:.2f} "
                           f"variety {v['variety']:.1f}" for k, v in scores.items()))
    assert tuned["trajectory_correlation"] > untuned["trajectory_correlation"] + 0.1
    assert tuned["trajectory_distance_px"] < untuned["trajectory_distance_px"]
    assert tuned["trajectory_correlation"] > 0.8
    assert tuned["trajectory_correlation"] > noise["trajectory_correlation"] + 0.3
    assert mix["trajectory_correlation"] > noise["trajectory_correlation"] + 0.2
    assert tuned["colour_right"] > 0.8 and tuned["source_absent"] > 0.9
    assert tuned["variety"] == 0 and mix["variety"] > 1  # the inversion: one clip whatever the seed
    assert report["best"].startswith("mse / inversion")
