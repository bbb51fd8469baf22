"""``glmkit serve`` (the OpenAI-compatible server and web console) and ``glmkit keys`` (its API keys)."""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from glmkit.cli.runtime import add_model_args, settings_from
from glmkit.errors import InvalidRequestError


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the OpenAI-compatible server with the web console")
    add_model_args(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1; anything else needs API keys)")
    serve.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--parallel", type=int, help="sequences decoded together (default 8)")
    serve.add_argument(
        "--lora", type=Path, help="GGUF LoRA adapter to apply (glmkit train export --gguf-lora)"
    )
    serve.add_argument(
        "--cors-origin", action="append", dest="cors_origins", help="allow this browser origin (repeatable)"
    )
    serve.add_argument("--max-body-bytes", type=int, help="largest request body (default 4 MiB)")
    serve.add_argument(
        "--rate-limit", type=int, dest="rate_limit_rpm", help="requests/minute per key (0: off)"
    )
    serve.add_argument(
        "--timeout", type=float, dest="request_timeout", help="seconds per request (default 600)"
    )
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="manage the server's API keys (stored hashed in GLMKIT_HOME)")
    ks = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    add = ks.add_parser("add", help="create a key and print it once")
    add.add_argument("name")
    add.add_argument("--rpm", type=int, help="this key's requests per minute (default: the server's)")
    add.add_argument("--json", action="store_true")
    lst = ks.add_parser("list", help="list keys (names and ids; keys themselves are never stored)")
    lst.add_argument("--json", action="store_true")
    rev = ks.add_parser("revoke", help="revoke a key by id or name")
    rev.add_argument("key")
    rev.add_argument("--json", action="store_true")
    keys.set_defaults(func=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    from glmkit.server.auth import KeyStore
    from glmkit.settings import Settings

    store = KeyStore(Settings().home / "api_keys.json")
    if args.keys_command == "add":
        rec, key = store.add(args.name, args.rpm)
        if args.json:
            print(json.dumps({"id": rec.id, "name": rec.name, "key": key}))
        else:
            print(f"key {rec.id} ({rec.name}): {key}\nkeep it now: glmkit stores only its hash")
    elif args.keys_command == "list":
        rows = [
            {"id": r.id, "name": r.name, "created": r.created, "rate_limit_rpm": r.rate_limit_rpm}
            for r in store.records
        ]
        if args.json:
            print(json.dumps(rows))
        else:
            for r in rows:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(str(r["created"]))))
                print(f"{r['id']}  {r['name']}  created {when}")
            if not rows:
                print("no keys: the server is open to anyone who can reach it on loopback")
    else:
        rec = store.revoke(args.key)
        print(json.dumps({"revoked": rec.id}) if args.json else f"revoked {rec.id} ({rec.name})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from glmkit.runtime.loaders import resolve_spec
    from glmkit.server.app import create_app, is_loopback
    from glmkit.server.auth import KeyStore
    from glmkit.storage.home import home_key

    settings = settings_from(args)
    resolve_spec(None, settings)  # a missing model or adapter is said here, not in a startup traceback
    home_key(settings)  # so is a missing or wrong encryption key (docs/safety.md)
    keys = KeyStore(settings.home / "api_keys.json")
    if not is_loopback(settings.host) and not keys:
        raise InvalidRequestError(
            f"binding to {settings.host} exposes the server beyond this machine: create an API key first "
            "(glmkit keys add NAME), or bind 127.0.0.1"
        )
    app = create_app(settings, keys=keys)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=30,  # in-flight requests drain before the model closes
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            port = settings.port
            for s in getattr(server, "servers", []):
                for sock in s.sockets:
                    port = sock.getsockname()[1]
            host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
            print(
                f"glmkit: serving {settings.model} at http://{host}:{port}/ (web console), API at /v1",
                flush=True,
            )

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    return 0
