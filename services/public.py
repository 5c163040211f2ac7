"""What both public API services (services/api.py, services/gateway.py) carry besides their
typed routes: OIP REST at /v2, the playground, and the request guard on BentoML's own routes
(the front door checks the same limits itself)."""

from __future__ import annotations

from tiffin.config import settings
from tiffin.oip.rest import V2Root, build_app
from tiffin.playground import PlaygroundRoot
from tiffin.playground import app as playground
from tiffin.runtime.guard import RequestGuard, Rule

OIP_APP = build_app()


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
