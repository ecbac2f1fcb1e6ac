"""Following the source clip's subject path while sampling (`meme gen --follow`).

Tuning and the stored inversion carry the clip's motion only partly to a new subject (README: `meme eval`). So for
the first steps of sampling (timesteps at or above `FOLLOW_UNTIL` of the training schedule), the model output is
turned into the predicted clean latents x0, the subject is measured in each frame of x0 (`subject_track`: centroid
and size of what differs from the frame's plain background), and x0 is warped per frame (a shift, and a scale) so
that the subject sits where the source clip had it; the model output is then recomputed from the warped x0, so that
every sampler takes it as it is. Only what moves in the source is held (`moving`): a subject that turns in place
keeps its own size and place. No gradient and no extra UNet pass.

Where the subject is measured (`FOLLOW_MEASURES`): on the latents themselves (`latent_subject_track`, the default:
no decoder in the loop, elementwise work only), or on the frames the VAE decodes from x0 (`pixels`: one decode per
followed step, about as much work as the UNet's at SD1.5 size). On the tiny world's 120 clips the latent measure
agrees with the pixel one to 0.006 / 0.012 half-widths in x / y and 0.03 in size (mean; 0.015 / 0.037 / 0.07 at
the 95th percentile), closer in size than the pixels the VAE decodes from the same latents (0.044):
`tests/test_follow.py` holds it.

The measure assumes one subject on a plain background (the sticker's world): `plain_background` says whether a clip
has one, and `meme train` stores a track only for clips that do.
"""

import torch
import torch.nn.functional as F

from .ddim import alphas_cumprod

SHARPEN = 0.3  # the share of each frame's largest difference taken off: the subject's body, not its soft edge
MOVING_STD = 2 / 63  # a quantity moves in the source when its std over frames is above this (1 px of a 64-px frame)
MIN_SCALE, MAX_SCALE = 0.5, 2.0  # how far one step may shrink or grow a frame's subject
FOLLOW_UNTIL = 0.3  # followed while the timestep is at or above this share of training's: about the first 70%
PLAIN_DISTANCE = 32.0  # a border pixel within this RGB distance (0-255) of the frame's median is background
PLAIN_SHARE = 0.9  # a clip has a plain background when this share of its border pixels are background
# Latents are measured upsampled this many times (bilinear): sub-cell sizes. On the tiny world's clips the size's mean
# error against the pixel track is 0.049 half-widths at the latent grid, 0.030 upsampled 2x, 0.031 at 4x
# (bicubic 0.039); the centroids agree to 0.006-0.012 at every factor.
LATENT_UPSAMPLE = 2


def _distance_from_median(x: torch.Tensor) -> torch.Tensor:
    """`(m, c, h, w)` -> `(m, h, w)`: each cell's distance, over the channels, from its image's median."""
    background = x.flatten(2).median(dim=2).values[:, :, None, None]
    return (x - background).norm(dim=1)


def _difference(pixels: torch.Tensor) -> torch.Tensor:
    """`(n, f, H, W, 3)` frames in [0, 255] -> `(n f, H, W)`: each pixel's RGB distance from its frame's median."""
    return _distance_from_median(pixels.float().flatten(0, 1).permute(0, 3, 1, 2))  # (n f) 3 H W


def _track(e: torch.Tensor, cell_px: float, frame_px: int) -> torch.Tensor:
    """`(m, h, w)` distances from the background on a grid of cells `cell_px` pixels wide over a `frame_px`-pixel
    frame -> `(m, 3)`: centroid x, y and size in half-widths of the frame (pixel centres span [-1, 1])."""
    e = (e - SHARPEN * e.amax((1, 2), keepdim=True)).clamp(min=0) + 1e-6  # m h w
    p = e / e.sum((1, 2), keepdim=True)
    h, w = e.shape[1:]
    half_width = 2 / (frame_px - 1)
    ys = ((torch.arange(h, device=e.device) + 0.5) * cell_px - 0.5) * half_width - 1
    xs = ((torch.arange(w, device=e.device) + 0.5) * cell_px - 0.5) * half_width - 1
    size = (e.sum((1, 2)) / e.amax((1, 2))).sqrt() * cell_px * half_width
    return torch.stack([(p * xs[None, :]).sum((1, 2)), (p * ys[:, None]).sum((1, 2)), size], 1)


def subject_track(pixels: torch.Tensor) -> torch.Tensor:
    """`(n, f, H, W, 3)` frames in [0, 255] -> `(n, f, 3)`: per frame the subject's centroid x, y and its size
    (the side of a square of its area), in half-widths: the frame spans [-1, 1]."""
    n, f, _, w, _ = pixels.shape
    return _track(_difference(pixels), 1, w).view(n, f, 3)


