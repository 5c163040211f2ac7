"""Train the small sentiment tier (TextCNN on Rotten Tomatoes snippets) and save it."""

from __future__ import annotations

import torch

from tiffin.families import textcnn
from train import datasets
from train.common import classifier_metrics, parse, train_and_save


def main() -> str:
    args = parse(__doc__, epochs=6)
    data = datasets.rotten_tomatoes()
    x_train, y_train = data.x_train, data.y_train
    if args.quick:
        x_train, y_train = x_train[:3000], y_train[:3000]
    params = {
        "dim": 128,
        "filters": 100,
        "widths": [3, 4, 5],
        "dropout": 0.5,
        "max_len": 64,
        "min_freq": 2,
        "epochs": args.epochs,
        "lr": 2e-3,
        "batch_size": 64,
        "weight_decay": 1e-4,
        "train_rows": len(y_train),
        "seed": args.seed,
    }
    vocab = textcnn.Vocabulary.build(x_train, min_freq=params["min_freq"], max_len=params["max_len"])
    model = textcnn.TextCNN(len(vocab), params["dim"], params["filters"], params["widths"], dropout=params["dropout"])
    config = {"vocab": vocab.to_json(), "labels": textcnn.LABELS, **{k: params[k] for k in ("dim", "filters", "widths")}}
    return train_and_save(
        textcnn.FAMILY,
        model,
        vocab.encode(x_train),
        torch.as_tensor(y_train),
        evaluate=classifier_metrics(model, vocab.encode(data.x_test), torch.as_tensor(data.y_test)),
        reported=("test_accuracy", "test_loss"),
        args=args,
        params=params,
        data=data,
        config=config,
        title="Rotten Tomatoes TextCNN",
    )


if __name__ == "__main__":
    main()
