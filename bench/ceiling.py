"""The ceiling: the least an admission endpoint can do over the same server, TLS and HTTP stack.

It reads the body, parses it with orjson (the fastest JSON parser available) and answers an allowed
AdmissionReview with no patch. ASGI app: ``bench.ceiling:app``.

``/patch/{name}`` answers the same, plus a fixed base64 JSON Patch: ``CEILING_PATCHES`` holds a JSON
object of name to base64 patch. It shows what kube-apiserver pays to apply and store a mutated object,
with no mutation computed.
"""

from __future__ import annotations

import os

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PATCHES: dict[str, str] = orjson.loads(os.environ.get("CEILING_PATCHES", "{}"))


async def mutate(request: Request) -> Response:
    review = orjson.loads(await request.body())
    answer = {
        "apiVersion": review["apiVersion"],
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True},
    }
    return Response(orjson.dumps(answer), media_type="application/json")


async def mutate_with_patch(request: Request) -> Response:
    review = orjson.loads(await request.body())
    response = {
        "uid": review["request"]["uid"],
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": PATCHES[request.path_params["name"]],
    }
    answer = {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response}
    return Response(orjson.dumps(answer), media_type="application/json")


async def healthz(_: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/mutate", mutate, methods=["POST"]),
        Route("/patch/{name}", mutate_with_patch, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
