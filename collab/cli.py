"""`collab` / `python -m collab`: serve, export, import, compact, token, the history:
versions, version, restore, delete; and the webhooks' delivery log: deliveries.

All but serve and token need no running server: they go through the documents service over
the store alone (DocumentService without rooms), as the HTTP API goes through it over the
running server's rooms. Every Settings field is a flag of `serve` (and of the others where it
applies), named after it, with its COLLAB_* variable as the default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import MISSING, fields
from datetime import UTC, datetime
from typing import Any

import anyio
from pycrdt import Doc, Text

from storage import DocumentStore, StoreError, VersionInfo, open_store

from . import cli_deliveries, extras, logs
from ._version import __version__
from .content import content
from .documents import DocumentService
from .errors import CollabError, MissingExtra
from .events.feed import write_events
from .extensions import webhooks
from .extensions.token_auth import mint_token, parse_ttl
from .server import serve_once
from .settings import ENV_PREFIX, Settings, parse_value
from .view import DocumentView
from .workers import run_workers

DEFAULT_TEXT_ROOT = "codemirror"  # the Y.Text our editor (y-codemirror.next) binds to


class CliError(Exception):
    pass


# -- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"collab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_settings_flags(sub.add_parser("serve", help="run the collaboration server"))
    _export_parser(sub)
    _import_parser(sub)
    _token_parser(sub)
    compact = sub.add_parser("compact", help="fold update logs into snapshots")
    compact.add_argument("name", nargs="?", help="one document (default: all)")
    _add_settings_flags(compact, ("database_url", "log_level"))
    _history_parsers(sub)
    _add_settings_flags(cli_deliveries.add_parser(sub), ("database_url", "log_level"))
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "deliveries":
        cli_deliveries.check_args(parser, args)
    return args


def _history_parsers(sub: Any) -> None:
    versions = sub.add_parser("versions", help="list a document's versions, newest first")
    versions.add_argument("name")
    versions.add_argument("--limit", type=int, default=100)
    versions.add_argument("--json", action="store_true", help="one JSON object per line")
    version = sub.add_parser("version", help="store a document's current state as a version")
    version.add_argument("name")
    version.add_argument("--label", default=None)
    restore = sub.add_parser(
        "restore", help="make a document look like one of its versions again (a new edit)"
    )
    restore.add_argument("name")
    restore.add_argument("version", type=int)
    delete = sub.add_parser("delete", help="delete a document, its log, snapshot and versions")
    delete.add_argument("name")
    for parser in (versions, version, restore, delete):
        _add_settings_flags(parser, ("database_url", "log_level"))


def _export_parser(sub: Any) -> None:
    export = sub.add_parser("export", help="print a document from the store (no server needed)")
    export.add_argument("name")
    export.add_argument("--format", choices=("text", "json", "update"), default="text")
    export.add_argument("--root", default=None, help="the root type to print as text")
    export.add_argument(
        "--version", type=int, default=None, help="a version's id (collab versions)"
    )
    _add_settings_flags(export, ("database_url", "log_level"))


def _import_parser(sub: Any) -> None:
    imp = sub.add_parser("import", help="append a file to a document (a Yjs update, or text)")
    imp.add_argument("name")
    imp.add_argument("file", help="a binary Yjs v1 update, or a text file ('-' for stdin)")
    imp.add_argument("--format", choices=("auto", "update", "text"), default="auto")
    imp.add_argument("--root", default=DEFAULT_TEXT_ROOT, help="root Y.Text for text imports")
    _add_settings_flags(imp, ("database_url", "log_level"))


def _token_parser(sub: Any) -> None:
    token = sub.add_parser("token", help="mint an access token (JWT) for a document or prefix")
    token.add_argument("--doc", default=None, help="'team/notes', 'team/*' or '*'")
    access = token.add_mutually_exclusive_group()
    access.add_argument("--write", action="store_true", help="read and write (default: read)")
    access.add_argument("--read", action="store_true", help="read only (the default)")
    access.add_argument(
        "--api",
        action="store_true",
        help="an API key for a backend: write, 365 days, user 'api' (unless --ttl/--user)",
    )
    access.add_argument(
        "--admin",
        action="store_true",
        help="an operator's token: every document, write, the admin page and API, /metrics",
    )
    access.add_argument(
        "--metrics",
        action="store_true",
        help="a token that only reads /metrics (for Prometheus; 365 days unless --ttl)",
    )
    token.add_argument("--ttl", default=None, help="lifetime: 90s, 15m, 1h, 7d (default 1h)")
    token.add_argument("--user", default=None, help="user id (sub claim)")
    token.add_argument("--name", default=None, help="display name")
    token.add_argument(
        "--private-key",
        default="",
        help="PEM (or path) to sign RS256/ES256/EdDSA instead of the HS256 secret",
    )
    _add_settings_flags(token, ("auth_secret", "log_level"))


def _add_settings_flags(parser: argparse.ArgumentParser, only: tuple[str, ...] = ()) -> None:
    for f in fields(Settings):
        if only and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        env = ENV_PREFIX + f.name.upper()
        help_text = f"{f.metadata.get('help', '')} [{env}, default {default!r}]"
        if f.type == "bool":
            parser.add_argument(
                flag,
                dest=f.name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text
            )


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for f in fields(Settings):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        overrides[f.name] = (
            value if isinstance(value, bool) else parse_value(f.name, str(f.type), value)
        )
    return Settings.from_env(**overrides)


# -- running a command --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"collab: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return _run(args, settings)
    except MissingExtra as exc:
        print(f"collab: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        extras.check(settings)  # here, once, rather than in each of --workers N processes
        try:
            webhooks.from_settings(settings)  # (a URL or a missing secret: one line, exit 2)
        except ValueError as exc:
            print(f"collab: {exc}", file=sys.stderr)
            return 2
        # Serve until SIGTERM/SIGINT; exit status 1 if the final flush could not commit all.
        return run_workers(settings) if settings.workers > 1 else serve_once(settings)
    if args.command == "token":
        return token(settings, args)
    extras.check(settings, bus=False)  # these open the store, never the bus
    handler: Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]] = {
        "export": export,
        "import": import_,
        "compact": compact,
        "versions": versions,
        "version": version,
        "restore": restore,
        "delete": delete,
        "deliveries": deliveries,
    }[args.command]
    try:
        return asyncio.run(handler(settings, args))
    except CliError as exc:
        print(f"collab {args.command}: {exc}", file=sys.stderr)
        return 1


@asynccontextmanager
async def _documents(settings: Settings) -> AsyncIterator[DocumentService]:
    """The documents service over the store alone (no server), the store closed after."""
    store = await open_store(settings.database_url)
    # What the commands change (import, delete, restore, a version) goes into the outbox as
    # the server's edits do; a server makes the changes into events and delivers them.
    write_events(store, settings)
    try:
        yield DocumentService(store)
    except (CollabError, StoreError) as exc:
        raise CliError(getattr(exc, "reason", None) or str(exc)) from None
    finally:
        await store.close()


# -- the commands -------------------------------------------------------------------------------


def token(settings: Settings, args: argparse.Namespace) -> int:
    if args.doc is None and not (args.admin or args.metrics):
        print("collab token: --doc is required (or --admin, --metrics)", file=sys.stderr)
        return 2
    role = "admin" if args.admin else "metrics" if args.metrics else None
    doc = args.doc if args.doc is not None else "*" if args.admin else ""
    try:
        print(
            mint_token(
                doc=doc,
                write=args.write or args.api or args.admin,
                ttl_s=parse_ttl(args.ttl or ("365d" if args.api or args.metrics else "1h")),
                user=args.user or ("api" if args.api else "admin" if args.admin else None),
                name=args.name,
                role=role,
                secret=settings.auth_secret,
                private_key=args.private_key,
            )
        )
    except (ValueError, OSError) as exc:
        print(f"collab token: {exc}", file=sys.stderr)
        return 1
    return 0


async def document_update(store: DocumentStore, name: str) -> bytes:
    """The stored document as one update (what `collab export --format update` prints)."""
    try:
        return await DocumentService(store).read(name)
    except CollabError as exc:
        raise CliError(exc.reason) from None


async def export(settings: Settings, args: argparse.Namespace) -> int:
    async with _documents(settings) as documents:
        if args.version is None:
            update = await documents.read(args.name)
        else:
            update = await documents.version_update(args.name, args.version)
    if args.format == "update":
        sys.stdout.buffer.write(update)
        return 0
    if args.format == "json":
        print(json.dumps(content(update)["content"], ensure_ascii=False, indent=2))
        return 0
    view = DocumentView.of_update(args.name, update)
    roots = view.roots()
    root = args.root or (roots[0] if len(roots) == 1 else DEFAULT_TEXT_ROOT)
    if root not in roots:
        raise CliError(f"no root {root!r}; roots are {', '.join(roots) or 'none'} (use --root)")
    sys.stdout.write(view.text(root))
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
    async with _documents(settings) as documents:
        await documents.apply_update(args.name, update, author="import")
    print(f"imported {len(update)} bytes into {args.name!r}", file=sys.stderr)
    return 0


def _is_update(data: bytes) -> bool:
    try:
        Doc().apply_update(data)
    except Exception:
        return False
    return True


async def compact(settings: Settings, args: argparse.Namespace) -> int:
    async with _documents(settings) as documents:
        names = [args.name] if args.name else [d.name for d in await documents.list_documents()]
        for name in names:
            result = await documents.compact(name)
            if result is None:
                print(f"{name}: nothing to compact")
            else:
                print(
                    f"{name}: {result.rows} rows, {result.bytes_before} -> "
                    f"{result.bytes_after} bytes in {result.seconds * 1000:.1f} ms"
                )
    return 0


# -- history ------------------------------------------------------------------------------------


def _version_line(v: VersionInfo) -> str:
    when = datetime.fromtimestamp(v.created_at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    label = f" {v.label!r}" if v.label else ""
    authors = ", ".join(v.authors) or "-"
    return f"{v.id}\t{when}Z\t{v.kind}\t{v.size_bytes} B\t{authors}{label}"


def _version_json(v: VersionInfo) -> dict[str, Any]:
    return {
        "id": v.id,
        "created_at_ms": v.created_at_ms,
        "kind": v.kind,
        "label": v.label,
        "authors": list(v.authors),
        "size_bytes": v.size_bytes,
    }


async def versions(settings: Settings, args: argparse.Namespace) -> int:
    async with _documents(settings) as documents:
        found, _ = await documents.versions(args.name, limit=args.limit)
    for v in found:
        print(json.dumps(_version_json(v)) if args.json else _version_line(v))
    if not found and not args.json:
        print(f"{args.name}: no versions", file=sys.stderr)
    return 0


async def version(settings: Settings, args: argparse.Namespace) -> int:
    async with _documents(settings) as documents:
        made = await documents.create_version(args.name, args.label)
    print(_version_line(made))
    return 0


async def restore(settings: Settings, args: argparse.Namespace) -> int:
    async with _documents(settings) as documents:
        done = await documents.restore(args.name, args.version, author="cli")
    print(f"restored {args.name!r} to version {args.version}")
    print(f"before: {_version_line(done['before'])}")
    print(f"after:  {_version_line(done['after'])}")
    return 0


async def deliveries(settings: Settings, args: argparse.Namespace) -> int:
    try:
        lines = await cli_deliveries.run(settings, args)
    except cli_deliveries.NoSuchDelivery as exc:
        raise CliError(str(exc)) from None
    except StoreError as exc:
        raise CliError(str(exc)) from None
    for text in lines:
        print(text)
    if not lines and args.action == "list" and not args.json:
        print("no deliveries", file=sys.stderr)
    return 0


async def delete(settings: Settings, args: argparse.Namespace) -> int:
    async with _documents(settings) as documents:
        deleted = await documents.delete(args.name)
    if not deleted:
        raise CliError(f"no document named {args.name!r}")
    print(f"deleted {args.name!r}")
    return 0
