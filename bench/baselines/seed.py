"""Baseline: the endpoint a first version of a model server usually is. One request, one
forward pass of the same predictor, in Starlette's thread pool; no batching.
Run: uvicorn bench.baselines.seed:app (BENTOML_HOME points at the store)."""

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tiffin import families
from tiffin.families import fashion

_, predictor = families.load(fashion.FAMILY)


async def classify(request: Request) -> JSONResponse:
    pixels = np.frombuffer(await request.body(), dtype=np.uint8).reshape(1, *predictor.input_shape)
    probs = await run_in_threadpool(predictor, pixels)
    return JSONResponse({"label": predictor.classes[int(probs[0].argmax())]})


app = Starlette(routes=[Route("/classify", classify, methods=["POST"])])
