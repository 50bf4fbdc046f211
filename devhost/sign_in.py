"""App Service Authentication ("Easy Auth") as devhost emulates it, in front of every request.

What Azure does, and so devhost: every client-sent `X-MS-CLIENT-PRINCIPAL*` and `X-MS-TOKEN-*`
header is removed ("External requests aren't allowed to set these headers", learn.microsoft.com/
azure/app-service/configure-authentication-user-identities); a request with a valid session cookie
(`AppServiceAuthSession`) gets the principal headers of its user (restyle/principal.py writes them in
the documented format); anyone else passes through as anonymous (unauthenticatedClientAction
AllowAnonymous, as infra/app/function.bicep sets it), for the app to refuse. The app learns that
sign-in is on from `WEBSITE_AUTH_ENABLED=True`, which devhost sets as the platform does.

The identity provider is replaced by a fixed list of test users (`--users alice,bob,olga:Restyle.Operator`):
`/.auth/login/aad` lists them, `/.auth/login/aad?user=alice` signs in as one (the test-user switch),
`/.auth/me` tells who is signed in, `/.auth/logout` ends the session. A session is an HMAC-signed cookie
(key in the state folder, so sessions outlive a restart), valid for 8 hours like Easy Auth's default;
a cookie that does not verify, has expired or names a user not in the list counts as none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import quote

from restyle.principal import Principal, is_platform_header, principal_headers

from .web import Request, Response, json_response

SESSION_COOKIE = "AppServiceAuthSession"
SESSION_SECONDS = 8 * 3600
AUTH_PATH = "/.auth"
DEFAULT_USERS = "alice,bob,olga:Restyle.Operator"
Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class DevUser:
    name: str
    roles: frozenset[str]

    @property
    def principal(self) -> Principal:
        """A stable Entra-like object id per name, and the name as its principal name."""
        return Principal(str(uuid.uuid5(uuid.NAMESPACE_URL, f"devhost-user:{self.name}")), f"{self.name}@devhost",
                         self.roles)


def parse_users(text: str) -> dict[str, DevUser]:
    """`alice,bob,olga:Restyle.Operator+Other.Role` -> users by name."""
    users = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, _, roles = entry.partition(":")
        if not name.isidentifier():
            raise ValueError(f"test user name {name!r} must be a plain word")
        users[name] = DevUser(name, frozenset(filter(None, roles.split("+"))))
    return users


def session_key(state_dir: Path) -> bytes:
    path = state_dir / "sign-in.key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


class SignIn:
    def __init__(self, users: dict[str, DevUser], key: bytes, clock: Callable[[], float] = time.time) -> None:
        self.users, self._key, self._clock = users, key, clock

    def wrap(self, handler: Handler) -> Handler:
        def signed_in(request: Request) -> Response:
            if request.path == AUTH_PATH or request.path.startswith(AUTH_PATH + "/"):
                return self._endpoint(request)
            headers = {name: value for name, value in request.headers.items() if not is_platform_header(name)}
            user = self.session_user(request)
            if user is not None:
                headers |= principal_headers(user.principal)
            return handler(replace(request, headers=headers))

        return signed_in

    # --- sessions ---------------------------------------------------------------------------------

    def session_cookie(self, user: DevUser) -> str:
        body = base64.urlsafe_b64encode(json.dumps({"user": user.name, "expires": int(self._clock()) +
                                                    SESSION_SECONDS}).encode()).decode()
        return f"{body}.{self._sign(body)}"

    def session_user(self, request: Request) -> DevUser | None:
        try:
            cookie = SimpleCookie(request.header("Cookie") or "").get(SESSION_COOKIE)
        except CookieError:
            return None
        body, _, signature = (cookie.value if cookie else "").partition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            session = json.loads(base64.urlsafe_b64decode(body))
        except ValueError:
            return None
        if not isinstance(session, dict) or session.get("expires", 0) <= self._clock():
            return None
        return self.users.get(session.get("user"))

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    # --- /.auth endpoints -------------------------------------------------------------------------

    def _endpoint(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == f"{AUTH_PATH}/login/aad":
            return self._login(request)
        if path == f"{AUTH_PATH}/me":
            user = self.session_user(request)
            if user is None:
                return json_response(401, {"error": "not signed in"})
            principal = user.principal
            claims = [{"typ": "name", "val": principal.name}, *({"typ": "roles", "val": r} for r in sorted(user.roles))]
            return json_response(200, [{"provider_name": "aad", "user_id": principal.name, "user_claims": claims}])
        if path == f"{AUTH_PATH}/logout":
            target = _local_path(request.query.get("post_logout_redirect_uri"), f"{AUTH_PATH}/login/aad")
            return Response(302, b"", {"Location": target, "Set-Cookie": _cookie("", 0), "Cache-Control": "no-store"})
        return Response(404)

    def _login(self, request: Request) -> Response:
        back = _local_path(request.query.get("post_login_redirect_uri"), "/")
        name = request.query.get("user")
        if name is None:  # the test-user switch: the list of who one may sign in as
            links = "".join(f'<li><a href="?user={quote(user)}&amp;post_login_redirect_uri={quote(back)}">'
                            f"{html.escape(user)}</a> {html.escape(' '.join(sorted(test.roles)))}</li>"
                            for user, test in self.users.items())
            page = f"<!doctype html><title>Sign in (devhost)</title><h1>Sign in as</h1><ul>{links}</ul>"
            return Response(200, page.encode(), {"Content-Type": "text/html; charset=utf-8",
                                                 "Cache-Control": "no-store"})
        user = self.users.get(name)
        if user is None:
            known = ", ".join(self.users)
            return json_response(403, {"error": f"{name!r} is not one of devhost's test users ({known})"})
        return Response(302, b"", {"Location": back, "Set-Cookie": _cookie(self.session_cookie(user), SESSION_SECONDS),
                                   "Cache-Control": "no-store"})


def _cookie(value: str, max_age: int) -> str:
    return f"{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}"


def _local_path(target: str | None, default: str) -> str:
    """Redirects stay on this host, as Easy Auth allows no external redirect URL unless listed."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