def latent_subject_track(latents: torch.Tensor, vae_scale: int) -> torch.Tensor:
    """`subject_track` measured on latents `(n, c, f, h, w)` (`vae_scale` pixels a cell) instead of their decoded
    frames: each cell's distance from the frame's median latent, over the latent channels."""
    n, c, f, h, w = latents.shape
    z = latents.float().transpose(1, 2).flatten(0, 1)  # (n f) c h w
    z = F.interpolate(z, scale_factor=LATENT_UPSAMPLE, mode="bilinear", align_corners=False)
    return _track(_distance_from_median(z), vae_scale / LATENT_UPSAMPLE, w * vae_scale).view(n, f, 3)


def plain_background(frames: torch.Tensor) -> bool:
    """Whether a clip `(f, H, W, 3)` is one subject on a plain background, as `subject_track` needs: most of every
    frame's border is the frame's median colour."""
    e = _difference(frames[None])  # f H W
    ring = max(1, e.shape[-1] // 16)
    border = torch.cat(
        [e[:, :ring].flatten(1), e[:, -ring:].flatten(1), e[:, :, :ring].flatten(1), e[:, :, -ring:].flatten(1)], 1
    )
    return bool((border < PLAIN_DISTANCE).float().mean() >= PLAIN_SHARE)


def moving(track: torch.Tensor) -> torch.Tensor:
    """`(n, f, 3)` tracks -> `(n, 3)` bool: which of x, y and size move over the frames."""
    return track.std(dim=1) > MOVING_STD


def warp_to_track(x0: torch.Tensor, current: torch.Tensor, target: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """Latents `(n, c, f, h, w)` warped per frame so that the subject measured at `current` `(n, f, 3)` moves to
    `target` `(n, f, 3)`, in the quantities `held` `(n, 3)`; the others stay as they are."""
    n, c, f, h, w = x0.shape
    held = held[:, None, :].expand(n, f, 3)
    target = torch.where(held, target, current).flatten(0, 1)  # (n f) 3
    current = current.flatten(0, 1)
    scale = torch.where(held[..., 2].flatten(), (current[:, 2] / target[:, 2]).clamp(MIN_SCALE, MAX_SCALE), 1.0)
    theta = torch.zeros(n * f, 2, 3, device=x0.device, dtype=x0.dtype)  # output place -> where it is read from
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = current[:, :2] - scale[:, None] * target[:, :2]
    x = x0.transpose(1, 2).flatten(0, 1)  # (n f) c h w
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return x.view(n, f, c, h, w).transpose(1, 2)


def followed_steps(timesteps: list[int], scheduler_config: dict) -> int:
    """How many of a schedule's steps (timesteps high noise first) follow the track: the first ones, down to
    `FOLLOW_UNTIL` of training's timesteps."""
    return sum(t >= FOLLOW_UNTIL * scheduler_config.get("num_train_timesteps", 1000) for t in timesteps)


def following(model_fn, measure, track: torch.Tensor, scheduler_config: dict, timesteps: list[int]):
    """`model_fn(x, t)` (a sampler's model output for latents `(n, c, f, h, w)`) that holds the subject on `track`
    `(n, f, 3)` in the steps it follows, for one run of a sampler over `timesteps` (its steps, as Python ints: it
    counts its calls, one per step, so that it decides on the host with no device sync and a CUDA graph can capture
    it). `measure(x0)` -> `(n, f, 3)`: where the subject is in predicted clean latents (`latent_subject_track`, or
    `subject_track` of their decoded frames)."""
    acp = alphas_cumprod(scheduler_config)
    alphas = [float(acp[t]) for t in timesteps[: followed_steps(timesteps, scheduler_config)]]
    v_prediction = scheduler_config.get("prediction_type", "epsilon") == "v_prediction"
    held = moving(track)
    calls = iter(range(len(timesteps)))

    def model_fn_following(x, t):
        out, step = model_fn(x, t), next(calls)
        if step >= len(alphas):  # late steps draw detail where the subject already is
            return out
        a, b = alphas[step] ** 0.5, (1 - alphas[step]) ** 0.5
        x0 = a * x - b * out if v_prediction else (x - b * out) / a
        x0 = warp_to_track(x0, measure(x0), track, held)
        eps = (x - a * x0) / b
        return a * eps - b * x0 if v_prediction else eps

    return model_fn_following
