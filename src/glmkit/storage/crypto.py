"""Encryption at rest: the one place glmkit opens SQLite (plain with the standard library, encrypted with
SQLCipher) and seals files (AES-256-GCM), so no store can forget the key.

The key is a string of at least 32 random characters (``GLMKIT_ENCRYPTION_KEY``, a key file, or the
``encryption_key`` setting). It is key material, not a password: HKDF-SHA256 derives from it a raw
SQLCipher key (no per-open PBKDF2 cost), an AES-GCM key for files and a key id that
``$GLMKIT_HOME/encryption.json`` records, so a wrong key is named before anything is opened.

Sealed file format (``seal``/``unseal``)::

    b"GLMKSEAL"  magic, 8 bytes
    0x01         format version, 1 byte
    nonce        12 random bytes
    ciphertext   AES-256-GCM of the plaintext, its 16-byte tag at the end; the 9 header bytes are the AAD
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from glmkit.errors import EncryptionKeyError

if TYPE_CHECKING:
    from glmkit.settings import Settings

MIN_KEY_CHARS = 32
SQLITE_MAGIC = b"SQLite format 3\x00"
SEAL_MAGIC = b"GLMKSEAL"
SEAL_VERSION = 1
_HEADER = SEAL_MAGIC + bytes([SEAL_VERSION])
_NONCE = 12


def _sqlcipher() -> Any:
    import sqlcipher3  # type: ignore[import-untyped]

    return sqlcipher3


def _error_classes(name: str) -> tuple[type[Exception], ...]:
    """The standard library's exception class and SQLCipher's (a separate module with its own classes)."""
    return (getattr(sqlite3, name), getattr(_sqlcipher(), name))


# Catch these instead of ``sqlite3.X``: a connection from ``connect`` raises either module's classes.
Error: tuple[type[Exception], ...] = _error_classes("Error")
DatabaseError: tuple[type[Exception], ...] = _error_classes("DatabaseError")
IntegrityError: tuple[type[Exception], ...] = _error_classes("IntegrityError")
OperationalError: tuple[type[Exception], ...] = _error_classes("OperationalError")


def _hkdf(material: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) with a fixed salt, 32 bytes out."""
    prk = hmac.new(b"glmkit encryption at rest", material, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


@dataclass(frozen=True)
class StoreKey:
    """A home's encryption key and what is derived from it. ``source`` names where it came from, for
    error messages; the key itself is never printed."""

    source: str
    sqlcipher: bytes = field(repr=False)
    files: bytes = field(repr=False)
    id: str

    @classmethod
    def from_text(cls, text: str, source: str = "GLMKIT_ENCRYPTION_KEY") -> StoreKey:
        text = text.strip()
        if len(text) < MIN_KEY_CHARS:
            raise EncryptionKeyError(
                f"{source} is {len(text)} characters: use at least {MIN_KEY_CHARS} random characters "
                "(`glmkit home keygen` prints one)",
                param="encryption_key",
            )
        material = text.encode()
        return cls(
            source,
            _hkdf(material, b"sqlcipher"),
            _hkdf(material, b"files"),
            _hkdf(material, b"key id").hex()[:16],
        )

    def pragma(self) -> str:
        """``PRAGMA key`` with the raw 256-bit key (SQLCipher's ``x'…'`` form skips its PBKDF2)."""
        return f"PRAGMA key = \"x'{self.sqlcipher.hex()}'\""


def new_key_text() -> str:
    """A fresh random key (64 hex characters, 256 bits)."""
    return os.urandom(32).hex()


def key_from_settings(settings: Settings) -> StoreKey | None:
    """The key the settings name (``encryption_key`` or ``encryption_key_file``), or None."""
    return key_from(
        settings.encryption_key.get_secret_value() if settings.encryption_key is not None else None,
        settings.encryption_key_file,
    )


def key_from(text: str | None, file: Path | None, *, name: str = "GLMKIT_ENCRYPTION_KEY") -> StoreKey | None:
    if text is not None and file is not None:
        raise EncryptionKeyError(f"set {name} or {name}_FILE, not both", param="encryption_key")
    if file is not None:
        try:
            raw = file.expanduser().read_text("utf-8")
        except OSError as e:
            raise EncryptionKeyError(
                f"{name}_FILE: cannot read {file}: {e.strerror or e}", param="encryption_key_file"
            ) from None
        return StoreKey.from_text(raw, f"{name}_FILE ({file})")
    if text is not None:
        return StoreKey.from_text(text, name)
    return None


# -- SQLite ------------------------------------------------------------------------------------------------
FileForm = Literal["missing", "plain", "encrypted", "sealed"]


def file_form(path: Path) -> FileForm:
    """What a file on disk is: missing (or empty), a plain SQLite database, a sealed file, or encrypted
    (anything else: a SQLCipher database starts with random salt)."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return "missing"
    if not head:
        return "missing"
    if head == SQLITE_MAGIC:
        return "plain"
    if head.startswith(SEAL_MAGIC):
        return "sealed"
    return "encrypted"


def connect(
    path: Path, key: StoreKey | None, *, timeout: float = 30.0, readonly: bool = False
) -> sqlite3.Connection:
    """Open a glmkit database: with the standard library when ``key`` is None, through SQLCipher with
    ``PRAGMA key`` as the first statement otherwise. Never creates an empty store in place of one the key
    does not open: a wrong key, a missing key and a plain file under a key are each a clear error."""
    form = file_form(path)
    target: str | Path = f"file:{path}?mode=ro" if readonly else path
    if key is None:
        if form == "encrypted":
            raise EncryptionKeyError(
                f"{path} is encrypted: set GLMKIT_ENCRYPTION_KEY (or GLMKIT_ENCRYPTION_KEY_FILE) to open it"
            )
        return sqlite3.connect(
            target, uri=readonly, check_same_thread=False, isolation_level=None, timeout=timeout
        )
    if form == "plain":
        raise EncryptionKeyError(
            f"{key.source} is set but {path} is not encrypted: run `glmkit home encrypt` to encrypt this "
            "home (or unset the key)"
        )
    db = _sqlcipher().connect(
        target, uri=readonly, check_same_thread=False, isolation_level=None, timeout=timeout
    )
    try:
        db.execute(key.pragma())
        db.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is our error below, not "ERROR CORE" lines
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except _sqlcipher().DatabaseError as e:
        db.close()
        if "not a database" in str(e):
            raise EncryptionKeyError(f"{key.source} does not open {path}: wrong key") from None
        raise
    return cast(sqlite3.Connection, db)


# -- files -------------------------------------------------------------------------------------------------
def seal(data: bytes, key: StoreKey) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE)
    return _HEADER + nonce + AESGCM(key.files).encrypt(nonce, data, _HEADER)


def unseal(raw: bytes, key: StoreKey | None, what: str | Path = "data") -> bytes:
    """The plaintext of ``raw``; plain bytes pass through when no key is set."""
    if not raw.startswith(SEAL_MAGIC):
        if key is not None and raw:
            raise EncryptionKeyError(
                f"{key.source} is set but {what} is not encrypted: run `glmkit home encrypt`"
            )
        return raw
    if key is None:
        raise EncryptionKeyError(f"{what} is encrypted: set GLMKIT_ENCRYPTION_KEY to read it")
    if len(raw) < len(_HEADER) + _NONCE + 16 or raw[len(SEAL_MAGIC)] != SEAL_VERSION:
        raise EncryptionKeyError(f"{what}: not a sealed file glmkit can read (format version or length)")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = raw[len(_HEADER) : len(_HEADER) + _NONCE]
    try:
        return AESGCM(key.files).decrypt(nonce, raw[len(_HEADER) + _NONCE :], _HEADER)
    except InvalidTag:
        raise EncryptionKeyError(
            f"{key.source} does not open {what}: wrong key (or the file is damaged)"
        ) from None


def read_file(path: Path, key: StoreKey | None) -> bytes:
    """A file glmkit wrote with ``write_file``, decrypted when sealed."""
    return unseal(path.read_bytes(), key, path)


def write_file(path: Path, data: bytes, key: StoreKey | None) -> None:
    """Write ``data`` (sealed under ``key``) beside ``path``, fsync, and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(seal(data, key) if key is not None else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- sealed lines (append-only JSON-lines files) ---------------------------------------------------------
def seal_text(text: str, key: StoreKey) -> str:
    """``text`` sealed and base64-encoded, to stand in a JSON line as ``{"sealed": …}``."""
    import base64

    return base64.b64encode(seal(text.encode(), key)).decode("ascii")


def unseal_text(sealed: str, key: StoreKey | None, what: str | Path = "data") -> str:
    import base64
    import binascii

    try:
        raw = base64.b64decode(sealed, validate=True)
    except binascii.Error:
        raise EncryptionKeyError(f"{what}: a sealed line is not base64 (the file is damaged)") from None
    if not raw.startswith(SEAL_MAGIC):
        raise EncryptionKeyError(f"{what}: a sealed line is not a sealed record (the file is damaged)")
    return unseal(raw, key, what).decode()
