"""DESIGN.md's performance targets for the full SD1.5 size on one H100, read by `meme bench` and `make gpu-check`."""

GEN_TARGETS_S = {256: 0.5, 128: 0.15}  # end to end: 16 frames, 25 steps, guidance, GIF written
TUNE_TARGET_S = 60.0  # 200 tuning steps of 16 frames at 256 px, loading included
TUNE_STEPS = 200
TUNE_PEAK_GIB = 8.0
