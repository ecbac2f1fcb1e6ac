"""Many memes on one base, and batched generation: a batch gives each clip what it gives alone, memes swap their
adapters into one shared UNet in place, the LRU keeps what its bounds allow, and variants differ by seed."""

import math

import numpy as np
import pytest
import torch

from memestar.errors import MemeError
from memestar.runtime import GenRequest, GenSettings, Meme, MemeStore, variant_requests
from memestar.runtime.settings import LAYOUT_VARIATION, MIX_VARIATION, VARIANTS_VARIATION
from memestar.sampling.batch import bucket
from memestar.sampling.starts import layout_start, spatial_lowpass


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def two_memes(tmp_path_factory, small_meme_dir, meme_variant):
    root = tmp_path_factory.mktemp("memes")
    return meme_variant(small_meme_dir, root / "one", 1), meme_variant(small_meme_dir, root / "two", 2)


def test_a_batch_gives_each_clip_its_unbatched_latents(small_meme_dir):
    meme = Meme.load(small_meme_dir)
    prompts = ["a blue circle sliding", "a green star sliding", "a red square sliding"]
    seeds, guidances, variations = [3, 4, 5], [5.0, 7.5, 2.0], [0.0, 0.3, 1.0]
    settings = [GenSettings(seed=s, variation=v) for s, v in zip(seeds, variations)]
    x = torch.cat([meme.start_latents(s) for s in settings])  # n c f h w
    positive = torch.cat([meme.text_embedding(p) for p in prompts])
    text = torch.cat([meme.text_embedding("").expand(3, -1, -1), positive])
    for sampler in ("ddim", "dpm++"):
        batched = meme.backend.sample(sampler, 5, x, text, guidances)
        for i in range(3):
            alone = meme.backend.sample(sampler, 5, x[i : i + 1], text[[i, 3 + i]], guidances[i])
            assert relative(batched[i : i + 1], alone) < 1e-5, (sampler, i)
    unguided = meme.backend.sample("ddim", 4, x, positive, 1.0)
    assert relative(unguided[2:], meme.backend.sample("ddim", 4, x[2:], positive[2:], 1.0)) < 1e-5
    assert not torch.allclose(batched[0], batched[1])  # the clips are not one clip three times


def test_generate_batch_mixes_settings_and_keeps_order(small_meme_dir):
    meme = Meme.load(small_meme_dir)
    requests = [
        GenRequest("a blue circle sliding", GenSettings(steps=3, guidance=5.0, seed=1, variation=0.5)),
        GenRequest("a green star sliding", GenSettings(steps=2, guidance=1.0)),
        GenRequest("a red square sliding", GenSettings(steps=3, guidance=6.0, seed=2, variation=0.5)),
        GenRequest("a blue star sliding", GenSettings(steps=3, guidance=5.0, sampler="dpm++")),
    ]
    batched = meme.generate_batch(requests)
    assert [g.prompt for g in batched] == [r.prompt for r in requests]
    assert [g.batch_size for g in batched] == [2, 1, 2, 1]  # same sampler, steps and guided-or-not: one batch
    for r, g in zip(requests, batched):
        s = r.settings
        alone = meme.generate(
            r.prompt, seed=s.seed, steps=s.steps, guidance=s.guidance, sampler=s.sampler, variation=s.variation
        )
        assert np.abs(alone.frames.astype(int) - g.frames).max() <= 1  # rounding to uint8 at most
        assert g.settings == alone.settings


def test_variants_differ_by_seed_only_with_variation(small_meme_dir):
    meme = Meme.load(small_meme_dir)
    same = meme.generate_batch(variant_requests("a blue circle sliding", GenSettings(steps=3, variation=0.0), 3))
    # the stored inversion: one clip (within a level: on one thread a batch's rows may round apart)
    assert all(np.abs(same[0].frames.astype(int) - g.frames).max() <= 1 for g in same[1:])
    varied = meme.generate_batch(variant_requests("a blue circle sliding", GenSettings(steps=3), 3))
    assert [g.settings["seed"] for g in varied] == [0, 1, 2]
    assert {g.settings["variation"] for g in varied} == {VARIANTS_VARIATION}  # the default for variants
    assert meme.generate("a blue circle sliding", steps=3).settings["variation"] == 0.0  # and for one clip
    differences = [np.abs(varied[i].frames.astype(int) - varied[j].frames).mean() for i, j in ((0, 1), (1, 2))]
    assert min(differences) > 1.0
    with pytest.raises(MemeError, match="--variants is 9"):
        variant_requests("x", GenSettings(), 9)
    with pytest.raises(MemeError, match="--variation is 1.5"):
        meme.generate("x", variation=1.5)


