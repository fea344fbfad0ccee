"""Request validation on the real app over a fake embedder (no model, no server): the 4xx of
search, documents, spans and reports, hostile JSON, invisible queries and refused ids."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fakes import fake_api, prepared

SEED_EN = "000_be3e8d9fcddfd8b1"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The API over a fake index of one English document (named like the seed index's)."""
    sentences = ["Shuibei jewellery production cycles run 30% faster than the global average.",
                 "Gold prices rose sharply as investors sought safety from inflation."]
    app = fake_api(tmp_path_factory.mktemp("api") / "index", [prepared(SEED_EN, sentences)])
    with TestClient(app, base_url="http://127.0.0.1") as http:
        yield http
    app.state.retriever.backend.close()


# -- search ----------------------------------------------------------------------------------
def test_bad_requests_get_4xx_with_message(client):
    for params in ({"q": ""}, {"q": "   "}, {"q": "gold", "k": 0}, {"q": "gold", "k": 101},
                   {"q": "gold", "lang": "fr"}, {}, {"q": "x" * 3000}):
        reply = client.get("/search", params=params)
        assert 400 <= reply.status_code < 500, params
        assert reply.json()["detail"]


# -- documents, spans, reports -----------------------------------------------------------
@pytest.mark.parametrize("method, path, kwargs, status", [
    ("get", "/search", {"params": {"q": " "}}, 422),
    ("post", "/search", {"json": {"q": "   "}}, 422),
    ("post", "/search", {"json": {"q": "x" * 2001}}, 422),
    ("post", "/search", {"json": {"q": "gold", "k": 500}}, 422),
    ("post", "/search", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
    ("get", "/documents/nope", {}, 404),
    ("get", "/spans/nope", {"params": {"start": 0, "end": 5}}, 404),
    ("get", f"/spans/{SEED_EN}", {"params": {"start": 50, "end": 10}}, 422),
    ("get", f"/spans/{SEED_EN}", {"params": {"start": 0, "end": 10 ** 7}}, 422),
    ("get", f"/spans/{SEED_EN}", {"params": {"start": -1, "end": 5}}, 422),
    ("delete", "/documents/nope", {}, 404),
    ("post", "/documents", {"files": {"file": ("bad.txt", b"\xff\xfe\xfa")}}, 422),
    ("post", "/documents", {"files": {"file": ("x.pdf", b"%PDF-1.4")}}, 422),  # truncated PDF
    ("post", "/documents", {"files": {"file": ("x.exe", b"MZ")}}, 415),
    ("post", "/documents", {"json": {"text": "   "}}, 422),
    ("post", "/documents", {"content": b"plain", "headers": {"content-type": "text/plain"}}, 415),
    ("post", "/report", {"json": {}}, 422),
    ("post", "/report", {"json": {"passages": [{"doc_id": "nope", "start": 0, "end": 3}]}}, 422),
    ("post", "/report", {"json": {"passages": [{"doc_id": SEED_EN, "start": 0, "end": 10 ** 6}]}}, 422),
])
def test_bad_requests_get_4xx_json(client, method, path, kwargs, status):
    reply = getattr(client, method)(path, **kwargs)
    assert reply.status_code == status, reply.text
    assert reply.json()["detail"]


def test_body_too_large_is_413(client):
    reply = client.post("/documents", json={"text": "x" * (11 * 1024 * 1024)})
    assert reply.status_code == 413 and "larger" in reply.json()["detail"]


# -- hostile input (issue 17) ---------------------------------------------------------------
HOSTILE_BODIES = [
    ("/search", b'{"q": "\\ud800"}'), ("/search", b'{"q": "x", "k": NaN}'), ("/search", b'{"q": "x", "k": Infinity}'),
    ("/search", b'{"q": "x", "k": -Infinity}'), ("/search", b'{"q": "x", "k": 1e400}'), ("/search", b'{"q": NaN}'),
    ("/report", b'{"questions": ["\\udfff"]}'), ("/report", b'{"questions": ["x"], "k": NaN}'),
    ("/report", b'{"passages": [{"doc_id": "a", "start": 0, "end": 1e400}]}'),
    ("/ingest", b'{"paths": ["\\ud800"]}'), ("/ingest", b'{"paths": ["a"], "n": Infinity}'),
    ("/documents", b'{"text": "ok \\ud800"}'), ("/documents", b'{"text": "x", "id": NaN}'),
    ("/documents", b'{"text": "x", "title": 1e400}'), ("/documents", b'{"\\ud800": 1, "text": "x"}'),
]


@pytest.mark.parametrize("path, body", HOSTILE_BODIES)
def test_lone_surrogates_and_non_finite_numbers_are_422_json(client, path, body):
    reply = client.post(path, content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith("application/json") and reply.json()["detail"]


@pytest.mark.parametrize("doc_id", ["a\x7fb", "a\u202eb", "a\u200bb", "\u200b", "a\u2028b", "a\x00b", "a\ufeffb"])
def test_ids_with_control_or_format_characters_are_refused(client, doc_id):
    assert client.post("/documents", json={"id": doc_id, "text": "Jade."}).status_code == 422
    upload = client.post("/documents", files={"file": ("jade.txt", b"Jade.")}, data={"id": doc_id})
    assert upload.status_code == 422, upload.text


def test_multipart_id_has_the_200_character_limit(client):
    reply = client.post("/documents", files={"file": ("jade.txt", b"Jade.")}, data={"id": "j" * 201})
    assert reply.status_code == 422 and "200" in reply.json()["detail"]


@pytest.mark.parametrize("query", ["\u200b\u200b", "\x00", "\u200b\ufeff\u2060", " \u200c\x00 "])
def test_invisible_or_nul_queries_are_empty(client, query):
    for reply in (client.get("/search", params={"q": query}), client.post("/search", json={"q": query}),
                  client.post("/report", json={"questions": [query]})):
        assert reply.status_code == 422 and "query is empty" in reply.text, reply.text


def test_document_of_only_invisible_characters_is_refused(client):
    assert client.post("/documents", json={"text": "\u200b\u200c\u200d\ufeff"}).status_code == 422
    upload = client.post("/documents", files={"file": ("blank.txt", "\u200b\u2060".encode())})
    assert upload.status_code == 422
