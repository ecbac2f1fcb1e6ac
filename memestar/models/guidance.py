"""Classifier-free guidance as one batch of two, shared by training's inversion, the runtime and the bench."""

import torch


def guided_output(model, x: torch.Tensor, t, text: torch.Tensor, guidance) -> torch.Tensor:
    """`model(x, t, text)` with guidance: `text` holds the unconditional embeddings then the conditional ones
    (twice x's batch), or the conditional ones alone (x's batch) for no guidance."""
    if len(text) == len(x):
        return model(x, t, text)
    u, c = model(torch.cat([x, x]), t, text).chunk(2)
    return u + guidance * (c - u)
