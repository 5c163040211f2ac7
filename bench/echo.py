"""A bare Starlette echo app: the ceiling for an HTTP server on this machine, and a
check that the load generator is not the bottleneck. Run: uvicorn bench.echo:app"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
