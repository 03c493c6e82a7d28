"""`collab` / `python -m collab`: serve, export, import, compact."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import MISSING, fields
from typing import Any

from .settings import ENV_PREFIX, Settings


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
    from .settings import parse_value

    overrides: dict[str, Any] = {}
    for f in fields(Settings):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        overrides[f.name] = (
            value if isinstance(value, bool) else parse_value(f.name, str(f.type), value)
        )
    return Settings.from_env(**overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the collaboration server")
    _add_settings_flags(serve)

    export = sub.add_parser("export", help="print a document from the store (no server needed)")
    export.add_argument("name")
    export.add_argument("--format", choices=("text", "json", "update"), default="text")
    export.add_argument("--root", default=None, help="the root type to print as text")
    _add_settings_flags(export, ("database_url", "log_level"))

    imp = sub.add_parser("import", help="append a file to a document (a Yjs update, or text)")
    imp.add_argument("name")
    imp.add_argument("file", help="a binary Yjs v1 update, or a text file ('-' for stdin)")
    imp.add_argument("--format", choices=("auto", "update", "text"), default="auto")
    imp.add_argument("--root", default="codemirror", help="root Y.Text for text imports")
    _add_settings_flags(imp, ("database_url", "log_level"))

    token = sub.add_parser("token", help="mint an access token (JWT) for a document or prefix")
    token.add_argument("--doc", required=True, help="'team/notes', 'team/*' or '*'")
    access = token.add_mutually_exclusive_group()
    access.add_argument("--write", action="store_true", help="read and write (default: read)")
    access.add_argument("--read", action="store_true", help="read only (the default)")
    token.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 7d (default 1h)")
    token.add_argument("--user", default=None, help="user id (sub claim)")
    token.add_argument("--name", default=None, help="display name")
    token.add_argument(
        "--private-key",
        default="",
        help="PEM (or path) to sign RS256/ES256/EdDSA instead of the HS256 secret",
    )
    _add_settings_flags(token, ("auth_secret", "log_level"))

    compact = sub.add_parser("compact", help="fold update logs into snapshots")
    compact.add_argument("name", nargs="?", help="one document (default: all)")
    _add_settings_flags(compact, ("database_url", "log_level"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"collab: {exc}", file=sys.stderr)
        return 2
    from . import logs
    from .errors import MissingExtra

    logs.configure(settings.log_level)
    try:
        return _run(args, settings)
    except MissingExtra as exc:
        print(f"collab: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        from . import extras
        from .server import run

        extras.check(settings)  # here, once, rather than in each of --workers N processes
        return run(settings)
    if args.command == "token":
        from .extensions.token_auth import mint_token, parse_ttl

        try:
            print(
                mint_token(
                    doc=args.doc,
                    write=args.write,
                    ttl_s=parse_ttl(args.ttl),
                    user=args.user,
                    name=args.name,
                    secret=settings.auth_secret,
                    private_key=args.private_key,
                )
            )
        except (ValueError, OSError) as exc:
            print(f"collab token: {exc}", file=sys.stderr)
            return 1
        return 0
    from . import cli, extras

    extras.check(settings, bus=False)  # these open the store, never the bus
    handler = {"export": cli.export, "import": cli.import_, "compact": cli.compact}[args.command]
    try:
        return asyncio.run(handler(settings, args))
    except cli.CliError as exc:
        print(f"collab {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
