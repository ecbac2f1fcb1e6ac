"""`meme serve`: the HTTP API a chat app calls, FastAPI on uvicorn, over one `MemeStore` and one device worker.

    GET  /                          the playground: a chat thread to try memes in a browser (page.py)
    GET  /healthz /readyz /metrics /docs
    GET  /memes                     every meme in the folder: id, prompt, frames, size, base
    GET  /memes/{id}                one meme; /memes/{id}/preview.gif its preview
    POST /memes/{id}/gen            JSON settings -> the clip's bytes, or JSON with base64 clips for variants > 1;
                                    multipart (a photo as `image`, the JSON settings as `settings`): the photo's
                                    subject animated with the meme's motion
    POST /memes                     multipart clip + prompt + training options -> 202 and a job id
    GET  /subjects                  the learned subjects (--subjects) a gen body's `subject` can name
    POST /subjects                  multipart 1 to 4 photos + name (+ a meme whose base to learn on) -> 202 and a job
    GET  /jobs/{id}                 a job's state, progress and one-line error

Safe by default: 127.0.0.1, an optional bearer token (compared in constant time), ids checked against a strict
pattern (no path can be named), bodies capped, every error `{"error": "one line"}` with a 4xx/5xx status.
Generation runs on one worker thread (`worker.BatchWorker`); encoding to GIF/MP4/WebP runs on the request's own
thread, off the device's path.
"""

import asyncio
import base64
import functools
import hmac
import json
import logging
import shutil
import time
from collections.abc import Callable
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException

from ..checks import (
    JOB_ID_PATTERN,
    MAX_PROMPT_CHARS,
    MAX_STILL_BYTES,
    MAX_SUBJECT_PHOTOS,
    MEME_ID_PATTERN,
    check_prompt,
    check_subject_name,
)
from ..device import device_name
from ..errors import MemeError, one_line, without_paths
from ..files import slug
from ..formats.meme_folder import MEME_JSON, PREVIEW, MemeManifest
from ..formats.subject_file import read_subject
from ..media.clips import read_clip
from ..media.look import Look
from ..media.presets import PRESETS
from ..options import body_fields, body_limits, declared
from ..prompts import guess_template, subject_prompt
from ..runtime.options import GenOptions
from ..runtime.settings import GenRequest, GenSettings, still_action, still_negative, variant_requests
from ..runtime.still import cut_out, read_still
from ..runtime.store import MemeStore
from ..runtime.styles import apply_style, get_style
from ..runtime.subjects import find_subject, learned_words, subject_for
from ..sampling.batch import BATCH_BUCKETS
from ..train.options import SubjectOptions, TrainOptions
from ..train.subject import PHOTO_SUFFIXES, read_photo
from .jobs import SubjectJob, TrainingJob, TrainingJobs
from .journal import PHOTOS
from .metrics import Metrics
from .options import ServeOptions
from .page import add_playground, is_page
from .worker import BatchWorker, DeadlineExceeded, GenJob, QueueFull

