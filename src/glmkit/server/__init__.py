"""``glmkit serve``: the OpenAI-compatible HTTP server and the web console (one FastAPI app)."""

from glmkit.server.app import create_app

__all__ = ["create_app"]
