"""What both public API services (services/api.py, services/gateway.py) carry besides their
typed routes: OIP REST at /v2 and gRPC, bulk scoring as a task, the playground, and the
request guard on BentoML's own routes (the front door checks the same limits itself)."""

from __future__ import annotations

import bentoml
from starlette.responses import JSONResponse

from tiffin.api import batch as batch_jobs
from tiffin.api import keys
from tiffin.api.endpoints import BadInput
from tiffin.config import settings
from tiffin.oip.rest import V2Root, build_app
from tiffin.playground import PlaygroundRoot
from tiffin.playground import app as playground
from tiffin.runtime.guard import RequestGuard, Rule
from tiffin.wire.schemas import BatchJob

OIP_APP = build_app()


class ServesOIPOverGRPC:
    """Mixin for the API services: the OIP gRPC server on TIFFIN_GRPC_PORT over `self.oip`
    (the service's Registry), started and stopped with the worker."""

    _grpc = None

    @bentoml.on_startup
    async def start_grpc(self) -> None:
        # Imported here: the generated protobuf module registers the `inference` package
        # globally, which clashes with other OIP clients (tritonclient) imported beside
        # this module, e.g. in tests or tools that only read the service definition.
        from tiffin.oip import grpc_server

        self._grpc = await grpc_server.start(self.oip, settings().grpc_host, settings().grpc_port, keys.keyring())

    @bentoml.on_shutdown
    async def stop_grpc(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace=5)


class ScoresFiles:
    """Mixin for the API services: bulk scoring over `self.endpoints` as a BentoML task, so a
    platform can run it asynchronously (tiffin/api/batch.py)."""

    @bentoml.task(route="/batch", input_spec=BatchJob)
    async def batch(self, input: str, output: str, kind: str = "text", tier: str = "small") -> dict:
        """Score every item of a file (JSONL or CSV rows: `id` and `text`, or the demand fields) or of
        a folder of images (`kind=image`) into a JSONL file, both under the server's TIFFIN_BATCH_DIR;
        run again on the same output, it resumes where it stopped. `tiffin batch` drives it."""
        try:
            return await batch_jobs.run(self.endpoints, input, output, kind, tier)
        except BadInput as exc:  # the task fails with the 4xx that says what to fix, not a 500
            return JSONResponse({"error": str(exc)}, status_code=exc.status)


def mount(service) -> None:
    service.mount_asgi_app(OIP_APP, path="/v2")
    service.mount_asgi_app(playground, path="/playground")
    service.add_asgi_middleware(V2Root)
    service.add_asgi_middleware(PlaygroundRoot)
    service.add_asgi_middleware(
        RequestGuard,
        rules={
            "/classify_image": Rule("multipart/form-data", settings().max_image_bytes, form_fields=frozenset({"image"})),
            "/classify_text": Rule("application/json", settings().max_json_bytes),
            "/predict_demand": Rule("application/json", settings().max_json_bytes),
        },
    )
