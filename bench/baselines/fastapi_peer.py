"""Peer: the same trained models behind FastAPI, the way its docs show a model endpoint: one
request, one forward pass, a sync `def` endpoint (FastAPI runs it in its thread pool), the
same preprocessing and input schemas as tiffin. Run: uvicorn bench.baselines.fastapi_peer:app
[--workers N]; TIFFIN_TORCH_THREADS sets torch's threads per worker (BENTOML_HOME: the store)."""

from __future__ import annotations

import torch
from fastapi import FastAPI, UploadFile

from tiffin import families
from tiffin.config import settings
from tiffin.families import bikeshare, fashion, minilm, textcnn
from tiffin.wire.images import decode_image
from tiffin.wire.schemas import DemandFeatures, TextRequest

if settings().torch_threads:
    torch.set_num_threads(settings().torch_threads)
MODELS = {f.name: families.load(f)[1] for f in (fashion.FAMILY, textcnn.FAMILY, minilm.FAMILY, bikeshare.FAMILY)}
app = FastAPI()


def _top(probs, classes: list[str]) -> dict:
    best = int(probs.argmax())
    return {"label": classes[best], "probability": float(probs[best])}


@app.post("/classify_image")
def classify_image(image: UploadFile) -> dict:
    model = MODELS[fashion.FAMILY.name]
    probs = model(decode_image(image.file.read())[None])[0]
    return {**_top(probs, model.classes), "probabilities": dict(zip(model.classes, probs.tolist()))}


@app.post("/classify_text")
def classify_text(request: TextRequest) -> dict:
    model = MODELS[(minilm if request.tier == "large" else textcnn).FAMILY.name]
    return _top(model([request.text])[0], model.classes)


@app.post("/predict_demand")
def predict_demand(row: DemandFeatures) -> dict:
    return {"bikers": float(MODELS[bikeshare.FAMILY.name]([row.model_dump()])[0])}


@app.get("/")
def root() -> dict:
    return {"ok": True}
