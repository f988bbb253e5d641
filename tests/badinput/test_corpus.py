"""The bad-input corpus against a real gateway over mutual TLS, while another EPD keeps
uploading valid files and listing its messages.

Each case of :mod:`tests.badinput.corpus` gets its clear answer — a technical rejection
with its retourcode and a rejection retour to fetch, an acceptance that keeps the bytes, or
a ``4xx`` problem+json — and never a ``500``. Meanwhile the midwifery practice's EPD (its
own certificate) is served on every request. At the end: no traceback in the gateway's
log, and in the store exactly the files that were answered ``202`` — nothing of a refused
upload.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from gateway.ei import validate_bytes
from gateway.loading import load_layouts
from gateway.vsp import PULL_V1, PUSH_V1, STATUS_V3, send_metadata
from tests.badinput.corpus import (
    CASES,
    FILENAME_CASES,
    LIMIT,
    Accepted,
    Case,
    Refused,
    Rejected,
)
from tests.crash.harness import read_store, store_path
from tests.factories import kz301, vk301
from tests.gateway.running import (
    KRAAMZORG,
    MIDWIFE,
    GatewayProcess,
    confirm_path,
    make_pki,
    message_id,
    payload_path,
    read_response,
    statuses,
    upload,
    write_config,
)

pytestmark = pytest.mark.slow

REGISTRY = load_layouts()
SAFE_DISPOSITION = re.compile(rb'attachment; filename="[A-Za-z0-9._-]{0,100}"')


@dataclass
class ValidClient:
    """The midwifery practice's EPD on a thread: a valid upload, then its queue, again and
    again, until stopped; every answer kept."""

    gateway: GatewayProcess
    answers: list[tuple[str, int, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    uploaded: list[bytes] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="valid-epd", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        self.stop.set()
        assert self._thread is not None
        self._thread.join(60)

    def _run(self) -> None:
        number = 0
        try:
            with self.gateway.client(MIDWIFE) as epd:
                while not self.stop.is_set():
                    number += 1
                    payload = vk301(REGISTRY, agb=MIDWIFE, invoice=f"OK-{number:05d}", lines=3)
                    began = time.monotonic()
                    answer = upload(epd, MIDWIFE, payload)
                    self._keep("upload", answer.response, began, expected=204)
                    if answer.status_code == 204:
                        self.uploaded.append(payload)
                    began = time.monotonic()
                    self._keep("list", epd.get(f"{PULL_V1}/berichten"), began, expected=200)
                    time.sleep(0.05)
        except Exception as exc:  # reported, so that the test fails instead of hanging
            self.problems.append(f"{type(exc).__name__}: {exc}")

    def _keep(self, what: str, answer: httpx.Response, began: float, expected: int) -> None:
        self.answers.append((what, answer.status_code, time.monotonic() - began))
        if answer.status_code != expected:
            self.problems.append(f"{what}: {answer.status_code} {answer.text[:200]}")


@dataclass
class Corpus:
    gateway: GatewayProcess
    valid: ValidClient
    stored: list[bytes] = field(default_factory=list)  # payloads answered 204
    refused: list[bytes] = field(default_factory=list)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    directory = tmp_path_factory.mktemp("badinput")
    pki = directory / "pki"
    fingerprints = make_pki(pki)
    config = write_config(
        directory / "gateway.toml",
        pki,
        fingerprints,
        "sqlite:///data/gateway.db",
        max_upload_bytes=LIMIT,
    )
    gateway = GatewayProcess(config, pki)
    gateway.start()
    valid = ValidClient(gateway)
    valid.start()
    try:
        yield Corpus(gateway, valid)
    finally:
        valid.finish()
        gateway.stop()


def _problem(answer: httpx.Response) -> dict[str, object]:
    assert answer.headers["content-type"] == "application/problem+json", answer.text[:300]
    body: dict[str, object] = answer.json()
    assert body["status"] == answer.status_code
    return body


def _oversized(gateway: GatewayProcess, case: Case, payload: bytes) -> tuple[int, bytes]:
    """Send an over-limit upload on a raw TLS socket (the server may close it while the
    body is still going out) and read what it answered."""
    metadata = send_metadata(case.sender, "EI").recorded()
    request = httpx.Request(
        "POST",
        f"{gateway.base_url}{PUSH_V1}/berichten",
        files={
            "berichtMetadata": (None, json.dumps(metadata), "application/json"),
            "payload": (case.filename, payload, "application/octet-stream"),
        },
    )
    body = request.read()
    head = (
        f"POST {PUSH_V1}/berichten HTTP/1.1\r\nHost: localhost\r\n".encode()
        + b"Content-Type: "
        + request.headers["content-type"].encode("ascii")
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    sock = gateway.raw(case.participant)
    with sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):  # cut off while sending: answered before that
            sock.sendall(body)
        answer, _ = read_response(sock)
    status_line, _, rest = answer.partition(b"\r\n")
    status = int(status_line.split()[1])
    return status, rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_bad_input_gets_its_clear_answer(corpus: Corpus, case: Case) -> None:
    gateway = corpus.gateway
    payload = case.payload()
    expect = case.expect
    if isinstance(expect, Refused) and expect.status == 413:
        status, body = _oversized(gateway, case, payload)
        assert status == 413
        assert json.loads(body)["code"] == expect.code
        assert list(json.loads(body)["errors"]) == ["payload"]
        corpus.refused.append(payload)
        return

    with gateway.client(case.participant) as epd:
        answer = upload(epd, case.sender, payload, case.filename)
        assert answer.status_code < 500, answer.response.text[:300]
        if isinstance(expect, Refused):
            assert answer.status_code == expect.status, answer.response.text[:300]
            problem = _problem(answer.response)
            assert problem["code"] == expect.code
            assert problem["errors"]  # naming the field
            corpus.refused.append(payload)
            return

        assert answer.status_code == 204, answer.response.text[:300]
        corpus.stored.append(payload)
        traceer_id = answer.traceer_id
        # Whatever was sent is kept as it was sent.
        download = epd.get(payload_path(traceer_id))
        assert download.content == payload
        found = statuses(epd, traceerId=traceer_id)
        entry = next(s for s in found if message_id(s) == traceer_id)
        if isinstance(expect, Accepted):
            assert entry["berichtstatus"] == "Ontvangen", entry
            assert "meldingen" not in entry
            return

        assert isinstance(expect, Rejected)
        assert entry["berichtstatus"] == "AfgekeurdDoorDienst", entry
        codes = [m["code"] for m in entry["meldingen"]]
        assert codes[0] in expect.codes, entry
        assert len(codes) <= 50  # findings are capped, whatever the file
        search = {"zoekpadType": "ZoekpadOpAlsAntwoordOp", "alsAntwoordOp": traceer_id}
        (retour,) = epd.post(f"{PULL_V1}/berichten/zoeken", json=search).json()
        rejection = epd.get(payload_path(message_id(retour))).content
        checked = validate_bytes(REGISTRY, rejection)
        assert checked.valid, checked.findings
        assert dict(checked.counts) == {"01": 1, "99": 1}
        assert b"0001" in rejection
        assert codes[0].encode("ascii") in rejection
        assert epd.delete(confirm_path(message_id(retour))).status_code == 202


@pytest.mark.parametrize("filename", FILENAME_CASES, ids=range(len(FILENAME_CASES)))
def test_a_path_like_file_name_is_kept_harmless(corpus: Corpus, filename: str) -> None:
    index = FILENAME_CASES.index(filename)
    payload = kz301(REGISTRY, agb=KRAAMZORG, invoice=f"FN-{index:03d}")
    with corpus.gateway.client(KRAAMZORG) as epd:
        answer = upload(epd, KRAAMZORG, payload, filename)
        assert answer.status_code == 204, answer.response.text[:300]
        corpus.stored.append(payload)
        traceer_id = answer.traceer_id
        # The name is data, never used as a path.
        download = epd.get(payload_path(traceer_id))
        assert download.content == payload
        disposition = download.headers.raw  # bytes, as sent
        values = [v for k, v in disposition if k.lower() == b"content-disposition"]
        assert len(values) <= 1
        for value in values:
            assert SAFE_DISPOSITION.fullmatch(value), value


def test_malformed_requests_get_problem_json(corpus: Corpus) -> None:
    gateway = corpus.gateway
    boundary = "b0undary"
    with gateway.client(KRAAMZORG) as epd:
        push = f"{PUSH_V1}/berichten"
        answers = [
            epd.post(push, content=b"not a form"),
            epd.post(
                push,
                content=b"--b0undary\r\nno headers at all",
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            ),
            epd.post(
                push,
                files={
                    "berichtMetadata": (None, b"{not json", "application/json"),
                    "payload": ("x.asc", b"x", "application/octet-stream"),
                },
            ),
            epd.post(
                push,
                files={
                    "berichtMetadata": (None, json.dumps({"afzender": "x" * 100}), "text/plain"),
                    "payload": ("x.asc", b"x", "application/octet-stream"),
                },
            ),
            epd.post(push, files={"payload": ("x.asc", b"x", "application/octet-stream")}),
            epd.post(f"{PULL_V1}/berichten/zoeken", content=b"[" * 10_000),
            epd.get(f"{STATUS_V3}/berichtstatussen"),
            epd.get(f"{PULL_V1}/berichten/%00%2F..%2F..%2Fetc%2Fpasswd/payload"),
            epd.get(f"{PULL_V1}/berichten/" + "9" * 5000),
            epd.get(f"{PULL_V1}/berichten?limit=" + "9" * 5000),
            epd.request("PATCH", push),
        ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.request.url, answer.text[:300])
        _problem(answer)


def test_the_valid_client_was_served_throughout_and_nothing_refused_was_stored(
    corpus: Corpus,
) -> None:
    """Runs last: the valid EPD's record, the log, and the store."""
    valid = corpus.valid
    deadline = time.monotonic() + 30
    while len(valid.uploaded) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    valid.finish()
    assert valid.problems == []
    uploads = [a for a in valid.answers if a[0] == "upload"]
    lists = [a for a in valid.answers if a[0] == "list"]
    assert len(uploads) >= 5
    assert len(lists) >= 5
    slowest = max(seconds for _, _, seconds in valid.answers)
    print(f"valid client: {len(uploads)} uploads, {len(lists)} lists, slowest {slowest:.2f} s")

    gateway = corpus.gateway
    log = gateway.logs()
    assert gateway.stop() == 0
    assert "Traceback" not in log, log[-4000:]
    assert "unexpected error" not in log, log[-4000:]
    assert " 500 " not in log

    url = store_path(gateway.config, "sqlite:///data/gateway.db")
    view = read_store(url, None)
    stored = {sha for _, sha, _, _ in view.uploads}
    expected = {hashlib.sha256(p).hexdigest() for p in [*corpus.stored, *valid.uploaded]}
    assert stored == expected
    for payload in corpus.refused:
        assert hashlib.sha256(payload).hexdigest() not in stored
    assert view.integrity == "ok"
