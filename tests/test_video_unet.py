import copy

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from memestar.models.attention import SparseCausalAttnProcessor, frame_position_encoding
from memestar.models.frame_context import FrameContext
from memestar.models.random_base import _CONFIGS
from memestar.models.video_unet import VideoUNet


def video_latents(b=1, f=5, seed=0, size=8):
    return torch.randn(b, 4, f, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("group_norm", ["frames", "per-frame"])
def test_identical_frames_equal_the_image_unet(tiny, group_norm, text_embedding):
    image_unet = copy.deepcopy(tiny.unet)
    video = VideoUNet(tiny.unet, group_norm)
    text = text_embedding(tiny)
    frame = video_latents(f=1)
    clip = frame.expand(-1, -1, 6, -1, -1).contiguous()
    with torch.no_grad():
        out = video(clip, 321, text)
        ref = image_unet(frame[:, :, 0], 321, text).sample
    assert out.shape == clip.shape
    assert (out - ref[:, :, None]).abs().max() < 1e-5


def test_frame_positions_are_distinct_bounded_and_start_at_sin0_cos0():
    p = frame_position_encoding(24, 32, torch.float32, torch.device("cpu"))
    assert p.shape == (24, 32) and p.abs().max() <= 1
    assert torch.equal(p[0], torch.tensor([0.0, 1.0] * 16))
    assert torch.cdist(p, p).add(torch.eye(24)).min() > 0.1  # no two frames alike
    assert frame_position_encoding(5, 7, torch.float16, torch.device("cpu")).shape == (5, 7)  # odd widths too


@pytest.mark.parametrize("positions", [True, False])
def test_only_frame_positions_let_temporal_attention_tell_identical_frames_apart(tiny, text_embedding, positions):
    """Tuned temporal attention on a clip of one repeated frame: without positions every frame comes out alike (it
    cannot learn "where at frame i"); with them the frames differ."""
    video = VideoUNet(tiny.unet, frame_positions=positions)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in video.unet.named_parameters():
            if "attn_temp.to_out" in name:
                p.normal_(std=0.05)
        clip = video_latents(f=1).expand(-1, -1, 4, -1, -1).contiguous()
        out = video(clip, 321, text_embedding(tiny))
    spread = (out - out[:, :, :1]).abs().max()
    assert (spread > 1e-4) if positions else (spread < 1e-6)


def test_inflation_is_deterministic(tiny_dir):
    from memestar.models.base import load_base

    a, b = (VideoUNet(load_base(str(tiny_dir)).unet).unet.state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)


def slow_sparse_causal(attn: Attention, x: torch.Tensor, f: int, own_frame: bool = False) -> torch.Tensor:
    """Frame by frame, head by head, with an explicit softmax."""
    bf, n, c = x.shape
    heads, d = attn.heads, c // attn.heads
    out = torch.empty_like(x)
    for b in range(bf // f):
        frames = x[b * f : (b + 1) * f]
        for i in range(f):
            q = attn.to_q(frames[i])
            kv_in = torch.cat([frames[0], frames[max(i - 1, 0)], *([frames[i]] if own_frame else [])])
            k, v = attn.to_k(kv_in), attn.to_v(kv_in)
            per_head = []
            for h in range(heads):
                s = slice(h * d, (h + 1) * d)
                weights = torch.softmax(q[:, s] @ k[:, s].T / d**0.5, dim=-1)
                per_head.append(weights @ v[:, s])
            out[b * f + i] = attn.to_out[0](torch.cat(per_head, dim=-1))
    return out


def sparse_causal_attention(f: int, own_frame: bool = False):
    torch.manual_seed(0)
    attn = Attention(query_dim=32, heads=4, dim_head=8)
    ctx = FrameContext()
    attn.set_processor(SparseCausalAttnProcessor(ctx, own_frame))
    return attn, ctx


@pytest.mark.parametrize("own_frame", [False, True])
def test_sparse_causal_matches_slow_reference(own_frame):
    f = 5
    attn, ctx = sparse_causal_attention(f, own_frame)
    x = torch.randn(2 * f, 6, 32)
    with torch.no_grad(), ctx.use(f):
        out = attn(x)
        assert (out - slow_sparse_causal(attn, x, f, own_frame)).abs().max() < 1e-5
        assert (out - slow_sparse_causal(attn, x, f, not own_frame)).abs().max() > 1e-3  # the keys tell them apart


def test_frame_attention_is_the_video_unets_and_checked(tiny):
    processors = {
        type(p).__name__: p
        for p in VideoUNet(tiny.unet, frame_attention="first-previous-self").unet.attn_processors.values()
    }
    assert processors["SparseCausalAttnProcessor"].own_frame is True
    with pytest.raises(ValueError, match="frame_attention"):
        VideoUNet(tiny.unet, frame_attention="every-frame")  # refused before any surgery


def test_frame_sees_only_first_previous_and_itself():
    f = 6
    attn, ctx = sparse_causal_attention(f)
    x = torch.randn(f, 6, 32)
    with torch.no_grad(), ctx.use(f):
        base = attn(x)
        for i in range(f):
            for j in range(f):
                changed = x.clone()
                changed[j] += torch.randn(6, 32)
                moved = (attn(changed)[i] - base[i]).abs().max()
                if j in (0, max(i - 1, 0), i):
                    assert moved > 1e-3, (i, j)
                else:
                    assert moved == 0, (i, j)


def test_video_unet_is_causal_over_frames_with_per_frame_norm(tiny, text_embedding):
    """Sparse-causal attention only looks back: later frames cannot reach earlier outputs."""
    video = VideoUNet(tiny.unet, "per-frame")
    text = text_embedding(tiny)
    clip = video_latents(f=5)
    changed = clip.clone()
    changed[:, :, 3:] += 1.0
    with torch.no_grad():
        a, b = video(clip, 500, text), video(changed, 500, text)
    assert (a[:, :, :3] - b[:, :, :3]).abs().max() == 0
    assert (a[:, :, 3:] - b[:, :, 3:]).abs().max() > 1e-3


def test_temporal_attention_mixes_all_frames_once_trained(tiny, text_embedding):
    video = VideoUNet(tiny.unet, "per-frame")
    text = text_embedding(tiny)
    torch.manual_seed(1)
    for name, p in video.unet.named_parameters():
        if "attn_temp.to_out" in name:
            torch.nn.init.normal_(p, std=0.05)
    clip = video_latents(f=5)
    changed = clip.clone()
    changed[:, :, 4] += 1.0
    with torch.no_grad():
        a, b = video(clip, 500, text), video(changed, 500, text)
    assert (a[:, :, 0] - b[:, :, 0]).abs().max() > 1e-4  # frame 0 now hears frame 4


def test_frame_spanning_group_norm_pools_statistics_over_frames(tiny, text_embedding):
    spanning = VideoUNet(copy.deepcopy(tiny.unet), "frames")
    per_frame = VideoUNet(tiny.unet, "per-frame")
    text = text_embedding(tiny)
    clip = video_latents(f=4)
    with torch.no_grad():
        assert (spanning(clip, 500, text) - per_frame(clip, 500, text)).abs().max() > 1e-4


def trainable_names(video):
    return {n for n, p in video.unet.named_parameters() if p.requires_grad}


def test_trainable_set_is_exactly_the_named_tensors(tiny):
    video = VideoUNet(tiny.unet)
    video.unet.requires_grad_(True)
    video.set_trainable()
    names = trainable_names(video)
    assert names == set(video.trainable_parameters())
    for n in names:
        assert any(part in n for part in (".attn1.to_q.", ".attn2.to_q.", ".attn_temp.", ".norm_temp."))
    blocks = sum(1 for n in names if n.endswith("attn1.to_q.weight"))
    assert blocks > 0
    assert sum(1 for n in names if n.endswith("attn2.to_q.weight")) == blocks
    assert sum(1 for n in names if n.endswith("attn_temp.to_out.0.weight")) == blocks
    assert not any("to_k" in n and "attn_temp" not in n for n in names)
    assert not any(n.startswith(("conv_in", "time_embedding", "conv_out")) for n in names)


def loss_and_grads(video, clip, text):
    video.zero_grad(set_to_none=True)
    with video.frames(clip.shape[2]):  # checkpointing recomputes during backward: the count must hold there too
        loss = video(clip, 500, text).square().mean()
        loss.backward()
    return {n: p.grad for n, p in video.trainable_parameters().items()}


def test_the_frame_count_exists_only_inside_a_clip_run(tiny, text_embedding):
    """The 2D layers cannot be called with a count left over from the last clip, and a run cannot change length."""
    video = VideoUNet(tiny.unet)
    text = text_embedding(tiny)
    with torch.no_grad():
        video(video_latents(f=3), 500, text)
        with pytest.raises(RuntimeError, match="frame count is unset"):
            video.unet(torch.randn(3, 4, 8, 8), 500, text.expand(3, -1, -1))
        with video.frames(3), pytest.raises(RuntimeError, match="5-frame clip inside a 3-frame run"):
            video(video_latents(f=5), 500, text)
        with video.frames(4):
            assert video(video_latents(f=4), 500, text).shape == (1, 4, 4, 8, 8)


def test_checkpointed_backward_outside_the_run_is_an_error_not_a_wrong_count(tiny, text_embedding):
    video = VideoUNet(tiny.unet)
    video.set_trainable()
    video.train()
    video.unet.enable_gradient_checkpointing()
    loss = video(video_latents(f=3), 500, text_embedding(tiny)).square().mean()
    with pytest.raises(RuntimeError, match="frame count is unset"):
        loss.backward()


def test_every_trainable_tensor_learns_with_and_without_checkpointing(tiny, text_embedding):
    video = VideoUNet(tiny.unet)
    video.set_trainable()
    torch.manual_seed(2)
    for name, p in video.unet.named_parameters():
        if "attn_temp.to_out" in name:  # at zero, the temporal q/k/v get exactly zero gradient
            torch.nn.init.normal_(p, std=0.05)
    text, clip = text_embedding(tiny), video_latents(f=3)
    video.train()
    plain = loss_and_grads(video, clip, text)
    video.unet.enable_gradient_checkpointing()
    checkpointed = loss_and_grads(video, clip, text)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        assert plain[name] is not None and plain[name].abs().max() > 0, name
        assert torch.allclose(plain[name], checkpointed[name], rtol=1e-4, atol=1e-7), name
    frozen = {n: p.clone() for n, p in video.unet.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in video.trainable_parameters().items()}
    torch.optim.SGD(video.trainable_parameters().values(), lr=1.0).step()
    for n, p in video.trainable_parameters().items():
        assert not torch.equal(p, before[n]), n
    for n, p in video.unet.named_parameters():
        if n in frozen:
            assert p.grad is None and torch.equal(p, frozen[n]), n


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precisions_run_close_to_fp32(tiny, dtype, text_embedding):
    video = VideoUNet(tiny.unet)
    text, clip = text_embedding(tiny), video_latents(f=3)
    with torch.no_grad():
        ref = video(clip, 500, text)
        video.to(dtype)
        out = video(clip.to(dtype), 500, text.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_sd15_parameter_counts(capsys):
    """The full SD1.5 UNet, built on the meta device: counts from its shapes, no memory."""
    with torch.device("meta"):
        unet = UNet2DConditionModel(**_CONFIGS["random-sd15"]["unet"])
        counts = VideoUNet(unet).parameter_counts()
    # 16 transformer blocks: 5 at 320, 5 at 640, 6 at 1280 channels. Temporal attention per block:
    # q, k, v, out (4 d^2) + out bias (d) + LayerNorm (2 d); trained to_q of attn1 and attn2: 2 d^2.
    dims = [320] * 5 + [640] * 5 + [1280] * 6
    temporal = sum(4 * d * d + 3 * d for d in dims)
    assert counts["temporal"] == temporal == 49_599_040
    assert counts["trainable"] == temporal + sum(2 * d * d for d in dims) == 74_379_840
    assert counts["total"] == 859_520_964 + temporal
    with capsys.disabled():
        print(
            f"\nSD1.5 video UNet: {counts['total'] / 1e6:.2f} M parameters, "
            f"{counts['temporal'] / 1e6:.2f} M temporal, {counts['trainable'] / 1e6:.2f} M trainable"
        )
