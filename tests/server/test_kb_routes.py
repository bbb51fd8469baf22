"""Knowledge-base routes on a scripted chat model and the real embedding model."""

from __future__ import annotations

import json

import httpx

FILES = {
    "refund.md": "# 退款政策\n\n## 到账时间\n退款审核通过后，款项会在3到5个工作日内原路退回。\n",
    "faq.csv": "问题,答案\n发票怎么开？,在订单详情页点击“申请发票”。\n",
}


def upload(url: str, kb: str, files: dict[str, bytes | str], **headers: str) -> httpx.Response:
    parts = [("files", (n, d.encode() if isinstance(d, str) else d)) for n, d in files.items()]
    return httpx.post(
        f"{url}/v1/kb/{kb}/documents", files=parts, data={"tags": "policy"}, headers=headers, timeout=120
    )


def test_create_upload_search_ask(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server(("\n退款会在3到5个工作日内到账[1]。",)) as (url, _, _keys):
        assert httpx.post(f"{url}/v1/kb", json={"name": "shop"}).status_code == 201
        assert httpx.post(f"{url}/v1/kb", json={"name": "shop"}).status_code == 409
        r = upload(url, "shop", {**FILES, "bad.txt": bytes(range(256)) * 8})
        assert r.status_code == 200, r.text
        status = {f["source"]: f["status"] for f in r.json()["files"]}
        assert status == {"refund.md": "added", "faq.csv": "added", "bad.txt": "failed"}
        docs = httpx.get(f"{url}/v1/kb/shop/documents").json()["data"]
        assert {d["source"] for d in docs} == {"refund.md", "faq.csv"} and all(
            d["tags"] == ["policy"] for d in docs
        )
        hits = httpx.post(f"{url}/v1/kb/shop/search", json={"query": "退款多久到账", "k": 2}).json()["data"]
        assert hits[0]["source"] == "refund.md" and "3到5个工作日" in hits[0]["text"] and hits[0]["location"]
        a = httpx.post(
            f"{url}/v1/kb/ask", json={"kb": "shop", "question": "退款多久能到账？"}, timeout=60
        ).json()
        assert a["found"] and "3到5个工作日" in a["answer"]
        assert [c["source"] for c in a["citations"]] == ["refund.md"]
        with httpx.stream(
            "POST", f"{url}/v1/kb/ask", json={"kb": "shop", "question": "退款多久能到账？", "stream": True}
        ) as s:
            events = [json.loads(x[6:]) for x in s.iter_lines() if x.startswith("data: {")]
        assert events[0]["type"] == "sources" and events[-1]["type"] == "done"
        assert "".join(e["text"] for e in events if e["type"] == "delta") == events[-1]["answer"]
        nothing = httpx.post(f"{url}/v1/kb/ask", json={"kb": "shop", "question": "火星有几颗卫星？"}).json()
        assert nothing["found"] is False and nothing["citations"] == []
        r = httpx.delete(f"{url}/v1/kb/shop/documents/refund.md")
        assert r.status_code == 200 and r.json()["source"] == "refund.md"
        assert httpx.post(f"{url}/v1/kb/nope/search", json={"query": "x"}).status_code == 404
        r = httpx.post(f"{url}/v1/kb/shop/search", json={"query": "x", "k": 0})
        assert r.status_code == 422 and r.json()["error"]["param"] == "k"


def test_private_knowledge_base_is_invisible_to_other_keys(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server() as (url, _, keys):
        _, a = keys.add("a")
        _, b = keys.add("b")
        ha, hb = {"Authorization": f"Bearer {a}"}, {"Authorization": f"Bearer {b}"}
        assert (
            httpx.post(f"{url}/v1/kb", json={"name": "mine", "private": True}, headers=ha).status_code == 201
        )
        assert upload(url, "mine", FILES, **ha).status_code == 200
        assert [k["name"] for k in httpx.get(f"{url}/v1/kb", headers=ha).json()["data"]] == ["mine"]
        assert httpx.get(f"{url}/v1/kb", headers=hb).json()["data"] == []
        assert httpx.post(f"{url}/v1/kb/mine/search", json={"query": "退款"}, headers=hb).status_code == 404
        assert upload(url, "mine", FILES, **hb).status_code == 404
        assert httpx.post(f"{url}/v1/kb/mine/search", json={"query": "退款"}, headers=ha).status_code == 200


FAQ_REPLY = '\n[{"question": "退款多久到账？", "answer": "审核通过后3到5个工作日内原路退回。"}]'


def test_faq_candidates_review_and_publish(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server((FAQ_REPLY,)) as (url, _, _keys):
        httpx.post(f"{url}/v1/kb", json={"name": "shop"})
        upload(url, "shop", {"refund.md": FILES["refund.md"]})
        made = httpx.post(f"{url}/v1/kb/shop/faq/generate", json={"per_doc": 2}, timeout=60).json()["data"]
        faq = [c for c in made if c["kind"] == "faq"]
        summaries = [c for c in made if c["kind"] == "summary"]
        assert [c["question"] for c in faq] == ["退款多久到账？"] and faq[0]["status"] == "pending"
        assert len(summaries) == 1 and summaries[0]["source"] == "refund.md"
        # a second run skips documents already processed
        assert httpx.post(f"{url}/v1/kb/shop/faq/generate", json={}).json()["data"] == []
        cid = faq[0]["id"]
        edited = httpx.patch(f"{url}/v1/kb/shop/faq/{cid}", json={"answer": "3到5个工作日。"}).json()
        assert edited["answer"] == "3到5个工作日。"
        assert httpx.patch(f"{url}/v1/kb/shop/faq/{cid}", json={"answer": ""}).status_code == 422
        assert httpx.post(f"{url}/v1/kb/shop/faq/publish", json={}).json() == {"published": 1}
        docs = {d["source"] for d in httpx.get(f"{url}/v1/kb/shop/documents").json()["data"]}
        assert docs == {"refund.md", "faq:published"}
        hits = httpx.post(f"{url}/v1/kb/shop/search", json={"query": "退款多久到账", "k": 3}).json()["data"]
        live = [h for h in hits if h["source"] == "faq:published"]
        assert live and live[0]["kind"] == "faq" and live[0]["answer"] == "3到5个工作日。"
        # rejecting a live entry takes it out of the knowledge base
        httpx.patch(f"{url}/v1/kb/shop/faq/{cid}", json={"status": "rejected"})
        docs = {d["source"] for d in httpx.get(f"{url}/v1/kb/shop/documents").json()["data"]}
        assert docs == {"refund.md"}
