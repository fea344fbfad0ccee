"""End-to-end: the search page (search/static/index.html) in a real headless Chromium.

Uses Debian's /usr/bin/chromium (``apt-get install chromium fonts-noto-cjk``) driven by the
``playwright`` package's own driver; no browser is downloaded. Skipped locally when Chromium
is missing; in CI (``$CI`` set) a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import docx
import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = bool(os.environ.get("CI"))

if not CHROMIUM.exists() and not IN_CI:
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium fonts-noto-cjk); "
                "set CI=1 to make this a failure", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "results" / "screenshots" / "search-zh.png"
ZH_QUERY = "水贝珠宝的生产周期比全球平均快多少？"
TIMEOUT_MS = 15_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser() -> Browser:
    assert CHROMIUM.exists(), f"{CHROMIUM} is required in CI (apt-get install chromium fonts-noto-cjk)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, live_server) -> Page:
    context = browser.new_context(accept_downloads=True, locale="zh-CN",
                                  viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def rendered(page: Page) -> int:
    """How many searches the page has rendered so far (``#results[data-rendered]``)."""
    return int(page.get_attribute("#results", "data-rendered") or 0)


def wait_rendered(page: Page, after: int) -> None:
    page.wait_for_function("n => Number(document.getElementById('results').dataset.rendered) > n", arg=after)


def search(page: Page, query: str, *, lang: str | None = None, submit_with_enter: bool = True) -> None:
    before = rendered(page)
    if lang is not None:
        page.fill("#q", "")  # with a query in the box, a change of filter searches at once
        page.select_option("#lang", lang)
    page.fill("#q", query)
    with page.expect_response(lambda r: "/search?" in r.url):
        if submit_with_enter:
            page.press("#q", "Enter")
        else:
            page.click("#search-btn")
    wait_rendered(page, before)
    expect(page.locator("#error")).to_be_empty()


def test_cross_language_search_copy_and_report(page: Page, live_server) -> None:
    response = page.goto(live_server.url + "/")
    assert response is not None and response.ok
    assert page.get_attribute("html", "lang")
    assert page.evaluate("document.characterSet") == "UTF-8"

    search(page, ZH_QUERY)
    results = page.locator(".result")
    assert results.count() >= 2
    expect(page.locator("#meta")).to_contain_text("zh")        # query_lang of the Chinese question
    expect(page.locator("#meta")).to_contain_text("ms")        # took_ms

    # The English passage of seed 000 answers the Chinese question: a cross-language hit.
    hit = results.filter(has=page.locator(".passage", has_text="30% faster")).first
    expect(hit).to_be_visible()
    assert hit.get_attribute("data-lang") in ("en", "mixed")
    assert hit.get_attribute("data-doc-id", timeout=1000).startswith("000")
    assert page.locator(".result .passage mark").count() > 0, "no <mark> highlights in any result"
    citation = hit.locator(".citation").inner_text().strip()
    assert citation

    # The evidence sentence is marked inside the passage: the English sentence that answers the Chinese question.
    evidence = hit.locator(".passage .evidence[data-rank='1']")
    expect(evidence).to_have_count(1)
    expect(evidence).to_contain_text("30% faster")
    evidence_text = evidence.inner_text()

    # Copy citation quotes the evidence sentence, cited by its own characters; Copy passage the whole passage.
    hit.locator(".copy-btn").click()
    expect(hit.locator(".copy-btn")).to_have_text("Copied")
    try:
        clipboard = page.evaluate("navigator.clipboard.readText()")
    except Exception:  # clipboard reads can be refused in some headless set-ups
        clipboard = None
    if clipboard is not None:
        head, quoted = clipboard.split("\n", 1)
        assert head.startswith(citation.split(",")[0]) and "chars " in head and head != citation
        assert quoted == "\u201c" + evidence_text + "\u201d" or evidence_text in quoted
        hit.locator(".copy-passage-btn").click()
        expect(hit.locator(".copy-passage-btn")).to_have_text("Copied")
        clipboard = page.evaluate("navigator.clipboard.readText()")
        assert clipboard.startswith(citation + "\n\u201c") and clipboard.endswith("\u201d")
        assert len(clipboard) > len(citation) + len(evidence_text)

    # Report: add two passages, remove the other one, download the Markdown.
    other = results.filter(has_not=page.locator(".passage", has_text="30% faster")).first
    hit.locator(".add-btn").click()
    other.locator(".add-btn").click()
    expect(page.locator("#report-count")).to_have_text("2")
    expect(page.locator("#report-list li")).to_have_count(2)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"screenshot: {SCREENSHOT}")
    page.locator("#report-list li").nth(1).get_by_role("button", name="Remove").click()
    expect(page.locator("#report-count")).to_have_text("1")
    expect(page.locator("#report-list li")).to_have_count(1)

    with page.expect_download() as download_info:
        page.click("#download-report")
    download = download_info.value
    assert download.suggested_filename == "report.md"
    markdown = Path(download.path()).read_text(encoding="utf-8")
    expect(page.locator("#error")).to_be_empty()
    assert markdown.lstrip().startswith("#"), markdown[:200]
    assert "Search report" in markdown
    first_line = evidence_text.strip().splitlines()[0]
    assert first_line[:60] in markdown, "the chosen passage's evidence sentence is missing from the report"
    assert "30% faster" in markdown
    lowered = markdown.lower()
    assert "reference" in lowered or "sources" in lowered, markdown[-500:]
    assert hit.get_attribute("data-doc-id") in markdown
    removed_doc = other.get_attribute("data-doc-id")
    if removed_doc != hit.get_attribute("data-doc-id"):
        assert removed_doc not in markdown, "a removed passage is still in the report"
    assert "chars" in markdown

    # The same report as a Word file: the evidence sentence quoted, its reference listed.
    with page.expect_download() as download_info:
        page.click("#download-docx")
    download = download_info.value
    assert download.suggested_filename == "report.docx"
    word = docx.Document(download.path())
    quotes = [p.text for p in word.paragraphs if p.style.name == "Quote"]
    assert len(quotes) == 1 and first_line[:60] in quotes[0] and quotes[0].endswith(" [1]")
    assert any(p.text.startswith("[1] ") and "chars" in p.text for p in word.paragraphs)
    expect(page.locator("#error")).to_be_empty()


