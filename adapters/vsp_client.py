"""A client of VECOZO's VSP-Koppeling message exchange, built from the published interface
only (``schemas/epd-api.openapi.json``; ``../shared/VECOZO-API.md``).

It is the reference EPD client (``igo-gateway epd``, the demo) — an EPD talking to the
gateway exactly as it talks to VECOZO — and it speaks the same to any server of that
interface. The base URL is the host part (``https://api.vecozo.nl``, a gateway's
``https://host:8443``); the three services' paths below it are VECOZO's.

Every call has a deadline. An answer other than the documented success is a
:class:`VspError` with the status and, when the server sent one, its problem details
(``errors`` naming the fields).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from twisted.internet.interfaces import IReactorTime
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgent

from adapters.http_client import AnswerTooLargeError, ClientCertificatePolicy, exchange
from adapters.tls import client_context_factory
from gateway.vsp import PULL_V1, PUSH_V1, STATUS_V2, STATUS_V3, BerichtMetadata

__all__ = ["VspClient", "VspError", "multipart_upload"]

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class VspError(Exception):
    """An answer that is not the documented success (``status`` 0: no answer at all)."""

    status: int
    what: str
    problem: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        detail = self.problem.get("detail") if self.problem else None
        errors = self.problem.get("errors") if self.problem else None
        text = f"{self.what}: HTTP {self.status}" if self.status else self.what
        if detail:
            text += f" — {detail}"
        if isinstance(errors, dict) and errors:
            text += (
                " (" + "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in errors.items()) + ")"
            )
        return text


def multipart_upload(metadata: bytes, payload: bytes, filename: str) -> tuple[bytes, bytes]:
    """The ``POST /berichten`` body: ``berichtMetadata`` (JSON) and ``payload`` parts."""
    boundary = uuid.uuid4().hex.encode("ascii")
    safe = "".join(c for c in filename if c.isascii() and (c.isalnum() or c in "-_."))[:100]
    body = b"".join(
        [
            b"--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="berichtMetadata"\r\n',
            b"Content-Type: application/json\r\n\r\n",
            metadata,
            b"\r\n--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="payload"; filename="'
            + (safe or "bestand.asc").encode("ascii")
            + b'"\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n",
            payload,
            b"\r\n--" + boundary + b"--\r\n",
        ]
    )
    return body, b"multipart/form-data; boundary=" + boundary


class VspClient:
    """The three services at ``base_url`` (see the module docs). Build it with
    :meth:`with_certificate`; tests may pass any ``IAgent``."""

    def __init__(
        self,
        reactor: IReactorTime,
        agent: IAgent,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._reactor = reactor
        self._agent = agent
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout

    @classmethod
    def with_certificate(
        cls,
        reactor: Any,
        base_url: str,
        *,
        cert: str,
        key: str,
        ca: str,
        timeout: float = DEFAULT_TIMEOUT,
        crl: str | None = None,
    ) -> VspClient:
        """A client presenting ``cert``/``key`` that trusts only servers whose certificate
        a CA in ``ca`` issued for ``base_url``'s host name."""
        host = urlsplit(base_url).hostname or "localhost"
        creator = client_context_factory(cert, key, ca, hostname=host, crl_path=crl)
        pool = HTTPConnectionPool(reactor, persistent=False)
        agent = Agent(reactor, contextFactory=ClientCertificatePolicy(creator), pool=pool)
        return cls(reactor, agent, base_url, timeout=timeout)

    # --- REST Push v1 ---------------------------------------------------------------------

    async def send(self, metadata: BerichtMetadata, payload: bytes, filename: str) -> None:
        """``POST /berichten``: 204 is success; 400/422 (and anything else) raise. Sending
        the same metadata and payload again is a safe retry."""
        body, content_type = multipart_upload(
            json.dumps(metadata.recorded()).encode("utf-8"), payload, filename
        )
        status, data = await self.request(
            b"POST", f"{PUSH_V1}/berichten", body=body, content_type=content_type
        )
        if status != 204:
            raise _error(status, data, "send")

    # --- REST Pull v1 ---------------------------------------------------------------------

    async def waiting(self, limit: int | None = None) -> list[dict[str, Any]]:
        """``GET /berichten``: the BerichtMetadata of what waits, oldest first."""
        query = f"?{urlencode({'limit': limit})}" if limit is not None else ""
        status, data = await self.request(b"GET", f"{PULL_V1}/berichten{query}")
        return _array(status, data, "list")

    async def search(
        self, zoekpad: Mapping[str, Any], limit: int | None = None
    ) -> list[dict[str, Any]]:
        """``POST /berichten/zoeken`` with a Zoekpad (``zoekpadType`` and its fields)."""
        query = f"?{urlencode({'limit': limit})}" if limit is not None else ""
        status, data = await self.request(
            b"POST",
            f"{PULL_V1}/berichten/zoeken{query}",
            body=json.dumps(dict(zoekpad)).encode("utf-8"),
            content_type=b"application/json",
        )
        return _array(status, data, "search")

    async def payload(self, traceer_id: str) -> bytes:
        """``GET /berichten/{traceerId}/payload``."""
        status, data = await self.request(
            b"GET", f"{PULL_V1}/berichten/{quote(traceer_id, safe='')}/payload"
        )
        if status != 200:
            raise _error(status, data, "fetch")
        return data

    async def download(self, metadata: Mapping[str, Any]) -> bytes:
        """The payload a listed message names (its ``basisgegevens.payload.url``, which
        must be on this client's base URL), checked against its size and checksum."""
        download = metadata["basisgegevens"]["payload"]
        url = str(download["url"])
        if not url.startswith(self.base_url + "/"):
            raise VspError(0, f"fetch: the payload URL is not on {self.base_url}")
        status, data = await self.request(b"GET", url[len(self.base_url) :])
        if status != 200:
            raise _error(status, data, "fetch")
        checksum = download.get("checksum", {})
        sha256 = checksum.get("algoritme", "").upper().replace("-", "") == "SHA256"
        if sha256 and hashlib.sha256(data).hexdigest() != str(checksum.get("waarde", "")).lower():
            raise VspError(0, "fetch: the payload does not match its checksum")
        if download.get("grootte") != len(data):
            raise VspError(0, "fetch: the payload does not have its announced size")
        return data

    async def confirm(self, traceer_id: str) -> None:
        """``DELETE /berichten/{traceerId}``: 202 is success."""
        status, data = await self.request(
            b"DELETE", f"{PULL_V1}/berichten/{quote(traceer_id, safe='')}"
        )
        if status != 202:
            raise _error(status, data, "confirm")

    # --- Berichtstatus v3 / v2 ------------------------------------------------------------

    async def statuses(
        self,
        *,
        traceer_id: str | None = None,
        conversatie_id: str | None = None,
        version: int = 3,
    ) -> list[dict[str, Any]]:
        """``GET /berichtstatussen`` by one of traceerId and conversatieId."""
        params = {
            k: v for k, v in (("traceerId", traceer_id), ("conversatieId", conversatie_id)) if v
        }
        base = STATUS_V3 if version == 3 else STATUS_V2
        status, data = await self.request(b"GET", f"{base}/berichtstatussen?{urlencode(params)}")
        return _array(status, data, "status")

    # --- plumbing -------------------------------------------------------------------------

    async def request(
        self,
        method: bytes,
        path: str,
        *,
        body: bytes | None = None,
        content_type: bytes | None = None,
    ) -> tuple[int, bytes]:
        what = f"{method.decode()} {path.split('?', maxsplit=1)[0]}"
        try:
            return await exchange(
                self._agent,
                self._reactor,
                method,
                (self.base_url + path).encode("ascii"),
                body=body,
                content_type=content_type,
                timeout=self._timeout,
            )
        except AnswerTooLargeError as exc:
            raise VspError(exc.status, f"{what}: answer too large") from None
        except Exception as exc:
            raise VspError(0, f"{what}: no answer ({type(exc).__name__})") from exc


def _error(status: int, data: bytes, what: str) -> VspError:
    problem: dict[str, Any] = {}
    try:
        parsed = json.loads(data)
        if isinstance(parsed, dict):
            problem = parsed
    except ValueError:
        pass
    return VspError(status, what, problem)


def _array(status: int, data: bytes, what: str) -> list[dict[str, Any]]:
    if status != 200:
        raise _error(status, data, what)
    try:
        parsed = json.loads(data)
    except ValueError:
        raise VspError(status, f"{what}: the answer is not JSON") from None
    if not isinstance(parsed, list) or not all(isinstance(x, dict) for x in parsed):
        raise VspError(status, f"{what}: the answer is not an array of objects")
    found: list[dict[str, Any]] = parsed
    return found
