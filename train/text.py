"""Train the small sentiment tier (TextCNN on Rotten Tomatoes snippets) and save it.

Kim (2014)'s recipe (widths 3/4/5, 100 maps each, dropout 0.5), with the word embeddings
initialised from the MiniLM wheel's wordpiece embeddings (the paper's pre-trained vectors,
without a download) and then trained with the rest ("non-static"). It learns from the large
tier's calibrated answers on the training snippets rather than from the bare labels
(distillation; `train.all` trains that tier first): 0.775 held-out against 0.760."""

from __future__ import annotations

import math
import time

import torch

from tiffin import families
from tiffin.families import minilm, textcnn
from train import datasets, loop
from train.card import Usage
from train.common import Heldout, Reference, Run, parse

ARCH = {"dim": 128, "filters": 100, "widths": [3, 4, 5], "dropout": 0.5}
VOCAB = {"max_len": 64, "min_freq": 1}
OPTIM = {"lr": 2e-3, "batch_size": 50, "weight_decay": 1e-4}
CASCADE_ESCALATION = 0.30  # the share of tier=auto requests passed on to the large tier
USAGE = Usage(
    "Telling a fresh (positive) from a rotten (negative) one-sentence film-review snippet, fast; "
    "the first tier of tier=auto, which passes its least sure answers to the MiniLM tier.",
    [
        "Trained on English Rotten Tomatoes critic snippets (one or two sentences): other domains drop accuracy "
        "(see Out of domain), as do long texts (only the first 64 words are read).",
        "Words never seen in training are one unknown token; sarcasm and negation across a clause are often missed.",
        "The labels are the critic's fresh/rotten verdict, not the sentence's own tone: some snippets disagree with it.",
        "Learnt from the MiniLM tier's answers on the training snippets (`teacher` in its parameters), "
        "so it shares that tier's mistakes as well as its skill.",
    ],
)


def minilm_word_vectors(vocab: textcnn.Vocabulary, dim: int) -> torch.Tensor:
    """Each word's starting embedding: the mean of its MiniLM wordpiece embeddings, projected
    onto their `dim` principal axes (384 wide would cost 8x the training time for no gain
    measured) and scaled to MiniLM's spread; padding at zero, the unknown word at the mean."""
    from safetensors.torch import load_file

    from tiffin.families import bert

    directory = datasets.minilm_dir()
    tokenizer = bert.WordPiece(directory, minilm.MAX_TOKENS)
    [table] = [
        t for name, t in load_file(str(directory / "model.safetensors")).items() if name.endswith("word_embeddings.weight")
    ]
    pieces = tokenizer.pieces(vocab.itos[2:])
    words = torch.stack([table[ids].mean(0) if ids else table[tokenizer.unk_id] for ids in pieces])
    centred = words - words.mean(0)
    _, _, axes = torch.pca_lowrank(centred, q=dim, center=False)
    low = centred @ axes[:, :dim]
    low = low / low.std() * table.std()
    return torch.cat([torch.zeros(2, dim), low])


def teacher_targets(texts: list[str], labels) -> tuple[torch.Tensor, str | None]:
    """What the TextCNN learns from: the served MiniLM version's calibrated probabilities for
    the training texts (soft targets; 0.775 held-out against 0.760 from the labels, decision
    014), or the labels themselves when the store has no MiniLM version."""
    import bentoml

    try:
        stored, teacher = families.load(minilm.FAMILY, torch.device("cpu"))
    except bentoml.exceptions.NotFound:
        return torch.as_tensor(labels), None
    return loop.in_length_order(lambda batch: torch.as_tensor(teacher(batch)), texts, 4 * minilm.FAMILY.max_batch), stored.tag


def main() -> str:
    run = Run(parse(__doc__, epochs=3), datasets.rotten_tomatoes())
    x, y = run.training_rows(3000)
    data = run.data
    start = time.perf_counter()
    # shuffled labels make a deliberately bad version: no teacher may repair them
    targets, teacher = (torch.as_tensor(y), None) if run.args.shuffle_labels else teacher_targets(list(x), y)
    teaching = time.perf_counter() - start  # the teacher's answers count as training time
    vocab = textcnn.Vocabulary.build(x, **VOCAB)
    model = textcnn.TextCNN(len(vocab), **ARCH)
    with torch.no_grad():
        model.embed.weight.copy_(minilm_word_vectors(vocab, ARCH["dim"]))
    x_test = vocab.encode(data.x_test)
    texts, labels, amazon_sha256 = datasets.amazon_snippets()
    heldout = Heldout(
        vocab.encode(data.x_val),
        torch.as_tensor(data.y_val),
        x_test,
        torch.as_tensor(data.y_test),
        domains={"amazon": (vocab.encode(texts), torch.as_tensor(labels), amazon_sha256)},
    )
    config = {"vocab": vocab.to_json(), "labels": textcnn.LABELS, **{k: ARCH[k] for k in ("dim", "filters", "widths")}}

    def cascade(probabilities):
        """The tier=auto threshold for a target escalation rate: that quantile of this model's
        calibrated confidence on the validation rows (their labels unused)."""
        threshold = float(torch.quantile(probabilities.max(1).values, CASCADE_ESCALATION))
        # rounded down: a threshold rounded up would escalate a little more than the target
        return {"cascade": {"threshold": math.floor(threshold * 1e4) / 1e4, "target_escalation": CASCADE_ESCALATION}}

    return run.fit_and_save(
        textcnn.FAMILY,
        model,
        vocab.encode(x),
        targets,
        heldout,
        params=ARCH | VOCAB | OPTIM | {"embeddings": "MiniLM wordpieces, PCA", "teacher": teacher},
        config=config,
        title="Rotten Tomatoes TextCNN",
        usage=USAGE,
        classes=textcnn.LABELS,
        after_fit=cascade,
        seconds_before=teaching,
        reference=Reference(data.x_test, x_test, textcnn.LABELS, vocab),
    )


if __name__ == "__main__":
    main()
