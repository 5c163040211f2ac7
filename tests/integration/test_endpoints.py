"""A real `bentoml serve` answering real held-out examples, over httpx and BentoML's client."""

from __future__ import annotations

import bentoml
import httpx
import numpy as np
import pytest
import torch

from tiffin import families
from tiffin.families import bikeshare, fashion, minilm, textcnn
from tiffin.wire import images
from tiffin.wire.catalog import CASCADE_THRESHOLD, EXAMPLE_DEMAND_ROW
from train import datasets

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fashion_data():
    return datasets.fashion_mnist()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def test_ready_and_live(client):
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200


def test_held_out_fashion_images_are_classified(client, fashion_data):
    _, local = families.load(fashion.FAMILY, torch.device("cpu"))
    idx = np.random.default_rng(1).choice(len(fashion_data.y_test), 48, replace=False)
    correct = 0
    for i in idx:
        r = client.post("/classify_image", files={"image": ("item.png", images.encode_png(fashion_data.x_test[i]), "image/png")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"].startswith("fashion-cnn:")
        assert abs(sum(body["probabilities"].values()) - 1) < 1e-4
        # the server gives exactly what the model gives in-process on the same pixels
        expected = local(fashion_data.x_test[i][None])[0]
        np.testing.assert_allclose([body["probabilities"][c] for c in fashion.CLASSES], expected, atol=1e-5)
        correct += body["label"] == fashion.CLASSES[fashion_data.y_test[i]]
    # quick-trained (1 epoch on 6k images) the CNN reaches ~0.8; untrained it would be ~0.1
    assert correct / len(idx) >= 0.65


def test_shipped_example_image_is_an_ankle_boot(client):
    with open("services/examples/ankle-boot.png", "rb") as fh:
        r = client.post("/classify_image", files={"image": ("boot.png", fh, "image/png")})
    assert r.status_code == 200 and r.json()["label"] == "Ankle boot"


def test_large_colour_jpeg_goes_through_the_same_preprocessing(client, fashion_data):
    import io

    from PIL import Image

    photo = Image.fromarray(255 - fashion_data.x_test[2]).resize((300, 300)).convert("RGB")
    buf = io.BytesIO()
    photo.save(buf, format="JPEG")
    r = client.post("/classify_image", files={"image": ("trouser.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 200
    _, local = families.load(fashion.FAMILY, torch.device("cpu"))
    expected = local(images.decode_image(buf.getvalue())[None])[0]
    assert r.json()["label"] == fashion.CLASSES[int(expected.argmax())]


def test_held_out_reviews_by_tier(client):
    reviews = datasets.rotten_tomatoes()
    for tier, spec in (("small", textcnn.FAMILY), ("large", minilm.FAMILY)):
        _, local = families.load(spec, torch.device("cpu"))
        texts = reviews.x_test[:24]
        expected = local(texts)
        for text, probs in zip(texts, expected):
            r = client.post("/classify_text", json={"text": text, "tier": tier})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["tier"] == tier and body["model"].startswith(spec.name + ":")
            assert body["label"] == ("fresh" if probs[1] > probs[0] else "rotten")
            assert body["probability"] == pytest.approx(probs.max(), abs=1e-4)


def _cascade_counts(client) -> dict[str, float]:
    counts = {"small": 0.0, "escalated": 0.0}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("tiffin_cascade_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            counts[outcome] += float(line.rsplit(" ", 1)[1])
    return counts


def test_auto_tier_escalates_only_when_small_is_unsure(client):
    stored, small = families.load(textcnn.FAMILY, torch.device("cpu"))
    # the threshold training chose for its target escalation rate, stored with the version
    threshold = stored.config.get("cascade", {}).get("threshold", CASCADE_THRESHOLD)
    texts = datasets.rotten_tomatoes().x_test[:20]
    before, tiers = _cascade_counts(client), []
    for text, probs in zip(texts, small(texts)):
        r = client.post("/classify_text", json={"text": text, "tier": "auto"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["tier"] == ("small" if probs.max() >= threshold else "large")
        tiers.append(body["tier"])
    after = _cascade_counts(client)  # tiffin_cascade_total counts each outcome once
    assert after["escalated"] - before["escalated"] == tiers.count("large")
    assert after["small"] - before["small"] == tiers.count("small")


def test_demand_prediction_matches_model_and_data(client):
    split = datasets.bikeshare()
    _, local = families.load(bikeshare.FAMILY, torch.device("cpu"))
    rows = split.x_test.head(16)[list(EXAMPLE_DEMAND_ROW)].to_dict("records")
    expected = local(rows)
    for row, want in zip(rows, expected):
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        r = client.post("/predict_demand", json=row)
        assert r.status_code == 200, r.text
        assert r.json()["bikers"] == pytest.approx(float(want), rel=1e-4, abs=1e-3)
        assert r.json()["model"].startswith("bikeshare-mlp:")


def test_bentoml_sync_client(server, fashion_data, tmp_path):
    png = tmp_path / "item.png"
    png.write_bytes(images.encode_png(fashion_data.x_test[0]))
    with bentoml.SyncHTTPClient(server.url) as c:
        assert c.is_ready()
        body = c.classify_image(image=png)
        assert set(body) >= {"label", "probabilities", "model", "batch_size"}
        body = c.classify_text(text="An utterly charming delight.", tier="small")
        assert body["label"] in ("fresh", "rotten")
        body = c.predict_demand(**EXAMPLE_DEMAND_ROW)
        assert body["bikers"] >= 0


def test_bentoml_own_routes_give_the_same_answers_with_the_front_door_off(server, fashion_data, tmp_path):
    """TIFFIN_FRONT_DOOR=off: the typed routes go through BentoML's request path (its IO
    descriptors, middlewares, metrics), call the same endpoints and answer alike, errors too."""
    from tiffin.deploy.serve import Server

    png = images.encode_png(fashion_data.x_test[0])
    calls = [
        ("/classify_image", dict(files={"image": ("i.png", png, "image/png")})),
        ("/classify_text", dict(json={"text": "An utterly charming delight.", "tier": "auto"})),
        ("/predict_demand", dict(json=EXAMPLE_DEMAND_ROW)),
    ]
    bad = ("/classify_text", dict(json={"text": "   "}))
    with Server(env={"TIFFIN_FRONT_DOOR": "off", "TIFFIN_API_WORKERS": "1"}) as off:
        for path, kwargs in calls:
            door, bento = (httpx.post(s.url + path, timeout=30, **kwargs).json() for s in (server, off))
            assert door.pop("probabilities", None) == pytest.approx(bento.pop("probabilities", None))
            door.pop("batch_size"), bento.pop("batch_size")
            assert door == pytest.approx(bento)
        r = httpx.post(off.url + bad[0], timeout=30, **bad[1])
        assert r.status_code == 400 and "blank" in r.json()["error"]
        # a text field named image would be a URL for BentoML to fetch (server-side request forgery)
        for url in (off.url, server.url):
            r = httpx.post(
                url + "/classify_image", files={"image": (None, "http://169.254.169.254/latest/meta-data")}, timeout=30
            )
            assert r.status_code == 400, r.text
        # BentoML counted these requests per route: its middlewares ran
        assert 'endpoint="/classify_text"' in httpx.get(off.url + "/metrics").text


def test_docs_page_shows_examples(client):
    assert client.get("/").status_code == 200
    spec = client.get("/docs.json").json()
    paths = spec["paths"]
    assert {"/classify_image", "/classify_text", "/predict_demand"} <= set(paths)
    text = str(paths["/classify_text"]) + str(spec.get("components", {}))
    assert "A witty, warm" in text
    assert "'mnth': 'July'" in str(paths["/predict_demand"]) + str(spec.get("components", {}))


def test_requests_spaced_by_keep_alive_timeout_succeed(client):
    # The runners' server drops idle connections after 5 s while BentoML's client may
    # still reuse them; requests landing right then must not fail.
    import time

    for _ in range(3):
        assert client.post("/classify_text", json={"text": "fine"}).status_code == 200
        time.sleep(5.0)
    assert client.post("/classify_text", json={"text": "fine"}).status_code == 200


def test_each_runner_serves_the_pinned_tag(client):
    # the server fixture pins every runner with TIFFIN_*_MODEL; answers name that tag
    body = client.post("/predict_demand", json=EXAMPLE_DEMAND_ROW).json()
    assert body["model"] == bikeshare.FAMILY.tag != "bikeshare-mlp:latest"
    with open("services/examples/bag.png", "rb") as fh:
        assert client.post("/classify_image", files={"image": fh}).json()["model"] == fashion.FAMILY.tag


def test_every_worker_freezes_its_start_up_objects(server):
    """Each worker of the API ran the start-up hook (tiffin/runtime/gc_pauses.py), which keeps
    full garbage collections from stalling answers ~200 ms."""
    done = server.logs().count("Completed startup hook: freeze_startup_objects")
    workers = server.logs().count("Service tiffin initialized")
    assert done == workers >= 1, f"{done} of {workers} workers froze their start-up objects"
