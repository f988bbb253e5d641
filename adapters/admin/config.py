"""The admin site's settings: an ``[admin]`` section of the config file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AdminConfig", "AdminTLS"]


class AdminTLS(BaseModel):
    """The admin site's own server certificate (HTTPS). With ``client_ca``, browsers must
    also present a client certificate issued by it (on top of the password login)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert: Path = Field(description="PEM certificate of the admin site (then any intermediates).")
    key: Path = Field(description="PEM private key of that certificate.")
    client_ca: Path | None = Field(
        default=None,
        description="Optional PEM bundle of CA certificates; when given, only browsers with a "
        "client certificate issued by one of them can connect.",
    )


class AdminConfig(BaseModel):
    """The IGO administrator's workplace: a web site and JSON API on its own address,
    apart from the EPD API (no EPD certificate reaches it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Serve the admin site.")
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address to listen on; loopback by default (reach it through an SSH "
        "tunnel or a reverse proxy).",
    )
    port: int = Field(
        default=8444, ge=0, le=65535, description="TCP port (0: any free port, for tests)."
    )
    session_lifetime_minutes: int = Field(
        default=480,
        ge=5,
        le=7 * 24 * 60,
        description="How long a login lasts (absolute, from the login), in minutes.",
    )
    secure_cookies: bool | None = Field(
        default=None,
        description="Mark the session cookie Secure (sent over HTTPS only). Default: when "
        "tls is set. Set true when a reverse proxy terminates HTTPS in front of the site.",
    )
    tls: AdminTLS | None = Field(
        default=None, description="Serve HTTPS with these files; plain HTTP without."
    )

    @property
    def cookies_secure(self) -> bool:
        return self.secure_cookies if self.secure_cookies is not None else self.tls is not None
