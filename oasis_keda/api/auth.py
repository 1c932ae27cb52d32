"""The ``simple`` auth scheme of the Oasis platform: JWT access and refresh tokens.

The official client logs in with ``POST /access_token/`` and, on any 401/403, calls
``POST /refresh_token/`` with the refresh token as its bearer and retries; it never logs
in again, so refresh tokens live long (2 days) and access tokens short (1 h). A refresh
token is good for one refresh: the answer carries a new one, and the used one is revoked
(its id is kept, by ``consume``, until it would have expired anyway). Users come
from configuration; passwords are kept only as argon2 hashes. The signing key comes from
the environment, or is generated once and kept (mode 0600) in the storage directory so
that tokens survive a restart and every API replica on a shared volume agrees.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from oasis_keda.api.errors import AuthError
from oasis_keda.api.settings import ApiSettings

ALGORITHM = "HS256"
SECRET_FILE_NAME = "api-jwt-secret"
ACCESS = "access"
REFRESH = "refresh"
MSG_NO_CREDENTIALS = "Authentication credentials were not provided."
MSG_BAD_TOKEN = "Given token not valid for any token type"
MSG_BAD_LOGIN = "No active account found with the given credentials"
MSG_USED_TOKEN = "Token is blacklisted"


def load_or_create_secret(storage_dir: Path) -> str:
    """The signing key kept in ``storage_dir``; created (0600) on first use."""
    path = storage_dir / SECRET_FILE_NAME
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    storage_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another replica won the race: use its key
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value)
    return value


@dataclasses.dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def body(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


class Authenticator:
    """Checks logins and issues/verifies tokens for the configured user."""

    def __init__(
        self,
        settings: ApiSettings,
        *,
        secret: str,
        consume: Callable[[str, int], bool] | None = None,
    ) -> None:
        """``consume(token_id, ttl_s)`` records a refresh token as used and says whether it
        was unused until then (one atomic step: two refreshes with one token, one wins)."""
        self._consume = consume
        self._hasher = PasswordHasher()
        self._user = settings.user
        password = settings.password
        self._hash = password if password.startswith("$argon2") else self._hasher.hash(password)
        self._secret = secret
        self._access_ttl_s = settings.access_ttl_s
        self._refresh_ttl_s = settings.refresh_ttl_s

    def login(self, username: Any, password: Any) -> TokenPair:
        if not isinstance(username, str) or not isinstance(password, str):
            raise AuthError(MSG_BAD_LOGIN)
        ok = secrets.compare_digest(username.encode(), self._user.encode())
        try:
            ok = self._hasher.verify(self._hash, password) and ok
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            raise AuthError(MSG_BAD_LOGIN)
        return self._issue(username)

    def refresh(self, refresh_token: str) -> TokenPair:
        """A new pair for a valid refresh token (the client replaces its refresh token); the
        token used is revoked, so a second use answers 401."""
        claims = self._decode(refresh_token, REFRESH)
        if self._consume is not None:
            jti = claims.get("jti")
            ttl_s = max(int(claims["exp"]) - int(time.time()), 1)
            if not isinstance(jti, str) or not self._consume(jti, ttl_s):
                raise AuthError(MSG_USED_TOKEN)
        return self._issue(str(claims["sub"]))

    def verify_access(self, token: str) -> str:
        """The user name of a valid access token, else :class:`AuthError`."""
        return str(self._decode(token, ACCESS)["sub"])

    def _issue(self, user: str) -> TokenPair:
        now = int(time.time())
        return TokenPair(
            access_token=self._encode(user, ACCESS, now, self._access_ttl_s),
            refresh_token=self._encode(user, REFRESH, now, self._refresh_ttl_s),
            expires_in=self._access_ttl_s,
        )

    def _encode(self, user: str, kind: str, now: int, ttl_s: int) -> str:
        claims = {
            "sub": user,
            "token_type": kind,
            "iat": now,
            "exp": now + ttl_s,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def _decode(self, token: str, kind: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
            )
        except jwt.PyJWTError:
            raise AuthError(MSG_BAD_TOKEN) from None
        if claims.get("token_type") != kind or claims.get("sub") != self._user:
            raise AuthError(MSG_BAD_TOKEN)
        return claims


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, else :class:`AuthError`."""
    if not authorization or not authorization.strip():
        raise AuthError(MSG_NO_CREDENTIALS)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(MSG_NO_CREDENTIALS)
    return token.strip()
