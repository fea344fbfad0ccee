"""The MCP server (search/api/mcp.py) through the SDK's own client: over stdio (a ``bisearch mcp``
subprocess on a copy of the seed index) and over streamable HTTP (``/mcp`` of a served index)."""

from __future__ import annotations

import json
import os
import sys

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import ROOT, LiveServer, index_settings, server_settings
from search.api import create_app
from search.api.mcp import Service, create_mcp, document_uri
from search.service import open_ingester, open_retriever

ZH_QUESTION = "水贝珠宝的生产周期比全球平均快多少？"
SEED_EN = "000_be3e8d9fcddfd8b1"
READ_ONLY_TOOLS = {"search", "read", "report", "documents"}


def run(check, server, **options) -> None:
    """Run ``check(client)`` in a client session connected to ``server`` (URL, stdio or transport)."""
    async def session() -> None:
        async with Client(server, **options) as client:
            await check(client)
    anyio.run(session)


def tool_error(result) -> str:
    """The message of a tool error: one line, no traceback."""
    assert result.is_error, result
    message = result.content[0].text
    assert "\n" not in message and "Traceback" not in message, message
    return message


async def answers_the_seed_question(client: Client, backend) -> None:
    """The checks both transports pass: tools, a cited cross-language answer, an exact span, errors."""
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == READ_ONLY_TOOLS  # no API key: no write tool
    assert tools["search"].input_schema["properties"]["query"]["maxLength"] == 2000
    assert "中文" in tools["search"].description

    found = await client.call_tool("search", {"query": ZH_QUESTION, "k": 3})
    assert not found.is_error, found.content
    assert found.structured_content["query_lang"] == "zh"
    hit = next(hit for hit in found.structured_content["results"] if "30% faster" in hit["evidence_quote"])
    assert hit["doc_id"] == SEED_EN and hit["lang"] == "en"
    text = backend.document(SEED_EN).text
    assert hit["quote"] == text[hit["start"]:hit["end"]]
    assert f"chars {hit['start']}–{hit['end']}" in hit["citation"]
    (start, end), = hit["evidence"]
    assert hit["evidence_quote"] == text[start:end] and f"chars {start}–{end}" in hit["evidence_citation"]

    span = await client.call_tool("read", {"doc_id": SEED_EN, "start": start, "end": end, "context": 30})
    assert not span.is_error and span.structured_content["quote"] == text[start:end]
    assert span.structured_content["before"] == text[start - 30:start]

    assert tool_error(await client.call_tool("read", {"doc_id": "nope", "start": 0, "end": 3})) == \
        "unknown document: 'nope'"
    assert tool_error(await client.call_tool("read", {"doc_id": SEED_EN, "start": 9, "end": 3})).startswith(
        "span must satisfy")
    assert tool_error(await client.call_tool("search", {"query": ZH_QUESTION, "k": 0})).startswith("k: ")
    assert "query is empty" in tool_error(await client.call_tool("search", {"query": "   "}))


def test_stdio_server_answers_with_citations(fresh_index_dir, seed_retriever):
    """``bisearch mcp`` as a desktop assistant starts it: a subprocess speaking on stdin/stdout."""
    env = {name: value for name, value in os.environ.items() if name.startswith(("BISEARCH_", "HF_"))}
    env |= {"PYTHONPATH": str(ROOT), "BISEARCH_API_KEY": ""}
    server = StdioServerParameters(command=sys.executable, cwd=str(ROOT), env=env,
                                   args=["-m", "search.cli", "mcp", "--index", str(fresh_index_dir)])

    async def check(client: Client) -> None:
        await answers_the_seed_question(client, seed_retriever.backend)
        listing = await client.call_tool("documents", {"limit": 1})
        assert listing.structured_content["total"] == 2
        first = listing.structured_content["documents"][0]
        part = json.loads((await client.read_resource(first["uri"])).contents[0].text)
        assert part["id"] == first["id"] and part["text"] == seed_retriever.backend.document(first["id"]).text

    run(check, server)


