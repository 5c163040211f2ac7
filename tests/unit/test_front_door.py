"""The front door on its own (no server): the typed routes it answers, the errors it gives for
what a client can get wrong, and everything else handed to the app inside it unchanged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiffin.api.endpoints import Endpoints
from tiffin.api.frontdoor import FrontDoor, form_parts
from tiffin.families import bikeshare, fashion, textcnn
from tiffin.runtime.backends import InProcess
from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW, FASHION_CLASSES, SENTIMENT_LABELS

PNG = Path("services/examples/bag.png").read_bytes()


class Model:
    def __init__(self, fn, classes=None, shape=(28, 28)):
        self.fn, self.input_shape = fn, shape
        if classes is not None:
            self.classes = classes

    def __call__(self, batch):
        return self.fn(batch)


def _probs(n: int, k: int) -> np.ndarray:
    return np.full((n, k), 1.0 / k, dtype=np.float32) + np.eye(1, k, k - 1, dtype=np.float32)


@pytest.fixture(scope="module")
def endpoints() -> Endpoints:
    return Endpoints(
        image=InProcess(fashion.FAMILY, Model(lambda b: _probs(len(b), 10), FASHION_CLASSES), "fashion-cnn:v1"),
        text_small=InProcess(textcnn.FAMILY, Model(lambda b: _probs(len(b), 2), SENTIMENT_LABELS), "review-textcnn:v1"),
        demand=InProcess(bikeshare.FAMILY, Model(lambda rows: np.array([r["hr"] * 10.0 for r in rows], np.float32)), "bike:v1"),
    )


async def inner(scope, receive, send):
    """Stands for BentoML's app: answers 299 with the path it saw."""
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


def call(endpoints: Endpoints, method: str, path: str, **kwargs) -> httpx.Response:
    door = FrontDoor(inner, {"/v2": inner})
    door.attach(endpoints)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=door), base_url="http://door") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_the_typed_routes_answer_in_their_schemas(endpoints):
    from tiffin.wire.schemas import DemandResult, ImageResult, TextResult

    r = call(endpoints, "POST", "/classify_image", files={"image": ("bag.png", PNG, "image/png")})
    assert r.status_code == 200 and ImageResult(**r.json()).label == FASHION_CLASSES[-1]
    assert r.json()["model"] == "fashion-cnn:v1" and r.json()["batch_size"] == 1
    r = call(endpoints, "POST", "/classify_text", json={"text": "fine"})
    assert r.status_code == 200 and TextResult(**r.json()).tier == "small"
    r = call(endpoints, "POST", "/predict_demand", json={**EXAMPLE_DEMAND_ROW, "hr": 7})
    assert r.status_code == 200 and DemandResult(**r.json()).bikers == 70.0


@pytest.mark.parametrize(
    "kwargs, path, status, fragment",
    [
        (dict(json={"image": "http://169.254.169.254/"}), "/classify_image", 415, "takes multipart/form-data"),
        (dict(files={"image": ("a.png", b"", "image/png")}), "/classify_image", 400, "empty"),
        (
            dict(files={"image": ("a.png", PNG, "image/png")}, data={"x": "1"}),
            "/classify_image",
            400,
            "unexpected form field(s) x",
        ),
        (dict(files={"picture": ("a.png", PNG, "image/png")}), "/classify_image", 400, "unexpected form field(s) picture"),
        # a text field named image is read as the file's bytes, never as a URL to fetch
        (dict(data={"image": "http://169.254.169.254/latest"}), "/classify_image", 415, "takes multipart/form-data"),
        (dict(json={"text": "a", "tier": "huge"}), "/classify_text", 400, "tier: Input should be 'small', 'large' or 'auto'"),
        (dict(content=b"{oops", headers={"content-type": "application/json"}), "/classify_text", 400, "Invalid JSON"),
        (dict(json=[1]), "/classify_text", 400, "should be an object"),
        (dict(json={"text": "x" * 70_000}), "/classify_text", 413, "at most 65536"),
        (dict(json={"text": "a", "tier": "large"}), "/classify_text", 400, "serves the small tier only"),
        (dict(json={**EXAMPLE_DEMAND_ROW, "hr": 25}), "/predict_demand", 400, "hr: Input should be less than or equal to 23"),
    ],
)
def test_what_a_client_gets_wrong_is_a_4xx_that_says_so(endpoints, kwargs, path, status, fragment):
    r = call(endpoints, "POST", path, **kwargs)
    assert r.status_code == status and fragment in r.json()["error"], r.text


