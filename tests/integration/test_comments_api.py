"""Comments in a document (collab/comments.py) through the server: GET .../comments and the
comment.* events of the change feeds, for a document written as the editor writes it (a root
Y.Map `comments` of Y.Maps, anchors as relative positions; docs/comments.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pycrdt import Array, Assoc, Doc, Map, StickyIndex, Text

from collab.events.schema import EventBody
from tests.conftest import serving

from .test_outbox import Recorder

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Editor:
    """A document the way the editor writes it, each step's update taken for the server."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.doc["codemirror"] = self.text = Text()
        self.doc["comments"] = self.comments = Map()

    def step(self, change: Any) -> bytes:
        before = self.doc.get_state()
        change()
        return self.doc.get_update(before)

    def comment(self, cid: str, word: str, body: str) -> None:
        at = str(self.text).index(word)
        start = StickyIndex.new(self.text, at, Assoc.AFTER).to_json()
        end = StickyIndex.new(self.text, at + len(word), Assoc.BEFORE).to_json()
        self.comments[cid] = Map(
            {
                "field": "codemirror",
                "start": start,
                "end": end,
                "quote": word,
                "body": body,
                "author": "Ann",
                "created_ms": 1765000000000,
                "resolved": False,
                "replies": Array(),
            }
        )


@pytest.fixture
def fast(settings):
    return settings.replace(events_debounce_ms=50, events_max_wait_ms=500)


async def test_comments_are_listed_and_make_events(fast) -> None:
    sink = Recorder()
    ed = Editor()
    async with serving(fast, extensions=[sink]) as srv:
        documents = srv.app.state.documents

        async def send(change: Any, *types: str) -> list[dict[str, Any]]:
            seen = len(sink.delivered)
            await documents.apply_update("c", ed.step(change), author="alice")

            def made() -> list[Any]:
                return [e for e in sink.delivered[seen:] if e.type != "document.created"]

            await sink.until(lambda: len(made()) >= 1 + len(types))
            new = [e.json() for e in sink.delivered[seen:]]
            for event in new:
                EventBody.model_validate(event)
            assert [e["type"] for e in new if e["type"] != "document.created"] == [
                "document.changed",
                *types,
            ]
            return new

        def write_and_comment() -> None:
            ed.text.insert(0, "The quick brown fox")
            ed.comment("c1", "quick", "which quick?")

        created = await send(write_and_comment, "comment.created")
        event = created[-1]
        assert event["comment_id"] == "c1" and event["users"] == ["alice"]
        assert event["comment"]["quote"] == "quick" and event["comment"]["body"] == "which quick?"
        assert created[-2]["comments"] == {"c1": {"resolved": False, "replies": []}}

        async with httpx.AsyncClient(base_url=srv.url) as http:
            # an edit before the anchor and one inside it move and grow the quote (pycrdt
            # indexes in UTF-8 bytes: "¡Ø! The q" is 11 of them)
            await documents.apply_update("c", ed.step(lambda: ed.text.insert(0, "¡Ø! ")), "bob")
            await documents.apply_update("c", ed.step(lambda: ed.text.insert(11, "é")), "bob")
            answer = await http.get("/api/documents/c/comments")
            assert answer.status_code == 200
            (listed,) = answer.json()["comments"]
            text = str(ed.text)
            assert listed["quote"] == "qéuick" == text[listed["start"] : listed["end"]]
            assert listed["original_quote"] == "quick" and not listed["detached"]

            def reply_and_resolve() -> None:
                c1 = ed.comments["c1"]
                c1["replies"].append({"id": "r1", "body": "the fast one", "author": "Bob"})
                c1["resolved"] = True
                c1["resolved_by"] = "Bob"

            replied = await send(reply_and_resolve, "comment.replied", "comment.resolved")
            assert replied[-2]["reply"] == {"id": "r1", "body": "the fast one", "author": "Bob"}
            assert (await http.get("/api/documents/c/comments?resolved=false")).json()[
                "comments"
            ] == []
            (resolved,) = (await http.get("/api/documents/c/comments?resolved=true")).json()[
                "comments"
            ]
            assert resolved["replies"][0]["body"] == "the fast one"
            assert resolved["resolved_by"] == "Bob"

            await send(lambda: ed.comments["c1"].__setitem__("resolved", False), "comment.reopened")
            deleted = await send(lambda: ed.comments.pop("c1"), "comment.deleted")
            assert deleted[-1]["comment_id"] == "c1" and "comment" not in deleted[-1]
            assert deleted[-2]["comments"] == {}
            assert (await http.get("/api/documents/c/comments")).json()["comments"] == []
            assert (await http.get("/api/documents/none/comments")).status_code == 404


async def test_a_document_without_comments_keeps_its_events_as_they_were(fast) -> None:
    sink = Recorder()
    ed = Editor()
    async with serving(fast, extensions=[sink]) as srv:
        ed.text += "plain"
        await srv.app.state.documents.apply_update("p", ed.doc.get_update())
        await sink.until(lambda: "document.changed" in sink.types("p"))
        (changed,) = [e.json() for e in sink.delivered if e.type == "document.changed"]
        assert "comments" not in changed


async def test_a_restored_version_brings_its_comments_back(fast) -> None:
    """Comments are part of the document's state: a version holds them as they were, and a
    restore brings them back, anchored (the text kept its characters), with an event."""
    sink = Recorder()
    ed = Editor()
    async with serving(fast, extensions=[sink]) as srv:
        documents = srv.app.state.documents

        def write_and_comment() -> None:
            ed.text.insert(0, "Ship on Friday, after the review.")
            ed.comment("c1", "Friday", "Thursday?")

        await documents.apply_update("v", ed.step(write_and_comment), author="alice")
        version = await documents.create_version("v", "with the comment")
        await documents.apply_update("v", ed.step(lambda: ed.comments.pop("c1")), author="bob")
        await sink.until(lambda: "comment.deleted" in sink.types("v"))
        assert await documents.comments("v") == []

        await documents.restore("v", version.id, author="carol")
        (back,) = await documents.comments("v")
        assert (back.id, back.quote, back.body, back.resolved) == (
            "c1",
            "Friday",
            "Thursday?",
            False,
        )
        await sink.until(lambda: sink.types("v").count("comment.created") == 2)
        (again,) = [
            e.json()
            for e in sink.delivered
            if e.type == "comment.created" and e.json()["users"] != ["alice"]
        ]
        assert again["comment"]["quote"] == "Friday" and again["users"] == ["carol"]
