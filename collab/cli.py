"""The store-side commands: export, import, compact. They need no running server."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio
from pycrdt import Array, Doc, Map, Text, XmlFragment

from storage import SqlStore, StoreError, open_store, restore

from .settings import Settings
from .subdocs import keep_options

DEFAULT_TEXT_ROOT = "codemirror"  # the Y.Text our editor (y-codemirror.next) binds to


class CliError(Exception):
    pass


async def _open(settings: Settings) -> SqlStore:
    return await open_store(settings.database_url)


async def document_update(store: SqlStore, name: str) -> bytes:
    stored = await store.load(name)
    if stored.empty:
        raise CliError(f"no document named {name!r}")
    return await restore(stored, keep_options)


def root_names(update: bytes) -> list[str]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return sorted(doc.keys())


def root_value(update: bytes, root: str) -> Any:
    """A root's content as plain data. Roots are untyped on the wire, so we look: map entries
    make a Map, characters a Text, XML elements an XmlFragment, other items an Array.

    Each guess uses a fresh Doc (a root, once typed, stays typed), and Text comes before Array:
    pycrdt 0.14 loops forever reading a Text with non-ASCII content as an Array.
    """

    def fresh() -> Doc[Any]:
        doc: Doc[Any] = Doc()
        doc.apply_update(update)
        return doc

    as_map = fresh().get(root, type=Map)
    if len(list(as_map.keys())):
        return as_map.to_py()
    as_text = fresh().get(root, type=Text)
    if str(as_text) or not len(as_text):
        return str(as_text)
    try:
        return fresh().get(root, type=Array).to_py()
    except ValueError:  # "XmlElement has no Python equivalent"
        return str(fresh().get(root, type=XmlFragment))


async def export(settings: Settings, args: argparse.Namespace) -> int:
    store = await _open(settings)
    try:
        update = await document_update(store, args.name)
    finally:
        await store.close()
    if args.format == "update":
        sys.stdout.buffer.write(update)
        return 0
    roots = root_names(update)
    if args.format == "json":
        print(json.dumps({r: root_value(update, r) for r in roots}, ensure_ascii=False, indent=2))
        return 0
    root = args.root or (roots[0] if len(roots) == 1 else DEFAULT_TEXT_ROOT)
    if root not in roots:
        raise CliError(f"no root {root!r}; roots are {', '.join(roots) or 'none'} (use --root)")
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    sys.stdout.write(str(doc.get(root, type=Text)))
    return 0


async def import_(settings: Settings, args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.file == "-" else await anyio.Path(args.file).read_bytes()
    fmt = args.format
    if fmt == "auto":
        fmt = "update" if _is_update(data) else "text"
    if fmt == "update":
        if not _is_update(data):
            raise CliError("the file is not a Yjs v1 update")
        update = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CliError("the file is neither a Yjs update nor UTF-8 text") from None
        doc: Doc[Any] = Doc()
        doc[args.root] = Text(text)
        update = doc.get_update()
    store = await _open(settings)
    try:
        await store.import_update(args.name, update)
    finally:
        await store.close()
    print(f"imported {len(update)} bytes into {args.name!r}", file=sys.stderr)
    return 0


def _is_update(data: bytes) -> bool:
    try:
        Doc().apply_update(data)
    except Exception:
        return False
    return True


async def compact(settings: Settings, args: argparse.Namespace) -> int:
    store = await _open(settings)
    try:
        names = [args.name] if args.name else [d.name for d in await store.list_documents()]
        for name in names:
            try:
                result = await store.compact(name, keep=keep_options)
            except StoreError as exc:
                raise CliError(str(exc)) from None
            if result is None:
                print(f"{name}: nothing to compact")
            else:
                print(
                    f"{name}: {result.rows} rows, {result.bytes_before} -> "
                    f"{result.bytes_after} bytes in {result.seconds * 1000:.1f} ms"
                )
    finally:
        await store.close()
    return 0