def badges(page: Page) -> list[str]:
    """The language badge (``lang``) of every result shown, as the API sent it."""
    return page.locator(".result .badge.lang").evaluate_all("els => els.map(e => e.textContent)")


def test_language_filter(page: Page, live_server) -> None:
    page.goto(live_server.url + "/")
    # EN filter with a Chinese question: only English passages (some also mixed), found across languages.
    search(page, ZH_QUERY, lang="en", submit_with_enter=False)
    shown = badges(page)
    assert shown, "no results with lang=en"
    assert shown and all(badge.split()[0] == "en" for badge in shown), shown  # the label is the filter's value

    # Changing the filter re-runs the search, now with lang=zh: the page shows exactly the Chinese
    # passages the API finds (all of them labelled zh), or the empty-state message when it finds none.
    before = rendered(page)
    with page.expect_request(lambda r: "/search?" in r.url and "lang=zh" in r.url) as request:
        page.select_option("#lang", "zh")
    wait_rendered(page, before)
    expect(page.locator("#error")).to_be_empty()
    shown = badges(page)
    expected = httpx.get(request.value.url, timeout=120).json()["results"]
    assert len(shown) == len(expected) and all(badge.split()[0] == "zh" for badge in shown), (shown, expected)
    if expected:
        expect(page.locator("#empty")).to_be_hidden()
    else:
        expect(page.locator("#empty")).to_be_visible()
        expect(page.locator("#empty")).to_contain_text("No passages")

    # "All" omits the parameter, and both scripts' documents come back.
    before = rendered(page)
    with page.expect_request(lambda r: "/search?" in r.url and "lang=" not in r.url):
        page.select_option("#lang", "")
    wait_rendered(page, before)
    expect(page.locator("#empty")).to_be_hidden()
    assert len(badges(page)) >= len(shown)
    doc_ids = set(page.locator(".result").evaluate_all("els => els.map(e => e.dataset.docId)"))
    assert len(doc_ids) == 2, doc_ids


