"""The playground page `meme serve` answers at `/`: a chat thread over the server's own API (`playground/`: HTML,
CSS and JavaScript shipped in the package; no build step, no CDN). Open like the probes: it holds no data, and
asks for the token itself when the API answers 401."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.exceptions import HTTPException

FOLDER = Path(__file__).parent / "playground"
FILES = {
    "index.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}
ASSETS = "/playground/"
# Only this origin's own scripts and styles; clips arrive as blob: URLs.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_page(path: str) -> bool:
    """Open without the token: the page and anything under its folder (an unknown name answers 404, not 401)."""
    return path == "/" or path.startswith(ASSETS)


def add_playground(app: FastAPI) -> None:
    files = {name: (FOLDER / name).read_bytes() for name in FILES}

    def answer(name: str) -> Response:
        return Response(files[name], media_type=FILES[name], headers=HEADERS)

    @app.get("/", include_in_schema=False)
    async def page():
        return answer("index.html")

    @app.get(ASSETS + "{name}", include_in_schema=False)
    async def asset(name: str):
        if name not in FILES:
            raise HTTPException(404, f"no playground file {name!r}")
        return answer(name)
