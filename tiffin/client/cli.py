"""`tiffin predict image|text|demand ...`: call a running tiffin server from the shell.
`tiffin logs export FILE... --out DIR`: payload logs into data sets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tiffin.client.core import DEFAULT_URL, Client, ServerError
from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiffin", description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL, help="typed HTTP API (default %(default)s)")
    parser.add_argument("--grpc", metavar="HOST:PORT", help="use the OIP over gRPC instead, e.g. localhost:3001")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="ask a model").add_subparsers(dest="family", required=True)
    predict.add_parser("image", help="classify a PNG/JPEG garment picture").add_argument("path")
    text = predict.add_parser("text", help="is a review snippet fresh or rotten?")
    text.add_argument("text")
    text.add_argument("--tier", choices=["small", "large", "auto"], default="small")
    demand = predict.add_parser("demand", help="bikes rented in one hour (unset fields take the example's values)")
    for name, value in EXAMPLE_DEMAND_ROW.items():
        demand.add_argument(f"--{name}", type=type(value), default=value)
    logs = sub.add_parser("logs", help="payload logs").add_subparsers(dest="action", required=True)
    export = logs.add_parser("export", help="turn payload logs (TIFFIN_PAYLOAD_LOG) into data sets, one per route")
    export.add_argument("files", nargs="+", type=Path)
    export.add_argument("--out", type=Path, required=True, help="folder for the data sets")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "logs":
        from tiffin.client.logs import export

        counts = export(args.files, args.out)
        print(", ".join(f"{name}: {n}" for name, n in sorted(counts.items())) or "no records")
        return 0
    try:
        with Client(args.url, grpc=args.grpc) as client:
            if args.family == "image":
                pred = client.classify_image(args.path)
            elif args.family == "text":
                pred = client.classify_text(args.text, args.tier)
            else:
                pred = client.predict_demand(**{k: getattr(args, k) for k in EXAMPLE_DEMAND_ROW})
    except (ServerError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(pred.as_dict()))
    elif pred.bikers is not None:
        print(f"{pred.bikers:.1f} bikers  ({pred.model})")
    else:
        tier = f", tier {pred.tier}" if pred.tier else ""
        print(f"{pred.label}  p={pred.probability:.3f}  ({pred.model}{tier})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