def test_more_results_appends(page: Page, live_server) -> None:
    page.goto(live_server.url + "/?k=2")
    search(page, ZH_QUERY)
    expect(page.locator(".result")).to_have_count(2)
    first_page = page.locator(".result").evaluate_all(
        "els => els.map(e => [e.dataset.docId, e.dataset.start, e.querySelector('.rank').textContent])")

    more = page.locator("#more-btn")
    expect(more).to_be_visible()
    with page.expect_request(lambda r: "/search?" in r.url and "offset=2" in r.url):
        more.click()
    expect(page.locator(".result")).to_have_count(4)
    all_rows = page.locator(".result").evaluate_all(
        "els => els.map(e => [e.dataset.docId, e.dataset.start, e.querySelector('.rank').textContent])")
    assert all_rows[:2] == first_page, "More results must append, not replace"
    assert len({(doc, start) for doc, start, _ in all_rows}) == 4, all_rows
    assert [rank for _, _, rank in all_rows] == ["#1", "#2", "#3", "#4"]


def test_blank_query_is_not_sent(page: Page, live_server) -> None:
    page.goto(live_server.url + "/")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if "/search" in request.url else None)
    page.fill("#q", "   \u3000 ")
    page.press("#q", "Enter")
    expect(page.locator("#error")).to_contain_text("enter a question")
    page.click("#search-btn")
    expect(page.locator("#error")).not_to_be_empty()
    assert sent == []
    expect(page.locator(".result")).to_have_count(0)


def test_api_error_is_shown(page: Page, live_server) -> None:
    """A 422 from the API (query over the length limit: a validation-list ``detail``) is readable."""
    page.goto(live_server.url + "/")
    page.fill("#q", "珠宝" * 1500)
    with page.expect_response(lambda r: "/search?" in r.url) as response_info:
        page.press("#q", "Enter")
    assert response_info.value.status == 422
    error = page.locator("#error")
    expect(error).not_to_be_empty()
    text = error.inner_text()
    assert "[object Object]" not in text and "HTTP 422" not in text, text
    expect(page.locator(".result")).to_have_count(0)


def test_highlights_stay_on_their_words_after_rare_characters(page: Page, writable_server) -> None:
    """Highlight spans count code points; characters beyond the BMP must not shift the marks."""
    text = "𠀀𠀁𠀂 The sapphire ledger of 𪚥 rare stones lists sapphire prices by carat."
    added = httpx.post(writable_server.url + "/documents", json={"id": "rare", "title": "Rare", "text": text},
                       timeout=120)
    assert added.status_code == 201, added.text
    page.goto(writable_server.url + "/")
    search(page, "sapphire ledger")
    marks = page.locator('.result[data-doc-id="rare"] .passage mark').all_inner_texts()
    assert marks and {mark.lower() for mark in marks} <= {"sapphire", "ledger"}, marks


def test_pdf_hits_link_to_their_page_in_the_original(page: Page, writable_server) -> None:
    from pdfs import make_pdf

    pdf = make_pdf(["Tourmaline is mined in Minas Gerais.", "Paraiba tourmaline glows neon blue under light."])
    added = httpx.post(writable_server.url + "/documents", data={"id": "tourmaline"},
                       files={"file": ("tourmaline.pdf", pdf, "application/pdf")}, timeout=120)
    assert added.status_code == 201, added.text
    page.goto(writable_server.url + "/")
    search(page, "neon blue Paraiba tourmaline")
    link = page.locator('.result[data-doc-id="tourmaline"] a.page-link').first
    expect(link).to_have_text(re.compile(r"^pp?\. [12]"))
    href = link.get_attribute("href")
    assert re.search(r"files/tourmaline#page=[12]$", href), href
    assert httpx.get(writable_server.url + "/" + href.split("#")[0]).content == pdf


