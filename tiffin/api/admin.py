"""The admin API on the serving port (`/admin/...`, the `admin` scope when API keys are on):
what `tiffin models ...` does, over HTTP, plus what this worker serves.

    GET  /admin/models                      every model, versions, aliases, what is served
    GET  /admin/models/{ref}                one version (NAME, NAME:VERSION, NAME@ALIAS)
    GET  /admin/models/{name}/history       who moved which alias, when and why
    POST /admin/models/{name}/promote       {"version": "...", "alias": "production", "force": false, "why": ""}
    POST /admin/models/{name}/rollback      {"alias": "production", "why": ""}
    POST /admin/models/{name}/pin           {"version": null, "alias": "production", "off": false, "why": ""}
    POST /admin/models/{name}/split         {"weights": {"<version>": 90, "<version>": 10}, "sticky": "x-user-id"}
                                            or {"off": true}
    POST /admin/models/{name}/shadow        {"version": "...", "percent": 100} or {"off": true}
    POST /admin/models/{name}/canary        {"action": "start", "version": "...", "weight": 10, "interval_s": 10,
                                             "failures": 3, "checks": {...}}, {"action": "promote" | "rollback"}

Moves (the POSTs) need API keys to be configured (an `admin` key; with keys off they are
refused: the CLI on the host moves versions then). A move writes the alias book; every worker (this one included) picks it up within
TIFFIN_ALIAS_POLL_S. Moves are recorded under the API key's name (or `http` when keys are off).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tiffin.api import keys
from tiffin.api.endpoints import BadInput
from tiffin.versions import manage
from tiffin.versions.book import DEFAULT_ALIAS, AliasError
from tiffin.versions.follow import FOLLOWING
from tiffin.wire import limits


class Move(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: str | None = Field(None, max_length=128, description="a stored version or a unique prefix of one")
    alias: str = Field(DEFAULT_ALIAS, max_length=64)
    force: bool = False
    off: bool = False
    why: str = Field("", max_length=1000)
    weights: dict[str, int] | None = Field(None, max_length=16, description="split: version -> weight")
    sticky: str | None = Field(None, max_length=64, description="split: the request header that keeps a user on one version")
    percent: float = Field(100.0, description="shadow: the share of requests offered to the version")


def _serving(name: str | None = None) -> dict:
    states = {n: vars(s) for n, s in FOLLOWING.items()}
    return states.get(name, {}) if name else states


async def _body(request: Request, schema: type[BaseModel] | None = None) -> Any:
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > limits.MAX_JSON_BYTES:
            raise BadInput(f"body exceeds {limits.MAX_JSON_BYTES} bytes", 413)
    try:
        return (schema or Move).model_validate_json(data or b"{}")
    except ValidationError as exc:
        from tiffin.api.frontdoor import describe

        raise BadInput(describe(exc)) from None


def _answer(call, moves: bool = False):
    async def endpoint(request: Request) -> JSONResponse:
        if moves and keys.keyring() is None:  # reading is as open as the rest; moving is not
            return JSONResponse(
                {
                    "error": "moving versions needs an API key with scope admin: set TIFFIN_API_KEYS"
                    " (python -m tiffin.api.keys new ops --scopes admin), or use `tiffin models` on the host"
                },
                403,
            )
        try:
            return JSONResponse(await call(request))
        except BadInput as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        except manage.NotInStore as exc:
            return JSONResponse({"error": str(exc)}, 404)
        except AliasError as exc:  # pinned, refused by the gate, nothing to roll back, a bad alias name
            return JSONResponse({"error": str(exc)}, 409)
        except ValueError as exc:  # weights or a header name that cannot be taken
            return JSONResponse({"error": str(exc)}, 400)
        except OSError as exc:  # a read-only book: on Kubernetes, a mounted ConfigMap
            where = exc.filename or "the alias book"
            return JSONResponse(
                {"error": f"{where} cannot be written here ({exc.strerror}); where the book is a ConfigMap, apply an edited one"},
                409,
            )

    return endpoint


def _by(request: Request) -> str:
    return f"key:{request.scope[keys.KEY_SCOPE]}" if request.scope.get(keys.KEY_SCOPE) else "http"


async def models(request: Request) -> dict:
    return {"models": await asyncio.to_thread(manage.list_models), "serving": _serving()}


async def show(request: Request) -> dict:
    shown = await asyncio.to_thread(manage.show, request.path_params["ref"])
    return {**shown, "serving": _serving(shown["name"])}


async def history(request: Request) -> dict:
    return {"history": await asyncio.to_thread(manage.history, request.path_params["name"])}


async def promote(request: Request) -> dict:
    move, name = await _body(request), request.path_params["name"]
    if not move.version:
        raise BadInput('name the version to promote: {"version": "..."}')
    return await asyncio.to_thread(
        manage.promote, name, move.version, move.alias, force=move.force, why=move.why, by=_by(request)
    )


async def rollback(request: Request) -> dict:
    move = await _body(request)
    return await asyncio.to_thread(manage.rollback, request.path_params["name"], move.alias, why=move.why, by=_by(request))


async def pin(request: Request) -> dict:
    move, name = await _body(request), request.path_params["name"]
    if move.off:
        return await asyncio.to_thread(manage.unpin, name, move.alias, why=move.why, by=_by(request))
    return await asyncio.to_thread(manage.pin, name, move.version, move.alias, why=move.why, by=_by(request))


async def split(request: Request) -> dict:
    move, name = await _body(request), request.path_params["name"]
    if move.off:
        return await asyncio.to_thread(manage.unsplit, name, why=move.why, by=_by(request))
    if not move.weights:
        raise BadInput('name the weights: {"weights": {"<version>": 90, "<version>": 10}}')
    return await asyncio.to_thread(manage.split, name, move.weights, move.sticky, why=move.why, by=_by(request))


async def shadow(request: Request) -> dict:
    move, name = await _body(request), request.path_params["name"]
    if move.off:
        return await asyncio.to_thread(manage.unshadow, name, why=move.why, by=_by(request))
    if not move.version:
        raise BadInput('name the version to shadow: {"version": "...", "percent": 100}')
    return await asyncio.to_thread(manage.shadow, name, move.version, move.percent, why=move.why, by=_by(request))


class CanaryMove(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    action: str = Field(pattern="^(start|promote|rollback)$")
    version: str | None = Field(None, max_length=128)
    weight: int = 10
    shadow: float = 100.0
    interval_s: float = Field(10.0, gt=0)
    failures: int = Field(3, ge=1)
    checks: dict[str, float] | None = Field(None, max_length=8)
    force: bool = False
    why: str = Field("", max_length=1000)


async def canary_move(request: Request) -> dict:
    from tiffin.versions import canary

    name, move = request.path_params["name"], await _body(request, CanaryMove)
    if move.action == "start":
        if not move.version:
            raise BadInput('name the candidate: {"action": "start", "version": "..."}')
        return await asyncio.to_thread(
            canary.start, name, move.version, weight=move.weight, shadow_percent=move.shadow, interval_s=move.interval_s,
            failures=move.failures, checks=move.checks, why=move.why, by=_by(request),
        )  # fmt: skip
    if move.action == "promote":
        return await asyncio.to_thread(canary.promote, name, force=move.force, why=move.why, by=_by(request))
    return await asyncio.to_thread(canary.rollback, name, why=move.why, by=_by(request))


def build_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/models", _answer(models), methods=["GET"]),
            Route("/models/{name}/history", _answer(history), methods=["GET"]),
            Route("/models/{name}/promote", _answer(promote, moves=True), methods=["POST"]),
            Route("/models/{name}/rollback", _answer(rollback, moves=True), methods=["POST"]),
            Route("/models/{name}/pin", _answer(pin, moves=True), methods=["POST"]),
            Route("/models/{name}/split", _answer(split, moves=True), methods=["POST"]),
            Route("/models/{name}/shadow", _answer(shadow, moves=True), methods=["POST"]),
            Route("/models/{name}/canary", _answer(canary_move, moves=True), methods=["POST"]),
            Route("/models/{ref}", _answer(show), methods=["GET"]),
        ]
    )
