"""Peer: the same trained models behind LitServe with its batching (max_batch_size 64,
batch_timeout 5 ms: the best variant measured here), the same preprocessing as tiffin, one
LitAPI per route. Run: python -m bench.baselines.litserve_peer PORT (BENTOML_HOME: the store)."""

from __future__ import annotations

import sys

import litserve as ls
import numpy as np

from tiffin import families
from tiffin.families import bikeshare, fashion, textcnn
from tiffin.wire.images import decode_image
from tiffin.wire.schemas import DemandFeatures, TextRequest


class Image(ls.LitAPI):
    def setup(self, device):
        self.model = families.load(fashion.FAMILY)[1]

    def decode_request(self, request):
        return decode_image(request["image"].file.read())

    def batch(self, inputs):
        return np.stack(inputs)

    def predict(self, x):
        return self.model(x)

    def unbatch(self, output):
        return list(output)

    def encode_response(self, probs):
        classes = self.model.classes
        return {"label": classes[int(probs.argmax())], "probabilities": dict(zip(classes, probs.tolist()))}


class Text(ls.LitAPI):
    def setup(self, device):
        self.model = families.load(textcnn.FAMILY)[1]

    def decode_request(self, request):
        return TextRequest(**request).text

    def predict(self, texts):
        return self.model(texts)

    def unbatch(self, output):
        return list(output)

    def encode_response(self, probs):
        best = int(probs.argmax())
        return {"label": self.model.classes[best], "probability": float(probs[best])}


class Demand(ls.LitAPI):
    def setup(self, device):
        self.model = families.load(bikeshare.FAMILY)[1]

    def decode_request(self, request):
        return DemandFeatures(**request).model_dump()

    def predict(self, rows):
        return self.model(rows)

    def unbatch(self, output):
        return list(output)

    def encode_response(self, bikers):
        return {"bikers": float(bikers)}


def main() -> None:
    batching = {"max_batch_size": 64, "batch_timeout": 0.005}
    apis = [
        Image(api_path="/classify_image", **batching),
        Text(api_path="/classify_text", **batching),
        Demand(api_path="/predict_demand", **batching),
    ]
    ls.LitServer(apis, accelerator="cpu").run(port=int(sys.argv[1]), generate_client_file=False)


if __name__ == "__main__":
    main()
