"""DESIGN.md's performance targets for the full SD1.5 size on one H100/H200, read by `meme bench` and
`make gpu-check`."""

GEN_TARGETS_S = {256: 0.25, 128: 0.08}  # end to end: 16 frames, the default path (following on), GIF written
FIRST_CLIP_EXTRA_S = 2.0  # the first clip after loading a meme, over a warm one
TUNE_TARGET_S = 60.0  # 200 tuning steps of 16 frames at 256 px, loading included
TUNE_STEPS = 200
TUNE_PEAK_GIB = 8.0
