"""What only a GPU can show (`pytest -m gpu`, run by `make gpu-check`; skipped without CUDA, deselected by default).

- the whole denoising loop captured as a CUDA graph equals the same loop run eagerly, in fp16 and bf16, and a
  replay follows new inputs;
- a batch of 3 clips in the CUDA graph of bucket 4 gives each clip what it gives alone;
- two memes share one base on the GPU, swapping adapters in place;
- torch.compile's UNet is as close to fp32 as eager bf16 is;
- a bf16/fp16 training step reaches every tuned tensor, with gradient checkpointing and without, and
  checkpointing lowers the peak memory of an SD1.5-size step;
- `meme train` and `meme gen` run on the GPU through the CLI, and the same settings give the same bytes.
"""

import json

import numpy as np
import pytest
import torch

from memestar.models.base import load_base
from memestar.models.text import encode_prompts
from memestar.models.video_unet import VideoUNet
from memestar.runtime import GenRequest, GenSettings, Meme, MemeStore

pytestmark = pytest.mark.gpu
PROMPT = "a blue circle sliding"
TOLERANCE = {"fp16": 1e-2, "bf16": 3e-2}  # relative to the largest value: half precisions, same kernels


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


@pytest.fixture(scope="module")
def meme_dir(tmp_path_factory, make_small_meme):
    return make_small_meme(tmp_path_factory.mktemp("gpu"))  # trained on the GPU: device and precision auto


def guided_text(meme: Meme, prompt: str = PROMPT) -> torch.Tensor:
    return torch.cat([meme.text_embedding(""), meme.text_embedding(prompt)])


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_graph_loop_equals_eager_and_follows_new_inputs(meme_dir, precision):
    graphs = Meme.load(meme_dir, device="cuda", precision=precision, backend="torch", cuda_graphs=True)
    eager = Meme.load(meme_dir, device="cuda", precision=precision, backend="torch", cuda_graphs=False)
    assert graphs.backend.cuda_graphs and not eager.backend.cuda_graphs
    x = graphs.inversion.float()
    for prompt, guidance in ((PROMPT, 5.0), ("a green star sliding", 7.5), (PROMPT, 5.0)):  # capture, then replays
        a = graphs.backend.sample("ddim", 8, x, guided_text(graphs, prompt), guidance)
        b = eager.backend.sample("ddim", 8, x, guided_text(eager, prompt), guidance)
        assert a.dtype == torch.float32 and torch.isfinite(a).all()
        assert relative(a, b) < TOLERANCE[precision], (prompt, guidance)
    assert len(graphs.backend._graphs) == 1  # one capture, replayed
    unguided = graphs.backend.sample("dpm++", 6, x, graphs.text_embedding(PROMPT), 1.0)
    assert (
        relative(unguided, eager.backend.sample("dpm++", 6, x, eager.text_embedding(PROMPT), 1.0))
        < TOLERANCE[precision]
    )


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_a_batch_in_its_graph_bucket_equals_each_clip_alone(meme_dir, precision):
    meme = Meme.load(meme_dir, device="cuda", precision=precision, backend="torch")
    x = torch.cat([meme.start_latents(GenSettings(seed=s, variation=0.3)) for s in range(3)])
    positive = torch.cat([meme.text_embedding(p) for p in (PROMPT, "a green star sliding", "a red square sliding")])
    text = torch.cat([meme.text_embedding("").expand(3, -1, -1), positive])
    guidance = [5.0, 6.0, 7.0]
    batched = meme.backend.sample("ddim", 6, x, text, guidance)  # 3 clips: the graph of batch 4, padded
    for i in range(3):
        alone = meme.backend.sample("ddim", 6, x[i : i + 1], text[[i, 3 + i]], guidance[i])
        assert relative(batched[i : i + 1], alone) < TOLERANCE[precision], i
    assert sorted(key[2][0] for key in meme.backend._graphs) == [1, 4]  # one capture per bucket


def test_warm_up_captures_every_bucket_so_requests_capture_nothing(meme_dir):
    meme = Meme.load(meme_dir, device="cuda", backend="torch")
    took = meme.warm_up((1, 2, 4, 8), GenSettings(steps=3))
    assert list(took) == [1, 2, 4, 8]
    captured = dict(meme.backend._graphs)
    assert sorted(key[2][0] for key in captured) == [1, 2, 4, 8]
    meme.generate_batch([GenRequest(PROMPT, GenSettings(steps=3, seed=s)) for s in range(3)])  # bucket 4
    assert meme.backend._graphs.keys() == captured.keys()


def test_two_memes_share_one_base_and_swap_adapters_on_the_gpu(meme_dir, meme_variant, tmp_path):
    store = MemeStore(device="cuda")
    one, two = store.load(meme_dir), store.load(meme_variant(meme_dir, tmp_path / "two", 1))
    a, b, again = (m.generate(PROMPT, steps=4).frames for m in (one, two, one))
    assert len(store.bases) == 1 and one.runtime.swaps >= 2
    assert np.abs(a.astype(int) - b).mean() > 1 and np.abs(a.astype(int) - again).max() <= 1
    assert one.runtime.last_swap_s < 0.05


