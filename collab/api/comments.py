"""GET /api/documents/{name}/comments: the comments stored in a document (collab/comments.py
reads them; the editor writes them), anchors resolved to offsets into the text as it is now."""

from __future__ import annotations

from .. import comments
from .models import Comment, CommentList, CommentReply, CommentsQuery
from .router import Call, Operation

COMMENTS = "/api/documents/{name}/comments"


async def list_comments(call: Call) -> CommentList:
    query: CommentsQuery = call.query
    found = await call.documents.comments(call.name)
    if query.resolved is not None:
        found = [c for c in found if c.resolved is query.resolved]
    return CommentList(name=call.name, comments=[model_of(c) for c in found])


def model_of(comment: comments.Comment) -> Comment:
    return Comment(
        id=comment.id,
        field=comment.field,
        body=comment.body,
        author=comment.author,
        created_ms=comment.created_ms,
        resolved=comment.resolved,
        resolved_by=comment.resolved_by,
        resolved_ms=comment.resolved_ms,
        replies=[
            CommentReply(id=r.id, body=r.body, author=r.author, created_ms=r.created_ms)
            for r in comment.replies
        ],
        start=comment.start,
        end=comment.end,
        quote=comment.quote,
        original_quote=comment.original_quote,
        detached=comment.detached,
    )


OPERATIONS = [
    Operation(
        "GET",
        COMMENTS,
        "listComments",
        "List a document's comments",
        list_comments,
        query=CommentsQuery,
        response=CommentList,
        description="The comment threads stored in the document (the editor's comments), oldest "
        "first, each with its replies and where its anchor is in the text now (code points) "
        "with the quoted text.",
    ),
]
