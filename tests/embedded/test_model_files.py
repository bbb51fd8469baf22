"""The embedded model's files: assembly, verification, and clear errors for missing or corrupt files."""

import shutil
import sys
from pathlib import Path

import pytest

from glmkit.errors import ModelLoadError, ModelNotFoundError
from glmkit.runtime.backends.llamacpp import LlamaEngine
from glmkit.runtime.models import EMBEDDED, EmbeddedModel, parse_spec, prepare_embedded, verify_embedded
from glmkit.settings import Settings


@pytest.fixture()
def fake_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbeddedModel:
    """A two-chunk "model" in two importable packages, registered like a real embedded model."""
    import hashlib

    data = [b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 30]
    for i, chunk in enumerate(data, 1):
        pkg = tmp_path / "site" / f"fake_chunks_{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part0{i}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    blob = b"".join(data)
    m = EmbeddedModel(
        name="fake-model",
        description="test",
        packages=(("fake_chunks_1", "data/part01.bin"), ("fake_chunks_2", "data/part02.bin")),
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        pip_names=("fake-chunks-1==1", "fake-chunks-2==1"),
    )
    monkeypatch.setitem(EMBEDDED, m.name, m)
    return m


def test_chunks_join_once_and_verify(fake_embedded: EmbeddedModel, tmp_path: Path) -> None:
    out = tmp_path / "models"
    calls: list[int] = []
    path = prepare_embedded("fake-model", out, lambda n, got, total: calls.append(got))
    assert path.read_bytes()[:4] == b"GGUF" and path.stat().st_size == fake_embedded.size
    assert calls[-1] == fake_embedded.size
    mtime = path.stat().st_mtime_ns
    assert prepare_embedded("fake-model", out) == path and path.stat().st_mtime_ns == mtime  # reused
    assert not list(out.glob("*.part"))


def test_corrupt_file_is_detected_with_repair_advice(fake_embedded: EmbeddedModel, tmp_path: Path) -> None:
    out = tmp_path / "models"
    path = prepare_embedded("fake-model", out)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelLoadError, match=r"corrupt.*glmkit models prepare"):
        verify_embedded("fake-model", out)
    # prepare repairs it from the chunks
    assert prepare_embedded("fake-model", out).read_bytes()[100] != raw[100]


def test_missing_chunk_package_says_how_to_install(fake_embedded: EmbeddedModel, tmp_path: Path) -> None:
    sys.modules.pop("fake_chunks_2", None)
    shutil.rmtree(tmp_path / "site" / "fake_chunks_2")
    with pytest.raises(ModelNotFoundError, match=r"fake_chunks_2 is not installed.*pip install"):
        prepare_embedded("fake-model", tmp_path / "models")


def test_corrupt_chunk_is_refused(fake_embedded: EmbeddedModel, tmp_path: Path) -> None:
    (tmp_path / "site" / "fake_chunks_2" / "data" / "part02.bin").write_bytes(b"tampered")
    with pytest.raises(ModelLoadError, match=r"chunk package is corrupt"):
        prepare_embedded("fake-model", tmp_path / "models")
    assert not (tmp_path / "models" / fake_embedded.filename).exists()


def test_model_specs(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert parse_spec("qwen2.5-coder-0.5b", s).backend == "llamacpp"
    assert parse_spec("openai:http://127.0.0.1:9/v1#glm", s).target == "http://127.0.0.1:9/v1"
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'"):
        parse_spec("nope", s)
    with pytest.raises(ModelNotFoundError, match="model file not found"):
        parse_spec(str(tmp_path / "missing.gguf"), s)
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"without config\.json"):
        parse_spec(str(tmp_path / "ckpt"), s)
    with pytest.raises(ModelNotFoundError, match="needs a URL"):
        parse_spec("openai:localhost#x", s)


def test_bad_gguf_files(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not found"):
        LlamaEngine(tmp_path / "none.gguf")
    (tmp_path / "text.gguf").write_text("hello, not a model")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        LlamaEngine(tmp_path / "text.gguf")
    real = verify_embedded("qwen2.5-coder-0.5b", Settings().models_dir)
    truncated = tmp_path / "truncated.gguf"
    with real.open("rb") as f:
        truncated.write_bytes(f.read(1_000_000))
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        LlamaEngine(truncated)


def test_models_module_does_not_import_heavy_runtimes() -> None:
    import subprocess

    code = "import glmkit.runtime.models, glmkit.runtime.loaders, sys; print([m for m in ('torch','llama_cpp','transformers') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
