"""How a model family describes itself over the Open Inference Protocol: its input and output
tensors, how a request's tensors become a batch for its runner, and how the runner's answers
become output tensors. Each family module holds its own `Signature`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class OIPError(Exception):
    """An error with both protocol mappings: HTTP status and gRPC status code name."""

    def __init__(self, message: str, http: int = 400, grpc: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.http, self.grpc = http, grpc


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


def class_outputs(answers: list[dict]) -> dict[str, np.ndarray]:
    """A classifier runner's answers -> `probabilities` [N, classes] and `label` [N]."""
    names = list(answers[0]["probabilities"])
    probs = np.array([[a["probabilities"][n] for n in names] for a in answers], dtype=np.float32)
    labels = np.array([names[i].encode() for i in probs.argmax(1).tolist()], dtype=np.object_)  # ints index faster
    return {"probabilities": probs, "label": labels}


def class_tensors(classes: int) -> list[TensorSpec]:
    return [TensorSpec("probabilities", "FP32", [-1, classes]), TensorSpec("label", "BYTES", [-1])]


@dataclass(frozen=True)
class Signature:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    prepare: Callable[[dict[str, np.ndarray]], Any] = field(repr=False)  # input tensors -> a runner batch
    answer: Callable[[list[dict]], dict[str, np.ndarray]] = field(default=class_outputs, repr=False)
    method: str = "classify"  # the runner's API that takes the batch


def items(array: np.ndarray, name: str) -> np.ndarray:
    """One value per item: accept [N] or [N, 1]."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise OIPError(f"input {name} must have shape [N] or [N, 1], got {list(array.shape)}")
    return array
