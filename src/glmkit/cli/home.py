"""``glmkit home``: encryption at rest for everything under ``$GLMKIT_HOME`` (docs/safety.md): ``status``,
``keygen``, ``encrypt``, ``rekey``, ``decrypt``. Stop the server before converting."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError


def register(sub: Any) -> None:
    home = sub.add_parser("home", help="encryption at rest for $GLMKIT_HOME (status, encrypt, rekey)")
    acts = home.add_subparsers(dest="home_command", required=True, metavar="ACTION")
    st = acts.add_parser("status", help="whether the home is encrypted and the key fits; every database")
    kg = acts.add_parser("keygen", help="print a new random key (or write it to a file, mode 0600)")
    kg.add_argument("--out", type=Path, help="write the key here instead of printing it")
    enc = acts.add_parser("encrypt", help="encrypt a plain home under GLMKIT_ENCRYPTION_KEY(_FILE)")
    rk = acts.add_parser("rekey", help="re-encrypt from the current key to a new one")
    rk.add_argument(
        "--new-key-file",
        type=Path,
        help="file holding the new key (or set GLMKIT_NEW_ENCRYPTION_KEY); keys never go on the command line",
    )
    dec = acts.add_parser("decrypt", help="turn an encrypted home back into plain SQLite")
    for p in (st, kg, enc, rk, dec):
        p.add_argument("--json", action="store_true")
    home.set_defaults(func=cmd_home)


def _new_key(args: argparse.Namespace) -> str:
    if args.new_key_file is not None:
        try:
            return str(args.new_key_file.read_text("utf-8"))
        except OSError as e:
            raise InvalidRequestError(
                f"--new-key-file: cannot read {args.new_key_file}: {e.strerror}"
            ) from None
    env = os.environ.get("GLMKIT_NEW_ENCRYPTION_KEY")
    if env is None:
        raise InvalidRequestError(
            "glmkit home rekey needs the new key: --new-key-file FILE or GLMKIT_NEW_ENCRYPTION_KEY",
            param="new_key_file",
        )
    return env


def cmd_home(args: argparse.Namespace) -> int:
    from glmkit.settings import Settings
    from glmkit.storage import home
    from glmkit.storage.crypto import key_from_settings, new_key_text

    c = args.home_command
    if c == "keygen":
        text = new_key_text()
        if args.out is None:
            print(json.dumps({"key": text}) if args.json else text)
            return 0
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        print(json.dumps({"key_file": str(args.out)}) if args.json else f"wrote a new key to {args.out}")
        return 0
    settings = Settings()
    if c == "status":
        info = home.status(settings.home, key_from_settings(settings))
        if args.json:
            print(json.dumps(info, ensure_ascii=False))
            return 0
        state = "encrypted" if info["encrypted"] else "plain"
        print(f"{info['home']}: {state}" + (f" (key id {info['key_id']})" if info["key_id"] else ""))
        if info["key_matches"] is not None:
            print("the key set opens it" if info["key_matches"] else "the key set does NOT open it")
        if info["interrupted_conversion"]:
            print("an interrupted conversion is pending: the next glmkit command finishes or rolls it back")
        for name, form in info["databases"].items():
            print(f"  {form:<9} {name}")
        return 0

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if c == "encrypt":
        report = home.encrypt_home(settings, progress=progress)
    elif c == "rekey":
        report = home.rekey_home(settings, _new_key(args), progress=progress)
    else:
        report = home.decrypt_home(settings, progress=progress)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
        return 0
    n = len(report.files)
    print(f"{report.op}: {n} database{'s' if n != 1 else ''} converted in {report.home}")
    if report.op == "rekey":
        print("now set GLMKIT_ENCRYPTION_KEY (or its file) to the new key")
    elif report.op == "decrypt":
        print("now unset GLMKIT_ENCRYPTION_KEY (and GLMKIT_ENCRYPTION_KEY_FILE)")
    return 0
