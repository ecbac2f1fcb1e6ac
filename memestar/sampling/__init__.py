"""Sampling-time code, the same for every backend: the samplers (DDIM, DPM-Solver++), guidance only where it
matters, the deep-feature cache plan, following a subject track, the start latents, the batch buckets, and the
per-step plan a loop runs (`plan.py`). It imports nothing of the models: a backend hands it a model function."""
