"""A bot that watches a Collab document and answers `/summarize` lines.

Anyone typing a line `/summarize` (and pressing Enter) in the document gets, right below it, a
line `> Summary: ...`: the one or two sentences of the text above (since the start or the last
summary) that carry most of its frequent words. A plain extractive summary: no network, no model.
The bot shows up in the editor like a user (its name in the awareness), its answer arrives live
for everybody, and it reconnects by itself when the server restarts.

    pip install 'collab[client]'
    python docs/examples/summarize_bot.py http://localhost:8000 team/notes --field codemirror
    # with auth on: --token "$(collab token --api --doc '*')"
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections import Counter

import anyio
from pycrdt import Text

from collab.client import CollabClient, LiveDocument

COMMAND = "/summarize"
ANSWER = "> Summary: "
MAX_SENTENCES = 2
MAX_CHARS = 240
_STOPWORDS = (
    "a an and are as at be but by for from has have he her his i in is it its of on or our she"
    " so that the their them they this to was we were will with you your not no can do does"
)
STOPWORDS = frozenset(_STOPWORDS.split())


def summarize(text: str) -> str:
    """The sentences of `text` that score highest by the frequency of their words, in order."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
    if not sentences:
        return "(nothing to summarize)"
    words = [re.findall(r"\w+", s.lower()) for s in sentences]
    freq = Counter(w for ws in words for w in ws if w not in STOPWORDS)

    def score(i: int) -> float:
        content = [w for w in words[i] if w not in STOPWORDS]
        return sum(freq[w] for w in content) / (len(content) or 1) if content else 0.0

    best = sorted(range(len(sentences)), key=lambda i: (-score(i), i))[:MAX_SENTENCES]
    summary = " ".join(sentences[i] for i in sorted(best))
    return summary if len(summary) <= MAX_CHARS else summary[: MAX_CHARS - 1].rstrip() + "…"


def answers(text: str) -> list[tuple[int, str]]:
    """(where, what) for each finished `/summarize` line without an answer below it, last
    first: `where` is a str index just after the command's newline."""
    out = []
    start = 0  # where the text to summarize begins: the start, or after the last answer
    lines = text.split("\n")
    pos = 0
    for i, line in enumerate(lines):
        end = pos + len(line)
        finished = i + 1 < len(lines)  # a newline follows: the user pressed Enter
        if line.strip() == COMMAND and finished and not lines[i + 1].startswith(ANSWER):
            out.append((end + 1, ANSWER + summarize(text[start:pos]) + "\n"))
            start = end + 1
        elif line.startswith(ANSWER):
            start = end + 1
        pos = end + 1
    return out[::-1]


def answer_all(text: Text) -> int | None:
    """Write every missing answer into `text`, in one transaction; where the first one written
    ends (a str index), or None when there was nothing to answer."""
    current = str(text)
    todo = answers(current)
    with text.doc.transaction(origin="summarize-bot"):
        for where, line in todo:  # last first: earlier indexes stay valid
            # pycrdt's Text indexes are UTF-8 byte offsets, Python's are code points.
            text.insert(len(current[:where].encode("utf-8")), line)
    if not todo:
        return None
    where, line = todo[-1]
    return where + len(line) - 1  # before its newline


async def watch(live: LiveDocument, field: str) -> None:
    """Answer what is there, then each change, until cancelled."""
    await live.synced()
    live.set_presence(user={"name": "Summarizer bot", "color": "#8e44ad"})
    text = live.doc.get(field, type=Text)
    while True:
        end = answer_all(text)  # no await between this and changed(): no change slips through
        if end is not None:
            live.set_cursor(field, end)  # the others see the bot's cursor after its answer
        await live.changed()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", help="e.g. http://localhost:8000")
    parser.add_argument("document", help="the document name, e.g. team/notes")
    parser.add_argument("--field", default="codemirror", help="the Y.Text root to watch")
    parser.add_argument("--token", default=None, help="a token with write access")
    args = parser.parse_args()
    async with CollabClient(args.server, token=args.token).open(args.document) as live:
        await watch(live, args.field)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: leave quietly
        anyio.run(main)
