"""Who may do what: bearer tokens with a read or write role, and self-signed LFS upload URLs.

Rules (like the real Hub, as far as the client can tell): a missing or unknown token on a write -> 401, a
read-only token on a write -> 403; an unknown token on any request -> 401 with the message the client
recognises as "invalid credentials"; private repos are visible to any valid token and answer 404 RepoNotFound
to everyone else. The LFS PUT carries no Authorization header, so its URL is signed with HMAC instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hubport.errors import HubError
from hubport.server.names import ApiError

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
USER = "user"


def load_token_file(path: str | Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Read server tokens, one per line: `TOKEN` or `write:TOKEN` (write), `read:TOKEN` (read-only).

    Blank lines and lines starting with `#` are skipped. Returns (write_tokens, read_tokens).
    """
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise HubError(
            f"cannot read token file {path}: {exc.strerror}", "pass an existing --token-file"
        ) from exc
    write, read = [], []
    for number, line in enumerate((raw.strip() for raw in lines), start=1):
        if not line or line.startswith("#"):
            continue
        role, _, token = line.partition(":") if line.startswith(("read:", "write:")) else ("write", "", line)
        if not token.strip() or any(c.isspace() for c in token.strip()):
            # the line is never echoed: it is, or holds, a secret
            raise HubError(f"bad line {number} in token file {path}: a token with spaces, or an empty one",
                           "write one token per line (read:TOKEN for read-only), no spaces")
        (read if role == "read" else write).append(token.strip())
    return tuple(write), tuple(read)


@dataclass(frozen=True)
class Auth:
    """The server's tokens and the secret that signs upload URLs."""

    write_tokens: frozenset[str]
    read_tokens: frozenset[str]
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @classmethod
    def of(cls, write_tokens: Iterable[str] = (), read_tokens: Iterable[str] = ()) -> Auth:
        return cls(frozenset(write_tokens), frozenset(read_tokens) - frozenset(write_tokens))

    def role(self, authorization: str | None) -> str | None:
        """None for an anonymous caller, "read" or "write" for a known token; 401 for an unknown one."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, INVALID_CREDENTIALS, headers={"X-Error-Message": INVALID_CREDENTIALS})
        if token in self.write_tokens:
            return "write"
        if token in self.read_tokens:
            return "read"
        raise ApiError(401, INVALID_CREDENTIALS, headers={"X-Error-Message": INVALID_CREDENTIALS})

    def require_write(self, authorization: str | None) -> str:
        """Check that the caller may write; returns the user name recorded as commit author."""
        role = self.role(authorization)
        if role is None:
            message = "Write access requires a token: pass token=... or set HF_TOKEN"
            raise ApiError(401, message, headers={"X-Error-Message": message})
        if role != "write":
            message = "This token is read-only: use a token with write access"
            raise ApiError(403, message, headers={"X-Error-Message": message})
        return USER

    def sign(self, *parts: str) -> str:
        return hmac.new(self.secret, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()

    def check_signature(self, signature: str, *parts: str) -> None:
        if not hmac.compare_digest(signature, self.sign(*parts)):
            raise ApiError(403, "Invalid or expired upload signature: ask the LFS batch endpoint again")
