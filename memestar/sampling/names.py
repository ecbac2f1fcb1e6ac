"""The names a clip's settings choose among, apart from the code they name (light: read by the CLI and the server's
body, which are built without torch)."""

SAMPLER_NAMES = ("ddim", "dpm++")  # plan.SAMPLERS: DDIM, DPM-Solver++ 2M
FOLLOW_MEASURES = ("latents", "pixels")  # follow.py: where a followed subject is measured