def test_compiled_unet_is_as_close_to_fp32_as_eager(meme_dir):
    # inductor fuses and accumulates differently, so compiled and eager bf16 differ by bf16 rounding, which six
    # guided steps amplify (0.08 of the largest value on an H100): both are held against an fp32 reference instead
    compiled = Meme.load(meme_dir, device="cuda", precision="bf16", backend="torch", compile=True)
    eager = Meme.load(meme_dir, device="cuda", precision="bf16", backend="torch", cuda_graphs=False)
    reference = Meme.load(meme_dir, device="cuda", precision="fp32", backend="torch", cuda_graphs=False)
    x = eager.inversion.float()
    a = compiled.backend.sample("ddim", 6, x, guided_text(compiled), 5.0)
    b = eager.backend.sample("ddim", 6, x, guided_text(eager), 5.0)
    r = reference.backend.sample("ddim", 6, x, guided_text(reference), 5.0)
    assert torch.isfinite(a).all()
    assert relative(a, r) < max(1.5 * relative(b, r), TOLERANCE["bf16"]), (relative(a, r), relative(b, r))
    assert compiled.backend.cuda_graphs  # the compiled UNet was captured in the loop's graph, not run around it


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_every_tuned_tensor_gets_a_gradient_on_the_gpu(dtype, checkpointing):
    base = load_base("random-tiny", device="cuda", dtype=dtype)
    video = VideoUNet(base.unet)
    video.set_trainable()
    params = video.trainable_parameters()
    for name, p in params.items():
        p.data = p.data.float()  # fp32 master weights, as `tune` keeps them
        if "attn_temp.to_out" in name:  # away from zero, so the temporal q/k/v get a gradient too
            torch.nn.init.normal_(p, std=0.05)
    if checkpointing:
        video.unet.enable_gradient_checkpointing()
    video.train()
    clip = torch.randn(1, 4, 4, 8, 8, device="cuda")
    text = encode_prompts(base.tokenizer, base.text_encoder, [PROMPT])
    with video.frames(4):
        with torch.autocast("cuda", dtype=dtype):
            loss = video(clip.to(dtype), torch.tensor([500], device="cuda"), text).float().square().mean()
        loss.backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name


def sd15_step_peak(checkpointing: bool, frames: int = 8, size: int = 256) -> int:
    base = load_base("random-sd15", device="cuda", dtype=torch.bfloat16)
    video = VideoUNet(base.unet)
    video.set_trainable()
    for p in video.trainable_parameters().values():
        p.data = p.data.float()
    if checkpointing:
        video.unet.enable_gradient_checkpointing()
    video.train()
    side = size // 8
    clip = torch.randn(1, 4, frames, side, side, device="cuda", dtype=torch.bfloat16)
    text = torch.randn(1, 77, 768, device="cuda", dtype=torch.bfloat16)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    with video.frames(frames), torch.autocast("cuda", dtype=torch.bfloat16):
        video(clip, torch.tensor([500], device="cuda"), text).float().square().mean().backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del base, video
    torch.cuda.empty_cache()
    return peak


def test_gradient_checkpointing_lowers_the_peak_memory_of_an_sd15_step():
    plain, checkpointed = sd15_step_peak(False), sd15_step_peak(True)
    print(
        f"\nSD1.5 video UNet, 8 frames at 256 px, bf16 step: peak {plain / 2**30:.2f} GiB, "
        f"{checkpointed / 2**30:.2f} GiB with checkpointing"
    )
    assert checkpointed < 0.8 * plain


def test_train_and_gen_through_the_cli_on_the_gpu(meme_main, tmp_path, sliding_square):
    from memestar.media.writers import write_gif

    clip = write_gif(sliding_square(), tmp_path / "slide.gif", fps=8)
    code, out, err = meme_main(
        "train",
        clip,
        "--text",
        "a red square sliding",
        "--base",
        "random-tiny",
        "--frames",
        8,
        "--size",
        64,
        "--steps",
        20,
        "--lr",
        "1e-3",
        "--out",
        tmp_path / "m",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["device"].startswith("cuda") and json.loads(out)["precision"] == "bfloat16"
    outputs = []
    for name in ("a", "b"):
        code, out, err = meme_main(
            "gen", PROMPT, "--meme", tmp_path / "m", "-o", tmp_path / f"{name}.gif", "--steps", 10, "--json", "--quiet"
        )
        assert code == 0, err
        outputs.append((tmp_path / f"{name}.gif").read_bytes())
    assert '"backend": "torch"' in out
    assert outputs[0] == outputs[1]
