"""The playground: one small static page on the API's port (`/playground/`) that tries every
model through the typed endpoints. No CDN, font or script from elsewhere; its
Content-Security-Policy allows the page's own origin only. The choice against Gradio, with
its figures: docs/decisions/008-playground.md."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

STATIC = Path(__file__).with_name("static")
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/icon.svg": ("icon.svg", "image/svg+xml"),
}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# read once: a few small files, served unchanged for the life of the process
PAGES = {route: ((STATIC / name).read_bytes(), media) for route, (name, media) in FILES.items()}


def weight() -> int:
    """Bytes of the whole page: what a browser fetches to show it."""
    return sum(len(body) for body, _ in PAGES.values())


def _route(path: str) -> Route:
    body, media = PAGES[path]

    async def serve(request: Request) -> Response:
        return Response(body, media_type=media, headers=HEADERS)

    return Route(path, serve, methods=["GET", "HEAD"])


app = Starlette(routes=[_route(path) for path in PAGES])


class PlaygroundRoot:
    """`/playground` -> `playground/`: the page's own links are relative, so it works under any
    prefix a proxy adds; the Location is relative for the same reason."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path") == "/playground":
            await send(
                {
                    "type": "http.response.start",
                    "status": 308,
                    "headers": [(b"location", b"playground/"), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)
