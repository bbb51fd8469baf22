"""Encryption at rest under GLMKIT_HOME: what reaches the disk, the key errors, and ``glmkit home``
conversions (kills included: tests/storage/test_home_kill.py)."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from glmkit.apps.checkpoint import CallCache, checkpoint_path
from glmkit.apps.sessions import SessionStore
from glmkit.errors import EncryptionKeyError, InvalidRequestError
from glmkit.kb.faq import ReviewQueue
from glmkit.kb.service import KnowledgeBases
from glmkit.kb.stores import open_store
from glmkit.safety.audit import AuditEvent, AuditLog
from glmkit.settings import Settings
from glmkit.storage.crypto import StoreKey, connect, file_form, read_file, seal, unseal, write_file
from glmkit.storage.home import check_home, encrypt_home, home_key, rekey_home, status
from kb_fakes import HashEmbedder

SENTENCE = "我的快递三天了还没有到，请帮我查一下订单号。"
KEY = "k3y-" + "0123456789abcdef" * 4
OTHER = "other-" + "fedcba9876543210" * 4
SRC = Path(__file__).resolve().parents[2] / "src"


def windows(text: str, n: int = 3) -> list[bytes]:
    """Every n-character piece of ``text`` as UTF-8 (9 bytes for Chinese: no chance match in ciphertext)."""
    return [
        text[i : i + n].encode() for i in range(len(text) - n + 1) if not set(text[i : i + n]) & set("，。")
    ]


def leaks(home: Path, text: str = SENTENCE) -> dict[str, list[str]]:
    """Files under ``home`` (databases, WAL files and all) holding any piece of ``text``."""
    found: dict[str, list[str]] = {}
    for p in sorted(home.rglob("*")):
        if p.is_file():
            raw = p.read_bytes()
            hits = [w.decode() for w in windows(text) if w in raw]
            if hits:
                found[str(p.relative_to(home))] = hits
    return found


def fill(home: Path, key: StoreKey | None, docs: Path) -> None:
    """Put SENTENCE into every store of a home: a knowledge base, a session, a hand-off, feedback, an FAQ
    candidate and the audit log; leave the stores open (their WAL files on disk) until the end."""
    (docs / "shipping.md").write_text(f"# 配送\n\n{SENTENCE}\n\n顺丰快递，四十八小时内发货。\n", "utf-8")
    kbs = KnowledgeBases(open_store(None, home, key), HashEmbedder)
    kbs.create("shop")
    kbs.add("shop", [docs / "shipping.md"])
    sessions = SessionStore(home / "service" / "sessions.sqlite3", key)
    sid = sessions.create("shop-bot", "u1")
    mid = sessions.add_message(sid, "user", SENTENCE)
    sessions.q(
        "INSERT INTO handoffs VALUES (?,?,?,?,?,?,?,?)",
        (sid, "shop-bot", "human", SENTENCE, "default", "waiting", None, 1.0),
    )
    sessions.q("INSERT INTO feedback VALUES (?,?,?,?)", (mid, -1, SENTENCE, 1.0))
    review = ReviewQueue(home / "kb" / "review.sqlite3", key)
    review.add("shop", "faq", SENTENCE, "请提供订单号。", "shipping.md")
    audit = AuditLog(home / "audit", key=key)
    audit.record(AuditEvent(1.0, "u1", "POST", f"/v1/kb/{SENTENCE}/search", 200, "ok", 1.0, 10, 10))
    assert audit.flush()
    CallCache(checkpoint_path(home, SENTENCE), key).put("call-1", f"摘要：{SENTENCE}")
    stores.extend([kbs.store, sessions, review, audit])


stores: list[object] = []


@pytest.fixture(autouse=True)
def _close_stores() -> object:
    yield
    for s in stores:
        s.close()  # type: ignore[attr-defined]
    stores.clear()


def contents(home: Path, key: StoreKey | None) -> dict[str, object]:
    """What a reader sees in every store of the home (opened afresh)."""
    kbs = KnowledgeBases(open_store(None, home, key), HashEmbedder)
    sessions = SessionStore(home / "service" / "sessions.sqlite3", key)
    review = ReviewQueue(home / "kb" / "review.sqlite3", key)
    audit = AuditLog(home / "audit", key=key)
    try:
        return {
            "kb": sorted(h.chunk.text for h in kbs.search(["shop"], "快递 订单号", k=5, mode="bm25")),
            "messages": sessions.q("SELECT role, text FROM messages"),
            "handoffs": sessions.q("SELECT summary FROM handoffs"),
            "feedback": sessions.q("SELECT comment FROM feedback"),
            "faq": [c.question for c in review.list("shop")],
            "audit": [e.route for e in audit.query()],
            "checkpoint": CallCache(checkpoint_path(home, SENTENCE), key).get("call-1"),
        }
    finally:
        for s in (kbs.store, sessions, review, audit):
            s.close()


def digest(home: Path) -> dict[str, str]:
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.endswith(("-shm", ".lock"))
    }


def test_an_encrypted_home_holds_no_piece_of_the_sentence_on_disk(tmp_path: Path) -> None:
    key = StoreKey.from_text(KEY)
    home = tmp_path / "home"
    fill(home, check_home(home, key), tmp_path)
    assert (home / "encryption.json").exists()  # a new home with a key set starts encrypted
    assert any(p.name.endswith("-wal") and p.stat().st_size for p in home.rglob("*"))  # WALs are checked too
    assert leaks(home) == {}
    forms = status(home, key)["databases"]
    assert set(forms) >= {
        "kb/kb.sqlite3",
        "service/sessions.sqlite3",
        "kb/review.sqlite3",
        "audit/audit.sqlite3",
    }
    assert set(forms.values()) == {"encrypted"}
    seen = contents(home, key)
    assert seen["checkpoint"] == f"摘要：{SENTENCE}"
    assert status(home)["files"] and set(status(home)["files"].values()) == {"sealed"}
    assert seen["messages"] == [("user", SENTENCE)] and seen["faq"] == [SENTENCE]
    assert any(SENTENCE in t for t in seen["kb"])  # type: ignore[attr-defined]


def test_encrypting_a_plain_home_keeps_everything_and_leaves_no_plaintext(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fill(home, None, tmp_path)
    for s in stores:
        s.close()  # type: ignore[attr-defined]
    stores.clear()
    before = contents(home, None)
    assert len(leaks(home)) >= 5  # the negative control: a plain home shows the sentence in every store
    report = encrypt_home(Settings(home=home, encryption_key=KEY))
    after = status(home)
    assert sorted(report.files) == sorted([*after["databases"], *after["files"]])
    assert set(after["databases"].values()) == {"encrypted"} and set(after["files"].values()) == {"sealed"}
    assert leaks(home) == {}
    key = home_key(Settings(home=home, encryption_key=KEY))
    assert contents(home, key) == before
    # and the home keeps working: new writes go to encrypted WAL files
    sessions = SessionStore(home / "service" / "sessions.sqlite3", key)
    sessions.add_message(sessions.create("b", "u"), "user", SENTENCE)
    assert leaks(home) == {}
    sessions.close()


def test_rekey_moves_every_store_to_the_new_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fill(home, check_home(home, StoreKey.from_text(KEY)), tmp_path)
    for s in stores:
        s.close()  # type: ignore[attr-defined]
    stores.clear()
    before = contents(home, StoreKey.from_text(KEY))
    rekey_home(Settings(home=home, encryption_key=KEY), OTHER)
    with pytest.raises(EncryptionKeyError, match="wrong key"):
        home_key(Settings(home=home, encryption_key=KEY))
    with pytest.raises(EncryptionKeyError, match="wrong key"):
        connect(home / "kb" / "kb.sqlite3", StoreKey.from_text(KEY))
    assert contents(home, home_key(Settings(home=home, encryption_key=OTHER))) == before
    assert leaks(home) == {}


def test_a_wrong_key_is_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fill(home, check_home(home, StoreKey.from_text(KEY)), tmp_path)
    for s in stores:
        s.close()  # type: ignore[attr-defined]
    stores.clear()
    before = digest(home)
    wrong = Settings(home=home, encryption_key=OTHER)
    with pytest.raises(EncryptionKeyError, match=r"GLMKIT_ENCRYPTION_KEY does not open .*home: wrong key"):
        home_key(wrong)
    # a store opened straight with the wrong key names the file, and never creates an empty one
    db = home / "service" / "sessions.sqlite3"
    with pytest.raises(EncryptionKeyError, match=rf"does not open {db}: wrong key"):
        SessionStore(db, StoreKey.from_text(OTHER))
    with pytest.raises(EncryptionKeyError, match="wrong key"):
        rekey_home(wrong, KEY)
    assert digest(home) == before
    assert contents(home, StoreKey.from_text(KEY))["messages"] == [("user", SENTENCE)]


def test_a_missing_key_and_a_plain_home_under_a_key_are_clear_errors(tmp_path: Path) -> None:
    enc, plain = tmp_path / "enc", tmp_path / "plain"
    fill(enc, check_home(enc, StoreKey.from_text(KEY)), tmp_path)
    fill(plain, None, tmp_path)
    for s in stores:
        s.close()  # type: ignore[attr-defined]
    stores.clear()
    before = digest(enc), digest(plain)
    with pytest.raises(EncryptionKeyError, match=r"enc is encrypted: set GLMKIT_ENCRYPTION_KEY"):
        home_key(Settings(home=enc))
    with pytest.raises(EncryptionKeyError, match=r"sessions.sqlite3 is encrypted: set GLMKIT_ENCRYPTION_KEY"):
        SessionStore(enc / "service" / "sessions.sqlite3")
    with pytest.raises(EncryptionKeyError, match=r"not encrypted .*run `glmkit home encrypt`"):
        home_key(Settings(home=plain, encryption_key=KEY))
    with pytest.raises(EncryptionKeyError, match="run `glmkit home encrypt`"):
        SessionStore(plain / "service" / "sessions.sqlite3", StoreKey.from_text(KEY))
    with pytest.raises(InvalidRequestError, match="already encrypted: use `glmkit home rekey`"):
        encrypt_home(Settings(home=enc, encryption_key=KEY))
    assert (digest(enc), digest(plain)) == before
    assert not (plain / "encryption.json").exists()


def test_keys_that_are_too_short_or_given_twice_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EncryptionKeyError, match="is 8 characters: use at least 32"):
        home_key(Settings(home=tmp_path, encryption_key="password"))
    f = tmp_path / "key"
    f.write_text(KEY + "\n")
    with pytest.raises(EncryptionKeyError, match="not both"):
        home_key(Settings(home=tmp_path, encryption_key=KEY, encryption_key_file=f))
    with pytest.raises(EncryptionKeyError, match="cannot read"):
        home_key(Settings(home=tmp_path, encryption_key_file=tmp_path / "nope"))
    from_file = home_key(Settings(home=tmp_path, encryption_key_file=f))
    assert (
        from_file is not None and from_file.id == StoreKey.from_text(KEY).id
    )  # the file's newline is trimmed
    assert "GLMKIT_ENCRYPTION_KEY_FILE" in from_file.source and KEY not in repr(from_file)


def test_sealed_files_round_trip_and_refuse_a_wrong_key(tmp_path: Path) -> None:
    key = StoreKey.from_text(KEY)
    p = tmp_path / "orig" / "合同.txt"
    write_file(p, SENTENCE.encode(), key)
    raw = p.read_bytes()
    assert raw[:9] == b"GLMKSEAL\x01" and SENTENCE.encode() not in raw and file_form(p) == "sealed"
    assert read_file(p, key).decode() == SENTENCE
    assert seal(b"x", key) != seal(b"x", key)  # a fresh nonce each time
    with pytest.raises(EncryptionKeyError, match="wrong key"):
        read_file(p, StoreKey.from_text(OTHER))
    with pytest.raises(EncryptionKeyError, match="is encrypted"):
        read_file(p, None)
    tampered = bytearray(raw)
    tampered[-1] ^= 1
    with pytest.raises(EncryptionKeyError, match="damaged"):
        unseal(bytes(tampered), key, p)
    write_file(p, b"plain", None)
    assert read_file(p, None) == b"plain"


def test_the_server_refuses_to_start_with_a_wrong_key(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from glmkit.server.app import create_app
    from glmkit.server.auth import KeyStore

    check_home(tmp_path, StoreKey.from_text(KEY))
    app = create_app(
        Settings(home=tmp_path, encryption_key=OTHER),
        chat_model=object(),
        keys=KeyStore(tmp_path / "k.json"),  # type: ignore[arg-type]
    )
    with pytest.raises(EncryptionKeyError, match="wrong key"), TestClient(app):
        pass


def test_only_the_storage_helper_connects_to_sqlite() -> None:
    """Every store opens through glmkit.storage.crypto.connect, so none can forget the key."""
    offenders = []
    for f in (SRC / "glmkit").rglob("*.py"):
        if f.parent.name == "storage" and f.name == "crypto.py":
            continue
        for node in ast.walk(ast.parse(f.read_text("utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "connect"
                and isinstance(node.value, ast.Name)
                and node.value.id in ("sqlite3", "sqlcipher3")
            ):
                offenders.append(f"{f.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_the_cli_converts_and_reports_as_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = sqlite3.connect(home.mkdir() or home / "notes.db")
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (?)", (SENTENCE,))
    db.commit()
    db.close()
    keyfile = tmp_path / "key"
    env = {"GLMKIT_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC)}

    def glmkit(*args: str, **extra: str) -> dict[str, object]:
        r = subprocess.run(
            [sys.executable, "-m", "glmkit", "home", *args, "--json"],
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=120,
        )
        out: dict[str, object] = json.loads(r.stdout)
        return out

    assert "key_file" in glmkit("keygen", "--out", str(keyfile))
    assert keyfile.stat().st_mode & 0o777 == 0o600
    new = tmp_path / "new"
    glmkit("keygen", "--out", str(new))
    done = glmkit("encrypt", GLMKIT_ENCRYPTION_KEY_FILE=str(keyfile))
    assert done["op"] == "encrypt" and done["files"] == ["notes.db"]
    assert SENTENCE.encode() not in (home / "notes.db").read_bytes()
    err = glmkit("status", GLMKIT_ENCRYPTION_KEY_FILE=str(new))
    assert err["encrypted"] is True and err["key_matches"] is False
    glmkit("rekey", "--new-key-file", str(new), GLMKIT_ENCRYPTION_KEY_FILE=str(keyfile))
    bad = glmkit("rekey", "--new-key-file", str(new), GLMKIT_ENCRYPTION_KEY_FILE=str(keyfile))
    assert "wrong key" in bad["error"]["message"]  # type: ignore[index]
    glmkit("decrypt", GLMKIT_ENCRYPTION_KEY_FILE=str(new))
    assert sqlite3.connect(home / "notes.db").execute("SELECT x FROM t").fetchall() == [(SENTENCE,)]
    assert glmkit("status")["encrypted"] is False


def test_a_conversion_that_dies_between_renames_is_finished_on_the_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The roll-forward path, deterministically: the process dies after the commit, two renames in."""
    import glmkit.storage.home as home_mod

    home = tmp_path / "home"
    fill(home, None, tmp_path)
    for s in stores:
        s.close()  # type: ignore[attr-defined]
    stores.clear()
    before = contents(home, None)
    real = os.replace
    calls = []

    def dying_replace(src: object, dst: object) -> None:
        if str(src).endswith(".glmkit-new"):
            if len(calls) == 2:
                raise SystemExit("killed")  # stands in for SIGKILL: nothing after this line runs
            calls.append(src)
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(home_mod.os, "replace", dying_replace)
    with pytest.raises(SystemExit):
        encrypt_home(Settings(home=home, encryption_key=KEY))
    monkeypatch.setattr(home_mod.os, "replace", real)
    forms = set(status(home)["databases"].values())
    assert forms == {"plain", "encrypted"}  # mixed on disk until the next open
    assert json.loads((home / "encryption.journal.json").read_text())["state"] == "commit"
    key = home_key(Settings(home=home, encryption_key=KEY))  # the next open finishes the renames
    assert set(status(home)["databases"].values()) == {"encrypted"}
    assert contents(home, key) == before and leaks(home) == {}
