"""Scale-out on Ray Serve: the same memes API over many replicas (one GPU each where there are GPUs).

    client -> Ingress (FastAPI, auth, validation, encoding) -> MemeGenerator replicas
                                                              @serve.multiplexed(meme id): a replica keeps the
                                                              memes it served (a MemeStore: one base, adapters
                                                              swapped in place) and Ray routes a meme's requests
                                                              to replicas that hold it;
                                                              @serve.batch: clips arriving together run as one batch

`meme serve --ray` starts it on a local Ray instance; `serve run deploy/ray-serve.yaml` (or KubeRay's RayService
with that file's `applications`) runs it on a cluster. Training and subject-learning jobs stay with the single-node
server (`meme serve`), which owns its device; learned subjects in the subjects folder are served here too. A
replica that dies under a request loses nothing: the ingress asks another (`ask_replicas`), and answers 503 with
Retry-After only when replicas keep failing.
"""

import asyncio
import logging
import time
from dataclasses import asdict, fields
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from ray import serve
from starlette.exceptions import HTTPException

from ..runtime.generation import Generation
from ..runtime.meme import Meme
from ..runtime.settings import GenRequest
from ..sampling.batch import MAX_BATCH
from .app import (
    GEN_REQUEST_BODY,
    GEN_RESPONSES,
    MAX_JSON_BYTES,
    BearerAuth,
    BodyLimit,
    add_error_handlers,
    clips_response,
    document_gen_body,
    list_memes,
    meme_folder,
    meme_store,
    meme_summary,
    read_gen,
    read_manifest,
)
from .options import ServeOptions

AUTOSCALING = {"min_replicas": 1, "max_replicas": 8, "target_ongoing_requests": 4}
REPLICA_TRIES = 3  # a request whose replica died is asked of another; the third loss is a 503
MEMES_PER_REPLICA = 16
log = logging.getLogger("memestar.serve")


@serve.deployment(max_ongoing_requests=32)
class MemeGenerator:
    """Holds memes on one shared base and runs their clips in batches."""

    def __init__(self, options: dict):
        o = ServeOptions(**options)
        self.memes_dir = Path(o.memes).absolute()
        self.store = meme_store(o)
        self.replica = serve.get_replica_context().replica_id.unique_id

    @serve.multiplexed(max_num_models_per_replica=MEMES_PER_REPLICA)
    async def meme(self, meme_id: str) -> Meme:
        return await run_in_threadpool(self.store.load, meme_folder(self.memes_dir, meme_id))

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.01)
    async def _batched(self, items: list[tuple[Meme, GenRequest]]) -> list[Generation | Exception]:
        """Clips of any memes and settings that arrived together: each meme's go to its `generate_batch`, which runs
        one batch per (sampler, steps, guided)."""
        groups: dict[int, list[int]] = {}
        for i, (meme, _) in enumerate(items):
            groups.setdefault(id(meme), []).append(i)
        out: list = [None] * len(items)
        for indices in groups.values():
            meme = items[indices[0]][0]
            try:
                generations = await run_in_threadpool(meme.generate_batch, [items[i][1] for i in indices])
            except Exception as e:  # noqa: BLE001 (each request of the group hears of it)
                generations = [e] * len(indices)
            for i, g in zip(indices, generations):
                out[i] = g
        return out

    async def generate(self, requests: list[GenRequest]) -> dict:
        """The clips of one request, planned and checked by the ingress (`GenBody.plan`)."""
        meme_id = serve.get_multiplexed_model_id()
        held = any(m.folder.name == meme_id for m in self.store.memes)
        meme = await self.meme(meme_id)
        results = await asyncio.gather(*(self._batched((meme, r)) for r in requests))
        for r in results:
            if isinstance(r, Exception):
                raise r
        return {
            "generations": results,
            "replica": self.replica,
            "held": held,
            "memes": sorted(m.folder.name for m in self.store.memes),
        }


