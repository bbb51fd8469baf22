"""The backend registry: a loader per backend name (``llamacpp``, ``transformers``, ``openai``), filled by
``@register_backend`` in ``runtime/loaders.py`` (or by a plugin's own module) and read by
``loaders.load_chat_model``. It used to live in ``models.py``, which then had to import ``loaders`` (to fill
it) while ``loaders`` imported ``models``: now the specs import neither, and a backend registers here
without importing the built-in loaders."""

from __future__ import annotations

from collections.abc import Callable

from glmkit.runtime.models import ModelSpec
from glmkit.runtime.protocol import ChatModel
from glmkit.settings import Settings

Loader = Callable[[ModelSpec, Settings], ChatModel]
BACKENDS: dict[str, Loader] = {}


def register_backend(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        BACKENDS[name] = fn
        return fn

    return deco
