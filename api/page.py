"""The jobs page: one HTML response with its CSS and script inlined (api/static/, no build step,
nothing from a CDN), under a Content-Security-Policy that lets it talk to this app and to the
data account only, and run only its own script (a fresh nonce per response)."""

from __future__ import annotations

import secrets
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

STATIC = Path(__file__).with_name("static")


@cache
def _parts() -> tuple[str, str, str]:
    return tuple((STATIC / name).read_text(encoding="utf-8") for name in ("jobs.html", "jobs.css", "jobs.js"))


def origin(url: str) -> str:
    """scheme://host[:port] of a URL (the data account's blob endpoint)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def render_page(storage_url: str) -> tuple[str, dict[str, str]]:
    """The page's HTML and the headers to send with it; `storage_url` is the blob endpoint the
    browser uploads to and loads previews from."""
    nonce = secrets.token_urlsafe(16)
    html, css, script = _parts()
    body = html.replace("{{nonce}}", nonce).replace("{{css}}", css).replace("{{script}}", script)
    storage = origin(storage_url)
    policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
              f"img-src 'self' {storage}; connect-src 'self' {storage}; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
    headers = {"Content-Security-Policy": policy, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer"}  # the key is in the page's URL: never send it on
    return body, headers
