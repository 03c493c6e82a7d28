"""The one JSON schema of an event, as every sink sends it (webhook body, SSE `data:`, RabbitMQ
message) and the OpenAPI schema publishes it (components/schemas/EventBody). Bodies are built
by storage.new_event; tests/integration/test_outbox.py holds the two to each other."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "document.created",
    "document.changed",
    "document.deleted",
    "version.created",
    "version.restored",
    "user.joined",
    "user.left",
    "comment.created",
    "comment.replied",
    "comment.resolved",
    "comment.reopened",
    "comment.deleted",
]


class EventVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int = Field(description="the version's id (GET .../versions/{id})")
    kind: Literal["auto", "named", "restore"]
    label: str | None


class RestoredFrom(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int = Field(description="the version the document was made to look like again")


class CommentState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolved: bool
    replies: list[str] = Field(description="the reply ids, oldest first")


class EventReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    body: str
    author: str | None = Field(description="the name the writer's editor showed")


class EventComment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="the comment's id (GET .../comments lists it)")
    field: str = Field(description="the text it is about")
    body: str
    author: str | None = Field(description="the name the writer's editor showed")
    quote: str = Field(description="the commented text when the event was made")
    start: int | None = Field(description="code point offset of the quote in the text")
    end: int | None
    resolved: bool
    replies: int = Field(description="how many replies it has")


class EventBody(BaseModel):
    """A change event. The same bytes on every attempt and every sink; `id` is the
    idempotency key (a receiver that has seen it may ignore it)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        description="unique event id, `evt_` + 32 hex digits", pattern=r"^evt_[0-9a-f]{32}$"
    )
    type: EventType
    document: str = Field(description="the document's name")
    time: str = Field(description="when the event was made, ISO 8601 UTC with milliseconds")
    time_ms: int = Field(description="the same, in milliseconds since the Unix epoch")
    users: list[str] = Field(
        description="who is involved: the authors of the changes (document.*), of the "
        "edits since the previous version (version.created), who restored, who joined or left"
    )
    state_vector: str | None = Field(
        description="base64 Yjs state vector of the document as the event describes it "
        "(everything committed when it was made); null for user.joined/left and "
        "document.deleted"
    )
    text: dict[str, str] | None = Field(
        default=None,
        description="document.changed: the text of each root Y.Text by name (off with "
        "COLLAB_EVENTS_INCLUDE_TEXT=false; null with text_omitted beyond 1,000,000 characters)",
    )
    text_omitted: bool | None = Field(
        default=None, description="document.changed: the texts were too long to carry"
    )
    update: str | None = Field(
        default=None,
        description="document.changed with COLLAB_EVENTS_INCLUDE_UPDATE=true: base64 Yjs v1 "
        "update from the previous document.changed's state to this one's",
    )
    version: EventVersion | None = Field(
        default=None, description="version.created, version.restored: the version made"
    )
    restored: RestoredFrom | None = Field(
        default=None, description="version.restored: the version restored"
    )
    comments: dict[str, CommentState] | None = Field(
        default=None,
        description="document.changed of a document with comments: each comment's state, "
        "which the next document.changed is compared with to make the comment.* events",
    )
    comment_id: str | None = Field(default=None, description="comment.*: the comment's id")
    comment: EventComment | None = Field(
        default=None,
        description="comment.* but comment.deleted: the comment as it is when the event is made",
    )
    reply: EventReply | None = Field(default=None, description="comment.replied: the reply")
