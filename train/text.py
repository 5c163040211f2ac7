"""Train the small sentiment tier (TextCNN on Rotten Tomatoes snippets) and save it."""

from __future__ import annotations

import math

import torch

from tiffin.families import textcnn
from train import datasets, loop
from train.common import Reference, Run, classifier_metrics, parse

ARCH = {"dim": 128, "filters": 100, "widths": [3, 4, 5], "dropout": 0.5}
VOCAB = {"max_len": 64, "min_freq": 2}
OPTIM = {"lr": 2e-3, "batch_size": 64, "weight_decay": 1e-4}
CASCADE_ESCALATION = 0.30  # the share of tier=auto requests passed on to the large tier


def main() -> str:
    run = Run(parse(__doc__, epochs=6), datasets.rotten_tomatoes())
    x, y = run.training_rows(3000)
    vocab = textcnn.Vocabulary.build(x, **VOCAB)
    model = textcnn.TextCNN(len(vocab), **ARCH)
    x_test = vocab.encode(run.data.x_test)
    test = classifier_metrics(model, x_test, torch.as_tensor(run.data.y_test))
    config = {"vocab": vocab.to_json(), "labels": textcnn.LABELS, **{k: ARCH[k] for k in ("dim", "filters", "widths")}}

    def cascade() -> dict:
        """The tier=auto threshold for a target escalation rate: that quantile of this model's
        confidence on the held-out inputs (their labels unused)."""
        confidence = loop.predict_in_batches(model, x_test).softmax(1).max(1).values
        threshold = float(torch.quantile(confidence, CASCADE_ESCALATION))
        # rounded down: a threshold rounded up would escalate a little more than the target
        return {"cascade": {"threshold": math.floor(threshold * 1e4) / 1e4, "target_escalation": CASCADE_ESCALATION}}

    return run.fit_and_save(
        textcnn.FAMILY,
        model,
        vocab.encode(x),
        torch.as_tensor(y),
        test,
        params=ARCH | VOCAB | OPTIM,
        config=config,
        title="Rotten Tomatoes TextCNN",
        after_fit=cascade,
        reference=Reference(run.data.x_test, x_test, textcnn.LABELS, vocab),
    )


if __name__ == "__main__":
    main()
