"""A home's encryption state and its conversion in place: ``glmkit home encrypt | rekey | decrypt``.

``$GLMKIT_HOME/encryption.json`` marks an encrypted home and holds the id of its key (never the key), so
opening a home names a wrong or missing key before any store is touched.

A conversion is safe against a kill at any point, across every file of the home:

1. ``encryption.journal.json`` is written (state ``converting``, the file list), fsynced.
2. Each database is exported beside itself (``NAME.glmkit-new``, SQLCipher's ``sqlcipher_export``) and
   fsynced; the originals are untouched.
3. The journal is atomically rewritten with state ``commit``: this is the point of no return.
4. Each ``NAME.glmkit-new`` is renamed over ``NAME``; the marker is written; the journal is removed.

The next open or ``glmkit home`` command finds a leftover journal and finishes it (state ``commit``: the
renames in 4 need no key) or rolls it back (state ``converting``: delete the ``.glmkit-new`` files), so
the home is always wholly in the old form or wholly in the new one.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from glmkit.errors import EncryptionKeyError, InvalidRequestError
from glmkit.storage.crypto import (
    FileForm,
    StoreKey,
    _sqlcipher,
    connect,
    file_form,
    fsync_dir,
    key_from_settings,
    seal_text,
    unseal_text,
)

if TYPE_CHECKING:
    from glmkit.settings import Settings

MARKER = "encryption.json"
JOURNAL = "encryption.journal.json"
LOCK = ".encryption.lock"
NEW = ".glmkit-new"
DB_SUFFIXES = (".sqlite3", ".sqlite", ".db")
LINE_FILES = ("summaries/checkpoints/*.jsonl",)  # JSON-lines files whose text is sealed line by line
SKIP_DIRS = ("models",)  # downloaded model files: public, large, never customer data

Op = Literal["encrypt", "rekey", "decrypt"]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ConversionReport:
    op: Op
    home: Path
    files: list[str]
    key_id: str | None
    recovered: str | None  # what a leftover journal needed first: "rolled back", "finished" or None

    def as_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "home": str(self.home),
            "files": self.files,
            "key_id": self.key_id,
            "recovered": self.recovered,
        }


# -- what a home holds -------------------------------------------------------------------------------------
def databases(home: Path) -> list[Path]:
    """Every SQLite database under ``home`` (plain or encrypted), models excepted."""
    if not home.is_dir():
        return []
    out = []
    for root, dirs, files in os.walk(home):
        if Path(root) == home:
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for f in files:
            p = Path(root) / f
            if p.suffix in DB_SUFFIXES and not f.startswith(".") and p.stat().st_size > 0:
                out.append(p)
    return sorted(out)


def line_files(home: Path) -> list[Path]:
    """The JSON-lines files of ``home`` that hold customer text (summary checkpoints)."""
    return sorted(p for pattern in LINE_FILES for p in home.glob(pattern) if p.is_file())


def line_form(path: Path) -> FileForm:
    """``plain`` when a line holds ``text``, ``sealed`` when it holds ``sealed``, else ``missing``."""
    for line in path.read_text("utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "sealed" in obj:
            return "sealed"
        if isinstance(obj, dict) and "text" in obj:
            return "plain"
    return "missing"


def _plain_members(home: Path) -> list[Path]:
    return [p for p in databases(home) if file_form(p) == "plain"] + [
        p for p in line_files(home) if line_form(p) == "plain"
    ]


def read_marker(home: Path) -> dict[str, Any] | None:
    try:
        raw = (home / MARKER).read_text("utf-8")
    except FileNotFoundError:
        return None
    try:
        marker: dict[str, Any] = json.loads(raw)
        if not isinstance(marker.get("key_id"), str):
            raise ValueError("no key_id")
    except ValueError as e:
        raise EncryptionKeyError(f"{home / MARKER} is damaged ({e}): restore it from a backup") from None
    return marker


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write_marker(home: Path, key: StoreKey | None) -> None:
    if key is None:
        (home / MARKER).unlink(missing_ok=True)
        fsync_dir(home)
        return
    _write_json(home / MARKER, {"format": 1, "cipher": "sqlcipher4+aes-256-gcm", "key_id": key.id})


def status(home: Path, key: StoreKey | None = None) -> dict[str, Any]:
    """What ``glmkit home status`` shows: the form of every database and whether the key fits."""
    marker = read_marker(home) if (home / MARKER).exists() else None
    journal = (home / JOURNAL).exists()
    return {
        "home": str(home),
        "encrypted": marker is not None,
        "key_id": marker["key_id"] if marker else None,
        "key_set": key is not None,
        "key_matches": None if marker is None or key is None else key.id == marker["key_id"],
        "interrupted_conversion": journal,
        "databases": {str(p.relative_to(home)): file_form(p) for p in databases(home)},
        "files": {str(p.relative_to(home)): line_form(p) for p in line_files(home)},
    }


# -- opening a home ----------------------------------------------------------------------------------------
def home_key(settings: Settings) -> StoreKey | None:
    """The key every store under ``settings.home`` opens with, after checking that it fits the home."""
    return check_home(settings.home, key_from_settings(settings))


def check_home(home: Path, key: StoreKey | None) -> StoreKey | None:
    """Finish or roll back an interrupted conversion, then refuse a home the key does not fit: an
    encrypted home without a key, a wrong key, or a plain home with a key set. A home with no databases
    yet and a key set starts encrypted."""
    if (home / JOURNAL).exists():
        with _locked(home):
            recover(home)
    marker = read_marker(home)
    if marker is None:
        if key is not None:
            plain = _plain_members(home)
            if plain:
                raise EncryptionKeyError(
                    f"{key.source} is set but {home} is not encrypted ({plain[0].relative_to(home)} is "
                    "plain): run `glmkit home encrypt` to encrypt it (or unset the key)"
                )
            home.mkdir(parents=True, exist_ok=True)
            _write_marker(home, key)
        return key
    if key is None:
        raise EncryptionKeyError(
            f"{home} is encrypted: set GLMKIT_ENCRYPTION_KEY (or GLMKIT_ENCRYPTION_KEY_FILE) to open it"
        )
    if key.id != marker["key_id"]:
        raise EncryptionKeyError(f"{key.source} does not open {home}: wrong key")
    return key


# -- conversion --------------------------------------------------------------------------------------------
@contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / LOCK).open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidRequestError(f"another glmkit home command is converting {home}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _side(p: Path) -> list[Path]:
    return [p.with_name(p.name + s) for s in ("-wal", "-shm", "-journal")]


def recover(home: Path, progress: Progress | None = None, *, leftover: bool = True) -> str | None:
    """Finish (state ``commit``) or roll back (state ``converting``) a conversion a kill interrupted.
    Needs no key: finishing is renames, rolling back is deleting the new files."""
    path = home / JOURNAL
    try:
        journal = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:  # torn while first written: nothing was converted yet
        journal = {"state": "converting", "files": []}
    files = [home / f for f in journal.get("files", [])]
    if journal.get("state") == "commit":
        for p in files:
            new = p.with_name(p.name + NEW)
            if new.exists():
                for s in _side(p):  # the old form's WAL was checkpointed before export: nothing is lost
                    s.unlink(missing_ok=True)
                os.replace(new, p)
                if progress:
                    progress(f"renamed {p.relative_to(home)}")
        fsync_dirs(files)
        to = journal.get("to_key_id")
        if to is None:
            (home / MARKER).unlink(missing_ok=True)
        else:
            _write_json(home / MARKER, {"format": 1, "cipher": "sqlcipher4+aes-256-gcm", "key_id": to})
        done = "finished"
    else:
        for p in files:
            new = p.with_name(p.name + NEW)
            for q in (new, *_side(new)):
                q.unlink(missing_ok=True)
        done = "rolled back"
    path.unlink()
    fsync_dir(home)
    if progress and leftover:
        progress(f"an interrupted conversion was {done}")
    return done


def fsync_dirs(files: list[Path]) -> None:
    for d in sorted({p.parent for p in files}):
        fsync_dir(d)


def _export(src: Path, dst: Path, old: StoreKey | None, new: StoreKey | None) -> None:
    """Copy database ``src`` (under ``old``) to ``dst`` (under ``new``) with ``sqlcipher_export``."""
    for q in (dst, *_side(dst)):
        q.unlink(missing_ok=True)
    db: Any = connect(src, old, timeout=60)
    if old is None:  # a plain database: reopen it through SQLCipher, which ATTACH ... KEY needs
        db.close()
        db = _sqlcipher().connect(src, isolation_level=None, timeout=60)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        key = f"x'{new.sqlcipher.hex()}'" if new is not None else ""
        db.execute(f'ATTACH DATABASE ? AS converted KEY "{key}"', (str(dst),))
        db.execute("SELECT sqlcipher_export('converted')")
        db.execute(f"PRAGMA converted.user_version = {int(version)}")
        db.execute("DETACH DATABASE converted")
    finally:
        db.close()
    with dst.open("rb") as f:
        os.fsync(f.fileno())


def _recode_lines(src: Path, old: StoreKey | None, new: StoreKey | None) -> list[str]:
    """Copy a JSON-lines file, each line's text unsealed from ``old`` and sealed under ``new``; a line
    torn by an earlier kill is dropped (its reader ignores it anyway)."""
    out = []
    for line in src.read_text("utf-8").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if isinstance(obj.get("sealed"), str):
            text = unseal_text(obj.pop("sealed"), old, src)
        elif isinstance(obj.get("text"), str):
            if old is not None:
                raise EncryptionKeyError(
                    f"{src} holds plain lines in an encrypted home: restore it from a backup"
                )
            text = obj.pop("text")
        else:
            continue
        obj |= {"text": text} if new is None else {"sealed": seal_text(text, new)}
        out.append(json.dumps(obj, ensure_ascii=False) + "\n")
    return out


def _convert_lines(src: Path, dst: Path, old: StoreKey | None, new: StoreKey | None) -> None:
    out = _recode_lines(src, old, new)
    with dst.open("w", encoding="utf-8") as f:
        f.writelines(out)
        f.flush()
        os.fsync(f.fileno())


def convert_home(
    home: Path, old: StoreKey | None, new: StoreKey | None, *, progress: Progress | None = None
) -> ConversionReport:
    """Re-encrypt every database of ``home`` from ``old`` (None: plain) to ``new`` (None: plain).
    Stop the server (and other glmkit commands on this home) first."""
    if old is None and new is None:
        raise InvalidRequestError("nothing to do: neither an old nor a new key")
    op: Op = "encrypt" if old is None else ("decrypt" if new is None else "rekey")
    if not home.is_dir():
        raise InvalidRequestError(f"no glmkit home at {home}")
    with _locked(home):
        recovered = recover(home, progress)
        marker = read_marker(home)
        if op == "encrypt" and marker is not None:
            raise InvalidRequestError(
                f"{home} is already encrypted: use `glmkit home rekey` to change the key"
            )
        if op != "encrypt":
            if marker is None:
                raise InvalidRequestError(f"{home} is not encrypted: `glmkit home encrypt` encrypts it")
            assert old is not None
            if old.id != marker["key_id"]:
                raise EncryptionKeyError(f"{old.source} does not open {home}: wrong key")
        if old is not None and new is not None and old.id == new.id:
            raise InvalidRequestError("the new key is the current key")
        want = "plain" if old is None else "encrypted"
        dbs = [p for p in databases(home) if file_form(p) == want]
        lines = [p for p in line_files(home) if line_form(p) == ("plain" if old is None else "sealed")]
        files = dbs + lines
        for p in dbs:  # every file opens with the old key before anything is written
            connect(p, old, timeout=60).close()
        for p in lines:
            _recode_lines(p, old, None)
        rel = [str(p.relative_to(home)) for p in files]
        journal: dict[str, Any] = {
            "op": op,
            "state": "converting",
            "to_key_id": new.id if new else None,
            "files": rel,
        }
        _write_json(home / JOURNAL, journal)
        for p, r in zip(files, rel, strict=True):
            (_export if p in dbs else _convert_lines)(p, p.with_name(p.name + NEW), old, new)
            if progress:
                progress(f"exported {r}")
        fsync_dirs(files)
        _write_json(home / JOURNAL, journal | {"state": "commit"})
        if progress:
            progress("committed")
        recover(home, progress, leftover=False)  # the renames, as a leftover journal would be finished
    return ConversionReport(op, home, rel, new.id if new else None, recovered)


# -- the Python API behind ``glmkit home`` -------------------------------------------------------------------
def _required_key(settings: Settings, what: str) -> StoreKey:
    key = key_from_settings(settings)
    if key is None:
        raise EncryptionKeyError(
            f"{what} needs the key: set GLMKIT_ENCRYPTION_KEY or GLMKIT_ENCRYPTION_KEY_FILE "
            "(`glmkit home keygen` prints a new one)",
            param="encryption_key",
        )
    return key


def encrypt_home(settings: Settings, *, progress: Progress | None = None) -> ConversionReport:
    """Encrypt the plain home ``settings.home`` under the settings' key."""
    return convert_home(
        settings.home, None, _required_key(settings, "glmkit home encrypt"), progress=progress
    )


def rekey_home(settings: Settings, new_key: str, *, progress: Progress | None = None) -> ConversionReport:
    """Re-encrypt the home from the settings' key (the current one) to ``new_key``."""
    old = _required_key(settings, "glmkit home rekey")
    new = StoreKey.from_text(new_key, "the new key")
    return convert_home(settings.home, old, new, progress=progress)


def decrypt_home(settings: Settings, *, progress: Progress | None = None) -> ConversionReport:
    """Turn the encrypted home back into plain SQLite (then unset the key)."""
    return convert_home(
        settings.home, _required_key(settings, "glmkit home decrypt"), None, progress=progress
    )
