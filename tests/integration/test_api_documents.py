"""Citation-grade API: POST search, documents, spans, reports, errors, limits, API key."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import server_settings

SEED_EN = "000_be3e8d9fcddfd8b1"


@pytest.fixture(scope="module")
def client(writable_server):
    with httpx.Client(base_url=writable_server.url, timeout=60) as http:
        yield http


def test_post_search_with_highlights_citation_and_exact_quote(client):
    reply = client.post("/search", json={"q": "水贝珠宝的生产周期比全球平均快多少？", "k": 5})
    assert reply.status_code == 200, reply.text
    hits = reply.json()["results"]
    english = next(hit for hit in hits if hit["doc_id"] == SEED_EN and "30% faster" in hit["text"])
    document = client.get(f"/documents/{SEED_EN}").json()
    assert document["text"][english["start"]:english["end"]] == english["quote"] == english["text"]
    assert english["citation"].startswith(f"[{english['rank']}] ")
    assert f"chars {english['start']}–{english['end']}" in english["citation"]
    korean = client.get("/search", params={"q": "韩国珠宝出口", "k": 3}).json()["results"]
    marked = [hit["text"][s:e] for hit in korean for s, e in hit["highlights"]]
    assert any("韩国" in word or "珠宝" in word or "出口" in word for word in marked)


def test_paging_with_offset(client):
    first = client.post("/search", json={"q": "jewellery", "k": 2}).json()["results"]
    second = client.post("/search", json={"q": "jewellery", "k": 2, "offset": 2}).json()["results"]
    assert [hit["rank"] for hit in second] == [3, 4]
    assert not {(h["doc_id"], h["chunk_no"]) for h in first} & {(h["doc_id"], h["chunk_no"]) for h in second}


def test_document_lifecycle_json_upload_span_delete(client):
    added = client.post("/documents", json={"id": "zh/pearl", "title": "珍珠", "text": "淡水珍珠产自诸暨。价格今年上涨了20%。"})
    assert added.status_code == 201 and added.json()["status"] == "added"
    again = client.post("/documents", json={"id": "zh/pearl", "title": "珍珠", "text": "淡水珍珠产自诸暨。价格今年上涨了20%。"})
    assert again.json()["status"] == "unchanged"
    hits = client.get("/search", params={"q": "珍珠价格", "doc": "zh/pearl"}).json()["results"]
    assert hits and hits[0]["doc_id"] == "zh/pearl"
    span = client.get("/spans/zh/pearl", params={"start": 9, "end": 19, "context": 3}).json()
    assert span["quote"] == "价格今年上涨了20%" and span["before"] == "诸暨。" and span["after"] == "。"
    listing = client.get("/documents", params={"limit": 10}).json()
    assert "zh/pearl" in [doc["id"] for doc in listing["documents"]] and listing["total"] == 3
    upload = client.post("/documents", files={"file": ("gold.md", "# Gold\n\nGold hit a record high.".encode())})
    assert upload.status_code == 201 and upload.json()["id"] == "gold"
    assert client.delete("/documents/zh/pearl").status_code == 204
    assert client.get("/documents/zh/pearl").status_code == 404
    assert client.get("/search", params={"q": "珍珠价格", "doc": "zh/pearl"}).json()["results"] == []
    assert client.delete("/documents/gold").status_code == 204


def test_report_markdown_and_json(client):
    markdown = client.post("/report", json={"questions": ["韩国珠宝出口增长了多少？"], "k": 2})
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
    assert "## 1. 韩国珠宝出口增长了多少？" in markdown.text and "## References" in markdown.text
    assert "[1] " in markdown.text and "chars " in markdown.text
    as_json = client.post("/report", json={"questions": ["gold"], "k": 1}, headers={"Accept": "application/json"})
    body = as_json.json()
    reference = body["references"][0]
    document = client.get(f"/documents/{reference['doc_id']}").json()
    assert document["text"][reference["start"]:reference["end"]] == reference["text"]
    # The quote is the evidence sentence(s), exact, cited by their own characters; the passage stays in start/end.
    evidence = reference["evidence"]
    assert evidence and all(reference["start"] <= s < e <= reference["end"] for s, e in evidence)
    assert reference["quote"] == " … ".join(document["text"][s:e] for s, e in sorted(evidence))
    assert reference["citation"].endswith("chars " + ", ".join(f"{s}–{e}" for s, e in sorted(evidence)))
    passages = client.post("/report", json={"questions": ["gold"], "k": 1, "quote": "passage"},
                           headers={"Accept": "application/json"}).json()["references"][0]
    assert passages["quote"] == passages["text"] and passages["evidence"] == []
    chosen = client.post("/report", json={"passages": [{"doc_id": SEED_EN, "start": 0, "end": 40, "query": "q"}]})
    assert chosen.status_code == 200 and "Shenzhen’s Luohu District" in chosen.text


def test_write_endpoints_require_api_key_when_configured(client, writable_server):
    with server_settings(writable_server, api_key="s3cret"):
        assert client.post("/documents", json={"text": "Silver demand fell."}).status_code == 401
        assert client.delete(f"/documents/{SEED_EN}").status_code == 401
        wrong = client.post("/documents", json={"text": "Silver demand fell."}, headers={"X-API-Key": "s3cre"})
        assert wrong.status_code == 401
        assert client.get("/search", params={"q": "silver"}).status_code == 200
        created = client.post("/documents", json={"id": "silver", "text": "Silver demand fell."},
                              headers={"X-API-Key": "s3cret"})
        assert created.status_code == 201
        assert client.delete("/documents/silver", headers={"X-API-Key": "s3cret"}).status_code == 204


def wait_for_job(client, reply, timeout: float = 300) -> dict:
    """Poll a 202 job until it finishes; its final state."""
    assert reply.status_code == 202, reply.text
    url = reply.json()["url"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {url} did not finish")


def test_ingest_endpoint_stays_inside_its_root(client, tmp_path, writable_server):
    assert client.post("/ingest", json={"paths": ["x"]}).status_code == 403  # disabled without a root
    root = tmp_path / "allowed"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "opal.md").write_text("# Opal\n\nAustralian opal output rose.", encoding="utf-8")
    secret = tmp_path / "secret.txt"
    secret.write_text("Private ledger of diamond prices.", encoding="utf-8")
    (root / "notes" / "link.txt").symlink_to(secret)
    with server_settings(writable_server, ingest_root=root):
        for escape in ("../secret.txt", str(secret), "notes/../../secret.txt"):
            reply = client.post("/ingest", json={"paths": [escape]})
            assert reply.status_code == 403, (escape, reply.text)
            assert "outside" in reply.json()["detail"]
        assert client.post("/ingest", json={"paths": ["missing"]}).status_code == 404
        assert client.post("/ingest", json={"paths": ["n" * 300]}).status_code == 422  # too long for the file system

        job = wait_for_job(client, client.post("/ingest", json={"paths": ["notes"]}))  # a folder: a job
        assert job["status"] == "done" and job["result"]["added"] == 1, job  # the symlink to secret.txt left out
        hits = client.get("/search", params={"q": "diamond ledger", "k": 100}).json()["results"]
        assert all("Private ledger" not in hit["quote"] for hit in hits)
        opal = client.get("/documents/opal").json()
        assert opal["source"] == "notes/opal.md"  # relative to the ingest root, never the server path


def test_pdf_upload_gives_page_citations_and_serves_the_original(client):
    from pdfs import make_pdf

    pages = ["Opal mining in Coober Pedy began in 1915.",
             "The town's underground homes keep a steady temperature of 23 degrees.",
             "Most of the world's opal comes from this region."]
    data = make_pdf(pages)
    created = client.post("/documents", files={"file": ("opal.pdf", data, "application/pdf")}, data={"id": "opal"})
    assert created.status_code == 201, created.text
    hits = client.post("/search", json={"q": "underground homes temperature", "k": 3, "doc": ["opal"]}).json()["results"]
    best = hits[0]
    assert best["page"] <= 2 <= best["page_end"] and "temperature" in best["quote"]
    assert (f"p. {best['page']}" if best["page"] == best["page_end"] else f"pp. {best['page']}–") in best["citation"]
    original = client.get("/files/opal")
    assert original.status_code == 200 and original.content == data
    assert original.headers["content-type"] == "application/pdf"
    assert original.headers["x-content-type-options"] == "nosniff"  # 27.17: no sniffing, no script of the file
    assert original.headers["content-security-policy"] == "sandbox"
    report = client.post("/report", json={"passages": [{"doc_id": "opal", "start": best["start"], "end": best["end"]}]})
    assert "p. " in report.text or "pp. " in report.text
    assert client.get(f"/files/{SEED_EN}").status_code == 404  # a text document keeps no file


def test_phrases_exclusions_and_collapse_over_http(client):
    phrase = client.get("/search", params={"q": '"30% faster" Shuibei', "k": 10}).json()["results"]
    assert "30% faster" in next(hit["quote"] for hit in phrase if hit["lang"] == "en")  # holders first
    missing = client.get("/search", params={"q": '"no such phrase" jewellery', "lang": "en"}).json()
    assert missing["results"] and missing["notices"] == ['no English passage contains "no such phrase"']

    excluded = client.get("/search", params={"q": "jewellery exports -gold", "k": 20}).json()["results"]
    assert excluded and all("gold" not in hit["quote"].lower() for hit in excluded)
    one_each = client.post("/search", json={"q": "jewellery", "k": 10, "collapse": "doc"}).json()["results"]
    doc_ids = [hit["doc_id"] for hit in one_each]
    assert len(doc_ids) == len(set(doc_ids)) >= 2 and any(hit["more_in_doc"] > 0 for hit in one_each)
    assert client.get("/search", params={"q": '5" jewellery'}).json()["results"]  # a lone quote is punctuation
    for bad in ('""', "-only -exclusions"):
        reply = client.get("/search", params={"q": bad})
        assert reply.status_code == 422 and reply.json()["detail"], reply.text


def test_evidence_marks_the_english_sentence_for_a_chinese_question(client):
    """By default: sentence vectors stored at ingest, no request parameter, no extra model call."""
    reply = client.post("/search", json={"q": "水贝珠宝的生产周期比全球平均快多少？", "k": 3})
    hits = reply.json()["results"]
    assert all(hit["evidence"] for hit in hits)
    english = next(hit for hit in hits if hit["doc_id"] == SEED_EN and "30% faster" in hit["quote"])
    document = client.get(f"/documents/{SEED_EN}").json()["text"]
    sentences = [document[start:end] for start, end in english["evidence"]]
    assert sentences and all(english["start"] <= s < e <= english["end"] for s, e in english["evidence"])
    assert any("30% faster" in sentence for sentence in sentences), sentences
    assert english["evidence_quote"] == " … ".join(document[s:e] for s, e in sorted(english["evidence"]))
    assert english["evidence_citation"].startswith(f"[{english['rank']}] ") and "chars " in english["evidence_citation"]


def test_a_report_of_a_hit_quotes_its_evidence_and_refuses_a_changed_document(client):
    """The page sends the hit's evidence and the text it saw; the export re-reads the store (409 when changed)."""
    client.post("/documents", json={"id": "zh/jade", "text": "Jade prices rose by 12% this year. Buyers came from Hangzhou."})
    hit = client.post("/search", json={"q": "Where did the jade buyers come from?", "doc": ["zh/jade"]}).json()["results"][0]
    chosen = {key: hit[key] for key in ("doc_id", "start", "end", "evidence")} | {"text": hit["quote"]}
    report = client.post("/report", json={"passages": [chosen]}, headers={"Accept": "application/json"}).json()
    assert report["references"][0]["quote"] == hit["evidence_quote"]
    assert "Hangzhou" in hit["evidence_quote"] and "12%" not in hit["evidence_quote"]
    client.post("/documents", json={"id": "zh/jade", "text": "Jade prices fell by 12% this year. Buyers came from Suzhou."})
    stale = client.post("/report", json={"passages": [chosen]})
    assert stale.status_code == 409 and "search again" in stale.json()["detail"]
    outside = client.post("/report", json={"passages": [{**chosen, "text": None, "evidence": [[0, 10 ** 6]]}]})
    assert outside.status_code == 422
    client.delete("/documents/zh/jade")
