"""Train the small sentiment tier (TextCNN on Rotten Tomatoes snippets) and save it."""

from __future__ import annotations

import torch

from tiffin.families import textcnn
from train import datasets
from train.common import Run, classifier_metrics, parse

ARCH = {"dim": 128, "filters": 100, "widths": [3, 4, 5], "dropout": 0.5}
VOCAB = {"max_len": 64, "min_freq": 2}
OPTIM = {"lr": 2e-3, "batch_size": 64, "weight_decay": 1e-4}


def main() -> str:
    run = Run(parse(__doc__, epochs=6), datasets.rotten_tomatoes())
    x, y = run.training_rows(3000)
    vocab = textcnn.Vocabulary.build(x, **VOCAB)
    model = textcnn.TextCNN(len(vocab), **ARCH)
    test = classifier_metrics(model, vocab.encode(run.data.x_test), torch.as_tensor(run.data.y_test))
    config = {"vocab": vocab.to_json(), "labels": textcnn.LABELS, **{k: ARCH[k] for k in ("dim", "filters", "widths")}}
    return run.fit_and_save(
        textcnn.FAMILY,
        model,
        vocab.encode(x),
        torch.as_tensor(y),
        test,
        params=ARCH | VOCAB | OPTIM,
        config=config,
        title="Rotten Tomatoes TextCNN",
    )


if __name__ == "__main__":
    main()
