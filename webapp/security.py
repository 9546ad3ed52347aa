"""Request guards and response headers.

Cross-site requests: a request that changes something (or costs a search) is decided
as Go's ``net/http`` CrossOriginProtection decides it. A browser says where a request
comes from: ``Sec-Fetch-Site`` (every current browser) must be ``same-origin`` or
``none`` (typed by the user); without it, an ``Origin`` header must name this server's
host. A request with neither header does not come from a browser page (curl, scripts),
so it is allowed: ``curl -F image=@x.jpg .../api/search`` works with no extra header.
``X-Requested-With`` is still accepted (the pages send it) but no longer needed. The Host
header is checked against ALLOWED_HOSTS when set, which stops DNS-rebinding
pages from talking to a loopback server under their own name.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app, request
from werkzeug.exceptions import BadRequest, Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)


def host_name(host: str) -> str:
    """The name part of a Host header: 'localhost:8000' -> 'localhost', '[::1]:80' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_request() -> None:
    """Refuse requests from other sites and for hosts this server does not serve."""
    allowed = current_app.config.get("ALLOWED_HOSTS")
    if allowed is not None and host_name(request.host) not in allowed:
        raise BadRequest(f"unknown host {request.host!r}")
    if request.method in SAFE_METHODS:
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site not in ("same-origin", "none"):
            raise Forbidden(f"cross-site request refused (Sec-Fetch-Site: {site})")
        return
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not sent by a browser page
    if urlsplit(origin).netloc.lower() != request.host.lower():  # "null" too
        raise Forbidden(f"cross-site request refused (Origin: {origin})")


def add_headers(response):
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


def register(app: Flask) -> None:
    app.before_request(check_request)
    app.after_request(add_headers)
