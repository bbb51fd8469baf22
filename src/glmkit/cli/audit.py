"""``glmkit audit``: read the server's audit log ($GLMKIT_HOME/audit, rotated files included)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="export or list the server's audit log (one row per API request)")
    acts = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    ex = acts.add_parser("export", help="write audit rows as JSON lines or CSV")
    ex.add_argument("--since", help="7d, 12h, 30m (ago), an ISO date or time (UTC), or Unix seconds")
    ex.add_argument("--until", help="same forms as --since (default: now)")
    ex.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    ex.add_argument("--flagged", action="store_true", help="only requests with content-filter events")
    ex.add_argument("--out", type=Path, help="write here instead of standard output")
    ls = acts.add_parser("recent", help="the latest audit rows, newest first")
    ls.add_argument("-n", type=int, default=20, help="how many (default 20)")
    ls.add_argument("--flagged", action="store_true", help="only requests with content-filter events")
    ls.add_argument("--json", action="store_true")
    audit.set_defaults(func=cmd_audit)


def _files(home: Path) -> list[Path]:
    from glmkit.safety.audit import _ROTATED, CURRENT

    folder = home / "audit"
    if not (folder / CURRENT).exists():
        raise InvalidRequestError(f"no audit log in {folder}: start `glmkit serve` (audit_log = true) first")
    return [*sorted(p for p in folder.iterdir() if _ROTATED.match(p.name)), folder / CURRENT]


def cmd_audit(args: argparse.Namespace) -> int:
    from glmkit.safety.audit import export, parse_time, read_events
    from glmkit.settings import Settings
    from glmkit.storage.home import home_key

    settings = Settings()
    key = home_key(settings)
    files = _files(settings.home)
    if args.audit_command == "export":
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        events = read_events(files, since, until, flagged=args.flagged, key=key)
        if args.out is not None:
            with args.out.open("w", encoding="utf-8", newline="") as f:
                n = export(events, f, args.format)
            print(f"wrote {n} audit rows to {args.out}", file=sys.stderr)
        else:
            export(events, sys.stdout, args.format)
        return 0
    rows = list(read_events(files, flagged=args.flagged, limit=max(1, args.n), newest_first=True, key=key))
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], ensure_ascii=False))
        return 0
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.ts))
        flags = ", ".join(f"{f.get('stage')}:{f.get('category')}:{f.get('action')}" for f in r.flags)
        print(
            f"{when}  {r.who:<15} {r.method:<6} {r.route:<40} {r.status} {r.outcome:<9} "
            f"{r.latency_ms:8.1f} ms  in {r.request_bytes} B  out {r.response_bytes} B  {flags}".rstrip()
        )
    if not rows:
        print("no audit rows yet")
    return 0
