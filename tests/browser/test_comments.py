"""Comments in the editor, with two people in two browser contexts: comment on selected words,
the other sees the highlight and the thread live, replies, resolve and reopen, concurrent edits
around and inside the commented words, a reload, and the API reading what the editors wrote."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Page, expect

from .conftest import BrowserLog, editor_url, new_user, shoot, status, wait_for_text

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

ADA = "Ada Lovelace"
GRACE = "Grace Hopper"


async def open_doc(page: Page, base: str, name: str) -> None:
    await page.goto(editor_url(base, name))
    await expect(status(page)).to_have_attribute("data-state", "connected", timeout=10_000)
    await expect(page.locator(".cm-content")).to_be_visible()


async def type_at(page: Page, index: int, text: str) -> None:
    """Put the caret at `index` (CodeMirror's position) and type `text` on the keyboard."""
    await page.locator(".cm-content").focus()
    await page.evaluate("(i) => collab.view.dispatch({ selection: { anchor: i } })", index)
    await page.keyboard.type(text)


async def select_words(page: Page, words: str) -> None:
    """Select the first occurrence of `words` in the editor."""
    await page.locator(".cm-content").focus()
    await page.evaluate(
        """(w) => {
          const at = collab.view.state.doc.toString().indexOf(w)
          collab.view.dispatch({ selection: { anchor: at, head: at + w.length } })
        }""",
        words,
    )


async def comment_on(page: Page, words: str, body: str, shot: str | None = None) -> None:
    await select_words(page, words)
    if shot:
        await expect(page.get_by_test_id("comment-add")).to_be_visible()
        await shoot(page, shot)
    await page.get_by_test_id("comment-add").click()  # the button by the selection
    await page.get_by_test_id("comment-input").fill(body)
    await page.get_by_test_id("comment-submit").click()


HIGHLIGHTED = """(selector) => [...document.querySelectorAll(selector)].map((el) => {
  const copy = el.cloneNode(true)  // without the remote carets drawn inside the words
  copy.querySelectorAll('.cm-ySelectionCaret').forEach((c) => c.remove())
  return copy.textContent.replaceAll('\\u2060', '')
}).join('')"""


async def highlighted(page: Page, text: str, selector: str = ".cm-comment") -> None:
    """Wait until the highlighted words read `text` ("" for none)."""
    await page.wait_for_function(
        f"([want, selector]) => ({HIGHLIGHTED})(selector) === want",
        arg=[text, selector],
        timeout=5_000,
    )


def thread(page: Page, body: str) -> Any:
    return page.get_by_test_id("comment-thread").filter(has_text=body)


async def comments_api(base: str, name: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{base}/api/documents/{quote(name, safe='')}/comments")
    answer.raise_for_status()
    found: list[dict[str, Any]] = answer.json()["comments"]
    return found


async def test_comment_reply_resolve_reopen_live_and_after_a_reload(server, browser, browser_log):
    log: BrowserLog = browser_log
    log.origin = server.http
    doc = "team/comments"
    ada = await new_user(browser, log, ADA)
    grace = await new_user(browser, log, GRACE)
    await open_doc(ada, server.http, doc)
    await open_doc(grace, server.http, doc)
    await type_at(ada, 0, "# Launch\n\nWe ship the editor on Friday at noon, after the review.")
    await wait_for_text(grace, "after the review.")

    await comment_on(ada, "on Friday at noon", "Can we make it Thursday?", "comments-select.png")
    await highlighted(ada, "on Friday at noon")
    # Grace sees the highlight and the count at once, without opening anything
    await highlighted(grace, "on Friday at noon")
    await expect(grace.get_by_test_id("comments-count")).to_have_text("1")

    # A click on the highlighted words opens Grace's panel on that thread; she replies
    await grace.locator(".cm-comment").first.click()
    grace_thread = thread(grace, "Can we make it Thursday?")
    await expect(grace_thread).to_have_attribute("data-active", "true")
    await expect(grace_thread.locator(".comment-quote")).to_have_text("on Friday at noon")
    await grace_thread.get_by_test_id("reply-input").fill("Thursday works for me.")
    await grace_thread.get_by_test_id("reply-submit").click()
    ada_thread = thread(ada, "Can we make it Thursday?")
    ada_reply = ada_thread.get_by_test_id("comment-reply")
    await expect(ada_reply).to_contain_text("Thursday works for me.")
    await expect(ada_reply.locator(".comment-author")).to_have_text(GRACE)
    await highlighted(grace, "on Friday at noon", ".cm-comment-active")
    await shoot(ada, "comments-thread-ada.png")
    await shoot(grace, "comments-thread-grace.png")

    # Grace resolves: the highlight goes in both editors, the thread moves to "Resolved"
    await grace_thread.get_by_test_id("comment-resolve").click()
    await highlighted(ada, "")
    await highlighted(grace, "")
    await expect(ada.get_by_test_id("comments-count")).to_have_text("")
    resolved = ada.get_by_test_id("resolved-list").get_by_test_id("comment-thread")
    await ada.locator(".comment-resolved summary").click()
    await expect(resolved.get_by_test_id("comment-status")).to_have_text("Resolved by Grace Hopper")
    (listed,) = await comments_api(server.http, doc)
    assert listed["resolved"] is True and listed["resolved_by"] == GRACE
    assert listed["quote"] == "on Friday at noon" and listed["author"] == ADA
    assert [r["body"] for r in listed["replies"]] == ["Thursday works for me."]
    await shoot(ada, "comments-resolved-ada.png")

    # Ada reopens it; a reload (the document from the server) keeps all of it
    await resolved.get_by_test_id("comment-reopen").click()
    await highlighted(grace, "on Friday at noon")
    await ada.reload()
    await expect(status(ada)).to_have_attribute("data-state", "connected", timeout=10_000)
    await highlighted(ada, "on Friday at noon")
    await ada.get_by_test_id("comments-button").click()
    reloaded = thread(ada, "Can we make it Thursday?")
    await expect(reloaded.get_by_test_id("comment-reply")).to_have_count(1)
    await expect(reloaded.get_by_test_id("comment-resolve")).to_be_visible()
    await shoot(ada, "comments-after-reload.png")
    log.check()


async def test_an_anchor_keeps_its_words_through_concurrent_edits(server, browser, browser_log):
    """Grace goes offline and edits before and inside the commented words while Ada edits
    around them; once Grace is back, both highlight the same words, which the API quotes."""
    log: BrowserLog = browser_log
    log.origin = server.http
    doc = "team/anchors"
    ada = await new_user(browser, log, ADA)
    grace = await new_user(browser, log, GRACE)
    await open_doc(ada, server.http, doc)
    await open_doc(grace, server.http, doc)
    await type_at(ada, 0, "Budget: review the numbers with finance by June.")
    await wait_for_text(grace, "by June.")
    await comment_on(ada, "the numbers", "Which numbers?")
    await highlighted(grace, "the numbers")

    await grace.evaluate("collab.provider.disconnect()")
    await expect(status(grace)).not_to_have_attribute("data-state", "connected")
    await type_at(grace, 0, "Q3 ")  # before the words
    text = "Q3 Budget: review the numbers"
    await type_at(grace, text.index(" numbers"), " revised")  # inside them
    await type_at(ada, len("Budget: review "), "all of ")  # right before them
    after = len("Budget: review all of the numbers")
    await type_at(ada, after, " (ünits: €)")  # right after them
    await highlighted(ada, "the numbers")
    await highlighted(grace, "the revised numbers")

    await grace.evaluate("collab.provider.connect()")
    await expect(status(grace)).to_have_attribute("data-state", "connected", timeout=10_000)
    final = "Q3 Budget: review all of the revised numbers (ünits: €) with finance by June."
    await wait_for_text(ada, final)
    await wait_for_text(grace, final)
    for page in (ada, grace):
        await highlighted(page, "the revised numbers")
    (listed,) = await comments_api(server.http, doc)
    assert listed["quote"] == "the revised numbers"
    assert final[listed["start"] : listed["end"]] == "the revised numbers"
    assert listed["original_quote"] == "the numbers"
    await ada.get_by_test_id("comments-button").click()
    await shoot(ada, "comments-concurrent-ada.png")
    log.check()
