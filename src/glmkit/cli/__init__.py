"""The ``glmkit`` command line. Each command group lives in its own module and registers a subparser;
every command that prints results takes ``--json``. Errors print one clear line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from glmkit.errors import GlmkitError

EXIT_USAGE = 2
EXIT_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    from glmkit.cli import data, evaluate, kb, runtime, serve, service, train, write

    p = argparse.ArgumentParser(prog="glmkit", description="Build applications on ChatGLM3-family models.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    runtime.register(sub)
    serve.register(sub)
    kb.register(sub)
    service.register(sub)
    write.register(sub)
    evaluate.register(sub)
    data.register(sub)
    train.register(sub)
    from glmkit.cli.audit import register as register_audit

    register_audit(sub)
    from glmkit.cli.home import register as register_home

    register_home(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    level = os.environ.get("GLMKIT_LOG", "warning").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s"
    )
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except GlmkitError as e:
        if getattr(args, "json", False):
            print(
                json.dumps(
                    {"error": {"message": e.message, "type": e.type, "code": e.code, "param": e.param}},
                    ensure_ascii=False,
                )
            )
        else:
            print(f"glmkit: error: {e.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
