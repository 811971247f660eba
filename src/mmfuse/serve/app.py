"""The FastAPI application of ``mmfuse serve``: endpoints, batching and guards wired together.

``create_app(catalogue, options)`` builds it; ``mmfuse.cli.serve`` runs it under uvicorn. The
API is described in ``docs/serving.md``. FastAPI is imported here, at module level (it resolves
the endpoints' annotations from this module): import this module only to serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mmfuse.errors import MmfuseError
from mmfuse.serve.batcher import MicroBatcher
from mmfuse.serve.catalogue import MEDIA_KINDS, Catalogue
from mmfuse.serve.errors import RequestError
from mmfuse.serve.guards import ApiKey, BodyLimit, Measured, Metrics
from mmfuse.serve.media import MEDIA_TYPES, Thumbnails, item_file
from mmfuse.serve.requests import Upload, checked_upload, record_from_fields, upload_from_json
from mmfuse.serve.items import ItemTable
from mmfuse.serve.runner import (
    PredictJob, RecommendJob, SearchJob, predict_batch, recommend_batch, search_batch,
)  # fmt: skip

LOG = logging.getLogger("mmfuse.serve")
MAX_K = 1000


@dataclass(frozen=True)
class ServeOptions:
    """How the server treats requests.

    Attributes:
        max_request_mb: Largest request body (413 beyond it).
        api_key: Key every /v1/* and /metrics request must carry; None: open.
        max_batch: Most records per model batch (1: one request at a time).
        batch_wait_ms: How long a batch's first request waits for others.
        timeout_s: Longest a request may take (504 beyond it).
    """

    max_request_mb: float = 20.0
    api_key: str | None = None
    max_batch: int = 32
    batch_wait_ms: float = 5.0
    timeout_s: float = 30.0


def create_app(catalogue: Catalogue, options: ServeOptions | None = None) -> Any:
    """The ASGI application serving ``catalogue``."""
    options = options or ServeOptions()
    metrics = Metrics()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmfuse-model")
    scratch = Path(tempfile.mkdtemp(prefix="mmfuse-serve-"))  # empty: relative paths lead nowhere
    wait = options.batch_wait_ms / 1000
    batchers: dict[str, MicroBatcher[Any]] = {}
    item_tables: dict[str, ItemTable] = {}
    for name, model in catalogue.models.items():
        if model.task == "recommendation":
            item_tables[name] = ItemTable(model.estimator, name)
            run = functools.partial(recommend_batch, model, items=item_tables[name])
        elif model.task != "retrieval":
            run = functools.partial(predict_batch, model, base_dir=scratch)
        else:
            continue
        batchers[f"model:{name}"] = MicroBatcher(run, executor, options.max_batch, wait, metrics.on_batch(name))
    for name, served in catalogue.indexes.items():
        run = functools.partial(search_batch, served, base_dir=scratch)
        batchers[f"index:{name}"] = MicroBatcher(run, executor, options.max_batch, wait, metrics.on_batch(name))
    thumbnails = Thumbnails()
    started = time.time()

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        for batcher in batchers.values():
            await batcher.close()
        executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(scratch, ignore_errors=True)

    app = FastAPI(title="mmfuse", version=_version(), lifespan=lifespan,
                  description="Multimodal models and indexes served by `mmfuse serve` (docs/serving.md).")
    app.add_middleware(BodyLimit, max_mb=options.max_request_mb)
    if options.api_key:
        app.add_middleware(ApiKey, key=options.api_key)
    app.add_middleware(Measured, metrics=metrics)

    @app.exception_handler(RequestError)
    async def refused(_: Request, err: RequestError) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, status_code=err.status)

    @app.exception_handler(MmfuseError)
    async def bad_input(_: Request, err: MmfuseError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception) -> JSONResponse:
        LOG.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error ({type(err).__name__}); the server keeps running"},
                            status_code=500)

    async def served(key: str, job: Any) -> Any:
        try:
            return await asyncio.wait_for(batchers[key].submit(job), options.timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(504, f"the request took longer than the server's timeout of "
                               f"{options.timeout_s:g} s (--timeout)") from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Whether the server is up, and what it serves."""
        return {"status": "ok", "models": list(catalogue.models), "indexes": list(catalogue.indexes),
                "uptime_s": round(time.time() - started, 1)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        """Every served model (its inputs, classes, indexes) and index."""
        return {"models": [m.describe() for m in catalogue.models.values()],
                "indexes": [i.describe() for i in catalogue.indexes.values()]}

    @app.post("/v1/predict")
    async def predict(request: Request) -> dict[str, Any]:
        """The prediction, class probabilities and each modality's contribution for one record."""
        return await _predict(request, explain=False)

    @app.post("/v1/explain")
    async def explain(request: Request) -> dict[str, Any]:
        """The modalities' Shapley values, the fusion weights and the prediction for one record."""
        return await _predict(request, explain=True)

    async def _predict(request: Request, explain: bool) -> dict[str, Any]:
        begun = time.perf_counter()
        fields, name = await _record_fields(request)
        model = catalogue.model(name)
        if model.task == "retrieval":
            raise RequestError(422, f"{model.name} is a retrieval model: search its index with /v1/search")
        if model.task == "recommendation":
            raise RequestError(422, f"{model.name} is a recommendation model: ask it with /v1/recommend")
        record = record_from_fields(fields, model.inputs)
        result = dict(await served(f"model:{model.name}", PredictJob(record, explain)))
        if explain:
            result["values"] = result.pop("contributions")
            result["units"] = result.pop("contribution_units")
        result["latency_ms"] = round(1000 * (time.perf_counter() - begun), 2)
        return result

    @app.post("/v1/search")
    async def search(request: Request) -> dict[str, Any]:
        """The k items of an index nearest to a text or an uploaded file."""
        begun = time.perf_counter()
        fields = await _search_fields(request)
        index = catalogue.index(_text(fields.get("index")))
        job = _search_job(fields, index.query_kinds)
        hits = await served(f"index:{index.name}", job)
        return {"index": index.name, "query_kind": job.kind, "results": hits,
                "latency_ms": round(1000 * (time.perf_counter() - begun), 2)}

    @app.post("/v1/recommend")
    async def recommend(request: Request) -> dict[str, Any]:
        """A user's top k items (a user the model does not know gets the most popular ones)."""
        begun = time.perf_counter()
        fields = await _form_or_json(request)
        unknown = sorted(set(fields) - {"model", "user", "k"})
        if unknown:
            raise RequestError(422, f"unknown field(s) {unknown}; a recommendation takes model, user, k")
        model = catalogue.model(_text(fields.get("model")), ("recommendation",))
        if model.task != "recommendation":
            raise RequestError(422, f"{model.name} is a {model.task} model, not a recommendation model")
        user = fields.get("user")
        if isinstance(user, (int, float)) and not isinstance(user, bool):
            user = str(int(user)) if float(user).is_integer() else str(user)
        if not isinstance(user, str) or not user.strip():
            raise RequestError(422, "name the user: field 'user' (an id as in the interactions table)")
        result = dict(await served(f"model:{model.name}", RecommendJob(user.strip(), _k(fields.get("k", 10)))))
        result["latency_ms"] = round(1000 * (time.perf_counter() - begun), 2)
        return result

    @app.get("/v1/items/{model}/{item}/{column}")
    async def item_media(model: str, item: str, column: str, size: int = 256) -> Response:
        """A recommendation model's item file: an image as a PNG thumbnail, else as stored."""
        if model not in item_tables:
            raise RequestError(404, f"no recommendation model called {model!r}")
        path, kind = item_tables[model].file(item, column)
        return await file_response(path, kind, size)

    @app.get("/v1/media/{index}/{row_id}")
    async def media(index: str, row_id: int, size: int = 256) -> Response:
        """An indexed item's file: an image as a PNG thumbnail, audio or video as stored."""
        served_index = catalogue.index(index)
        return await file_response(item_file(served_index, row_id), served_index.kind, size)

    async def file_response(path: Path, kind: str, size: int) -> Response:
        """An image as a PNG thumbnail of at most ``size`` pixels a side; audio / video as stored."""
        if kind == "image":
            data = await asyncio.get_running_loop().run_in_executor(None, thumbnails.get, path, size)
            return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})
        return Response(path.read_bytes(), media_type=MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"))

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, batch sizes, records served."""
        return Response(metrics.text(), media_type="text/plain; version=0.0.4")

    return app


async def _form_or_json(request: Request) -> dict[str, Any]:
    """The request's fields: multipart / url-encoded form (files as Uploads) or a JSON object."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RequestError(400, f"the body is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise RequestError(400, "the JSON body must be an object, e.g. {\"record\": {...}}")
        return body
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise RequestError(415, f"send multipart/form-data or application/json, not {kind or 'no content type'}")
    form = await request.form()
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key in fields:
            raise RequestError(422, f"field {key!r} is given twice")
        if isinstance(value, str):
            fields[key] = value
        else:
            fields[key] = Upload(value.filename or "", value.content_type or "", await value.read())
    return fields


async def _record_fields(request: Request) -> tuple[dict[str, Any], str | None]:
    """(column -> value, model name) of a predict / explain request."""
    fields = await _form_or_json(request)
    name = _text(fields.pop("model", None))
    if "record" in fields or not _is_form(request):
        unknown = sorted(set(fields) - {"record"})
        record = fields.get("record")
        if unknown or not isinstance(record, dict):
            raise RequestError(422, "a JSON request is {\"model\": NAME, \"record\": {COLUMN: VALUE, ...}}"
                               + (f"; unknown key(s) {unknown}" if unknown else ""))
        fields = {k: _json_value(k, v) for k, v in record.items()}
    return fields, name


async def _search_fields(request: Request) -> dict[str, Any]:
    fields = await _form_or_json(request)
    unknown = sorted(set(fields) - {"index", "query", "file", "k", "modality"})
    if unknown:
        raise RequestError(422, f"unknown field(s) {unknown}; a search takes index, query or file, k")
    if not _is_form(request) and isinstance(fields.get("query"), (dict, str)) and _is_file(fields["query"]):
        fields["file"] = upload_from_json("query", fields.pop("query"))
    return fields


def _search_job(fields: dict[str, Any], kinds: list[str]) -> SearchJob:
    k = _k(fields.get("k", 10))
    upload, query = fields.get("file"), fields.get("query")
    if isinstance(upload, Upload) and (upload.data or upload.filename):
        if isinstance(query, str) and query.strip():
            raise RequestError(422, "give either a text query or a file, not both")
        from mmfuse.data.cells import sniff_media

        kind = _text(fields.get("modality")) or sniff_media(upload.data[:64]) or ""
        if kind not in MEDIA_KINDS:
            raise RequestError(422, f"the file {upload.filename!r} is not an image, audio or video file "
                               "mmfuse reads (PNG, JPEG, WAV, FLAC, MP4, ...)")
        return SearchJob(checked_upload("file", kind, upload), kind, k)
    if not isinstance(query, str) or not query.strip():
        raise RequestError(422, "the query is empty: give a text (field 'query') or a file (field 'file')")
    if "text" not in kinds:
        raise RequestError(422, f"this index's model embeds {', '.join(kinds)}, not text: send a file")
    return SearchJob(query.strip(), "text", k)


def _k(value: Any) -> int:
    try:
        k = int(str(value))
    except ValueError:
        raise RequestError(422, f"k must be a whole number of results, got {str(value)[:20]!r}") from None
    if not 1 <= k <= MAX_K:
        raise RequestError(422, f"k must be between 1 and {MAX_K}, got {k}")
    return k


def _json_value(key: str, value: Any) -> Any:
    """A JSON record's value, with files ({"base64": ...} or data: URLs) as Uploads."""
    return upload_from_json(key, value) if _is_file(value) else value


def _is_file(value: Any) -> bool:
    return (isinstance(value, dict) and "base64" in value) or (
        isinstance(value, str) and value.startswith("data:") and ";base64," in value[:200])


def _is_form(request: Request) -> bool:
    return not request.headers.get("content-type", "").lower().startswith("application/json")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(422, f"expected a name, got {type(value).__name__}")
    return value.strip() or None


@functools.lru_cache(maxsize=1)
def _page() -> str:
    try:
        return resources.files("mmfuse.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return "<!doctype html><title>mmfuse</title><p>The page is missing from this install; the API is at /docs."


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmfuse")
    except PackageNotFoundError:
        return "0"
