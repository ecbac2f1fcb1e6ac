"""The choices a video UNet is built with, by name: what `meme train`'s options offer and `meme.json` records
(light: read by the CLI, which starts without torch)."""

GROUP_NORM_MODES = ("frames", "per-frame")
DEFAULT_GROUP_NORM = "per-frame"  # measured better than "frames" by `meme eval` (docs/tiny-world.md)
# Memes made before frame positions existed read as False (meme.json, adapter metadata)
DEFAULT_FRAME_POSITIONS = True  # measured better than without by `meme eval` (docs/tiny-world.md)
# Whose keys frame i's spatial self-attention sees: frames 0 and i-1 (Tune-A-Video's sparse-causal attention), or
# frame i's own as well, which takes away the flicker of period two the clip's inversion has without them
# (benchmarks/results/emoji-frame-attention-probe-2026-12-07.md).
FRAME_ATTENTION_MODES = ("first-previous", "first-previous-self")
FRAME_ATTENTION_BEFORE = "first-previous"  # what memes and adapters made before the choice read as
# measured by `meme eval`: emoji world right 0.67 -> 0.75, trajectory 0.95 -> 0.97; shapes world within 0.01
# (benchmarks/results/eval-frame-attention-2026-12-07.md)
DEFAULT_FRAME_ATTENTION = "first-previous-self"
# What a video UNet's layout is: the keyword arguments `VideoUNet` takes, as `meme.json` records them
LAYOUT_FIELDS = ("group_norm", "frame_positions", "frame_attention")


def layout_of(built) -> dict:
    """The layout of anything that holds LAYOUT_FIELDS as attributes (a `VideoUNet`, a `MemeManifest`)."""
    return {name: getattr(built, name) for name in LAYOUT_FIELDS}


# Parameter-name fragments of the tensors one-shot tuning trains (and an adapter holds); everything else stays frozen.
TRAINABLE_PATTERNS = (".attn1.to_q.", ".attn2.to_q.", ".attn_temp.", ".norm_temp.")
TEMPORAL_PATTERNS = (".attn_temp.", ".norm_temp.")
# What a tuning run changes: "all" the trainable tensors (Tune-A-Video), "temporal" the temporal attention alone
# (VMC: the spatial layers, and so the base's look of a subject, stay the base's)
TUNED = ("all", "temporal")