async def ask_replicas(generator, mid: str, requests: list[GenRequest]) -> tuple[dict, int]:
    """A generator replica's answer, and how many replicas were asked: a replica that dies under a request (killed,
    out of memory, its node gone) loses it, so the request is asked again, of a live replica, up to
    REPLICA_TRIES times; then it is a 503 the client may retry. Generation is deterministic: a retry returns what
    the dead replica would have."""
    from ray.exceptions import ActorUnavailableError, RayActorError
    from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

    for tries in range(1, REPLICA_TRIES + 1):
        try:
            return await generator.options(multiplexed_model_id=mid).generate.remote(requests), tries
        except (RayActorError, ActorUnavailableError, ReplicaUnavailableError, DeploymentUnavailableError) as e:
            log.warning("replica lost a request for %s (try %d of %d): %s", mid, tries, REPLICA_TRIES, type(e).__name__)
    raise HTTPException(
        503,
        f"the generator replicas failed {REPLICA_TRIES} times: retry in a few seconds",
        headers={"Retry-After": "5"},
    )


def ingress_app(options: ServeOptions) -> FastAPI:
    app = FastAPI(title="meme-star on Ray Serve")
    app.add_middleware(BodyLimit, upload_bytes=MAX_JSON_BYTES)  # no training uploads here; a gen photo as on one node
    app.add_middleware(BearerAuth, token=options.token)
    add_error_handlers(app)
    document_gen_body(app)
    memes_dir = Path(options.memes).absolute()

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/memes")
    async def memes():
        return {"memes": [meme_summary(mid, read_manifest(memes_dir, mid)) for mid, _ in sorted(list_memes(memes_dir))]}

    return app


def build(options: ServeOptions, replicas: int | None = None, gpus: float | None = None):
    """The Ray Serve application: an ingress and the generator replicas (autoscaled unless `replicas` is given;
    one GPU each when the cluster has GPUs, unless `gpus` says otherwise)."""
    import ray

    options.check()
    if gpus is None:
        gpus = 1.0 if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    app = ingress_app(options)
    memes_dir = Path(options.memes).absolute()

    @serve.deployment
    @serve.ingress(app)
    class Ingress:
        def __init__(self, generator):
            self.generator = generator

        @app.post("/memes/{mid}/gen", responses=GEN_RESPONSES, openapi_extra=GEN_REQUEST_BODY)
        async def gen(self, mid: str, request: Request):
            meme_folder(memes_dir, mid)
            body, still = await read_gen(request)
            plan = body.plan(lambda: read_manifest(memes_dir, mid), still, mid, options.subjects)  # checked here
            t = time.perf_counter()
            result, tries = await ask_replicas(self.generator, mid, plan.requests)
            response = await run_in_threadpool(clips_response, mid, body, plan, result["generations"])
            response.headers["X-Replica-Tries"] = str(tries)
            response.headers["X-Replica"] = result["replica"]
            response.headers["X-Replica-Memes"] = ",".join(result["memes"])
            response.headers["X-Meme-Was-Loaded"] = "1" if result["held"] else "0"
            response.headers["X-Total-Seconds"] = f"{time.perf_counter() - t:.4f}"
            return response

    scaling = {"num_replicas": replicas} if replicas else {"autoscaling_config": AUTOSCALING}
    generator = MemeGenerator.options(
        ray_actor_options={"num_gpus": gpus, "num_cpus": 0 if not gpus else 1}, **scaling
    ).bind(asdict(options))
    return Ingress.bind(generator)


def app_builder(args: dict):
    """For `serve run` / KubeRay: `import_path: memestar.serve.ray_app:app_builder`, `args`: ServeOptions fields
    (memes, token, device, precision, ...), plus `replicas` to fix the count instead of autoscaling."""
    args = dict(args)
    replicas = args.pop("replicas", None)
    known = {f.name for f in fields(ServeOptions)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ValueError(f"unknown meme-star serve options {unknown}: use {sorted(known)}")
    return build(ServeOptions(**{**args, "memes": Path(args.get("memes", "memes"))}), replicas=replicas)


def serve_on_ray(o: ServeOptions, replicas: int | None = None) -> None:
    """`meme serve --ray`: a local Ray instance (or the cluster in RAY_ADDRESS), HTTP on o.host:o.port, until Ctrl-C."""
    import ray

    ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": o.host, "port": o.port})
    serve.run(build(o, replicas=replicas), name="memestar", route_prefix="/", blocking=True)
