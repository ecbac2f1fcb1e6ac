"""`meme serve`: runs the HTTP server on the options in `options.py` (the CLI imports this module only when it
serves)."""

import signal

from .app import create_app
from .options import ServeOptions


def serve(o: ServeOptions) -> None:
    """Runs the server until Ctrl-C or SIGTERM, which drain it (answers in flight, the training job checkpointed)
    and exit 0."""
    import uvicorn

    app = create_app(o)
    # uvicorn drains on SIGINT/SIGTERM, then raises the signal again under the handlers it found: these, which
    # let the drained process end normally rather than as killed
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: None)
    uvicorn.run(app, host=o.host, port=o.port, log_level="warning", access_log=False)
