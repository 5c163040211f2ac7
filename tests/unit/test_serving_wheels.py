"""The serving wheels' metadata (tiffin/deploy/slim_wheel.py) and what each container bento
pins (tiffin/deploy/container_bentos.py)."""

from __future__ import annotations

from tiffin.deploy import container_bentos, slim_wheel

METADATA = """Metadata-Version: 2.1
Name: example
Requires-Dist: sympy>=1.13.3
Requires-Dist: sympy-extras
Requires-Dist: Huggingface_Hub<3.0,>=0.16.4
Requires-Dist: networkx ; extra == "graphs"
Requires-Dist: filelock
"""


def test_only_the_named_distributions_are_dropped():
    kept = slim_wheel.metadata(METADATA, {"sympy", "huggingface-hub", "networkx"})
    requires = [line.split(":", 1)[1].strip() for line in kept.splitlines() if line.startswith("Requires-Dist:")]
    # names compare as PyPI normalises them; a longer name that starts the same is kept
    assert requires == ["sympy-extras", "filelock"]
    assert kept.startswith("Metadata-Version: 2.1\nName: example\n")


def test_only_minilm_images_pin_its_tokenizer_and_none_pins_transformers():
    names = {minilm: {p.split("==")[0] for p in container_bentos.pins(minilm)} for minilm in (True, False)}
    assert "tokenizers" in names[True] and "tokenizers" not in names[False]
    assert "torch" in names[False] and not any("transformers" in n for n in names[True])