def test_a_form_field_sent_as_text_is_taken_as_the_images_bytes(endpoints):
    boundary = "b0undary"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="image"\r\n\r\nhttp://example.com/a.png\r\n--{boundary}--\r\n'
    r = call(
        endpoints,
        "POST",
        "/classify_image",
        content=body.encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400 and "not a PNG or JPEG" in r.json()["error"]


def test_multipart_parts_are_read_whole():
    request = httpx.Request("POST", "http://x/", files={"image": ("a.png", PNG, "image/png")}, data={"note": "n"})
    parts = form_parts(request.headers["content-type"].encode(), request.read())
    assert parts == {"image": PNG, "note": b"n"}


def test_everything_else_goes_to_the_app_inside(endpoints):
    assert call(endpoints, "GET", "/classify_image").status_code == 299  # not a POST
    assert call(endpoints, "GET", "/docs.json").text == "/docs.json"
    assert call(endpoints, "GET", "/v2/models/x").status_code == 299  # an app of our own, outside BentoML's
    door = FrontDoor(inner)  # no endpoints yet: the models are loading, BentoML answers

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=door), base_url="http://door") as client:
            return await client.post("/classify_text", json={"text": "a"})

    assert asyncio.run(go()).status_code == 299


# names as a form's fields carry them (no quote, backslash or control character: clients escape those)
field_names = st.text(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters='"\\%'), min_size=1, max_size=20
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_names, st.binary(max_size=300), min_size=1, max_size=4), st.booleans())
def test_the_one_pass_reader_agrees_with_python_multipart(fields, as_files):
    """Whatever an HTTP client encodes, the fast reader gives python-multipart's answer (or
    leaves the body to it)."""
    from tiffin.api.frontdoor import _parsed_parts

    files = {name: (f"{i}.bin", data, "application/octet-stream") for i, (name, data) in enumerate(fields.items())}
    request = httpx.Request("POST", "http://x/", files=files) if as_files else None
    if request is None:  # text fields, as browsers send a form without files
        request = httpx.Request("POST", "http://x/", files={n: (None, d) for n, d in fields.items()})
    content_type, body = request.headers["content-type"].encode(), request.read()
    assert form_parts(content_type, body) == _parsed_parts(content_type, body) == fields


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([b"xyz", b'"xyz"', b"", b"a" * 80]))
def test_any_body_is_read_or_refused_with_a_4xx(tail, boundary):
    from tiffin.api.endpoints import BadInput

    try:
        form_parts(b"multipart/form-data; boundary=" + boundary, b"--xyz\r\n" + tail)
    except BadInput as exc:
        assert exc.status == 400


def test_a_huge_url_or_header_block_is_refused_before_any_work(endpoints):
    r = call(endpoints, "GET", "/classify_text?q=" + "a" * 9000)
    assert r.status_code == 414 and "URL" in r.json()["error"]
    r = call(endpoints, "POST", "/classify_text", json={"text": "a"}, headers={f"x-h{i}": "v" for i in range(150)})
    assert r.status_code == 431
    r = call(endpoints, "POST", "/classify_text", json={"text": "a"}, headers={"x-big": "v" * 20_000})
    assert r.status_code == 431 and "16384 bytes" in r.json()["error"]


def test_a_one_tier_service_says_which_tier_it_serves():
    large_only = Endpoints(
        text_large=InProcess(textcnn.FAMILY, Model(lambda b: _probs(len(b), 2), SENTIMENT_LABELS), "review-minilm:v1")
    )
    r = call(large_only, "POST", "/classify_text", json={"text": "a", "tier": "small"})
    assert r.status_code == 400 and "serves the large tier only" in r.json()["error"]
    r = call(large_only, "POST", "/classify_text", json={"text": "a", "tier": "auto"})
    assert r.status_code == 200 and r.json()["tier"] == "large"
