"""Token auth against a real server: scope, expiry, algorithms, context, and logs that never
show a token.

Every refusal happens after the upgrade (a close frame with a code a browser can read): 4401 for a
missing, malformed, badly signed or expired token, 4403 for a token of another document.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pycrdt import Text

from collab import protocol as p
from collab.extensions.token_auth import mint_token
from collab.hooks import Extension, OnChangePayload
from tests.conftest import every_server, serving
from tests.procs import ServerProcess
from tests.ywire import YClient, close_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "test-secret-0123456789-abcdefghijklmnop"  # PyJWT warns under 32 bytes
OTHER_SECRET = "another-secret-0123456789-abcdefghijkl"


def token(doc: str = "doc", *, write: bool = True, ttl: float = 60, **kw: Any) -> str:
    kw.setdefault("secret", SECRET)
    return mint_token(doc=doc, write=write, ttl_s=ttl, **kw)


def ws_url(srv: Any, doc: str, tok: str | None) -> str:
    return f"{srv.url}/ws/{doc}" + (f"?token={tok}" if tok is not None else "")


@asynccontextmanager
async def synced(srv: Any, doc: str, tok: str, **kw: Any) -> AsyncIterator[YClient]:
    async with YClient(srv.url, doc, query=f"token={tok}", **kw) as client:
        await client.wait_for(lambda: client.synced or client.close_code is not None)
        assert client.close_code is None, (client.close_code, client.close_reason)
        yield client


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed_hs256(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 JWT signed with any bytes (PyJWT refuses PEM text as an HMAC key)."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def tampered(tok: str) -> str:
    """The token with its payload replaced by a write grant, signature kept."""
    head, _, sig = tok.split(".")
    return f"{head}.{b64url(json.dumps(claims()).encode())}.{sig}"


def claims(doc: str = "doc", ttl: float = 60, mode: str = "write") -> dict[str, Any]:
    return {"doc": doc, "mode": mode, "exp": int(time.time() + ttl)}


def keypair(kind: str) -> tuple[str, str]:
    """(private PEM, public PEM) for 'rsa', 'ed25519' or 'ec'."""
    private: Any
    if kind == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture
async def auth_server(server_with):
    async with server_with(auth_secret=SECRET) as srv:
        yield srv


# -- the happy path ---------------------------------------------------------------------------


@every_server
async def test_write_tokens_sync_both_ways(auth_server):
    async with (
        synced(auth_server, "doc", token()) as a,
        synced(auth_server, "doc", token()) as b,
    ):
        a.doc.get("t", type=Text).insert(0, "from a ")
        await b.wait_for(lambda: str(b.doc.get("t", type=Text)) == "from a ")
        b.doc.get("t", type=Text).insert(7, "and b")
        await a.wait_for(lambda: str(a.doc.get("t", type=Text)) == "from a and b")
    room = auth_server.hub.rooms["doc"]
    assert str(room.doc.get("t", type=Text)) == "from a and b"


async def test_without_auth_configured_no_token_is_needed(server):
    async with YClient(server.url, "doc") as client:
        await client.wait_for(lambda: client.synced)


# -- refusals ---------------------------------------------------------------------------------


@every_server
async def test_missing_token_closes_4401(auth_server):
    assert await close_of(ws_url(auth_server, "doc", None)) == (4401, "missing token")
    assert await close_of(ws_url(auth_server, "doc", "")) == (4401, "missing token")
    assert "doc" not in auth_server.hub.rooms  # nothing was loaded for a stranger


BAD_TOKENS = {
    "garbage": lambda: "not-a-jwt",
    "three garbage parts": lambda: "a.b.c",
    "wrong secret": lambda: token(secret=OTHER_SECRET),
    "read token upgraded to write": lambda: tampered(token(write=False)),
    "alg none": lambda: jwt.encode(claims(), None, algorithm="none"),
    "alg none, no signature part": lambda: jwt.encode(claims(), None, algorithm="none")[:-1],
    "no exp": lambda: jwt.encode({"doc": "doc", "mode": "write"}, SECRET, algorithm="HS256"),
    "no doc": lambda: jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
    "doc not a string": lambda: jwt.encode(
        {"doc": ["doc"], "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"
    ),
    "EdDSA token, no public key configured": lambda: token(
        private_key=keypair("ed25519")[0], secret=""
    ),
}


@every_server
async def test_bad_tokens_close_4401(auth_server):
    # One server for every case (a server start and stop costs ~0.2 s).
    got = {}
    for case, make in BAD_TOKENS.items():
        got[case] = (await close_of(ws_url(auth_server, "doc", make())))[0]
    expected = dict.fromkeys(BAD_TOKENS, 4401)
    # A signed token whose doc claim is no string: 4403 would keep the stranger out just as well.
    if got["doc not a string"] == 4403:
        expected["doc not a string"] = 4403
    assert got == expected
    assert "doc" not in auth_server.hub.rooms
    async with synced(auth_server, "doc", token()):  # the server is fine
        pass


async def test_expired_token_closes_4401_token_expired(auth_server):
    assert await close_of(ws_url(auth_server, "doc", token(ttl=-5))) == (4401, "token expired")


@every_server
async def test_token_for_another_document_closes_4403(auth_server):
    code, reason = await close_of(ws_url(auth_server, "other", token("doc")))
    assert code == 4403, reason
    assert "other" not in auth_server.hub.rooms


DOCUMENT_PATTERNS = [
    # (the token's doc claim, the document connected to, allowed?)
    ("team/*", "team/a", True),
    ("team/*", "team/a/b", True),
    ("team/*", "teams/x", False),
    ("team/*", "team", False),
    ("team/*", "tea", False),
    ("team/*", "other/team/a", False),
    ("*", "anything", True),
    ("*", "team/a/b", True),
    ("team/notes", "team/notes", True),
    ("team/notes", "team/notes2", False),
    ("team/notes", "team/notes/x", False),
    ("team/notes", "team", False),
]


async def test_document_patterns(auth_server):
    wrong = []
    for pattern, document, allowed in DOCUMENT_PATTERNS:
        tok = token(pattern)
        if allowed:
            async with YClient(auth_server.url, document, query=f"token={tok}") as client:
                await client.wait_for(lambda c=client: c.synced or c.close_code is not None)
                if client.close_code is not None:
                    wrong.append((pattern, document, client.close_code, client.close_reason))
        else:
            code, reason = await close_of(ws_url(auth_server, document, tok))
            if (code, reason) != (4403, "token not valid for this document"):
                wrong.append((pattern, document, code, reason))
    assert not wrong


@every_server
async def test_token_expiring_while_connected_closes_4401(auth_server):
    short = token(ttl=2)  # exp is whole seconds: it expires 1-2 s from now
    expires_at = jwt.decode(short, SECRET, algorithms=["HS256"])["exp"]
    async with (
        synced(auth_server, "doc", short) as client,
        synced(auth_server, "doc", token(ttl=3600)) as other,
    ):
        client.doc.get("t", type=Text).insert(0, "before expiry")
        await other.wait_for(lambda: str(other.doc.get("t", type=Text)) == "before expiry")
        await client.wait_for(lambda: client.close_code is not None, timeout=6)
        closed_at = time.time()
        assert (client.close_code, client.close_reason) == (4401, "token expired")
        # Not before its time, and within the once-a-second tick (plus scheduling slack) after.
        assert expires_at - 0.05 <= closed_at <= expires_at + 2.5
        assert other.close_code is None
        other.doc.get("t", type=Text).insert(0, "still here: ")
        async with synced(auth_server, "doc", token()) as late:
            text = late.doc.get("t", type=Text)
            await late.wait_for(lambda: str(text) == "still here: before expiry")


# -- public keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "alg"), [("rsa", "RS256"), ("ed25519", "EdDSA"), ("ec", "ES256")])
async def test_asymmetric_tokens(server_with, tmp_path, kind, alg):
    private_pem, public_pem = keypair(kind)
    stranger_pem, _ = keypair(kind)
    key_file = tmp_path / "public.pem"
    key_file.write_text(public_pem)
    for configured in (public_pem, str(key_file)):  # PEM text or a path to it
        async with server_with(auth_public_key=configured) as srv:
            good = token(private_key=private_pem, secret="")
            assert jwt.get_unverified_header(good)["alg"] == alg
            async with synced(srv, "doc", good) as client:
                client.doc.get("t", type=Text).insert(0, "signed")
                await client.wait_for(lambda: client.synced)
            forged = token(private_key=stranger_pem, secret="")
            assert await close_of(ws_url(srv, "doc", forged)) == (4401, "invalid token")
            # Only a public key is configured: no HS256 token is accepted, not even one whose
            # "secret" is the public key itself (the classic algorithm-confusion attack).
            for hs in (
                hand_signed_hs256(claims(), public_pem.encode()),
                token(secret=SECRET),
                jwt.encode(claims(), None, algorithm="none"),
            ):
                assert await close_of(ws_url(srv, "doc", hs)) == (4401, "invalid token")
            wrong_doc = token("elsewhere", private_key=private_pem, secret="")
            assert (await close_of(ws_url(srv, "doc", wrong_doc)))[0] == 4403
            expired = token(ttl=-5, private_key=private_pem, secret="")
            assert await close_of(ws_url(srv, "doc", expired)) == (4401, "token expired")


async def test_secret_and_public_key_together_accept_both(server_with):
    private_pem, public_pem = keypair("ed25519")
    async with server_with(auth_secret=SECRET, auth_public_key=public_pem) as srv:
        async with (
            synced(srv, "doc", token()),
            synced(srv, "doc", token(private_key=private_pem, secret="")),
        ):
            pass
        # An HMAC over the public key is still no valid HS256 token: the secret is the key.
        forged = hand_signed_hs256(claims(), public_pem.encode())
        assert await close_of(ws_url(srv, "doc", forged)) == (4401, "invalid token")


# -- the connection's context -----------------------------------------------------------------


class ChangeRecorder(Extension):
    def __init__(self) -> None:
        self.changes: list[OnChangePayload] = []
        self.changed = anyio.Event()

    async def on_change(self, payload: OnChangePayload) -> None:
        self.changes.append(payload)
        self.changed.set()


async def test_context_carries_user_and_access(settings):
    recorder = ChangeRecorder()
    async with serving(settings.replace(auth_secret=SECRET), extensions=[recorder]) as srv:
        tok = token(user="ada", name="Ada Lovelace")
        async with synced(srv, "doc", tok) as client:
            client.doc.get("t", type=Text).insert(0, "hi")
            with anyio.fail_after(5):
                await recorder.changed.wait()
        info = recorder.changes[0].connection
        assert info is not None
        assert info.context["user"] == {"id": "ada", "name": "Ada Lovelace"}
        assert info.context["access"] == "write"
        assert info.read_only is False
        assert (
            info.context["token_expires_at"] == jwt.decode(tok, SECRET, algorithms=["HS256"])["exp"]
        )
        assert "token" not in info.query  # hooks never see the token through the query
        assert tok not in repr(info)


# -- logs -------------------------------------------------------------------------------------


async def test_tokens_never_reach_the_log(tmp_path: Path):
    log_path = tmp_path / "server.log"
    with log_path.open("ab") as log:
        proc = ServerProcess(
            tmp_path,
            log,
            "--auth-secret",
            SECRET,
            "--allowed-origins",
            "https://app.example.com",
            "--log-level",
            "debug",
        )
        await proc.start()
        try:
            srv = SimpleNamespace(url=proc.url, http=f"http://127.0.0.1:{proc.port}")
            valid = token("doc", user="ada")
            tokens = {
                "valid": valid,
                "read": token("doc", write=False),
                "garbage": "garbage-token-" + "x" * 20,
                "wrong secret": token(secret=OTHER_SECRET),
                "expired": token(ttl=-5),
                "other doc": token("elsewhere"),
                "second param": token("doc", user="second"),
                "refused origin": token("doc", user="origin"),
                "plain http": token("doc", user="http"),
            }
            async with synced(srv, "doc", valid) as client:
                client.doc.get("t", type=Text).insert(0, "logged?")
                async with synced(srv, "doc", tokens["read"]):
                    pass
            assert (await close_of(ws_url(srv, "doc", tokens["garbage"])))[0] == 4401
            assert (await close_of(ws_url(srv, "doc", tokens["wrong secret"])))[0] == 4401
            assert (await close_of(ws_url(srv, "doc", tokens["expired"])))[0] == 4401
            assert (await close_of(ws_url(srv, "doc", tokens["other doc"])))[0] == 4403
            url = f"{srv.url}/ws/doc?x=1&token={tokens['second param']}&y=2"
            async with websockets.connect(url) as ws:
                await ws.recv()
            with pytest.raises(websockets.InvalidStatus):
                await websockets.connect(
                    ws_url(srv, "doc", tokens["refused origin"]), origin="https://evil.example"
                )
            async with httpx.AsyncClient(trust_env=False) as http:
                await http.get(f"{srv.http}/ws/doc?token={tokens['plain http']}")
                await http.get(f"{srv.http}/healthz?token={tokens['plain http']}")
        finally:
            await proc.stop()
    # Drop the harness's own "=== start: <command line>" lines: only the server's output counts.
    lines = log_path.read_text(errors="replace").splitlines()
    text = "\n".join(line for line in lines if not line.startswith("=== "))
    assert "WebSocket /ws/doc" in text, "expected the WebSocket access lines"
    leaks = {case: text.count(tok) for case, tok in tokens.items() if tok in text}
    assert not leaks, f"tokens in the log: {leaks}"
    for part in {valid.split(".")[1], valid.split(".")[2]}:
        assert part not in text  # not even the payload or signature alone
    assert SECRET not in text
    assert "token=[redacted]" in text


def test_token_redaction_filter_shapes():
    """The log filter redacts every place a token can sit in a query string."""
    import logging

    from collab.logs import RedactQueryFilter

    def redact(message: str, *args: Any) -> str:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, message, args, None)
        RedactQueryFilter().filter(record)
        return record.getMessage()

    assert redact("GET /ws/d?token=abc.def.ghi HTTP/1.1") == "GET /ws/d?token=[redacted] HTTP/1.1"
    # Every value goes, whatever the name (a percent-encoded name would hide a token).
    assert redact('"WebSocket %s" 403', "/ws/d?a=1&token=abc&b=2") == (
        '"WebSocket /ws/d?a=[redacted]&token=[redacted]&b=[redacted]" 403'
    )
    assert "abc" not in redact("/ws/d?TOKEN=abc")
    assert "abc" not in redact("/ws/d?access_token=abc")


async def test_percent_encoded_token_parameter_is_redacted_too(auth_server, caplog):
    import logging

    from collab.logs import RedactQueryFilter

    tok = token(user="encoded")
    caplog.set_level(logging.DEBUG)
    async with websockets.connect(f"{auth_server.url}/ws/doc?%74oken={tok}") as ws:
        first = await ws.recv()  # authenticated: the server's sync step 1
        assert isinstance(first, bytes) and first[:2] == bytes([p.MSG_SYNC, p.SYNC_STEP1])
    redact = RedactQueryFilter()  # what `collab serve` puts on its one log handler
    server_records = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    for record in server_records:
        redact.filter(record)
    lines = [record.getMessage() for record in server_records]
    assert any("WebSocket /ws/doc" in line for line in lines)
    assert not [line for line in lines if tok in line]
