"""The embedding examples (/examples/<editor>, docs/embedding.md) in Chromium: for each editor two
people in two browser contexts type into one document and see each other's text converge and
each other's caret with its name; after the other one left, a reload brings the whole document
back from the server. Then the index, the Monaco example beside the CodeMirror editor on the
same text, and a server that needs a token. Screenshots under test-artifacts/browser/."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Page, expect

from collab.extensions.token_auth import mint_token
from tests.conftest import serving

from .conftest import BrowserLog, editor_url, new_user, shoot, status, wait_for_text

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

ADA = "Ada Lovelace"
GRACE = "Grace Hopper"
SECRET = "examples-secret-0123456789-abcdefghijklm"


@dataclass(frozen=True)
class Editor:
    id: str
    surface: str  # where a person clicks to type
    caret: str  # a remote caret (its name is checked by `caret_name`)
    mark: str  # the line it draws, which must be visible


EDITORS = [
    Editor("prosemirror", ".ProseMirror", ".ProseMirror-yjs-cursor", ".ProseMirror-yjs-cursor"),
    Editor("quill", ".ql-editor", ".ql-cursor", ".ql-cursor-caret"),
    Editor("monaco", ".view-lines", ".yRemoteSelectionHead", ".yRemoteSelectionHead"),
    # Over the Hocuspocus protocol (/hocuspocus), not y-websocket.
    Editor("tiptap", ".tiptap", ".collaboration-carets__caret", ".collaboration-carets__caret"),
]


def example_url(base: str, editor: str, doc: str, token: str | None = None) -> str:
    url = f"{base}/examples/{editor}?doc={quote(doc, safe='')}"
    return f"{url}&token={token}" if token else url


async def open_example(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(status(page)).to_have_attribute("data-sync", "synced", timeout=10_000)
    await expect(status(page)).to_have_attribute("data-state", "connected")


async def type_at_end(page: Page, editor: Editor, text: str) -> None:
    await page.locator(editor.surface).first.click()
    await page.keyboard.press("Control+End")
    await page.keyboard.type(text)


async def text_of(page: Page) -> str:
    text: str = await page.evaluate("example.text()")
    return text


async def wait_for(page: Page, text: str, *, timeout: float = 10_000) -> None:
    await page.wait_for_function(
        "text => window.example !== undefined && example.text().includes(text)",
        arg=text,
        timeout=timeout,
    )


async def caret_name(page: Page, editor: Editor) -> str:
    """The name on the (one) remote caret: Monaco draws it as the head's ::after content."""
    caret = page.locator(editor.caret)
    await expect(caret).to_have_count(1, timeout=10_000)
    if editor.id == "monaco":
        content: str = await caret.evaluate("e => getComputedStyle(e, '::after').content")
        return content.strip('"')
    return (await caret.text_content() or "").strip("\u2060 \n")


@pytest.mark.parametrize("editor", EDITORS, ids=[e.id for e in EDITORS])
async def test_two_people_converge_see_carets_and_reload_restores(
    editor: Editor, server, browser, browser_log
):
    log: BrowserLog = browser_log
    log.origin = server.http
    doc = f"examples/{editor.id} test"
    ada = await new_user(browser, log, ADA)
    grace = await new_user(browser, log, GRACE)
    await open_example(ada, example_url(server.http, editor.id, doc))
    await open_example(grace, example_url(server.http, editor.id, doc))

    await type_at_end(ada, editor, "Ada writes the opening line.")
    await wait_for(grace, "Ada writes the opening line.")
    await type_at_end(grace, editor, " Grace adds a second sentence.")
    await wait_for(ada, "Ada writes the opening line. Grace adds a second sentence.")
    await type_at_end(ada, editor, " Ada ends it.")
    whole = "Ada writes the opening line. Grace adds a second sentence. Ada ends it."
    await wait_for(grace, whole)
    assert await text_of(ada) == await text_of(grace)

    # Each sees the other's caret, with the other's name on it (and not their own).
    assert await caret_name(ada, editor) == GRACE
    assert await caret_name(grace, editor) == ADA
    await expect(ada.locator(editor.mark)).to_be_visible()
    await expect(grace.locator(editor.mark)).to_be_visible()
    await shoot(ada, f"examples-{editor.id}-ada.png")
    await shoot(grace, f"examples-{editor.id}-grace.png")
    if editor.id == "tiptap":
        # Ada's page has been open for seconds: its provider still uses its first socket (an
        # exception in its status callback once failed the first attempt, and the provider
        # dropped a working socket to open another a second later).
        attempts = "example.provider.configuration.websocketProvider.identifier"
        assert await ada.evaluate(attempts) == 1

    # Grace leaves: her caret goes. Ada reloads: the document comes back from the server alone.
    await grace.context.close()
    await expect(ada.locator(editor.caret)).to_have_count(0, timeout=10_000)
    await ada.reload()
    await expect(status(ada)).to_have_attribute("data-sync", "synced", timeout=10_000)
    await wait_for(ada, whole)
    assert (await text_of(ada)).strip() == whole
    await ada.context.close()
    # The API reads what the editor wrote, whatever its shared type.
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{server.http}/api/documents/{quote(doc, safe='')}")
    assert answer.status_code == 200
    assert whole in json.dumps(answer.json()["content"])


