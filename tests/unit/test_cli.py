"""`collab export / import / compact` against a real SQLite file, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText


def collab(*args: str, db: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "collab",
            *args,
            "--database-url",
            f"sqlite+aiosqlite:///{db}",
            "--log-level",
            "warning",
        ],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_import_text_then_export_text_json_and_update(tmp_path):
    db = tmp_path / "c.db"
    src = tmp_path / "notes.md"
    src.write_text("# Notes\nhéllo 🎉\n")
    assert collab("import", "team/notes", str(src), db=db).returncode == 0
    out = collab("export", "team/notes", db=db)
    assert out.returncode == 0 and out.stdout.decode() == "# Notes\nhéllo 🎉\n"
    as_json = json.loads(collab("export", "team/notes", "--format", "json", db=db).stdout)
    assert as_json == {"codemirror": "# Notes\nhéllo 🎉\n"}
    update = collab("export", "team/notes", "--format", "update", db=db).stdout
    doc: Doc = Doc()
    doc.apply_update(update)
    assert str(doc.get("codemirror", type=Text)) == "# Notes\nhéllo 🎉\n"


def test_import_a_yjs_update_and_export_every_root_type_as_json(tmp_path):
    db = tmp_path / "c.db"
    doc: Doc = Doc()
    doc["title"] = Text("Plan")
    doc["meta"] = Map({"owner": "ada", "n": 3})
    doc["items"] = Array(["one", "two"])
    doc["body"] = XmlFragment([XmlElement("p", {}, [XmlText("hé")])])
    (tmp_path / "u.bin").write_bytes(doc.get_update())
    assert collab("import", "plan", str(tmp_path / "u.bin"), db=db).returncode == 0
    exported = json.loads(collab("export", "plan", "--format", "json", db=db).stdout)
    assert exported == {
        "title": "Plan",
        "meta": {"owner": "ada", "n": 3},  # as JavaScript prints it
        "items": ["one", "two"],
        "body": "<p>hé</p>",
    }
    text = collab("export", "plan", "--root", "title", db=db)
    assert text.stdout.decode() == "Plan"
    ambiguous = collab("export", "plan", db=db)
    assert ambiguous.returncode == 1 and b"--root" in ambiguous.stderr


def test_compact_folds_the_log_and_keeps_the_content(tmp_path):
    db = tmp_path / "c.db"
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text(f"part {i}\n")
        assert collab("import", "doc", str(tmp_path / f"{i}.txt"), db=db).returncode == 0
    before = collab("export", "doc", "--format", "update", db=db).stdout
    result = collab("compact", db=db)
    assert result.returncode == 0 and b"doc: 5 rows" in result.stdout
    assert b"nothing to compact" in collab("compact", "doc", db=db).stdout
    after = collab("export", "doc", "--format", "update", db=db).stdout
    a: Doc = Doc()
    b: Doc = Doc()
    a.apply_update(before)
    b.apply_update(after)
    assert str(a.get("codemirror", type=Text)) == str(b.get("codemirror", type=Text))
    assert len(str(b.get("codemirror", type=Text)).splitlines()) == 5


def test_errors_are_one_clear_line(tmp_path):
    db = tmp_path / "c.db"
    missing = collab("export", "nope", db=db)
    assert missing.returncode == 1
    assert missing.stderr.decode().strip() == "collab export: no document named 'nope'"
    (tmp_path / "bad.bin").write_bytes(b"\xff\xfe\x00\x01")
    bad = collab("import", "x", str(tmp_path / "bad.bin"), "--format", "update", db=db)
    assert bad.returncode == 1 and b"not a Yjs v1 update" in bad.stderr


def test_versions_version_restore_export_and_delete(tmp_path):
    db = tmp_path / "c.db"
    (tmp_path / "good.txt").write_text("good text 😀\n")
    (tmp_path / "bad.txt").write_text("SPAM\n")
    assert collab("import", "team/h", str(tmp_path / "good.txt"), db=db).returncode == 0
    made = collab("version", "team/h", "--label", "good one", db=db)
    assert made.returncode == 0, made.stderr
    good_id = made.stdout.decode().split("\t")[0]
    assert "named" in made.stdout.decode() and "'good one'" in made.stdout.decode()
    assert "import" in made.stdout.decode()  # the author of what it holds
    assert collab("import", "team/h", str(tmp_path / "bad.txt"), db=db).returncode == 0
    # a text import is a document of its own: its text lands before or after, by client id
    assert "SPAM\n" in collab("export", "team/h", db=db).stdout.decode()

    old = collab("export", "team/h", "--version", good_id, db=db)
    assert old.returncode == 0 and old.stdout.decode() == "good text 😀\n"
    restored = collab("restore", "team/h", good_id, db=db)
    assert restored.returncode == 0, restored.stderr
    assert f"Before restoring version {good_id}" in restored.stdout.decode()
    assert collab("export", "team/h", db=db).stdout.decode() == "good text 😀\n"

    listed = [
        json.loads(line)
        for line in collab("versions", "team/h", "--json", db=db).stdout.splitlines()
    ]
    assert [v["kind"] for v in listed] == ["restore", "restore", "named"]
    assert listed[0]["label"] == f"Restored version {good_id}" and "cli" in listed[0]["authors"]
    before_id = str(listed[1]["id"])
    before = collab("export", "team/h", "--version", before_id, db=db).stdout.decode()
    assert "SPAM\n" in before and "good text 😀\n" in before
    assert collab("versions", "team/h", db=db).stdout.decode().count("\n") == 3

    missing = collab("restore", "team/h", "999", db=db)
    assert missing.returncode == 1 and b"no version 999" in missing.stderr
    assert collab("delete", "team/h", db=db).returncode == 0
    again = collab("delete", "team/h", db=db)
    assert again.returncode == 1 and b"no document named 'team/h'" in again.stderr
    gone = collab("export", "team/h", "--version", good_id, db=db)
    assert gone.returncode == 1
