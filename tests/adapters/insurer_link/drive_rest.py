"""Runs the REST insurer link on a real reactor against a running insurer (simulator), as
the gateway's forwarder would, and prints what happened as JSON.

Started by the tests as ``python -m tests.adapters.insurer_link.drive_rest SCENARIO.json``
in a process of its own (the global reactor runs once per process). The scenario names the
endpoint, the certificate files, the claim file to send and its stable id; the driver
sends it with retries by a :class:`~gateway.insurer.RetryPolicy`, fetches the retours,
writes them to ``out_dir``, confirms them and fetches once more.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred

from adapters.insurer_link.rest import RestInsurerLink
from gateway.insurer import Park, RetryPolicy
from gateway.ports.insurer import InsurerLinkError, OutboundFile


async def scenario(reactor: Any, spec: dict[str, Any]) -> dict[str, Any]:
    link = RestInsurerLink.with_certificate(
        reactor,
        spec["base_url"],
        cert=spec["cert"],
        key=spec["key"],
        ca=spec["ca"],
        sender=spec["sender"],
        insurer=spec["insurer"],
        timeout=spec["timeout"],
    )
    file = OutboundFile(
        message_id=spec["message_id"],
        insurer=spec["insurer"],
        sender=spec["sender"],
        standard="KZ301",
        payload=Path(spec["payload"]).read_bytes(),
        conversation_id=spec["message_id"],
    )
    policy = RetryPolicy(
        first_delay=timedelta(seconds=0.2),
        max_delay=timedelta(seconds=1),
        max_attempts=spec["max_attempts"],
    )
    report: dict[str, Any] = {"errors": [], "reasons": []}
    first = datetime.now(UTC)
    attempt = 1
    while True:
        try:
            delivery = await link.send(file)
        except InsurerLinkError as exc:
            report["errors"].append(str(exc))
            report["reasons"].append(exc.reason.value)
            decision = policy.after_failure(
                exc,
                attempt=attempt,
                first_attempt_at=first,
                now=datetime.now(UTC),
                random=lambda: 0.5,
            )
            if isinstance(decision, Park):
                report["parked"] = decision.why
                return report
            attempt = decision.attempt
            wait = (decision.at - datetime.now(UTC)).total_seconds()
            await task.deferLater(reactor, max(wait, 0.0), lambda: None)
            continue
        report["delivery"] = {"remote_id": delivery.remote_id, "repeated": delivery.repeated}
        break
    out_dir = Path(spec["out_dir"])
    retours = await link.fetch()
    report["retours"] = []
    for retour in retours:
        (out_dir / f"{retour.remote_id}.asc").write_bytes(retour.payload)
        report["retours"].append(
            {
                "remote_id": retour.remote_id,
                "in_reply_to": retour.in_reply_to,
                "conversation_id": retour.conversation_id,
                "standard": retour.standard,
            }
        )
        await link.confirm(retour)
    report["after_confirm"] = len(await link.fetch())
    return report


def main(reactor: Any, path: str) -> Any:
    spec = json.loads(Path(path).read_text(encoding="utf-8"))

    async def go() -> None:
        report = await scenario(reactor, spec)
        sys.stdout.write(json.dumps(report) + "\n")

    return Deferred.fromCoroutine(go())


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
