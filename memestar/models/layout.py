"""The choices a video UNet is built with, by name: what `meme train`'s options offer and `meme.json` records
(light: read by the CLI, which starts without torch)."""

GROUP_NORM_MODES = ("frames", "per-frame")
DEFAULT_GROUP_NORM = "per-frame"  # measured better than "frames" by `meme eval` (docs/tiny-world.md)
# Memes made before frame positions existed read as False (meme.json, adapter metadata)
DEFAULT_FRAME_POSITIONS = True  # measured better than without by `meme eval` (docs/tiny-world.md)

# Parameter-name fragments of the tensors one-shot tuning trains (and an adapter holds); everything else stays frozen.
TRAINABLE_PATTERNS = (".attn1.to_q.", ".attn2.to_q.", ".attn_temp.", ".norm_temp.")
TEMPORAL_PATTERNS = (".attn_temp.", ".norm_temp.")
# What a tuning run changes: "all" the trainable tensors (Tune-A-Video), "temporal" the temporal attention alone
# (VMC: the spatial layers, and so the base's look of a subject, stay the base's)
TUNED = ("all", "temporal")