def test_http_server_answers_with_citations_and_keeps_the_api_limits(live_server, seed_retriever):
    url = live_server.url + "/mcp"

    async def check(client: Client) -> None:
        await answers_the_seed_question(client, seed_retriever.backend)
        report = await client.call_tool("report", {"questions": [ZH_QUESTION], "k": 2})
        assert not report.is_error and report.content[0].text.startswith("# Search report")
        assert "30% faster" in report.content[0].text and "## References" in report.content[0].text
        assert tool_error(await client.call_tool("report", {})) == "give `questions` or `passages`"
        assert tool_error(await client.call_tool("search", {"query": "珠" * 2001})).startswith("query: ")
        with server_settings(live_server, max_report_chars=10):
            capped = tool_error(await client.call_tool("report", {"questions": ["gold"], "k": 1}))
        assert "the cap is 10 (BISEARCH_MAX_REPORT_CHARS)" in capped

    async def older_client(client: Client) -> None:  # the 2025 initialize handshake of today's assistants
        assert {tool.name for tool in (await client.list_tools()).tools} == READ_ONLY_TOOLS
        found = await client.call_tool("search", {"query": "Shuibei lead times", "k": 1})
        assert found.structured_content["results"][0]["doc_id"] == SEED_EN

    run(check, url)
    run(older_client, url, mode="legacy")
    assert httpx.get(url).status_code == 405
    hostile = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         headers={"Origin": "http://attacker.example"})
    assert hostile.status_code == 403  # the app's guard covers /mcp: no cross-origin calls


def test_documents_come_in_parts(seed_retriever):
    """A document resource is read a part at a time, ``next`` pointing at the following part."""
    service = Service.over(seed_retriever, open_ingester(index_settings(seed_retriever.backend.folder),
                                                         embedder=seed_retriever.embedder,
                                                         backend=seed_retriever.backend),
                           index_settings(seed_retriever.backend.folder))
    text = seed_retriever.backend.document(SEED_EN).text

    async def check(client: Client) -> None:
        uri, parts = document_uri(SEED_EN), []
        while uri:
            part = json.loads((await client.read_resource(uri)).contents[0].text)
            assert part["chars"] == len(text) and part["end"] - part["offset"] <= 1000
            parts.append(part["text"])
            uri = part["next"]
        assert "".join(parts) == text and len(parts) == 3
        for bad, message in ((document_uri("nope"), "unknown document"),
                             (document_uri(SEED_EN) + "?offset=-5", "whole number")):
            with pytest.raises(MCPError, match=message):
                await client.read_resource(bad)

    run(check, create_mcp(service, part_chars=1000))


def test_add_document_exists_only_with_a_key_and_needs_it(fresh_index_dir, embedder):
    settings = index_settings(fresh_index_dir, api_key="s3cret")
    app = create_app(open_retriever(settings, embedder=embedder), settings)
    text = "Tahitian black pearls are farmed in French Polynesia lagoons."

    def with_key(url: str, key: str | None):
        headers = {"X-API-Key": key} if key else {}
        return streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=60))

    async def without_key(client: Client) -> None:
        assert "add_document" in {tool.name for tool in (await client.list_tools()).tools}
        refused = await client.call_tool("add_document", {"text": text, "id": "pearls"})
        assert tool_error(refused) == "missing or wrong X-API-Key header"

    async def keyed(client: Client) -> None:
        added = await client.call_tool("add_document", {"text": text, "id": "pearls", "title": "Pearls"})
        assert not added.is_error and added.structured_content["status"] == "added", added.content
        found = await client.call_tool("search", {"query": "大溪地黑珍珠在哪里养殖？", "k": 1})
        assert found.structured_content["results"][0]["doc_id"] == "pearls"

    with LiveServer(app) as server:
        run(without_key, with_key(server.url + "/mcp", None))
        run(keyed, with_key(server.url + "/mcp", "s3cret"))


MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
HOSTILE_MESSAGES = [
    b"", b"not json", b"[]", b"null", b'{"jsonrpc": "2.0"}', b'{"jsonrpc": "2.0", "id": 1, "method": "nope"}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": "x"}}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": {"query": 1}}}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "bisearch://documents/%ZZ"}}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "read", '
    b'"arguments": {"doc_id": "\\u0000", "start": 0, "end": 1}}}',
]


@pytest.mark.parametrize("protocol", [{}, {"MCP-Protocol-Version": "2025-11-25"}, {"MCP-Protocol-Version": "bogus"}])
def test_malformed_mcp_messages_get_no_server_error(live_server, protocol):
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        for body in HOSTILE_MESSAGES:
            for headers in ({**MCP_HEADERS, **protocol}, {"Content-Type": "text/plain", **protocol}):
                reply = http.post("/mcp", content=body, headers=headers)
                assert reply.status_code < 500 and "Traceback" not in reply.text, (body, reply.status_code, reply.text)
