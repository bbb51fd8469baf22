"""Backend loaders: a ``ModelSpec`` becomes a ``ChatModel`` with the right chat format.

``load_chat_model(spec, settings)`` is the one place a model spec becomes a ``ChatModel``. The loaders
below register in ``runtime.registry`` on import; each imports its heavy runtime (llama.cpp, torch,
httpx) only inside the loader, so importing this module stays light.

Format choice, in order: the ``chat_format`` setting; ChatGLM3 for ``chatglm`` models; the model's own
jinja template; otherwise a clear error asking for ``--format``.
"""

from __future__ import annotations

from glmkit.errors import InvalidRequestError, ModelLoadError
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats import chatglm3, jinja  # noqa: F401  (registers the formats)
from glmkit.runtime.formats.base import ChatFormat, get_format
from glmkit.runtime.models import ModelSpec, parse_spec, verify_embedded
from glmkit.runtime.protocol import ChatModel, TokenEngine
from glmkit.runtime.registry import BACKENDS, register_backend
from glmkit.settings import Settings


def choose_format(
    engine: TokenEngine,
    settings: Settings,
    *,
    observation_as_user: bool = False,
    bos: str = "",
    eos: str = "",
) -> ChatFormat:
    name = settings.chat_format
    if name is None:
        if engine.info.architecture in ("chatglm", "glm"):
            name = "chatglm3"
        elif engine.info.chat_template:
            name = "jinja"
        else:
            raise ModelLoadError(
                f"model {engine.info.name} carries no chat template and is not a ChatGLM model: "
                "choose one with --format (chatglm3 or jinja)"
            )
    if name == "jinja":
        return get_format(
            "jinja",
            template=engine.info.chat_template,
            bos_token=bos,
            eos_token=eos,
            observation_as_user=observation_as_user,
        )
    return get_format(name)


@register_backend("llamacpp")
def load_llamacpp(spec: ModelSpec, settings: Settings) -> ChatModel:
    from glmkit.runtime.backends.llamacpp import LlamaEngine

    path = verify_embedded(spec.name, settings.models_dir) if spec.embedded else spec.target
    engine = LlamaEngine(
        path,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_seq_max=settings.n_seq_max,
        name=spec.name,
        lora=settings.lora,
    )
    try:
        fmt = choose_format(
            engine,
            settings,
            observation_as_user=bool(spec.embedded and spec.embedded.observation_as_user),
            bos=engine.bos_text,
            eos=engine.eos_text,
        )
    except Exception:
        engine.close()
        raise
    return EngineChatModel(engine, fmt, name=spec.name)


@register_backend("transformers")
def load_transformers(spec: ModelSpec, settings: Settings) -> ChatModel:
    from glmkit.runtime.backends.transformers import TransformersEngine

    engine = TransformersEngine(
        spec.target, n_ctx=settings.n_ctx, n_threads=settings.n_threads, name=spec.name
    )
    return EngineChatModel(engine, choose_format(engine, settings), name=spec.name)


@register_backend("openai")
def load_openai(spec: ModelSpec, settings: Settings) -> ChatModel:
    from glmkit.runtime.backends.openai import OpenAIChatModel

    return OpenAIChatModel(
        spec.target,
        spec.name,
        api_key=settings.api_key,
        chat_format=settings.chat_format,
        timeout=settings.request_timeout,
    )


def resolve_spec(spec: str | None, settings: Settings) -> ModelSpec:
    """The model to load, checked before anything heavy starts (``glmkit serve`` calls it before binding):
    the file exists, and a LoRA adapter exists, is GGUF, and has a llama.cpp model to apply to."""
    ms = parse_spec(spec or settings.model, settings)
    if settings.lora is not None:
        if ms.backend != "llamacpp":
            raise InvalidRequestError(
                f"--lora applies a GGUF adapter to a GGUF model run by llama.cpp; {ms.name} is a "
                f"{ms.backend} model (merge the adapter instead: glmkit train merge)",
                param="lora",
            )
        if not settings.lora.is_file():
            raise InvalidRequestError(f"LoRA adapter not found: {settings.lora}", param="lora")
        from glmkit.runtime.backends.llamacpp_lib import check_gguf

        check_gguf(settings.lora)
    return ms


def load_chat_model(spec: str | None = None, settings: Settings | None = None) -> ChatModel:
    settings = settings or Settings()
    ms = resolve_spec(spec, settings)
    return BACKENDS[ms.backend](ms, settings)
