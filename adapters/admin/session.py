"""Who is asking the admin site: the session cookie, the CSRF checks and API clients.

A browser's session is a cookie (HttpOnly, SameSite=Strict, and ``__Host-`` and Secure
over HTTPS) holding a token the service knows; every form carries a CSRF token derived
from it (:func:`gateway.admin.accounts.csrf_token`), checked on every method but GET and
HEAD. The login form, before there is a session, carries a random token that must match
a cookie of its own. An API client brings ``Authorization: Bearer <token>``, or the
session cookie plus an ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import Final

from twisted.web import server

from adapters.admin.config import AdminConfig
from adapters.admin.errors import SiteError
from adapters.admin.forms import cookie, origin
from adapters.admin.routes import READ_METHODS
from gateway.admin.accounts import Actor, csrf_token
from gateway.errors import ErrorKind
from gateway.ports.admin import Administration

__all__ = ["LOGIN_COOKIE", "Sessions"]

LOGIN_COOKIE: Final = "igo_admin_login"


class Sessions:
    """The sessions and CSRF checks of the site on ``service``, cookies as ``config``
    says (Secure and ``__Host-`` when the site is served over HTTPS)."""

    def __init__(self, service: Administration, config: AdminConfig) -> None:
        self._service = service
        self.secure = config.cookies_secure
        # __Host- cookies are only accepted over HTTPS, for this host and path /.
        self.cookie = "__Host-igo_admin_session" if self.secure else "igo_admin_session"
        self._lifetime = timedelta(minutes=config.session_lifetime_minutes)

    async def session(self, request: server.Request) -> tuple[str | None, Actor | None]:
        """The browser's session token and who it is (None when it is no live session)."""
        token = cookie(request, self.cookie)
        actor = await self._service.authenticate(token, origin(request))
        return token, actor

    @staticmethod
    def check_csrf(token: str, given: str) -> None:
        """Refuses unless ``given`` is the CSRF token of session ``token``."""
        if not given or not hmac.compare_digest(csrf_token(token), given):
            raise SiteError(
                ErrorKind.NOT_ALLOWED,
                "csrf",
                "Het formulier is verlopen of komt niet van deze site; laad de pagina opnieuw.",
            )

    def start(self, request: server.Request, token: str) -> None:
        """Gives the browser session ``token`` (just logged in); the login cookie ends."""
        self._set_cookie(request, self.cookie, token, int(self._lifetime.total_seconds()))
        self._set_cookie(request, LOGIN_COOKIE, "", 0)

    def end(self, request: server.Request) -> None:
        """Takes the session cookie away (logged out)."""
        self._set_cookie(request, self.cookie, "", 0)

    def login_csrf(self, request: server.Request) -> str:
        """The login form's token: the browser's login cookie, or a new one it is given."""
        token = cookie(request, LOGIN_COOKIE)
        if not token or len(token) > 100:
            token = secrets.token_urlsafe(24)
            self._set_cookie(request, LOGIN_COOKIE, token, 3600)
        return token

    @staticmethod
    def check_login_csrf(request: server.Request, given: str) -> None:
        """Refuses a login whose form token is not the browser's login cookie."""
        token = cookie(request, LOGIN_COOKIE)
        if not token or not given or not hmac.compare_digest(token, given):
            raise SiteError(
                ErrorKind.NOT_ALLOWED,
                "csrf",
                "Het aanmeldformulier is verlopen; laad de pagina opnieuw.",
            )

    async def api_actor(self, request: server.Request) -> Actor:
        """The API client: a bearer token, else the session cookie (with the CSRF header
        on a method that may change something)."""
        raw_auth = request.getHeader(b"authorization")
        auth = None if raw_auth is None else raw_auth.decode("latin-1")
        where = origin(request)
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            actor = await self._service.authenticate(
                token.strip() if scheme.lower() == "bearer" else None, where
            )
        else:
            session = cookie(request, self.cookie)
            actor = await self._service.authenticate(session, where)
            method = request.method.decode("ascii", "replace")
            if actor is not None and session is not None and method not in READ_METHODS:
                header = request.getHeader(b"x-csrf-token") or b""
                self.check_csrf(session, header.decode("latin-1"))
        if actor is None:
            request.setHeader(b"www-authenticate", b'Bearer realm="igo-gateway-admin"')
            raise SiteError(
                ErrorKind.UNAUTHENTICATED,
                "niet-aangemeld",
                "Een geldig API-token of een geldige sessie is nodig.",
            )
        return actor

    def _set_cookie(self, request: server.Request, name: str, value: str, max_age: int) -> None:
        request.addCookie(
            name.encode("ascii"),
            value.encode("ascii"),
            path=b"/",
            max_age=str(max_age).encode("ascii"),
            secure=self.secure,
            httpOnly=True,
            sameSite=b"strict",
        )
