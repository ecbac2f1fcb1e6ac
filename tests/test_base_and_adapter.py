import pytest
import torch

from memestar.errors import MemeError
from memestar.models.adapter import load_adapter, save_adapter
from memestar.models.base import load_base
from memestar.models.random_base import build_random_base
from memestar.models.video_unet import VideoUNet


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory):
    return build_random_base("random-tiny", tmp_path_factory.mktemp("other") / "random-tiny-seed1", seed=1)


def tuned(base, seed=3):
    """A video UNet whose tuned tensors moved away from their initial values."""
    video = VideoUNet(base.unet)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in video.trainable_parameters().values():
            p.add_(torch.randn_like(p) * 0.05)
    return video


def outputs(base, video, text_embedding):
    clip = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return video(clip, 400, text_embedding(base))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_adapter_round_trip_is_bit_exact(tiny_dir, tmp_path, dtype, text_embedding):
    a = load_base(str(tiny_dir))
    video_a = tuned(a)
    path = tmp_path / "adapter.safetensors"
    save_adapter(video_a, path, a.reference, a.fingerprint, dtype=dtype)
    assert not list(tmp_path.glob(".*tmp*"))
    with torch.no_grad():  # what the file can hold
        for p in video_a.trainable_parameters().values():
            p.copy_(p.to(dtype))
    b = load_base(str(tiny_dir))
    video_b = VideoUNet(b.unet)
    assert not torch.equal(outputs(a, video_a, text_embedding), outputs(b, video_b, text_embedding))
    load_adapter(video_b, path, b.reference, b.fingerprint)
    assert torch.equal(outputs(a, video_a, text_embedding), outputs(b, video_b, text_embedding))


def test_adapter_holds_only_the_tuned_tensors_in_fp16(tiny, tmp_path):
    from safetensors import safe_open

    video = tuned(tiny)
    path = tmp_path / "adapter.safetensors"
    save_adapter(video, path, tiny.reference, tiny.fingerprint)
    with safe_open(path, framework="pt") as f:
        assert set(f.keys()) == set(video.trainable_parameters())
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())


def test_adapter_on_another_base_is_refused_naming_both(tiny, other_dir, tmp_path):
    path = tmp_path / "adapter.safetensors"
    save_adapter(tuned(tiny), path, "my-base", tiny.fingerprint)
    other = load_base(str(other_dir))
    with pytest.raises(MemeError) as e:
        load_adapter(VideoUNet(other.unet), path, other.reference, other.fingerprint)
    message = str(e.value)
    assert "my-base" in message and tiny.fingerprint.id in message
    assert str(other_dir) in message and other.fingerprint.id in message
    assert tiny.fingerprint.id != other.fingerprint.id


def test_adapter_with_other_group_norm_is_refused(tiny, tmp_path):
    path = tmp_path / "adapter.safetensors"
    save_adapter(tuned(tiny), path, tiny.reference, tiny.fingerprint)
    fresh = load_base(tiny.reference)
    with pytest.raises(MemeError, match="group_norm"):
        load_adapter(VideoUNet(fresh.unet, "frames"), path, fresh.reference, fresh.fingerprint)


