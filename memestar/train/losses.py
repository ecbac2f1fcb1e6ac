"""Tuning losses that teach the temporal layers the clip's motion, not only its look.

- `mse`: the denoising loss of Tune-A-Video, over every frame.
- `debiased`: MotionDirector's appearance-debiased temporal loss: from each frame's prediction and target,
  subtract an anchor frame's (beta = 1) after scaling by alpha = sqrt(beta^2 + 1), so what every frame shares
  (appearance) weighs (alpha - beta)^2 = 0.17 of what it weighs in `mse`, and what differs between frames
  (motion) keeps its weight.
- `residual`: VMC's motion distillation: 1 - cosine similarity between the predicted and the true frame-to-frame
  differences, per pair of consecutive frames; what all frames share cancels out entirely.
A run combines them with weights, "mse=1,debiased=1" (`options.parse_motion_loss`); the anchor frame comes from the
step's generator, so a resumed run repeats the same choices.
"""

import math

import torch
import torch.nn.functional as F

DEBIAS_BETA = 1.0


def debiased_loss(pred: torch.Tensor, target: torch.Tensor, anchor: int, beta: float = DEBIAS_BETA) -> torch.Tensor:
    """`pred`, `target`: b c f h w. MSE after alpha * x - beta * x[anchor frame] on both."""
    alpha = math.sqrt(beta**2 + 1)
    pred = alpha * pred - beta * pred[:, :, anchor : anchor + 1]
    target = alpha * target - beta * target[:, :, anchor : anchor + 1]
    return F.mse_loss(pred, target)


def residual_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`pred`, `target`: b c f h w. Mean of 1 - cos between the frame-to-frame differences of each."""
    if pred.shape[2] < 2:
        return pred.new_zeros(())
    dp = (pred[:, :, 1:] - pred[:, :, :-1]).transpose(1, 2).flatten(2)  # b (f-1) (c h w)
    dt = (target[:, :, 1:] - target[:, :, :-1]).transpose(1, 2).flatten(2)
    return (1 - F.cosine_similarity(dp, dt, dim=-1, eps=1e-8)).mean()


def motion_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: dict[str, float], generator: torch.Generator
) -> torch.Tensor:
    """The weighted sum of the chosen losses (fp32); the anchor frame drawn from `generator`."""
    pred, target = pred.float(), target.float()
    total = pred.new_zeros(())
    for name, weight in weights.items():
        if name == "mse":
            total = total + weight * F.mse_loss(pred, target)
        elif name == "debiased":
            anchor = int(torch.randint(0, pred.shape[2], (1,), generator=generator, device=generator.device))
            total = total + weight * debiased_loss(pred, target, anchor)
        else:
            total = total + weight * residual_loss(pred, target)
    return total
