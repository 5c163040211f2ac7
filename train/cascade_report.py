"""`make cascade-report`: what tier=auto would do on the held-out split at each threshold
0.50-0.99: accuracy, escalation rate, mean latency per request (the small tier's, plus the
large tier's for each escalated one, each timed one request at a time), and the share of the
small-to-large accuracy gap it recovers. Marks the threshold stored with the small version
(chosen at training for a target escalation rate) and says whether the goal holds: >= 80 % of
the gap recovered at <= 30 % escalated. Writes the curve to build/cascade/ (model versions
stay as they were saved).

    python -m train.cascade_report [--small TAG] [--large TAG] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tiffin import families
from tiffin.families import minilm, textcnn
from tiffin.wire.catalog import CASCADE_THRESHOLD
from train import datasets

OUT = Path(__file__).resolve().parent.parent / "build" / "cascade"
GOAL_RECOVERED, GOAL_ESCALATED = 0.80, 0.30


def per_request_seconds(predictor, texts: list[str], n: int = 50) -> float:
    predictor(texts[:1])
    start = time.perf_counter()
    for text in texts[:n]:
        predictor([text])
    return (time.perf_counter() - start) / min(n, len(texts))


def curve(small_p: np.ndarray, large_p: np.ndarray, y: np.ndarray, small_s: float, large_s: float, thresholds=None) -> list[dict]:
    confidence, small_ok, large_ok = small_p.max(1), small_p.argmax(1) == y, large_p.argmax(1) == y
    gap = large_ok.mean() - small_ok.mean()
    rows = []
    for t in np.round(np.arange(0.50, 1.00, 0.01), 2) if thresholds is None else thresholds:
        escalated = confidence < t
        accuracy = float(np.where(escalated, large_ok, small_ok).mean())
        rows.append(
            {
                "threshold": float(t),
                "accuracy": round(accuracy, 4),
                "escalated": round(float(escalated.mean()), 4),
                "mean_ms": round(1000 * (small_s + escalated.mean() * large_s), 3),
                "gap_recovered": round((accuracy - small_ok.mean()) / gap, 3) if gap > 0 else None,
            }
        )
    return rows


def plot(rows: list[dict], stored: float, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot([r["escalated"] for r in rows], [r["accuracy"] for r in rows], marker=".")
    at = min(rows, key=lambda r: abs(r["threshold"] - stored))
    ax.scatter([at["escalated"]], [at["accuracy"]], color="red", zorder=3, label=f"stored threshold {stored:.3f}")
    ax.axvline(GOAL_ESCALATED, color="grey", linestyle=":", label=f"{GOAL_ESCALATED:.0%} escalated")
    ax.set_xlabel("share escalated to the large tier")
    ax.set_ylabel("held-out accuracy of tier=auto")
    ax.set_title(title)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", default=None, help=f"default: what a service serves ({textcnn.FAMILY.name})")
    parser.add_argument("--large", default=None, help=f"default: what a service serves ({minilm.FAMILY.name})")
    parser.add_argument("--rows", type=int, default=0, help="held-out rows to use (0: all)")
    args = parser.parse_args()
    split = datasets.rotten_tomatoes()
    texts, y = list(split.x_test), np.asarray(split.y_test)
    if args.rows:
        texts, y = texts[: args.rows], y[: args.rows]
    small_stored, small = families.load(args.small or textcnn.FAMILY)
    large_stored, large = families.load(args.large or minilm.FAMILY)
    print(f"small {small_stored.tag}, large {large_stored.tag}, {len(texts)} held-out rows", flush=True)
    small_p = np.concatenate([small(texts[i : i + 512]) for i in range(0, len(texts), 512)])
    large_p = np.concatenate([large(texts[i : i + 64]) for i in range(0, len(texts), 64)])
    small_s, large_s = per_request_seconds(small, texts), per_request_seconds(large, texts)
    rows = curve(small_p, large_p, y, small_s, large_s)
    stored = small_stored.config.get("cascade", {}).get("threshold", CASCADE_THRESHOLD)

    small_acc, large_acc = float((small_p.argmax(1) == y).mean()), float((large_p.argmax(1) == y).mean())
    print(f"small alone {small_acc:.4f} ({small_s * 1000:.2f} ms), large alone {large_acc:.4f} ({large_s * 1000:.2f} ms)")
    print(f"{'threshold':>9} {'accuracy':>8} {'escalated':>9} {'mean ms':>8} {'gap recovered':>13}")
    for r in rows:
        if round(r["threshold"] * 100) % 5 == 0 or abs(r["threshold"] - stored) < 0.005:
            mark = "  <- stored" if abs(r["threshold"] - stored) < 0.005 else ""
            print(
                f"{r['threshold']:>9.2f} {r['accuracy']:>8.4f} {r['escalated']:>9.1%} {r['mean_ms']:>8.2f} "
                f"{'' if r['gap_recovered'] is None else format(r['gap_recovered'], '.0%'):>13}{mark}"
            )
    # the goal is judged where tier=auto serves: at the stored threshold itself
    [at] = curve(small_p, large_p, y, small_s, large_s, thresholds=[stored])
    recovered = "" if at["gap_recovered"] is None else f", {at['gap_recovered']:.0%} of the gap recovered"
    print(
        f"stored threshold {stored:.4f}: accuracy {at['accuracy']:.4f}, {at['escalated']:.1%} escalated, "
        f"{at['mean_ms']:.2f} ms a request{recovered}"
    )
    if large_acc <= small_acc:
        print("goal: no gap to recover here (the large tier is not more accurate on this split)")
    elif at["escalated"] <= GOAL_ESCALATED and at["gap_recovered"] >= GOAL_RECOVERED:
        print(f"goal met: >= {GOAL_RECOVERED:.0%} of the gap at <= {GOAL_ESCALATED:.0%} escalated, at the stored threshold")
    else:
        within = [r for r in rows if r["escalated"] <= GOAL_ESCALATED and r["gap_recovered"] is not None]
        best = max(within, key=lambda r: r["gap_recovered"], default=None)
        got = f"{best['gap_recovered']:.0%} at most" if best else "nothing"
        print(f"goal not met at the stored threshold; the grid gives {got} within {GOAL_ESCALATED:.0%} escalated (see the curve)")
    version = small_stored.tag.replace(":", "-")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{version}.json").write_text(
        json.dumps({"small": small_stored.tag, "large": large_stored.tag, "stored": at, "rows": rows}, indent=1)
    )
    png = plot(rows, stored, f"tier=auto: {small_stored.tag} then {large_stored.tag}", OUT / f"{version}.png")
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