async def test_index_links_every_example_with_the_document_name(server, browser, browser_log):
    log: BrowserLog = browser_log
    log.origin = server.http
    page = await new_user(browser, log, ADA)
    await page.goto(f"{server.http}/examples")
    links = page.locator("a[data-example]")
    await expect(links).to_have_count(5)
    await expect(page.locator('a[data-example="codemirror"]')).to_have_attribute(
        "href", "/d/examples/codemirror"
    )
    await page.get_by_label("Document name").fill("team/notes")
    await expect(page.locator('a[data-example="codemirror"]')).to_have_attribute(
        "href", "/d/team/notes"
    )
    await shoot(page, "examples-index.png")
    await page.locator('a[data-example="prosemirror"]').click()
    await expect(page).to_have_url(f"{server.http}/examples/prosemirror?doc=team%2Fnotes")
    await expect(page.locator(".doc-name")).to_have_text("team/notes")
    await expect(status(page)).to_have_attribute("data-sync", "synced", timeout=10_000)
    await page.context.close()


async def test_monaco_and_the_codemirror_editor_edit_one_text(server, browser, browser_log):
    log: BrowserLog = browser_log
    log.origin = server.http
    doc = "team/shared text"
    monaco = EDITORS[2]
    ada = await new_user(browser, log, ADA)
    grace = await new_user(browser, log, GRACE)
    await open_example(ada, example_url(server.http, "monaco", doc))
    await grace.goto(editor_url(server.http, doc))
    await expect(status(grace)).to_have_attribute("data-state", "connected", timeout=10_000)

    await type_at_end(ada, monaco, "Typed in Monaco.")
    await wait_for_text(grace, "Typed in Monaco.")
    await grace.locator(".cm-content").click()
    await grace.keyboard.press("Control+End")
    await grace.keyboard.type(" Typed in CodeMirror.")
    await wait_for(ada, "Typed in Monaco. Typed in CodeMirror.")
    # Monaco's worker is our bundle, from this server (a CDN request would fail the log's check).
    await ada.wait_for_function(
        "() => performance.getEntriesByType('resource')"
        ".some(e => new URL(e.name).pathname.startsWith('/assets/monaco-worker-'))"
    )
    await ada.context.close()
    await grace.context.close()


async def test_examples_with_a_token(settings, browser, browser_log):
    """On a server that needs a token, the page's ?token= reaches the provider; without one the
    socket is refused (4401) and the page says so instead of reconnecting for ever."""
    log: BrowserLog = browser_log
    async with serving(settings.replace(auth_secret=SECRET)) as srv:
        log.origin = srv.http
        token = mint_token(doc="team/*", write=True, ttl_s=600, secret=SECRET, user="ada")
        doc = "team/with a token"
        for editor in EDITORS:
            page = await new_user(browser, log, ADA)
            await open_example(page, example_url(srv.http, editor.id, doc, token))
            await type_at_end(page, editor, f"Hello from {editor.id}.")
            await page.context.close()

        # y-websocket is closed with 4401; the Hocuspocus provider is told its auth failed.
        for editor, state in [("quill", "disconnected"), ("tiptap", "refused")]:
            refused = await new_user(browser, log, GRACE)
            await refused.goto(example_url(srv.http, editor, doc))
            pill = status(refused)
            await expect(pill).to_have_attribute("data-state", state, timeout=10_000)
            await expect(pill).to_have_attribute("data-sync", "syncing")
            await refused.context.close()
