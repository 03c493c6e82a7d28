"""comment.* events: what changed in a document's comments between two document.changed
events. The finalizer reads the comments (collab/comments.py) when it makes document.changed,
keeps their states in it (`comments`: each comment's resolved flag and reply ids), and
compares them with the states the previous document.changed kept:

- an id it did not have: comment.created (the comment as it is now, replies and all);
- reply ids it did not have: comment.replied, one per reply;
- resolved flipped: comment.resolved / comment.reopened;
- an id it had and the document no longer has: comment.deleted.

What happened between two events is seen only as its net result (a comment written and
removed within the debounce window makes no event), as document.changed sees the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage import NewEvent, new_event

from ..comments import Comment, Reply, digest


def comment_events(
    name: str,
    users: Sequence[str],
    state_vector: bytes,
    comments: list[Comment],
    previous: dict[str, Any],
) -> list[NewEvent]:
    """The comment.* events from the states `previous` (a document.changed's `comments`) to
    `comments`, oldest comment first."""
    events: list[NewEvent] = []

    def event(kind: str, comment_id: str, **extra: Any) -> None:
        events.append(new_event(kind, name, users, state_vector, comment_id=comment_id, **extra))

    for comment in comments:
        before = previous.get(comment.id)
        if not isinstance(before, dict):
            event("comment.created", comment.id, comment=summary(comment))
            continue
        known = set(before.get("replies") or [])
        for reply in comment.replies:
            if reply.id not in known:
                event("comment.replied", comment.id, comment=summary(comment), reply=of(reply))
        if comment.resolved != bool(before.get("resolved")):
            kind = "comment.resolved" if comment.resolved else "comment.reopened"
            event(kind, comment.id, comment=summary(comment))
    present = {c.id for c in comments}
    for comment_id in previous:
        if comment_id not in present:
            event("comment.deleted", comment_id)
    return events


def states(comments: list[Comment]) -> dict[str, Any]:
    """What a document.changed keeps of the comments (compared by the next one)."""
    return digest(comments)


def summary(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "field": comment.field,
        "body": comment.body,
        "author": comment.author,
        "quote": comment.quote,
        "start": comment.start,
        "end": comment.end,
        "resolved": comment.resolved,
        "replies": len(comment.replies),
    }


def of(reply: Reply) -> dict[str, Any]:
    return {"id": reply.id, "body": reply.body, "author": reply.author}
