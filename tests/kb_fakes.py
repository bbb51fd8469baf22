"""A fast deterministic embedder for tests: character bigrams hashed into 384 dims."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class HashEmbedder:
    """Character-bigram hashing into 384 dims, L2-normalised: similar texts share bigrams (a real, if crude,
    embedding; it makes vector search testable in milliseconds)."""

    name = "hash-bigrams"
    dim = 384

    def embed(self, texts: Sequence[str], input_type: str = "passage") -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            t = "".join(c for c in t.lower() if c.isalnum())
            for a, b in itertools.pairwise(t):
                h = int.from_bytes(hashlib.blake2b((a + b).encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0
            n = np.linalg.norm(out[i])
            if n:
                out[i] /= n
        return out

    def count_tokens(self, text: str) -> int:
        return len(text)


def pdf_bytes(lines: list[tuple[float, str]] | None) -> bytes:
    """A one-page PDF written by hand: Helvetica lines of the given sizes, or (None) only an image."""
    if lines is None:
        content = b"q 200 0 0 200 100 500 cm /Im1 Do Q"
        resources = b"<< /XObject << /Im1 6 0 R >> >>"
    else:
        y, ops = 800.0, []
        for size, text in lines:
            y -= size * 1.6
            ops.append(f"BT /F1 {size} Tf 50 {y:.1f} Td ({text}) Tj ET")
        content = "\n".join(ops).encode()
        resources = b"<< /Font << /F1 5 0 R >> >>"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources " + resources + b" /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray /BitsPerComponent 8"
        b" /Length 4 >>\nstream\n\x00\xff\xff\x00\nendstream",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out
