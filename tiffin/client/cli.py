"""`tiffin predict image|text|demand ...`: call a running tiffin server from the shell.
`tiffin models list|show|promote|rollback|pin|split|shadow|history|export|import`: versions and aliases.
`tiffin canary start|status|promote|rollback NAME`: a candidate judged on live traffic.
`tiffin batch INPUT OUTPUT [--kind text|image|demand]`: score a file or folder on the server, resumably.
`tiffin logs export FILE... --out DIR`: payload logs into data sets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx

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
    _models_parser(sub)
    _canary_parser(sub)
    batch = sub.add_parser("batch", help="score a file or folder on the server into a JSONL file (a task; resumable)")
    batch.add_argument("input", help="JSONL/CSV file or folder of images, relative to the server's TIFFIN_BATCH_DIR")
    batch.add_argument("output", help="JSONL file for the answers, relative to TIFFIN_BATCH_DIR")
    batch.add_argument("--kind", choices=["text", "image", "demand"], default="text")
    batch.add_argument("--tier", choices=["small", "large", "auto"], default="small")
    batch.add_argument("--local-dir", help="where TIFFIN_BATCH_DIR is on this machine, to show progress")
    logs = sub.add_parser("logs", help="payload logs").add_subparsers(dest="action", required=True)
    export = logs.add_parser("export", help="turn payload logs (TIFFIN_PAYLOAD_LOG) into data sets, one per route")
    export.add_argument("files", nargs="+", type=Path)
    export.add_argument("--out", type=Path, required=True, help="folder for the data sets")
    return parser


def _models_parser(sub) -> None:
    models = sub.add_parser("models", help="versions and aliases in the local model store")
    act = models.add_subparsers(dest="action", required=True)
    act.add_parser("list", help="every model, its versions (newest first) and aliases")
    act.add_parser("show", help="one version: its model card, then aliases, traffic and recent moves").add_argument(
        "ref", help="NAME, NAME:VERSION or NAME@ALIAS"
    )
    promote = act.add_parser("promote", help="point an alias at a version, through the promotion gate")
    promote.add_argument("name")
    promote.add_argument("version", help="a stored version, or a unique prefix of one")
    promote.add_argument("--force", action="store_true", help="promote even when its held-out metric is worse")
    rollback = act.add_parser("rollback", help="return an alias to its previous holder")
    rollback.add_argument("name")
    pin = act.add_parser("pin", help="hold an alias (at VERSION) until --off: promote and rollback refuse meanwhile")
    pin.add_argument("name")
    pin.add_argument("version", nargs="?")
    pin.add_argument("--off", action="store_true", help="release the pin")
    split = act.add_parser("split", help="share traffic between versions by weight, e.g. abc=90 def=10")
    split.add_argument("name")
    split.add_argument("weights", nargs="*", metavar="VERSION=WEIGHT")
    split.add_argument("--sticky", metavar="HEADER", help="the same value of this request header, the same version")
    split.add_argument("--off", action="store_true", help="end the split: the alias answers everything")
    shadow = act.add_parser("shadow", help="also answer a share of requests with VERSION, on the side, and compare")
    shadow.add_argument("name")
    shadow.add_argument("version", nargs="?")
    shadow.add_argument("--percent", type=float, default=100.0, help="of requests offered to it (default 100)")
    shadow.add_argument("--off", action="store_true", help="end the shadow")
    for command in (promote, rollback, pin, split, shadow):
        command.add_argument("--alias", default="production")
        command.add_argument("--why", default="", help="recorded in the history")
    act.add_parser("history", help="who moved which alias, when and why").add_argument("name", nargs="?")
    export = act.add_parser("export", help="write one version to an archive (offline)")
    export.add_argument("ref", help="NAME, NAME:VERSION or NAME@ALIAS")
    export.add_argument("file", type=Path)
    act.add_parser("import", help="add an archived version to the store, once every file checks out").add_argument(
        "file", type=Path
    )


def _canary_parser(sub) -> None:
    canary = sub.add_parser("canary", help="a candidate version on a share of traffic, judged and rolled back if it fails")
    act = canary.add_subparsers(dest="action", required=True)
    start = act.add_parser("start", help="send --weight %% of traffic to VERSION, shadow it on the rest, judge it")
    start.add_argument("name")
    start.add_argument("version")
    start.add_argument("--weight", type=int, default=10, help="the candidate's share, percent (default 10)")
    start.add_argument("--shadow", type=float, default=100.0, help="percent of the rest it also answers on the side")
    start.add_argument("--interval", type=float, default=10.0, help="seconds between checks (default 10)")
    start.add_argument("--failures", type=int, default=3, help="failed checks in a row that roll it back (default 3)")
    start.add_argument("--min-success", type=float)
    start.add_argument("--max-disagreement", type=float)
    start.add_argument("--max-latency-ratio", type=float)
    start.add_argument("--min-samples", type=int)
    for name in ("status", "promote", "rollback"):
        command = act.add_parser(name, help={"status": "state and recent checks", "promote": "promote it (through the gate)",
                                              "rollback": "stop it now"}[name])  # fmt: skip
        command.add_argument("name")
        if name == "promote":
            command.add_argument("--force", action="store_true")
    for command in act.choices.values():
        command.add_argument("--why", default="")


def _canary(args) -> int:
    from tiffin.versions import canary
    from tiffin.versions.book import AliasError

    try:
        if args.action == "start":
            checks = {
                k: getattr(args, k)
                for k in ("min_success", "max_disagreement", "max_latency_ratio", "min_samples")
                if getattr(args, k) is not None
            }
            out = canary.start(
                args.name, args.version, weight=args.weight, shadow_percent=args.shadow, interval_s=args.interval,
                failures=args.failures, checks=checks, why=args.why,
            )  # fmt: skip
            text = _move(out)
        elif args.action == "status":
            out = canary.status(args.name)
            if out is None:
                raise LookupError(f"{args.name} has had no canary")
            last = out["results"][-1] if out["results"] else None
            text = f"{args.name}: {out['version']} at {out['weight']}% beside {out['primary']}: {out['state']}, {out['failed']} failed in a row"
            if last:
                text += f"\nlast check {last['at']}: {last['verdict']} {last['figures']} {'; '.join(last['failed'])}"
        elif args.action == "promote":
            out = canary.promote(args.name, force=args.force, why=args.why)
            text = _move(out)
        else:
            out = canary.rollback(args.name, why=args.why)
            text = _move(out)
    except (AliasError, LookupError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=1) if args.json else text)
    return 0


def _models(args) -> int:
    """Imported here: these need the model store (BentoML); `tiffin predict` does not."""
    from tiffin.versions import archive, manage
    from tiffin.versions.book import AliasError

    try:
        if args.action == "list":
            out = manage.list_models()
            text = "\n".join(_model_row(row) for row in out) or "the store is empty"
        elif args.action == "show":
            out = manage.show(args.ref)
            rest = {k: v for k, v in out.items() if k != "card"}
            text = (out["card"] or f"{out['tag']} has no model card") + "\n## Serving state\n\n" + json.dumps(rest, indent=1)
        elif args.action == "promote":
            out = manage.promote(args.name, args.version, args.alias, force=args.force, why=args.why)
            text = _move(out)
        elif args.action == "rollback":
            out = manage.rollback(args.name, args.alias, why=args.why)
            text = _move(out)
        elif args.action == "pin":
            if args.off:
                out = manage.unpin(args.name, args.alias, why=args.why)
            else:
                out = manage.pin(args.name, args.version, args.alias, why=args.why)
            text = _move(out)
        elif args.action == "split":
            if args.off:
                out = manage.unsplit(args.name, why=args.why)
            else:
                out = manage.split(args.name, _weights(args.weights), args.sticky, why=args.why)
            text = _move(out)
        elif args.action == "shadow":
            if args.off:
                out = manage.unshadow(args.name, why=args.why)
            elif not args.version:
                raise ValueError("name the version to shadow (or --off)")
            else:
                out = manage.shadow(args.name, args.version, args.percent, why=args.why)
            text = _move(out)
        elif args.action == "history":
            out = manage.history(args.name)
            text = "\n".join(_move(m) for m in out) or "no moves yet"
        elif args.action == "export":
            out = archive.export(args.ref, args.file)
            text = f"exported {out['tag']} to {out['archive']} ({len(out['files'])} files, sha256 {out['archive_sha256']})"
        else:
            out = archive.import_(args.file)
            text = f"imported {out['tag']} ({len(out['files'])} files checked)"
    except (AliasError, LookupError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=1) if args.json else text)
    return 0


def _weights(pairs: list[str]) -> dict[str, int]:
    weights = {}
    for pair in pairs:
        version, _, weight = pair.partition("=")
        if not version or not weight.isdigit():
            raise ValueError(f"{pair!r}: write VERSION=WEIGHT, e.g. abc123=90")
        weights[version] = int(weight)
    if not weights:
        raise ValueError("name at least one VERSION=WEIGHT (or --off)")
    return weights


def _model_row(row: dict) -> str:
    aliases = ", ".join(f"{a}={v}" for a, v in sorted(row["aliases"].items())) or "no aliases"
    lines = [f"{row['name']}  ({aliases})"]
    for v in row["versions"]:
        marks = f"  [{', '.join(v['aliases'])}]" if v["aliases"] else ""
        metrics = " ".join(f"{k}={x}" for k, x in v["metrics"].items())
        lines.append(f"  {v['version']}  {v['created']}  {metrics}{marks}")
    return "\n".join(lines)


def _move(m: dict) -> str:
    why = f"  ({m['why']})" if m.get("why") else ""
    return f"r{m['revision']} {m['at']} {m['who']}: {m['action']} {m['model']}@{m['alias']} {m['from']} -> {m['to']}{why}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "models":
        return _models(args)
    if args.command == "canary":
        return _canary(args)
    if args.command == "batch":
        from tiffin.client import batch

        try:
            out = batch.run(args.url, args.input, args.output, args.kind, args.tier, local_dir=args.local_dir)
        except (ServerError, httpx.HTTPError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        text = f"{out['output']}: {out['items']} items, {out['scored']} scored now, {out['resumed_from']} before, {out['failed']} refused"
        print(json.dumps(out) if args.json else text)
        return 0
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
