"""Request bodies of the OpenAI-compatible routes, checked at the boundary.

Unknown top-level fields are rejected, as OpenAI does ("Unrecognized request argument"); fields OpenAI
defines that glmkit does not act on are accepted and ignored only when they ask for the default
behaviour. Ranges follow OpenAI's documentation."""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _wants_int(tp: Any) -> bool:
    if tp is int:
        return True
    if get_origin(tp) in (Union, list, types.UnionType):
        return any(_wants_int(a) for a in get_args(tp))
    return False


def _integral(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return [_integral(x) for x in v] if isinstance(v, list) else v


class StrictBody(BaseModel):
    """A request body read as JSON Schema reads it: strict types (``"5"`` is not a number, ``0`` is not
    ``false``), except that an integral number such as ``5.0`` is an integer; unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, f in cls.model_fields.items():
                key = f.alias or name
                if key in data and _wants_int(f.annotation):
                    data = {**data, key: _integral(data[key])}
        return data


class _Body(StrictBody):
    pass


class FunctionName(_Body):
    name: str = Field(min_length=1, max_length=64)


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: FunctionName


class JsonSchemaSpec(_Body):
    name: str = Field("reply", max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)  # llama.cpp / vLLM extension
    repetition_penalty: float | None = Field(None, gt=0, le=2)  # vLLM extension
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**53 - 1)  # the largest integer exact in JSON doubles
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)
    user: str | None = Field(None, max_length=256)
    # accepted for compatibility; only their neutral values are meaningful here
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        return tuple(s for s in stops if s)


class ChatCompletionRequest(_Sampling):
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    max_completion_tokens: int | None = Field(None, ge=1)
    store: bool | None = None
    metadata: dict[str, str] | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1, le=1)


class EmbeddingRequest(_Body):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    # e5 models embed queries and passages differently; OpenAI has no such field (extension, like Cohere's)
    input_type: Literal["query", "passage"] = "query"