def test_the_mix_start_is_seeded_noise_with_some_of_the_inversion(small_meme_dir):
    meme = Meme.load(small_meme_dir)
    inversion = meme.inversion.float()
    noise = meme.start_latents(GenSettings(seed=4, start="noise"))
    assert (
        meme.start_latents(GenSettings(seed=4, start="mix"))
        .sub(math.sqrt(1 - MIX_VARIATION) * inversion + math.sqrt(MIX_VARIATION) * noise)
        .abs()
        .max()
        < 1e-6
    )
    light = meme.start_latents(GenSettings(seed=4, start="mix", variation=0.9))  # a given share wins
    assert light.sub(math.sqrt(0.1) * inversion + math.sqrt(0.9) * noise).abs().max() < 1e-6
    mixed = meme.generate_batch(variant_requests("a blue circle sliding", GenSettings(steps=3, start="mix"), 2))
    assert [g.settings["variation"] for g in mixed] == [MIX_VARIATION] * 2  # recorded as the share it used
    assert not np.array_equal(mixed[0].frames, mixed[1].frames)  # each seed its own noise
    assert GenSettings(start="noise", variation=0.2).noise_share == 1.0


def test_the_layout_start_keeps_each_frames_coarse_layout_and_takes_the_detail_from_the_seed(small_meme_dir):
    meme = Meme.load(small_meme_dir)
    inversion = meme.inversion.float()
    noise = meme.start_latents(GenSettings(seed=4, start="noise"))
    layout = meme.start_latents(GenSettings(seed=4, start="layout"))
    h, w = inversion.shape[-2:]
    spectrum, inverted, noisy = (torch.fft.fft2(x) for x in (layout, inversion, noise))  # over h, w of each frame
    # each frame's mean, so where its mass is over time, is the inversion's; the finest waves are the seed's
    assert (spectrum[..., 0, 0] - inverted[..., 0, 0]).abs().max() < 1e-4 * inverted.abs().max()
    assert (spectrum[..., h // 2, w // 2] - noisy[..., h // 2, w // 2]).abs().max() < 0.02 * noisy.abs().max()
    other = meme.start_latents(GenSettings(seed=5, start="layout"))
    assert (other - layout).abs().max() > 0.1  # each seed its own detail
    # a variation of 0 is the inversion as stored, 1 the seed's noise; more variation, less of the inversion
    assert torch.equal(meme.start_latents(GenSettings(seed=4, start="layout", variation=0.0)), inversion)
    assert torch.equal(meme.start_latents(GenSettings(seed=4, start="layout", variation=1.0)), noise)
    assert torch.equal(layout_start(inversion, noise, 0.0), inversion)
    assert torch.equal(layout_start(inversion, noise, 1.0), noise)
    lowpass = spatial_lowpass(16, 16, 0.5)  # the cut where the docs put it: half of Nyquist is 4 of 16 bins
    assert lowpass[0, 0] == 1 and abs(float(lowpass[0, 4]) - 0.5) < 1e-6 and lowpass[8, 8] < 1e-3
    light = meme.start_latents(GenSettings(seed=4, start="layout", variation=0.2))
    heavy = meme.start_latents(GenSettings(seed=4, start="layout", variation=0.8))
    assert (light - inversion).norm() < (layout - inversion).norm() < (heavy - inversion).norm()
    made = meme.generate_batch(variant_requests("a blue circle sliding", GenSettings(steps=3, start="layout"), 2))
    assert [g.settings["variation"] for g in made] == [LAYOUT_VARIATION] * 2
    assert not np.array_equal(made[0].frames, made[1].frames)


def test_memes_share_one_base_and_swap_adapters_in_place(two_memes):
    store = MemeStore()
    one, two = (store.load(folder) for folder in two_memes)
    assert len(store.bases) == 1 and one.runtime is two.runtime
    unet_weights = [p.data_ptr() for p in one.runtime.video.parameters()]
    a = one.generate("a blue circle sliding", steps=3)
    b = two.generate("a blue circle sliding", steps=3)
    again = one.generate("a blue circle sliding", steps=3)
    assert not np.array_equal(a.frames, b.frames)  # each meme's own adapter ran
    assert np.array_equal(a.frames, again.frames)  # and swapping back restores it exactly
    assert [p.data_ptr() for p in one.runtime.video.parameters()] == unet_weights  # in place, same tensors
    assert one.runtime.swaps == 3 and one.runtime.last_swap_s > 0
    fresh = Meme.load(two_memes[1]).generate("a blue circle sliding", steps=3)
    assert np.array_equal(fresh.frames, b.frames)  # as a meme alone on its own base


def test_lru_keeps_its_bounds_and_reloads_changed_memes(two_memes, tmp_path, meme_variant):
    third = meme_variant(two_memes[0], tmp_path / "three", 3)
    store = MemeStore(max_memes=2)
    one = store.load(two_memes[0])
    store.load(two_memes[1])
    assert store.load(two_memes[0]) is one and store.loads == 2  # cached: no second load
    before = store.load(third)  # evicts the least recently used, "two"
    assert [m.folder.name for m in store.memes] == ["one", "three"] and store.evictions == 1
    assert store.load(two_memes[1]) is not None and store.loads == 4
    by_bytes = MemeStore(max_bytes=one.nbytes + 1)
    by_bytes.load(two_memes[0])
    by_bytes.load(two_memes[1])
    assert [m.folder.name for m in by_bytes.memes] == ["two"]
    meme_variant(two_memes[1], tmp_path / "retrained", 9).joinpath("meme.json").replace(third / "meme.json")
    for name in ("adapter.safetensors", "inversion.safetensors"):
        (tmp_path / "retrained" / name).replace(third / name)
    reloaded = store.load(third)  # retrained in place: loaded again, not served stale
    assert reloaded is not before and store.loads == 5
    assert reloaded.manifest.adapter_sha256 != before.manifest.adapter_sha256


def test_batch_buckets():
    assert [bucket(n) for n in (1, 2, 3, 4, 5, 8, 9)] == [1, 2, 4, 4, 8, 8, 9]


def test_gen_cli_writes_variants_and_prompt_files_in_batches(small_meme_dir, meme_main, tmp_path):
    import json

    code, out, err = meme_main(
        "gen",
        "a blue circle sliding",
        "--meme",
        small_meme_dir,
        "-o",
        tmp_path / "pick.gif",
        "--variants",
        "3",
        "--variation",
        "0.5",
        "--steps",
        "2",
        "--seed",
        "5",
        "--json",
    )
    assert code == 0, err
    results = json.loads(out)
    assert [r["output"] for r in results] == [str(tmp_path / n) for n in ("pick.gif", "pick-v1.gif", "pick-v2.gif")]
    assert [r["seed"] for r in results] == [5, 6, 7] and {r["batch_size"] for r in results} == {3}
    assert len({(tmp_path / n).read_bytes() for n in ("pick.gif", "pick-v1.gif", "pick-v2.gif")}) == 3
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a blue circle sliding\na green star sliding\n")
    code, out, err = meme_main(
        "gen",
        "--prompts",
        prompts,
        "--meme",
        small_meme_dir,
        "-o",
        tmp_path / "many",
        "--variants",
        "2",
        "--steps",
        "2",
        "--json",
    )
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "many").iterdir())
    assert names == [
        "000-a-blue-circle-sliding-v1.gif",
        "000-a-blue-circle-sliding.gif",
        "001-a-green-star-sliding-v1.gif",
        "001-a-green-star-sliding.gif",
    ]
    assert {r["batch_size"] for r in json.loads(out)} == {4}  # four clips, one batch
    code, _, err = meme_main("gen", "x", "--meme", small_meme_dir, "--variants", "0")
    assert code == 2 and "--variants is 0" in err
