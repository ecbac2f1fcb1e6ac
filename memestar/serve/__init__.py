"""Serving memes: the HTTP API (`app.py`, FastAPI on uvicorn) and the Ray Serve deployment (`ray_app.py`), both
thin over the runtime's `MemeStore` and batched generation."""
