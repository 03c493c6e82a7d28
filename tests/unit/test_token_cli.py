"""`collab token`: mints a JWT the server accepts, as a user runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from collab.access import document_matches
from collab.extensions.token_auth import TokenAuth
from collab.hooks import ConnectionInfo, OnAuthenticatePayload

SECRET = "cli-secret-0123456789-abcdefghijklmnopq"


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    return subprocess.Popen(
        [sys.executable, "-m", "collab", "token", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, **(env or {})},
    )


def collab_token(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = start(*args, env=env)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def minted(*args: str, env: dict[str, str] | None = None) -> str:
    result = collab_token(*args, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # only the token: `TOKEN=$(collab token ...)` works
    return lines[0]


def test_write_token_with_user_and_name():
    before = time.time()
    tok = minted(
        "--doc", "team/*", "--write", "--ttl", "1h", "--user", "ada", "--name", "Ada",
        "--auth-secret", SECRET,
    )  # fmt: skip
    assert jwt.get_unverified_header(tok)["alg"] == "HS256"
    claims = jwt.decode(tok, SECRET, algorithms=["HS256"])
    assert claims["doc"] == "team/*"
    assert claims["mode"] == "write"
    assert claims["sub"] == "ada"
    assert claims["name"] == "Ada"
    assert before + 3600 - 2 <= claims["exp"] <= time.time() + 3600 + 1
    assert document_matches(claims["doc"], "team/a/b")


def test_default_is_read_and_the_secret_may_come_from_the_environment():
    tok = minted("--doc", "notes", env={"COLLAB_AUTH_SECRET": SECRET})
    claims = jwt.decode(tok, SECRET, algorithms=["HS256"])
    assert claims["mode"] == "read"
    assert claims["doc"] == "notes"
    assert "sub" not in claims and "name" not in claims
    explicit = jwt.decode(
        minted("--doc", "notes", "--read", "--auth-secret", SECRET), SECRET, algorithms=["HS256"]
    )
    assert explicit["mode"] == "read"


def test_missing_secret_is_one_line_and_exit_1():
    result = collab_token("--doc", "notes", "--write")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "COLLAB_AUTH_SECRET" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_ttl_units():
    cases = {"90s": 90, "15m": 15 * 60, "1h": 3600, "7d": 7 * 86400, "45": 45}
    before = time.time()
    running = {ttl: start("--doc", "d", "--ttl", ttl, "--auth-secret", SECRET) for ttl in cases}
    for ttl, proc in running.items():
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        exp = jwt.decode(stdout.strip(), SECRET, algorithms=["HS256"])["exp"]
        assert before + cases[ttl] - 2 <= exp <= time.time() + cases[ttl] + 1, ttl


def test_bad_ttl_is_an_error_not_a_token():
    result = collab_token("--doc", "d", "--ttl", "soon", "--auth-secret", SECRET)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_private_key_signs_eddsa(tmp_path: Path):
    key = ed25519.Ed25519PrivateKey.generate()
    pem = tmp_path / "signing.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tok = minted("--doc", "team/notes", "--write", "--user", "ada", "--private-key", str(pem))
    assert jwt.get_unverified_header(tok)["alg"] == "EdDSA"
    claims = jwt.decode(tok, public, algorithms=["EdDSA"])
    assert (claims["doc"], claims["mode"], claims["sub"]) == ("team/notes", "write", "ada")
    # The server's verifier, configured with only the public key, accepts it.
    auth = TokenAuth(public_key=public.decode())
    info = ConnectionInfo(1, "team/notes", "127.0.0.1:1", {}, {})
    context = asyncio.run(auth.on_authenticate(OnAuthenticatePayload("team/notes", tok, info)))
    assert context is not None and context["user"] == {"id": "ada", "name": None}
    assert info.read_only is False


def test_api_token_writes_every_document_it_names_for_a_year_as_api():
    before = time.time()
    claims = jwt.decode(
        minted("--api", "--doc", "*", env={"COLLAB_AUTH_SECRET": SECRET}),
        SECRET,
        algorithms=["HS256"],
    )
    assert (claims["doc"], claims["mode"], claims["sub"]) == ("*", "write", "api")
    assert claims["exp"] >= before + 365 * 86400 - 2
    # its flags still win where given
    mine = jwt.decode(
        minted("--api", "--doc", "team/*", "--ttl", "1h", "--user", "bot", "--auth-secret", SECRET),
        SECRET,
        algorithms=["HS256"],
    )
    assert (mine["sub"], mine["mode"]) == ("bot", "write") and mine["exp"] <= time.time() + 3601
    refused = collab_token("--api", "--read", "--doc", "*", "--auth-secret", SECRET)
    assert refused.returncode != 0
