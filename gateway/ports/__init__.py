"""The ports: every protocol between the gateway's services and the outside world, and the
values that cross it.

A service in :mod:`gateway` calls a port; an adapter in ``adapters/`` implements it (or,
for a port driven from outside, calls it). Both import the port from here and never each
other: an adapter knows the ports and the pure domain (:mod:`gateway.ei`,
:mod:`gateway.rules`, :mod:`gateway.lines`, :mod:`gateway.config` …), not the services;
only the composition root (:mod:`gateway.app`, :mod:`gateway.cli`, the admin site's
``build_admin_site`` and the admin dev server) wires services and adapters together.
These modules import nothing from the services or the adapters
(``tests/gateway/test_ports.py`` checks both rules).

* :mod:`~gateway.ports.messages` — the message store (:class:`MessageStore`): uploads,
  retours, statuses, the journal of raw bytes; the store's errors.
* :mod:`~gateway.ports.outbox` — the outbound queue (:class:`Outbox`) and the part of it
  the operations watch reads.
* :mod:`~gateway.ports.bundling` — what a bundling run reads and records.
* :mod:`~gateway.ports.outcomes` — a collected retour, and what unpacking it records.
* :mod:`~gateway.ports.resolution` — a claimed line as the resolver reads it, and the
  effects of the administrator's actions.
* :mod:`~gateway.ports.reprocess` — reprocessing an upload: its plan and result.
* :mod:`~gateway.ports.admin` — accounts, sessions, audit, case records, search, batches.
* :mod:`~gateway.ports.notices` — digests of new cases, their transports and their store.
* :mod:`~gateway.ports.insurer` — the insurer link and its one error type.
* :mod:`~gateway.ports.intake` — the upload intake the EPD API and the portal call.
* :mod:`~gateway.ports.jobs` — the store's job leases.
* :mod:`~gateway.ports.runtime` — running blocking work in a thread; the clock.
"""
