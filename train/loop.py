"""The training loop shared by every family: progress bar, validation per epoch (the epoch
whose weights are kept is chosen there), and the learning curve written as a PNG."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

Batches = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def fit(
    model: torch.nn.Module,
    batches: Batches,
    steps_per_epoch: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    evaluate: Callable[[], dict[str, float]],
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    description: str = "training",
    select: str | None = None,
    lrs: Mapping[str, float] | None = None,
) -> list[dict[str, float]]:
    """Train with AdamW and a one-cycle schedule; returns one row of metrics per epoch. With
    `select` (a key of `evaluate`'s rows, higher is better) the model ends with the weights of
    the epoch that scored best there, and that row says `"selected": True`. `lrs`: a parameter
    name prefix -> its own peak learning rate (a new head beside pre-trained layers)."""
    rates: dict[float, list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        rate = next((r for prefix, r in (lrs or {}).items() if name.startswith(prefix)), lr)
        rates.setdefault(rate, []).append(param)
    opt = torch.optim.AdamW([{"params": ps, "lr": r} for r, ps in rates.items()], lr=lr, weight_decay=weight_decay)
    total = max(1, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=list(rates), total_steps=total)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task(description, total=epochs * steps_per_epoch, status="")
        for epoch in range(epochs):
            model.train()
            total, count = 0.0, 0
            for step, (x, y) in enumerate(batches(epoch)):
                if step >= steps_per_epoch:
                    break
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(y)
                count += len(y)
                progress.update(task, advance=1, status=f"epoch {epoch + 1}/{epochs} loss {total / max(count, 1):.4f}")
            model.eval()
            row = {"epoch": epoch + 1, "train_loss": total / max(count, 1), **evaluate()}
            history.append(row)
            progress.console.print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            if select and (best is None or row[select] > best[0]):
                best = (row[select], epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
    if best is not None:
        model.load_state_dict(best[2])
        history[best[1]]["selected"] = True
        progress.console.print(f"kept epoch {best[1] + 1}: {select}={best[0]:.4f}")
    return history


def shuffled(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> Batches:
    def batches(epoch: int):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + epoch))
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]

    return batches


def plot_curve(history: list[dict[str, float]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    keys = [k for k in history[0] if k not in ("epoch", "selected")]
    chosen = [h["epoch"] for h in history if h.get("selected")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
    for ax, key in zip(axes if len(keys) > 1 else [axes], keys):
        ax.plot(epochs, [h[key] for h in history], marker="o")
        for epoch in chosen:
            ax.axvline(epoch, color="grey", linestyle=":")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


@torch.inference_mode()
def predict_in_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def in_length_order(fn: Callable[[list], torch.Tensor], items: Sequence, batch_size: int) -> torch.Tensor:
    """fn over items in batches of similar length (less padding), the answers in input order."""
    order = sorted(range(len(items)), key=lambda i: len(items[i]))
    out = torch.cat([fn([items[i] for i in order[s : s + batch_size]]) for s in range(0, len(order), batch_size)])
    return out[torch.as_tensor(np.argsort(order))]
