"""Summarize and generate over HTTP, on a scripted chat model."""

from __future__ import annotations

import json

import httpx

ARTICLE = "长城是中国古代的军事防御工程。它东起山海关，西至嘉峪关。今天的长城是世界文化遗产。" * 40


def test_summarize_json_stream_and_file(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server(("\n长城是古代防御工程。",)) as (url, engine, _keys):
        r = httpx.post(f"{url}/v1/summarize", json={"text": ARTICLE, "mode": "news"}, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["summary"] == "长城是古代防御工程。" and body["mode"] == "news"
        assert body["input_chars"] == len(ARTICLE) and body["calls"] == len(engine.prompts) >= 2
        with httpx.stream("POST", f"{url}/v1/summarize", json={"text": ARTICLE, "stream": True}) as s:
            events = [json.loads(x[6:]) for x in s.iter_lines() if x.startswith("data: {")]
        kinds = [e["type"] for e in events]
        assert kinds[0] == "progress" and kinds[-1] == "done" and "delta" in kinds
        assert "".join(e["text"] for e in events if e["type"] == "delta") == events[-1]["summary"]
        ex = httpx.post(f"{url}/v1/summarize", json={"text": ARTICLE, "extractive": True, "sentences": 2}).json()
        assert ex["method"] == "extractive" and ex["summary"].count("。") == 2
        files = {"file": ("长城.md", ("# 长城\n\n" + ARTICLE).encode())}
        r = httpx.post(f"{url}/v1/summarize/file", files=files, data={"options": '{"mode": "doc"}'}, timeout=60)
        assert r.status_code == 200 and r.json()["summary"] == "长城是古代防御工程。"


def test_summarize_bad_input(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server() as (url, engine, _keys):
        r = httpx.post(f"{url}/v1/summarize", json={"text": "  "})
        assert r.status_code == 422 and r.json()["error"]["message"] == (
            "text: must contain some text (it is empty or only spaces)"
        )
        r = httpx.post(f"{url}/v1/summarize", json={"text": "\x00\x01"})
        assert r.status_code == 400 and "binary" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/v1/summarize", json={"text": "长" * 1_000_001}, timeout=60)
        assert r.status_code == 413 and "extractive" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/v1/summarize", json={"text": "x" * 5_000_000}, timeout=60)
        assert r.status_code == 413  # over the server's body limit
        r = httpx.post(f"{url}/v1/summarize", json={"text": "文本。", "mode": "poem"})
        assert r.status_code == 422 and r.json()["error"]["param"] == "mode"
        files = {"file": ("data.txt", bytes(range(256)) * 8)}
        r = httpx.post(f"{url}/v1/summarize/file", files=files)
        assert r.status_code == 400 and "data.txt" in r.json()["error"]["message"]
        files = {"file": ("a.txt", "长城。".encode())}
        r = httpx.post(f"{url}/v1/summarize/file", files=files, data={"options": '{"mode": 3}'})
        assert r.status_code == 400 and r.json()["error"]["param"] == "options"
        assert engine.prompts == []


def test_generate_templates_and_checks(fake_server) -> None:  # type: ignore[no-untyped-def]
    poem = "\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
    with fake_server((poem,)) as (url, _engine, _keys):
        kinds = {t["name"]: t for t in httpx.get(f"{url}/v1/generate/templates").json()["data"]}
        assert {"poem", "story", "article", "ad", "product"} <= set(kinds) and kinds["poem"]["takes_form"]
        r = httpx.post(
            f"{url}/v1/generate",
            json={"kind": "poem", "topic": "思乡", "form": "五言绝句", "keywords": ["明月"]},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        g = r.json()
        assert g["ok"] and g["text"] == poem.strip() and g["attempts"] == 1
        r = httpx.post(
            f"{url}/v1/generate",
            json={"kind": "poem", "topic": "春", "form": "五言绝句", "keywords": [f"词{i}" for i in range(40)]},
        )
        assert r.status_code == 400 and "cannot fit" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/v1/generate", json={"kind": "sonnet", "topic": "春"})
        assert r.status_code == 404 and "kind must be one of" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/v1/generate", json={"kind": "poem", "topic": "春", "retries": 99})
        assert r.status_code == 422 and r.json()["error"]["param"] == "retries"


def test_summarize_stream_reports_progress_and_stops_when_the_client_leaves(fake_server) -> None:  # type: ignore[no-untyped-def]
    import time

    long = ARTICLE * 10  # ~16 pieces; each call takes ~0.3 s on the slow engine
    with fake_server(("\n长城是古代防御工程。",), delay=0.03) as (url, engine, _keys):
        with httpx.stream("POST", f"{url}/v1/summarize", json={"text": long, "stream": True}, timeout=60) as s:
            lines = s.iter_lines()
            progress = []
            for line in lines:
                if line.startswith("data: {"):
                    ev = json.loads(line[6:])
                    progress.append(ev)
                    if ev["type"] == "progress" and ev["done"] >= 2:
                        break
        # the client is gone: the calls in flight end at their next token and no new one starts
        assert progress[0]["type"] == "progress" and progress[0]["done"] == 0 and progress[0]["total"] > 10
        assert "eta_s" in progress[-1] and progress[-1]["elapsed_s"] > 0
        deadline = time.monotonic() + 10
        while engine.active and time.monotonic() < deadline:
            time.sleep(0.05)
        calls = len(engine.prompts)
        time.sleep(1.0)
        assert engine.active == 0 and len(engine.prompts) == calls < progress[0]["total"]
