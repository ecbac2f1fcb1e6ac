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