def test_a_scanned_image_hit_shows_the_ocr_badge_and_its_page(page: Page, writable_server) -> None:
    from scans import encoded, needs_font, render

    if needs_font.mark.args[0]:
        pytest.skip(needs_font.mark.kwargs["reason"])
    scan = encoded(render(["Opal miners in Coober Pedy live", "underground to escape the heat."]), "PNG")
    added = httpx.post(writable_server.url + "/documents", data={"id": "opal-scan"},
                       files={"file": ("opal.png", scan, "image/png")}, timeout=300)  # OCR: seconds
    assert added.status_code == 201, added.text
    page.goto(writable_server.url + "/")
    search(page, "why do opal miners live underground")
    hit = page.locator('.result[data-doc-id="opal-scan"]')
    expect(hit.locator(".badge.ocr")).to_have_text("OCR")
    expect(hit.locator("a.page-link")).to_have_text("p. 1")
    typed = page.locator('.result:not([data-doc-id="opal-scan"]) .badge.ocr')
    expect(typed).to_have_count(0)


def test_one_per_document_toggle(page: Page, live_server) -> None:
    page.goto(live_server.url + "/")
    search(page, "jewellery exports")
    before = rendered(page)
    with page.expect_request(lambda r: "/search?" in r.url and "collapse=doc" in r.url):
        page.check("#collapse")
    wait_rendered(page, before)
    doc_ids = page.locator(".result").evaluate_all("els => els.map(e => e.dataset.docId)")
    assert len(doc_ids) == len(set(doc_ids)) == 2, doc_ids
    expect(page.locator(".result .folded").first).to_contain_text("more in this document")


def test_a_phrase_no_passage_holds_is_explained_and_chinese_quotes_cost_nothing(page: Page, live_server) -> None:
    page.goto(live_server.url + "/")
    search(page, '"no such phrase" jewellery exports', lang="en", submit_with_enter=False)
    expect(page.locator("#notices")).to_be_visible()
    expect(page.locator("#notices")).to_contain_text('no English passage contains "no such phrase"')
    expect(page.locator("#empty")).to_be_hidden()  # the passages closest in meaning still come
    search(page, "“水贝”珠宝的生产周期比全球平均快多少？")  # Chinese quotation marks: punctuation
    expect(page.locator("#notices")).to_be_hidden()
    assert badges(page) and badges(page)[0].split()[0] == "en"


def address(page: Page) -> dict[str, list[str]]:
    """The page's query string, parsed."""
    return parse_qs(urlsplit(page.url).query)


def test_a_link_restores_its_search_and_back_returns_to_it(page: Page, live_server) -> None:
    link = live_server.url + "/?" + urlencode({"q": ZH_QUERY, "lang": "en", "collapse": "doc"})
    with page.expect_response(lambda r: "/search?" in r.url and "lang=en" in r.url and "collapse=doc" in r.url):
        page.goto(link)
    wait_rendered(page, 0)
    expect(page.locator("#q")).to_have_value(ZH_QUERY)
    expect(page.locator("#lang")).to_have_value("en")
    expect(page.locator("#collapse")).to_be_checked()
    expect(page.locator(".result .passage", has_text="30% faster").first).to_be_visible()
    doc_ids = page.locator(".result").evaluate_all("els => els.map(e => e.dataset.docId)")
    assert doc_ids and len(doc_ids) == len(set(doc_ids)) and set(badges(page)) <= {"en", "en + mixed"}

    # Each new search is an address of its own and a history entry.
    search(page, "jewellery exports")
    assert address(page) == {"q": ["jewellery exports"], "lang": ["en"], "collapse": ["doc"]}
    before = rendered(page)
    with page.expect_response(lambda r: "/search?" in r.url and "q=%E6%B0%B4" in r.url):
        page.go_back()
    wait_rendered(page, before)
    assert address(page)["q"] == [ZH_QUERY]
    expect(page.locator("#q")).to_have_value(ZH_QUERY)
    expect(page.locator(".result .passage", has_text="30% faster").first).to_be_visible()

    # A reload keeps the search; the bare page has none.
    with page.expect_response(lambda r: "/search?" in r.url):
        page.reload()
    expect(page.locator("#q")).to_have_value(ZH_QUERY)
    page.goto(live_server.url + "/")
    expect(page.locator("#q")).to_have_value("")
    expect(page.locator(".result")).to_have_count(0)
