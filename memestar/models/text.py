"""Prompts to CLIP text embeddings, as SD conditions its UNet on them."""

import torch
from transformers import CLIPTextModel, CLIPTokenizer
from transformers.masking_utils import create_causal_mask


@torch.no_grad()
def encode_prompts(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, prompts: list[str]) -> torch.Tensor:
    """(len(prompts), 77, d): the last hidden state, padded to the tokenizer's length."""
    ids = tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    return text_encoder(ids.to(text_encoder.device))[0]


def truncation_warning(tokenizer: CLIPTokenizer, prompt: str) -> str | None:
    """A sentence naming what the tokenizer's length limit cuts from `prompt`, or None when it all fits."""
    ids = tokenizer(prompt, truncation=False).input_ids  # with the start and end tokens
    limit = tokenizer.model_max_length
    if len(ids) <= limit:
        return None
    dropped = tokenizer.decode(ids[limit - 1 : -1]).strip()
    return f"the prompt is {len(ids)} tokens, over the limit of {limit}: dropped {dropped!r}"


def add_token(tokenizer, text_encoder, token: str) -> int:
    """`token` as a word of its own in the tokenizer and a row of the embedding table (added once); its row's index."""
    if token not in tokenizer.get_vocab():
        tokenizer.add_tokens([token])
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return tokenizer.convert_tokens_to_ids(token)


def encode_token_rows(text_encoder: CLIPTextModel, token_rows: torch.Tensor) -> torch.Tensor:
    """The last hidden state `(n, L, d)` from the token embeddings `(n, L, d)` rather than ids (CLIPTextModel's
    forward takes only ids): the position embeddings, the causal encoder and the final norm, as its forward runs
    them. A graph that looks up a learned subject's row itself goes through here."""
    model = getattr(text_encoder, "text_model", text_encoder)  # transformers 4 nests the text model; 5 does not
    hidden = model.embeddings(inputs_embeds=token_rows)
    mask = create_causal_mask(config=model.config, inputs_embeds=hidden, attention_mask=None, cache=None)
    hidden = model.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
    return model.final_layer_norm(hidden)
