"""tiffin/families/bert.py against transformers, the library it stands in for when serving:
the same token ids, the same token states, and a float16 copy that reloads as saved."""

from __future__ import annotations

import pytest
import torch

from tiffin.families import bert, minilm
from train import datasets

transformers = pytest.importorskip("transformers")

TEXTS = [
    "A moving, beautiful film.",
    "dull",
    "",
    "Café society's naïve charm — 10/10, wouldn't watch again!!!",
    "中文 and ẞtraße, tabs\tand\nnewlines",
    " ".join(["an overlong review that keeps going"] * 60),  # past MAX_TOKENS: truncated
]


@pytest.fixture(scope="module")
def directory():
    return datasets.minilm_dir()


def test_token_ids_match_transformers(directory):
    ours = bert.WordPiece(directory, minilm.MAX_TOKENS)(TEXTS)
    theirs = transformers.AutoTokenizer.from_pretrained(str(directory))(
        TEXTS, padding=True, truncation=True, max_length=minilm.MAX_TOKENS, return_tensors="pt"
    )
    assert ours["input_ids"].shape[1] == minilm.MAX_TOKENS  # padded to the longest, truncated at the limit
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(ours[key], theirs[key]), key


def test_word_pieces_match_transformers(directory):
    words = ["film", "unwatchable", "naïve", "zzzqx"]
    theirs = transformers.AutoTokenizer.from_pretrained(str(directory))(words, add_special_tokens=False)["input_ids"]
    assert bert.WordPiece(directory, minilm.MAX_TOKENS).pieces(words) == theirs


@torch.inference_mode()
def test_token_states_match_transformers_bert(directory):
    batch = bert.WordPiece(directory, minilm.MAX_TOKENS)(TEXTS)
    ours = bert.BertEncoder.load(directory).eval()(**batch)
    reference = transformers.BertModel.from_pretrained(str(directory), use_safetensors=True).eval()
    theirs = reference(**batch).last_hidden_state
    read = batch["attention_mask"].bool()
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours[read], theirs[read], atol=2e-5, rtol=1e-4)


@torch.inference_mode()
def test_a_saved_encoder_reloads_as_it_computed(directory, tmp_path):
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    model = bert.BertEncoder.load(directory).eval()
    batch = bert.WordPiece(directory, minilm.MAX_TOKENS)(TEXTS[:2])
    exact = model(**batch)
    model.round_to_stored()
    rounded = model(**batch)
    model.save(tmp_path)
    reloaded = bert.BertEncoder.load(tmp_path).eval()(**batch)
    assert torch.equal(reloaded, rounded)
    # half the bytes, and float16's rounding moves the sentence embedding by far less than
    # the gap between two sentences' embeddings
    stored = (tmp_path / "model.safetensors").stat().st_size
    assert stored < 0.55 * (directory / "model.safetensors").stat().st_size
    shift = (
        minilm.sentence_embedding(rounded, batch["attention_mask"]) - minilm.sentence_embedding(exact, batch["attention_mask"])
    ).norm(dim=1)
    assert float(shift.max()) < 5e-3


def test_an_unknown_tensor_is_refused(directory, tmp_path):
    from safetensors.torch import load_file, save_file

    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    weights = load_file(str(directory / "model.safetensors"))
    weights["encoder.layer.9.extra.weight"] = torch.zeros(2)
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        bert.BertEncoder.load(tmp_path)
