"""Classifier-free guidance as one batch of two, shared by training's inversion, the runtime and the bench."""

import torch


def guided_output(model, x: torch.Tensor, t, text: torch.Tensor, guidance) -> torch.Tensor:
    """`model(x, t, text)` with guidance: `text` holds the unconditional embeddings then the conditional ones
    (twice x's batch), or the conditional ones alone (x's batch) for no guidance. `guidance`: a number, or a
    tensor of one scale `(1,)` or one per clip `(n,)`."""
    if len(text) == len(x):
        return model(x, t, text)
    if torch.is_tensor(guidance) and guidance.dim() == 1 and len(guidance) > 1:
        guidance = guidance.view(-1, *[1] * (x.dim() - 1))  # n 1 1 1 1
    u, c = model(torch.cat([x, x]), t, text).chunk(2)
    return u + guidance * (c - u)


def guided_steps(timesteps: list[int], scheduler_config: dict, until: float) -> list[bool]:
    """Per step of a schedule (its timesteps, high noise first), whether it runs guidance: while the timestep is at or
    above `until` of training's (0: every step). The steps past it run the conditional half alone, at half the
    UNet's work: guidance shapes the subject early, and late steps draw detail (a guidance interval, Kynkäänniemi et
    al. 2024, truncated at its low end)."""
    first = until * scheduler_config.get("num_train_timesteps", 1000)
    return [t >= first for t in timesteps]