log = logging.getLogger("memestar.serve")
MEDIA_TYPES = {"gif": "image/gif", "mp4": "video/mp4", "webp": "image/webp"}
GEN_RESPONSES = {200: {"content": {t: {} for t in {*MEDIA_TYPES.values(), *(p.media_type for p in PRESETS.values())}}}}
CLIP_SUFFIXES = (".mp4", ".gif", ".webm", ".mov", ".mkv", ".avi", ".webp")
MAX_JSON_BYTES = 64 * 1024
# open without the token (they hold no data): the probes and the API docs; the playground page too (page.is_page)
OPEN_PATHS = ("/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


@dataclass
class GenPlan:
    """What a gen body asks for once its subject and style are resolved."""

    prompt: str
    requests: list[GenRequest]
    look: Look
    preset: str | None


class GenBodyBase(BaseModel):
    """What every gen body does; its fields are the options `GenOptions`, `GenSettings` and `Look` declare for a
    body (`GenBody`, below), with their defaults, ranges and choices."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def plan(
        self,
        manifest: Callable[[], MemeManifest],
        still: np.ndarray | None = None,
        mid: str = "",
        subjects: Path | None = None,
    ) -> GenPlan:
        """The clips asked for (the variants of one prompt, of `still` if given: a photo's cut-out subject), the look
        and the preset, with the meme's subject template and size (`manifest`, read only for a subject, a still or a
        caption), a learned subject of `subjects` named by `subject`, and the style's defaults; every setting
        checked."""
        manifest = functools.cache(manifest)  # read once, and only if needed
        if self.prompt is not None and self.subject is not None:
            raise MemeError("give a prompt or a subject (the meme's own prompt with a new subject), not both")
        if self.prompt is None and self.subject is None and still is None:
            raise MemeError("give a prompt or a subject (the meme's own prompt with a new subject), or a photo")
        format_given = "format" in self.model_fields_set or self.max_kb is not None
        if self.preset is not None and format_given:
            raise MemeError(f"preset {self.preset} fixes the format and the size: drop format and max_kb")
        prompt, words = self.prompt, self.subject
        folder = find_subject(subjects, self.subject) if self.subject is not None else None
        learned = None if folder is None else subject_for(manifest(), folder, mid)  # read once, for every variant
        if self.subject is not None:
            m = manifest()
            if learned is not None:
                words = learned_words(m, learned[0])
            prompt = subject_prompt(m.prompt, m.template, words)
        settings = GenSettings(**{d.name: getattr(self, d.name) for d in declared(GenSettings)})
        unnamed = still is not None and prompt is None
        if still is not None:
            action = still_action(manifest(), mid)  # a meme with a subject track
            prompt = prompt or action
        look = Look(**{d.name: getattr(self, d.name) for d in declared(Look) if d.spec.body})
        preset = self.preset
        if self.style is not None:
            style = get_style(self.style)
            prompt = style.prompt_for(prompt, words)
            settings, look, preset = apply_style(style, settings, look, preset, format_given)
        if unnamed:
            settings = still_negative(manifest(), settings)
        check_prompt(prompt)
        side = (PRESETS[preset].side if preset else manifest().size) if look.top or look.bottom else None
        look.check(side, None if preset else self.format)  # a caption that cannot fit: refused before any work
        requests = variant_requests(prompt, settings.check(), self.variants, still, learned)
        return GenPlan(prompt, requests, look, preset)


# the settings of one generation request, defaults as `meme gen`'s
GenBody = create_model("GenBody", __base__=GenBodyBase, **body_fields(GenOptions, GenSettings, Look))
# a gen body with a photo: the photo and its JSON settings
MAX_GEN_UPLOAD_BYTES = MAX_STILL_BYTES + MAX_JSON_BYTES
# a subject's photos and its form
MAX_SUBJECT_UPLOAD_BYTES = MAX_SUBJECT_PHOTOS * MAX_STILL_BYTES + MAX_JSON_BYTES
# the docs' gen body: JSON settings, or multipart with a photo
GEN_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GenBody"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": f"The photo (PNG, JPEG, WebP, ...; at most {MAX_STILL_BYTES // 2**20} MiB)",
                        },
                        "settings": {"type": "string", "description": "The JSON settings (as the JSON body's)"},
                    },
                }
            },
        },
    }
}


def document_gen_body(app: FastAPI) -> None:
    """The docs' schema with `GenBody` among its components, where `GEN_REQUEST_BODY` and the playground read it
    (the gen route reads its body itself: JSON or multipart)."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schemas = build().setdefault("components", {}).setdefault("schemas", {})
            schemas["GenBody"] = GenBody.model_json_schema(ref_template="#/components/schemas/{model}")
        return app.openapi_schema

    app.openapi = openapi


def parse_gen_body(text: str | bytes) -> GenBody:
    """The settings of a gen body, read as FastAPI reads a JSON body: Python's JSON, then the model (strict)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, nesting too deep
        raise HTTPException(422, f"body: not valid JSON ({str(e).splitlines()[0]})") from None
    try:
        return GenBody.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from None


async def read_gen(request: Request) -> tuple[GenBody, np.ndarray | None]:
    """A gen request's settings and, in a multipart body, its photo's subject cut out (decoded under the caps, off
    the event loop): JSON, or multipart with the file field `image` and the JSON text field `settings`."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind in ("application/json", ""):
        return parse_gen_body(await request.body()), None
    if kind != "multipart/form-data":
        raise HTTPException(415, "send the settings as application/json, or multipart/form-data with a photo")
    form = await request.form(max_files=1, max_fields=1, max_part_size=MAX_JSON_BYTES)
    try:
        image, settings = form.get("image"), form.get("settings", "{}")
        if not isinstance(image, StarletteUpload):  # what Starlette's form parser gives (FastAPI's is a subclass)
            raise HTTPException(422, "image: send the photo as the multipart file field 'image'")
        if not isinstance(settings, str):
            raise HTTPException(422, "settings: send the settings as the multipart text field 'settings' (JSON)")
        data, name = await image.read(), uploaded_name(image.filename, "the uploaded photo")
    finally:
        await form.close()
    body = parse_gen_body(settings)
    return body, await run_in_threadpool(lambda: cut_out(read_still(Path(name), data), name))


# the training options a clip upload takes, as `meme train` declares them; a job's lr must be above 0 (the CLI
# takes 0, which checks that tuning moves nothing; a job at 0 would tune nothing)
TRAIN_FORM = {
    d.name: Form(d.default, **body_limits(d), **({"gt": 0} if d.name == "lr" else {}))
    for d in declared(TrainOptions)
    if d.name in ("steps", "frames", "size", "lr", "seed", "inversion_steps")
}
# the learning options a subject upload takes, as `meme subject learn` declares them
SUBJECT_FORM = {
    d.name: Form(d.default, **body_limits(d), **({"gt": 0} if d.name == "lr" else {}))
    for d in declared(SubjectOptions)
    if d.name in ("steps", "lr", "seed")
}


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    """The one-line JSON error a client gets; any absolute path in it cut to its last part."""
    return JSONResponse({"error": one_line(without_paths(message))}, status_code=status, headers=headers)


def meme_id(value: str) -> str:
    if not MEME_ID_PATTERN.fullmatch(value):
        raise HTTPException(400, "a meme id is 1 to 128 letters, digits, '-' or '_', starting with a letter or digit")
    return value


def list_memes(memes_dir: Path) -> list[tuple[str, float]]:
    """(id, meme.json's modification time) of every meme folder in `memes_dir`."""
    return [
        (path.name, (path / MEME_JSON).stat().st_mtime)
        for path in memes_dir.iterdir()
        if MEME_ID_PATTERN.fullmatch(path.name) and (path / MEME_JSON).is_file()
    ]


def meme_folder(memes_dir: Path, mid: str) -> Path:
    """The folder of meme `mid` (its id checked: no path can be named), or 404. A stat, no read: the store reads
    and checks meme.json when it loads the meme."""
    folder = memes_dir / meme_id(mid)
    if not (folder / MEME_JSON).is_file():
        raise HTTPException(404, f"no meme {mid!r}: GET /memes lists them")
    return folder


def read_manifest(memes_dir: Path, mid: str) -> MemeManifest:
    return MemeManifest.from_json(meme_folder(memes_dir, mid) / MEME_JSON)


def meme_summary(mid: str, m: MemeManifest) -> dict:
    """What a client shows of a meme; `template` is its prompt with `{subject}` where a gen body's subject goes,
    `follows` whether it has a subject track for a gen body's `follow`."""
    return {
        "id": mid,
        "prompt": m.prompt,
        "template": m.template or guess_template(m.prompt),
        "frames": m.frames,
        "size": m.size,
        "fps": m.fps,
        "follows": m.subject_track is not None,
        "base": {"reference": m.base.reference, "id": m.base.id},
    }


class BearerAuth:
    """With a token, refuses requests without `Authorization: Bearer TOKEN` (constant-time compare) as soon as the
    headers are read, before any of the body; the probes, the docs and the playground page stay open."""

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or self.token is None or path in OPEN_PATHS or is_page(path):
            return await self.app(scope, receive, send)
        scheme, _, value = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(value, self.token.encode()):
            response = error(
                401,
                "missing or wrong token: send the header 'Authorization: Bearer TOKEN'",
                {"WWW-Authenticate": "Bearer", "Connection": "close"},
            )  # its body is never read
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def add_error_handlers(app: FastAPI) -> None:
    """Every error as `{"error": "one line"}`: HTTP errors with their status, invalid fields 422, bad settings
    (MemeError) 422, anything else 500 (the traceback goes to the log, never to the client)."""

    @app.exception_handler(HTTPException)
    async def http_error(request, e: HTTPException):
        return error(e.status_code, e.detail, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, e: RequestValidationError):
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return error(422, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(MemeError)
    async def meme_error(request, e: MemeError):
        return error(422, str(e))

    @app.exception_handler(Exception)
    async def internal_error(request, e: Exception):
        log.exception("internal error on %s", request.url.path)
        return error(500, "internal error: see the server log")


def clips_response(mid: str, body: GenBody, plan: GenPlan, generations: list) -> Response:
    """One clip as its bytes with its media type, or variants as JSON with base64 clips."""
    look, preset = plan.look, plan.preset
    encoded = [g.encode_for(preset, look) if preset else g.encode(body.format, body.max_kb, look) for g in generations]
    fmt = PRESETS[preset].container if preset else body.format
    media_type = PRESETS[preset].media_type if preset else MEDIA_TYPES[body.format]
    g0 = generations[0]
    headers = {"X-Batch-Size": str(g0.batch_size), "X-Seconds": f"{g0.seconds['total']:.4f}"}
    notes = [n for g, (_, note) in zip(generations, encoded) for n in g.warnings + ([note] if note else [])]
    if body.variants == 1:
        if notes:
            headers["X-Meme-Note"] = " | ".join(notes).encode("ascii", "replace").decode()
        headers["X-Seed"] = str(body.seed)
        return Response(encoded[0][0], media_type=media_type, headers=headers)
    clips = [
        {
            "seed": g.settings["seed"],
            "format": fmt,
            "media_type": media_type,
            "bytes": len(data),
            "data": base64.b64encode(data).decode("ascii"),
            "note": note,
        }
        for g, (data, note) in zip(generations, encoded)
    ]
    return JSONResponse({"meme": mid, "prompt": plan.prompt, "clips": clips, "notes": notes}, headers=headers)


class BodyLimit:
    """Refuses request bodies over a limit (a clip to train on: `--max-upload-mb`; a subject's photos, a gen body's
    photo: their caps; everything else: 64 KiB) with 413, by the declared length at once and by the bytes as they
    arrive."""

    def __init__(self, app, upload_bytes: int):
        self.app, self.upload_bytes = app, upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, headers = scope["path"].rstrip("/"), dict(scope["headers"])
        post = scope["method"] == "POST"
        limit, upload = MAX_JSON_BYTES, True
        if post and path == "/memes":  # a clip to train on
            limit = self.upload_bytes
        elif post and path == "/subjects":
            limit = MAX_SUBJECT_UPLOAD_BYTES
        elif post and path.endswith("/gen") and headers.get(b"content-type", b"").startswith(b"multipart/"):
            limit = MAX_GEN_UPLOAD_BYTES
        else:
            upload = False
        declared = headers.get(b"content-length")
        too_large = (
            f"the request body is over {limit / 2**20:g} MiB"
            if upload
            else f"the request body is over {limit // 1024} KiB"
        )
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            response = error(413, too_large if declared.isdigit() else "the Content-Length header is not a number")
            return await response(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large)
            return message

        return await self.app(scope, limited, send)


class Timed:
    """Request latency by route and status, for /metrics."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t, status = time.perf_counter(), ["500"]

        async def sent(message):
            if message["type"] == "http.response.start":
                status[0] = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            self.metrics.request_seconds.labels(route, status[0]).observe(time.perf_counter() - t)


def meme_store(o: ServeOptions) -> MemeStore:
    """The memes a server holds, as its options say (one process, or one Ray replica)."""
    return MemeStore(
        device=o.device,
        precision=o.precision,
        backend=o.backend,
        max_memes=o.max_memes,
        max_bytes=o.max_bytes,
        cuda_graphs=o.cuda_graphs,
    )


def create_app(o: ServeOptions) -> FastAPI:
    o.check()
    store = meme_store(o)
    memes_dir = o.memes.absolute()

    def run_batch(mid, requests):
        return store.load(memes_dir / mid).generate_batch(requests)

    graphs = store.device.type == "cuda" and o.cuda_graphs and o.backend in ("auto", "torch")
    worker = BatchWorker(
        run_batch,
        window_s=o.window_ms / 1000,
        max_batch=o.max_batch,
        max_queue=o.max_queue,
        buckets=BATCH_BUCKETS if graphs else None,
    )
    metrics = Metrics(lambda: worker.depth, lambda: len(store.memes), store.device)
    worker.on_batch = metrics.observe_batch
    jobs = TrainingJobs(memes_dir, worker.gate, subjects_dir=o.subjects.absolute() if o.subjects else None)
    state = {"warm": False}

    def warm():
        """Loads the newest meme, and so its base, before the first request; with CUDA graphs, also captures the
        default settings' graph of every batch size the worker cuts batches to (else the first batch of each size
        waits two loops: one to warm up, one to capture)."""
        try:
            found = sorted(list_memes(memes_dir), key=lambda m: m[1], reverse=True)
            if found:
                meme = store.load(memes_dir / found[0][0])
                if graphs:
                    took = meme.warm_up(tuple(b for b in BATCH_BUCKETS if b <= o.max_batch))
                    log.info("captured batch sizes %s in %.1f s", list(took), sum(took.values()))
        except Exception as e:  # noqa: BLE001 (a broken meme must not keep the server down; /readyz tells)
            log.warning("could not load a meme at start: %s", e)
        state["warm"] = True

    def manifest(mid: str) -> MemeManifest:
        return read_manifest(memes_dir, mid)

    @asynccontextmanager
    async def lifespan(app):
        asyncio.get_running_loop().run_in_executor(None, warm)
        yield
        await run_in_threadpool(jobs.stop)  # drains: the running job checkpoints, and resumes on the next start
        await run_in_threadpool(worker.stop)

    app = FastAPI(
        title="meme-star",
        version="1",
        description="Memes for chat apps: one-shot tuned video diffusion, as GIF/MP4/WebP.",
        lifespan=lifespan,
    )
    app.state.store, app.state.worker, app.state.jobs, app.state.metrics = store, worker, jobs, metrics
    app.add_middleware(BodyLimit, upload_bytes=int(o.max_upload_mb * 2**20))
    app.add_middleware(BearerAuth, token=o.token)  # outside the body limit: a stranger learns nothing of it
    app.add_middleware(Timed, metrics=metrics)

    add_error_handlers(app)
    add_playground(app)
    document_gen_body(app)

    @app.get("/healthz", summary="The process is up")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="The worker is alive and a base is loaded (or there is no meme yet)")
    async def readyz():
        ready = worker.alive() and state["warm"]
        body = {
            "ready": ready,
            "worker": worker.alive(),
            "bases": len(store.bases),
            "memes_loaded": len(store.memes),
            "device": device_name(store.device),
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus():
        return Response(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/memes", summary="Every meme in the folder")
    async def memes():
        out = []
        for mid, _ in sorted(list_memes(memes_dir)):
            try:
                out.append(meme_summary(mid, manifest(mid)))
            except MemeError as e:
                log.warning("meme %s is unreadable: %s", mid, e)
        return {"memes": out}

    @app.get("/subjects", summary="The learned subjects a gen body's subject can name, and whether uploads are taken")
    async def subjects():
        out = []
        for folder in sorted(o.subjects.iterdir()) if o.subjects else ():
            if find_subject(o.subjects, folder.name) is None:
                continue
            try:
                m = read_subject(folder)[0]
            except MemeError as e:
                log.warning("subject %s is unreadable: %s", folder.name, e)
                continue
            out.append({"name": m.name, "token": m.token, "base": {"reference": m.base.reference, "id": m.base.id}})
        return {"subjects": out, "uploads": o.subjects is not None}  # uploads: POST /subjects learns one

    @app.get("/memes/{mid}", summary="One meme")
    async def one_meme(mid: str):
        m = manifest(mid)
        loaded = any(x.folder.name == mid for x in store.memes)
        return {
            **meme_summary(mid, m),
            **m.layout,
            "training": {"steps": m.training.steps, "final_loss": m.training.final_loss, "seconds": m.training.seconds},
            "loaded": loaded,
        }

    @app.get("/memes/{mid}/preview.gif", summary="The meme's preview, as tuned", response_class=FileResponse)
    async def preview(mid: str):
        path = meme_folder(memes_dir, mid) / PREVIEW
        if not path.is_file():
            raise HTTPException(404, f"meme {mid!r} has no preview")
        return FileResponse(path, media_type="image/gif")

    @app.post(
        "/memes/{mid}/gen",
        summary="A clip (or variants) of a new subject, or of a photo's subject, with the meme's motion",
        responses=GEN_RESPONSES,
        openapi_extra=GEN_REQUEST_BODY,
    )
    async def gen(mid: str, request: Request):
        meme_folder(memes_dir, mid)
        body, still = await read_gen(request)
        plan = body.plan(lambda: manifest(mid), still, mid, o.subjects)
        job = GenJob(mid, plan.requests, time.monotonic() + o.deadline_s)
        t = time.perf_counter()
        try:
            future = worker.submit(job)
        except QueueFull as e:
            metrics.rejected.labels("queue_full").inc()
            return error(503, f"{e}: retry in a second", {"Retry-After": "1"})
        waiting = asyncio.wrap_future(future)
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=0.05)
            if waiting.done():
                break
            if await request.is_disconnected():
                future.cancel()
                metrics.rejected.labels("disconnected").inc()
                return Response(status_code=499)
            if time.monotonic() > job.deadline:
                future.cancel()
                metrics.rejected.labels("deadline").inc()
                return error(504, f"not done within the deadline of {o.deadline_s:g} s: the server is busy")
        try:
            generations = waiting.result()
        except DeadlineExceeded as e:
            metrics.rejected.labels("deadline").inc()
            return error(504, f"{e} ({o.deadline_s:g} s): the server is busy")
        except asyncio.CancelledError:
            return error(503, "the server is shutting down", {"Retry-After": "1"})
        metrics.stage_seconds.labels("queue").observe(time.perf_counter() - t - generations[0].seconds["total"])

        t = time.perf_counter()
        response = await run_in_threadpool(clips_response, mid, body, plan, generations)
        metrics.stage_seconds.labels("encode").observe(time.perf_counter() - t)
        return response

    @contextmanager
    def new_job(kind: str, name: str, taken: str):
        """A new job's id and folder for an upload that makes `name` of `kind`: 409 `taken` where it exists or
        another upload or job holds the name, else the name is held from here until the job is submitted (a second
        upload gets 409 at once) and the folder removed if the upload fails before."""
        if (jobs.roots[kind] / name).exists() or not jobs.reserve(kind, name):
            raise HTTPException(409, taken)
        job_id = jobs.new_id()
        folder = jobs.folder(kind, job_id)
        try:
            yield job_id, folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            jobs.release(kind, name)  # submitted, the job holds the name

    @app.post("/memes", status_code=202, summary="Train a new meme from a clip and its prompt (a job)")
    async def train(
        clip: UploadFile = File(..., description="The clip: MP4, GIF, WebM, MOV, MKV, AVI or WebP"),
        prompt: str = Form(..., min_length=1, max_length=MAX_PROMPT_CHARS),
        id: str | None = Form(None, description="The meme's id (default: from the prompt)"),
        steps: int = TRAIN_FORM["steps"],
        frames: int = TRAIN_FORM["frames"],
        size: int = TRAIN_FORM["size"],
        lr: float = TRAIN_FORM["lr"],
        seed: int = TRAIN_FORM["seed"],
        inversion_steps: int = TRAIN_FORM["inversion_steps"],
    ):
        check_prompt(prompt, "say what the clip shows")
        mid = meme_id(id) if id else slug_id(prompt)
        suffix = Path(clip.filename or "").suffix.lower()
        if suffix not in CLIP_SUFFIXES:
            raise HTTPException(415, f"the clip's name must end in one of {', '.join(CLIP_SUFFIXES)}")
        taken = f"meme {mid!r} exists or is being trained: choose another id"
        with new_job("meme", mid, taken) as (job_id, folder):
            path = folder / f"clip{suffix}"
            shown = uploaded_name(clip.filename, f"the uploaded clip{suffix}")
            folder.mkdir(parents=True)
            with path.open("wb") as f:
                while chunk := await clip.read(2**20):
                    f.write(chunk)
            options = TrainOptions(
                clip=path,
                prompt=prompt,
                base=o.train_base,
                base_config=o.train_base_config,
                frames=frames,
                size=size,
                steps=steps,
                lr=lr,
                seed=seed,
                inversion_steps=inversion_steps,
                device=o.device,
                quiet=True,
            )
            options.check()
            try:
                await run_in_threadpool(read_clip, path, frames, size)  # a clip the trainer cannot read fails now
            except MemeError as e:
                raise client_named(e, path, shown) from None
            job = jobs.submit(TrainingJob(id=job_id, meme_id=mid, options=options))
        return JSONResponse({**job.public(), "url": f"/jobs/{job_id}"}, status_code=202)

    @app.post("/subjects", status_code=202, summary="Learn a subject from 1 to 4 photos (a job)")
    async def learn(
        photos: list[UploadFile] = File(
            ...,
            description=f"1 to {MAX_SUBJECT_PHOTOS} photos of one subject ({', '.join(PHOTO_SUFFIXES)}; at most "
            f"{MAX_STILL_BYTES // 2**20} MiB each)",
        ),
        name: str = Form(..., description="The subject's name: lowercase letters, digits and '-', e.g. my-cat"),
        meme: str | None = Form(None, description="Learn it on this meme's base (default: the server's --train-base)"),
        steps: int = SUBJECT_FORM["steps"],
        lr: float = SUBJECT_FORM["lr"],
        seed: int = SUBJECT_FORM["seed"],
    ):
        if o.subjects is None:
            raise HTTPException(409, "this server keeps no subjects: start it with --subjects DIR")
        try:
            check_subject_name(name)
        except MemeError as e:
            raise HTTPException(400, str(e)) from None
        if not 1 <= len(photos) <= MAX_SUBJECT_PHOTOS:
            raise HTTPException(422, f"photos: send 1 to {MAX_SUBJECT_PHOTOS} photos of the subject")
        for photo in photos:
            if Path(photo.filename or "").suffix.lower() not in PHOTO_SUFFIXES:
                shown = uploaded_name(photo.filename, "an uploaded photo")
                raise HTTPException(415, f"photo {shown}: its name must end in one of {', '.join(PHOTO_SUFFIXES)}")
        base, base_config = o.train_base, o.train_base_config
        if meme is not None:
            base = manifest(meme_id(meme)).base.reference
            base_config = o.train_base_config if base == o.train_base else None
        taken = f"subject {name!r} exists or is being learned: choose another name"
        with new_job("subject", name, taken) as (job_id, folder):
            (folder / PHOTOS).mkdir(parents=True)
            for i, photo in enumerate(photos):
                data = await photo.read(MAX_STILL_BYTES + 1)
                shown = uploaded_name(photo.filename, f"photo {i + 1}")
                if len(data) > MAX_STILL_BYTES:
                    raise HTTPException(413, f"photo {shown} is over {MAX_STILL_BYTES // 2**20} MiB")
                path = folder / PHOTOS / f"photo-{i + 1}{Path(photo.filename).suffix.lower()}"
                path.write_bytes(data)
                try:
                    await run_in_threadpool(read_photo, path)  # a photo the learner cannot read fails now
                except MemeError as e:
                    raise client_named(e, path, shown) from None
            options = SubjectOptions(
                photos=folder / PHOTOS,
                name=name,
                base=base,
                base_config=base_config,
                steps=steps,
                lr=lr,
                seed=seed,
                device=o.device,
                quiet=True,
            )
            options.check()
            job = jobs.submit(SubjectJob(id=job_id, options=options))
        return JSONResponse({**job.public(), "url": f"/jobs/{job_id}"}, status_code=202)

    @app.get("/jobs/{job_id}", summary="A job's state and progress (a meme's training, a subject's learning)")
    async def job_state(job_id: str):
        if not JOB_ID_PATTERN.fullmatch(job_id) or job_id not in jobs.jobs:
            raise HTTPException(404, f"no job {job_id!r}")
        return jobs.jobs[job_id].public()

    return app


def client_named(e: MemeError, path: Path, shown: str) -> MemeError:
    """An upload's error naming the client's file (`shown`) where it named our copy of it (`path`)."""
    return MemeError(str(e).replace(str(path), shown).replace(path.name, shown))


def uploaded_name(filename: str | None, unnamed: str) -> str:
    """The client's name for its upload, as errors show it: its last part, printable, at most 64 characters."""
    name = "".join(c for c in Path(filename or "").name if c.isprintable())[-64:]
    return name or unnamed


def slug_id(prompt: str) -> str:
    mid = slug(prompt)[:128].strip("-_") or "meme"
    return mid if MEME_ID_PATTERN.fullmatch(mid) else "meme"
