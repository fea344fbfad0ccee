"""The HTTP API, served for real on 127.0.0.1."""

from __future__ import annotations

import httpx


def test_health(live_server):
    reply = httpx.get(f"{live_server.url}/health")
    assert reply.status_code == 200 and reply.json()["documents"] == 2


def test_search_returns_cited_cross_language_passages(live_server):
    reply = httpx.get(f"{live_server.url}/search", params={"q": "水贝珠宝的生产周期比全球平均快多少？", "k": 5})
    assert reply.status_code == 200
    body = reply.json()
    assert body["query_lang"] == "zh" and body["took_ms"] > 0
    english = [hit for hit in body["results"] if hit["doc_id"] == "000_be3e8d9fcddfd8b1"]
    assert english and "30% faster" in english[0]["text"]
    first = body["results"][0]
    assert set(first) >= {"rank", "score", "doc_id", "title", "source", "chunk_no", "lang", "start", "end", "text"}


def test_search_language_filter(live_server):
    reply = httpx.get(f"{live_server.url}/search", params={"q": "gold prices", "lang": "en"})
    assert reply.status_code == 200
    results = reply.json()["results"]
    assert results, "the English seed document holds gold prices: the filter must leave hits"
    assert all(hit["lang"] in ("en", "mixed") for hit in results)


