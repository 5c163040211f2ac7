"""A damaged model version stops `bentoml serve` before any worker starts, with one line that
names the model, the file and the problem.

Without this check a worker that cannot load its model fails its start-up, BentoML starts it
again, and so on for ever: the server stays up, the damaged model's routes time out, and
nothing says which model is broken (issue 19). BentoML runs a service's deployment hooks
once, in its main process, before it starts the workers; a hook that raises ends the serve
with a non-zero status. The check reads what loading would trip on: every JSON file parses,
every safetensors file's header parses and covers the file (a truncated file fails here). It
does not read the tensors (~0.1 s for MiniLM's 90 MB, and a worker reads them anyway).
"""

from __future__ import annotations

import json
from pathlib import Path

import bentoml
from bentoml.exceptions import BentoMLException

from tiffin import store


class ModelUnreadable(BentoMLException):
    """A stored model version that cannot be served; the message names model, file and problem
    (a BentoMLException: `bentoml serve` prints it as one line, as it does a missing tag)."""


def check_version(tag: str, path: Path) -> None:
    """Raise ModelUnreadable when the version at `path` lacks its config or weights, or when
    one of its JSON or safetensors files cannot be read."""
    from safetensors import safe_open

    path = Path(path)
    for required in (store.CONFIG, store.WEIGHTS):
        if not (path / required).is_file():
            raise ModelUnreadable(f"model {tag}: {path / required}: missing")
    for file in sorted(path.rglob("*.json")):
        try:
            json.loads(file.read_bytes())
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ModelUnreadable(f"model {tag}: {file}: not valid JSON ({exc})") from None
    for file in sorted(path.rglob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt") as weights:
                weights.keys()
        except Exception as exc:  # SafetensorError is not exported under a stable name
            raise ModelUnreadable(f"model {tag}: {file}: unreadable weights ({exc})") from None


def check_models(service: type) -> None:
    """Check every `bentoml.models.BentoModel` attribute of `service` (a service class)."""
    seen = set()
    for klass in service.__mro__:
        for ref in vars(klass).values():
            if isinstance(ref, bentoml.models.BentoModel) and id(ref) not in seen:
                seen.add(id(ref))
                stored = ref.resolve()  # a missing tag raises BentoML's NotFound, which names it
                check_version(str(stored.tag), Path(stored.path))


class ChecksModelsFirst:
    """Mixin for `@bentoml.service` classes: their models are checked in the main process
    before any worker starts (a deployment hook per class, since the hook gets no `cls`)."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)

        def check_stored_models() -> None:
            check_models(cls)

        cls.check_stored_models = bentoml.on_deployment(check_stored_models)
