"""devhost's App Service Authentication emulation (devhost/sign_in.py), in process: what reaches the
app for each kind of request, and the /.auth endpoints a browser uses."""

from __future__ import annotations

import pytest

from devhost.sign_in import SESSION_COOKIE, SESSION_SECONDS, DevUser, SignIn, parse_users
from devhost.web import Request, Response
from restyle.principal import read_principal

USERS = parse_users("alice,olga:Restyle.Operator+Auditor")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def front():
    """(the sign-in front, the requests it passed to the app, the clock)."""
    seen: list[Request] = []
    clock = Clock()

    def app(request: Request) -> Response:
        seen.append(request)
        return Response(200)

    return SignIn(USERS, b"k" * 32, clock).wrap(app), seen, clock


def get(front, path: str, **headers: str) -> Response:
    return front(Request("GET", f"http://127.0.0.1:7071{path}", headers))


def session(front, user: str) -> str:
    answer = get(front, f"/.auth/login/aad?user={user}&post_login_redirect_uri=/api/page")
    assert answer.status == 302 and answer.headers["Location"] == "/api/page"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and f"Max-Age={SESSION_SECONDS}" in cookie
    return cookie.split(";", 1)[0]


def test_client_sent_principal_and_token_headers_never_reach_the_app(front):
    handler, seen, _ = front
    get(handler, "/api/jobs", **{"X-MS-CLIENT-PRINCIPAL-ID": "someone", "x-ms-client-principal": "e30=",
                                 "X-Ms-Client-Principal-Name": "a", "X-MS-TOKEN-AAD-ID-TOKEN": "t", "Accept": "x"})
    assert seen[-1].headers == {"Accept": "x"}


def test_a_session_gives_the_app_its_users_principal_whatever_else_is_sent(front):
    handler, seen, _ = front
    cookie = session(handler, "olga")
    get(handler, "/api/jobs", Cookie=cookie, **{"X-MS-CLIENT-PRINCIPAL-ID": "alice-forged"})
    principal = read_principal(seen[-1].headers)
    assert principal == USERS["olga"].principal
    assert principal.roles == {"Restyle.Operator", "Auditor"} and principal.name == "olga@devhost"
    assert USERS["olga"].principal.id != USERS["alice"].principal.id


def test_cookies_that_do_not_verify_expired_or_name_no_test_user_are_no_session(front):
    handler, seen, clock = front
    value = session(handler, "alice").split("=", 1)[1]
    body, signature = value.split(".")
    other = SignIn(parse_users("mallory"), b"k" * 32, clock).session_cookie(parse_users("mallory")["mallory"])
    for forged in (f"{body}.{signature[:-1]}0", f"{body[:-2]}x.{signature}", other, "garbage", '"; x=1'):
        get(handler, "/api/jobs", Cookie=f"{SESSION_COOKIE}={forged}")
        assert read_principal(seen[-1].headers) is None
    clock.now += SESSION_SECONDS + 1
    get(handler, "/api/jobs", Cookie=f"{SESSION_COOKIE}={value}")
    assert read_principal(seen[-1].headers) is None


def test_the_auth_endpoints(front):
    handler, seen, _ = front
    switch = get(handler, "/.auth/login/aad?post_login_redirect_uri=/api/page")
    assert switch.status == 200 and b"?user=alice&amp;post_login_redirect_uri=/api/page" in switch.body
    assert b"Restyle.Operator" in switch.body
    assert get(handler, "/.auth/login/aad?user=mallory").status == 403
    for target in ("https://evil.example/", "//evil.example/", "/\\evil"):  # redirects stay on this host
        assert get(handler, f"/.auth/login/aad?user=alice&post_login_redirect_uri={target}").headers["Location"] == "/"
    assert get(handler, "/.auth/me").status == 401
    cookie = session(handler, "alice")
    me = get(handler, "/.auth/me", Cookie=cookie)
    assert me.status == 200 and b'"user_id": "alice@devhost"' in me.body
    out = get(handler, "/.auth/logout?post_logout_redirect_uri=/api/page", Cookie=cookie)
    assert (out.status, out.headers["Location"]) == (302, "/api/page") and "Max-Age=0" in out.headers["Set-Cookie"]
    assert get(handler, "/.auth/nothing").status == 404
    assert seen == []  # none of these reached the app


def test_test_users_are_plain_names_with_roles():
    assert parse_users(" a , b:R1+R2 ,") == {"a": DevUser("a", frozenset()),
                                               "b": DevUser("b", frozenset({"R1", "R2"}))}
    assert parse_users("") == {}
    with pytest.raises(ValueError, match="plain word"):
        parse_users("al ice")