def test_adapter_keeps_its_frame_attention_and_old_adapters_read_as_first_previous(tiny, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "adapter.safetensors"
    fresh = load_base(tiny.reference)
    save_adapter(VideoUNet(fresh.unet, frame_attention="first-previous-self"), path, tiny.reference, tiny.fingerprint)
    sparse_causal = VideoUNet(load_base(tiny.reference).unet, frame_attention="first-previous")
    with pytest.raises(MemeError, match="frame_attention=first-previous-self.*frame_attention=first-previous"):
        load_adapter(sparse_causal, path, fresh.reference, fresh.fingerprint)
    with safe_open(path, framework="pt") as f:  # an adapter written before frame attention was a choice
        metadata = {k: v for k, v in f.metadata().items() if k != "frame_attention"}
        save_file({k: f.get_tensor(k) for k in f.keys()}, tmp_path / "old.safetensors", metadata)
    old = tmp_path / "old.safetensors"
    load_adapter(sparse_causal, old, fresh.reference, fresh.fingerprint)
    with pytest.raises(MemeError, match="frame_attention=first-previous,"):
        self_keys = VideoUNet(load_base(tiny.reference).unet, frame_attention="first-previous-self")
        load_adapter(self_keys, old, fresh.reference, fresh.fingerprint)


def test_adapter_keeps_its_frame_positions_and_old_adapters_read_as_without(tiny, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "adapter.safetensors"
    save_adapter(tuned(tiny), path, tiny.reference, tiny.fingerprint)  # the default: with frame positions
    fresh = load_base(tiny.reference)
    with pytest.raises(MemeError, match="frame_positions=true.*frame_positions=false"):
        load_adapter(VideoUNet(fresh.unet, frame_positions=False), path, fresh.reference, fresh.fingerprint)
    with safe_open(path, framework="pt") as f:  # an adapter written before frame positions existed
        metadata = {k: v for k, v in f.metadata().items() if k != "frame_positions"}
        save_file({k: f.get_tensor(k) for k in f.keys()}, tmp_path / "old.safetensors", metadata)
    load_adapter(
        VideoUNet(load_base(tiny.reference).unet, frame_positions=False),
        tmp_path / "old.safetensors",
        fresh.reference,
        fresh.fingerprint,
    )
    with pytest.raises(MemeError, match="frame_positions=false"):
        load_adapter(
            VideoUNet(load_base(tiny.reference).unet), tmp_path / "old.safetensors", fresh.reference, fresh.fingerprint
        )


def test_fingerprint_survives_precision_but_not_other_weights(tiny_dir, other_dir):
    fp32 = load_base(str(tiny_dir)).fingerprint
    assert load_base(str(tiny_dir), dtype=torch.float16).fingerprint.matches(fp32)
    assert load_base(str(tiny_dir), dtype=torch.bfloat16).fingerprint.matches(fp32)
    other = load_base(str(other_dir)).fingerprint
    assert other.arch == fp32.arch and not other.matches(fp32)
    assert type(fp32).from_dict(fp32.to_dict()).matches(fp32)


def test_built_in_random_base_loads_through_the_cache_deterministically():
    a = load_base("random-tiny")
    b = load_base("random-tiny")
    assert a.fingerprint.id == b.fingerprint.id
    assert a.scheduler_config["prediction_type"] == "epsilon"
    assert a.tokenizer.model_max_length == 77


def test_pickled_checkpoints_are_refused_unless_allowed(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    with pytest.raises(MemeError, match="--allow-pickle"):
        load_base(str(ckpt))
    with pytest.raises(MemeError):  # allowed, but not a loadable SD checkpoint
        load_base(str(ckpt), allow_pickle=True)


def test_pickled_only_folder_is_refused(tiny_dir, tmp_path):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_dir, folder)
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file

    torch.save(load_file(unet), unet.with_suffix(".bin"))
    unet.unlink()
    with pytest.raises(MemeError, match="allow-pickle"):
        load_base(str(folder))
    assert load_base(str(folder), allow_pickle=True).fingerprint.matches(load_base(str(tiny_dir)).fingerprint)


@pytest.mark.parametrize(
    "reference, message",
    [
        ("./no/such/folder", "not found"),
        ("missing.safetensors", "not found"),
        ("someone/no-such-model-offline", "not in the local Hugging Face cache"),
    ],
)
def test_unfindable_bases_get_one_clear_line(reference, message):
    with pytest.raises(MemeError, match=message) as e:
        load_base(reference)
    assert "\n" not in str(e.value)


def test_folder_missing_a_component_is_named(tiny_dir, tmp_path):
    import shutil

    folder = tmp_path / "partial"
    shutil.copytree(tiny_dir, folder)
    shutil.rmtree(folder / "vae")
    with pytest.raises(MemeError, match="lacks vae/"):
        load_base(str(folder))
