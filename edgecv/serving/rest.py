"""TF Serving's REST API on Starlette: model status, metadata and :predict (row and columnar
forms), errors as {"error": "..."} with a 4xx, Prometheus metrics at TF Serving's path.
https://www.tensorflow.org/tfx/serving/api_rest
"""

from __future__ import annotations

import asyncio
import json
import re
import time

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecv.formats.savedmodel.tfserving_files import METRICS_PATH
from edgecv.serving.model import RequestError
from edgecv.serving.tensors import decode_request, encode_response, metadata_json

MODEL_PATH = re.compile(r"^(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                        r"(?P<tail>/metadata|:[A-Za-z]+)?$")


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def status_json(version: int) -> dict:
    return {"model_version_status": [{"version": str(version), "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, refused past `limit` bytes (413) or when it has not all come in `timeout`
    seconds (408: a client that stops halfway holds nothing for long)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise RequestError(f"request body of {declared} bytes is over the {limit} allowed (--max-body-mb)", 413)
    chunks, size = [], 0

    async def collect():
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(f"request body is over the {limit} bytes allowed (--max-body-mb)", 413)
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise RequestError(f"the request body did not arrive within {timeout:g} s ({size} bytes came)", 408) from None
    return b"".join(chunks)


def build_app(server) -> Starlette:
    """`server`: edgecv.serving.server.ModelServer (model, batchers, metrics, limits)."""
    model = server.model

    def resolve(path: str):
        m = MODEL_PATH.match(path)
        if m is None:
            raise RequestError(f"unknown path /v1/models/{path}: try /v1/models/{model.name}", 404)
        name, version, label, tail = m.group("name", "version", "label", "tail")
        if name != model.name:
            raise RequestError(f"Servable not found for request: Latest({name}); this server serves "
                               f"model {model.name!r}", 404)
        if label is not None:
            raise RequestError(f"version labels are not supported (label {label!r}): use /versions/{model.version}", 404)
        if version is not None and version != str(model.version):
            raise RequestError(f"Servable not found for request: Specific({name}, {version}); "
                               f"version {model.version} is served (the latest, as TF Serving's default policy)", 404)
        return tail

    async def models(request: Request) -> Response:
        t0 = time.perf_counter()
        api = "other"
        try:
            tail = resolve(request.path_params["path"])
            if tail is None or tail == "/metadata":
                api = "status" if tail is None else "metadata"
                if request.method != "GET":
                    raise RequestError(f"{request.method} is not allowed here: GET the {api}", 405)
                return JSONResponse(status_json(model.version) if tail is None else metadata_json(model))
            if tail in (":classify", ":regress"):
                raise RequestError(f"{tail[1:]} is not supported: edgecv serve answers :predict", 400)
            if tail != ":predict":
                raise RequestError(f"unknown method {tail}: use :predict", 404)
            api = "predict"
            if request.method != "POST":
                raise RequestError("POST a JSON body to :predict", 405)
            return await predict(request)
        except RequestError as e:
            server.metrics.count(api, "", e.status)
            return error(str(e), e.status)
        finally:
            server.metrics.observe(api, time.perf_counter() - t0)

    async def predict(request: Request) -> Response:
        try:
            raw = await read_body(request, server.max_body_bytes, server.body_timeout)
        except ClientDisconnect:
            server.metrics.count("predict", "", 499)
            return error("the client went away before sending the whole body", 400)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError(f"the request body is not JSON ({e})") from None
        except RecursionError:
            raise RequestError("the request body nests JSON too deeply") from None
        sig_name = body.get("signature_name") or "serving_default" if isinstance(body, dict) else "serving_default"
        if not isinstance(sig_name, str) or sig_name not in model.signatures:
            raise RequestError(f"signature {sig_name!r} not found: this model has {sorted(model.signatures)}")
        sig = model.signatures[sig_name]
        inputs, form = decode_request(body, sig)
        outputs = await server.predict(sig_name, inputs)
        server.metrics.count("predict", sig_name, 200)
        return JSONResponse(encode_response(outputs, form))

    async def metrics(request: Request) -> Response:
        data, content_type = server.metrics.exposition()
        return Response(data, media_type=content_type)

    async def not_found(request: Request, exc) -> Response:
        status = getattr(exc, "status_code", 404)
        return error(f"{request.method} {request.url.path}: {getattr(exc, 'detail', 'not found')}; the API is "
                     f"/v1/models/{model.name}[/versions/N][/metadata|:predict]", status)

    async def internal(request: Request, exc: Exception) -> Response:
        return error(f"internal error: {type(exc).__name__}", 500)

    routes = [Route("/v1/models/{path:path}", models, methods=["GET", "POST", "PUT", "DELETE"]),
              Route(METRICS_PATH, metrics, methods=["GET"])]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found, Exception: internal})
