"""Built-in token auth: signed JWTs scoped to a document (or a prefix), read or write, expiring.

Switched on by a secret (COLLAB_AUTH_SECRET, HS256) and/or a public key (COLLAB_AUTH_PUBLIC_KEY:
PEM text or a path to a PEM file; RS256, ES256 and EdDSA tokens). Claims:

    doc   "team/notes" (exactly that document), "team/*" (every name starting "team/"), "*" (all)
    mode  "write" or "read" (default "read": a token must ask for write access)
    exp   expiry (seconds since the epoch); required. A connection is closed 4401 when it passes.
    sub   user id, name   user name: put into the connection's context as {"user": {...}}
    role  "admin" (the admin API and page, and /metrics) or "metrics" (only /metrics); optional
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt

from collab.access import Access
from collab.errors import CloseCode, Reject
from collab.hooks import Extension, OnAuthenticatePayload, OnRequestPayload

ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"]
SYMMETRIC = ["HS256", "HS384", "HS512"]


def read_key(value: str) -> str:
    """A PEM given inline or as a path to a file."""
    if value.lstrip().startswith("-----BEGIN"):
        return value
    return Path(value).expanduser().read_text()


class TokenAuth(Extension):
    priority = 1000  # before any other extension sees the connection

    def __init__(self, *, secret: str = "", public_key: str = "") -> None:
        if not secret and not public_key:
            raise ValueError("TokenAuth needs a secret or a public key")
        self._secret = secret
        self._public_key = read_key(public_key) if public_key else ""

    def _key_for(self, token: str) -> tuple[str, list[str]]:
        alg = jwt.get_unverified_header(token).get("alg", "")
        if alg in SYMMETRIC and self._secret:
            return self._secret, SYMMETRIC
        if alg in ASYMMETRIC and self._public_key:
            return self._public_key, ASYMMETRIC
        raise jwt.InvalidAlgorithmError(alg)

    def verify(self, token: str | None) -> dict[str, Any]:
        """The claims of a valid token; Reject(4401) for a missing, bad or expired one."""
        if not token:
            raise Reject(CloseCode.UNAUTHORIZED, "missing token")
        try:
            key, algorithms = self._key_for(token)
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=algorithms, options={"require": ["exp", "doc"]}
            )
        except jwt.ExpiredSignatureError:
            raise Reject(CloseCode.UNAUTHORIZED, "token expired") from None
        except (jwt.InvalidTokenError, ValueError):
            raise Reject(CloseCode.UNAUTHORIZED, "invalid token") from None
        if not isinstance(claims["doc"], str):
            raise Reject(CloseCode.UNAUTHORIZED, "invalid token")
        return claims

    async def on_authenticate(self, payload: OnAuthenticatePayload) -> Mapping[str, Any] | None:
        claims = self.verify(payload.token)
        if not Access(claims["doc"]).covers(payload.document):
            raise Reject(CloseCode.FORBIDDEN, "token not valid for this document")
        mode = claims.get("mode", "read")
        payload.connection.read_only = mode != "write"
        return {
            "user": _user(claims),
            "token_expires_at": float(claims["exp"]),
            "access": "write" if mode == "write" else "read",
        }

    async def on_request(self, payload: OnRequestPayload) -> Access | None:
        """The HTTP API: the documents the token covers. No token: no opinion (another
        extension may know the caller; if none does, the API answers 401)."""
        if not payload.token:
            return None
        claims = self.verify(payload.token)
        role = claims.get("role")
        return Access(
            claims["doc"],
            write=claims.get("mode") == "write",
            user=_user(claims),
            admin=role == "admin",
            metrics=role == "metrics",
        )


def _user(claims: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": claims.get("sub"), "name": claims.get("name")}


def mint_token(
    *,
    doc: str,
    write: bool,
    ttl_s: float,
    user: str | None = None,
    name: str | None = None,
    role: str | None = None,
    secret: str = "",
    private_key: str = "",
    algorithm: str | None = None,
) -> str:
    """Sign a token (HS256 with a secret, or RS256/ES256/EdDSA with a private key)."""
    claims: dict[str, Any] = {
        "doc": doc,
        "mode": "write" if write else "read",
        "exp": int(time.time() + ttl_s),
        "iat": int(time.time()),
    }
    if user:
        claims["sub"] = user
    if name:
        claims["name"] = name
    if role:
        claims["role"] = role
    if private_key:
        pem = read_key(private_key)
        return jwt.encode(claims, pem, algorithm=algorithm or _algorithm_for(pem))
    if not secret:
        raise ValueError("a secret (COLLAB_AUTH_SECRET) or --private-key is needed")
    return jwt.encode(claims, secret, algorithm=algorithm or "HS256")


def _algorithm_for(pem: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem.encode(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ValueError("unsupported private key type")


def parse_ttl(text: str) -> float:
    """'90', '90s', '15m', '1h', '7d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)
