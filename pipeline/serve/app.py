"""The HTTP routes: Open Inference Protocol v2, TF Serving REST ``:predict``, repository, ``/metrics``.

Every answer is JSON; bad input is a 400 naming the instance and the rule, an unknown model a 404,
a full queue a 503. Responses are gzipped for clients that accept it.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.middleware.gzip import GZipMiddleware

from pipeline.errors import UserError
from pipeline.serve.batching import Overloaded
from pipeline.serve.cache import body_key, instance_key
from pipeline.serve.models import ModelRegistry, ServedModel
from pipeline.serve.records import BadInput, nonempty, v2_instances


#: the largest answer (bytes of JSON) kept whole in the response cache, keyed by its request's bytes
WHOLE_BODY_MAX = 64 * 1024


class NotLoaded(LookupError):
    """The request names a model this server does not hold."""


def _reject_constant(name: str):
    raise BadInput(f"body: {name} is not a number JSON allows; send finite numbers")


def json_body(raw: bytes) -> dict:
    """The request body's JSON object; ``BadInput`` for anything else (NaN and Infinity included).

    orjson parses (several times faster than ``json`` on a record of 784 numbers); what it refuses
    is parsed again by ``json``, which takes integers past 64 bits and names the fault."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            body = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, BadInput):
                raise
            raise BadInput(f"body: not valid JSON ({exc}); send e.g. {{\"instances\": [[0, 0, ...]]}}") from None
    if not isinstance(body, dict):
        raise BadInput(f"body: expected a JSON object (got {type(body).__name__})")
    return body


def _v1_instances(body: dict):
    if "instances" not in body:
        raise BadInput("body: expected {\"instances\": [...]} (TF Serving's row format)")
    return body["instances"]


@dataclass
class Pending:
    """One request's instances after the cache lookup and the checks: hits answered, misses as rows."""

    model: ServedModel
    keys: list
    found: list
    misses: list[int]
    rows: object

    @classmethod
    def of(cls, model: ServedModel, instances: list, where: str, metrics) -> "Pending":
        nonempty(instances, where)
        checked = [model.records.row(inst, f"{where}[{i}]") for i, inst in enumerate(instances)]
        keys = [(model.digest, instance_key(row)) for row in checked]
        found = [model.cache.get(k) for k in keys]
        misses = [i for i, hit in enumerate(found) if hit is None]
        rows = model.records.stack([checked[i] for i in misses]) if misses else None
        metrics.cache_hits.labels(model.name).inc(len(instances) - len(misses))
        metrics.cache_misses.labels(model.name).inc(len(misses))
        return cls(model, keys, found, misses, rows)

    async def answer(self) -> tuple[list, list]:
        """Labels and probabilities of every instance: the misses through the batcher, then cached."""
        if self.misses:
            probs = await self.model.batcher.submit(self.rows)
            for i, p, label in zip(self.misses, probs, self.model.labels_of(probs)):
                self.found[i] = (label, p.tolist())
                self.model.cache.put(self.keys[i], self.found[i])
        return [f[0] for f in self.found], [f[1] for f in self.found]


def create_app(registry: ModelRegistry, runs: list[str]) -> FastAPI:
    """The FastAPI app serving ``runs`` (loaded at start-up) from ``registry``."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for run in runs:
            await registry.load(run)
        yield
        await registry.close()

    app = FastAPI(title="dcpipe serve", lifespan=lifespan)
    app.add_middleware(GZipMiddleware, minimum_size=500)
    metrics = registry.metrics
    _errors(app, registry)

    def model_of(name: str) -> ServedModel:
        model = registry.get(name)
        if model is None:
            raise NotLoaded(name)
        return model

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        ok = bool(registry.names())
        return JSONResponse({"ready": ok, "models": registry.names()}, status_code=200 if ok else 503)

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str):
        return model_of(name).metadata()

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str):
        return {"name": model_of(name).name, "ready": True}

    async def answered(model: ServedModel, protocol: str, request: Request, instances_of, where: str, render):
        """The JSON answer to the request's body: the stored bytes when this bundle answered these
        very bytes before (a whole-body cache entry: no parsing, checks or encoding again), else
        ``render(body, labels, probabilities)`` of the instances ``instances_of(body)``, then stored."""
        with _timed(metrics, model.name, protocol, time.perf_counter()):
            with model.batcher.expect():
                raw = await request.body()
                key = (model.digest, protocol, body_key(raw)) if model.cache.capacity else None
                stored = key and model.cache.peek(key)
                if stored:
                    model.cache.count_hits(stored[0])
                    metrics.cache_hits.labels(model.name).inc(stored[0])
                    return Response(stored[1], media_type="application/json")
                body = json_body(raw)
                pending = Pending.of(model, instances_of(body), where, metrics)
            labels, probs = await pending.answer()
            content = orjson.dumps(render(body, labels, probs), option=orjson.OPT_SERIALIZE_NUMPY)
            if key and len(content) <= WHOLE_BODY_MAX:
                model.cache.put(key, (len(labels), content))
            return Response(content, media_type="application/json")

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request):
        model = model_of(name)

        def render(body, labels, probs):
            out = {"model_name": model.name, "model_version": model.digest,
                   "outputs": [{"name": "label", "shape": [len(labels)], "data": labels,
                                "datatype": model.metadata()["outputs"][0]["datatype"]},
                               {"name": "probabilities", "shape": [len(labels), len(model.bundle.labels)],
                                "datatype": "FP32", "data": [v for p in probs for v in p]}]}
            return {**out, "id": body["id"]} if "id" in body else out
        return await answered(model, "v2", request, lambda body: v2_instances(body.get("inputs"), model.records),
                              "inputs[0]", render)

    @app.post("/v1/models/{name}:predict")
    async def predict(name: str, request: Request):
        return await answered(model_of(name), "v1", request, _v1_instances, "instances",
                              lambda body, labels, probs: {"predictions": labels, "probabilities": probs})

    @app.post("/v2/repository/models/{name}/load")
    async def load(name: str):
        model = await registry.load(name)
        return {"name": model.name, "version": model.digest, "loaded": True}

    @app.post("/v2/repository/models/{name}/unload")
    async def unload(name: str):
        if not await registry.unload(name):
            raise NotLoaded(name)
        return {"name": name, "loaded": False}

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


@contextlib.contextmanager
def _timed(metrics, model: str, protocol: str, start: float):
    """Observe the request's latency under the status code it ends with."""
    code = "200"
    try:
        yield
    except BadInput:
        code = "400"
        raise
    except Overloaded:
        code = "503"
        raise
    except Exception:
        code = "500"
        raise
    finally:
        metrics.latency.labels(model, protocol, code).observe(time.perf_counter() - start)


def _errors(app: FastAPI, registry: ModelRegistry) -> None:
    """Every failure as a JSON ``{"error": ...}`` with its status code."""
    def handler(status: int):
        async def handle(request, exc):
            return JSONResponse({"error": str(exc)}, status_code=status)
        return handle

    async def not_loaded(request, exc):
        return JSONResponse({"error": f"model {exc.args[0]!r} is not loaded; loaded: "
                                      f"{', '.join(registry.names()) or 'none'} (or 'default'); load one with "
                                      f"POST /v2/repository/models/RUN/load"}, status_code=404)

    app.add_exception_handler(BadInput, handler(400))
    app.add_exception_handler(UserError, handler(400))
    app.add_exception_handler(Overloaded, handler(503))
    app.add_exception_handler(NotLoaded, not_loaded)
