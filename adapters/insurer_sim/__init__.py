"""The insurer simulator: a real, separate server that plays a health insurer.

It is first-class code, not a test hack: IGOs use it to rehearse their declaration flow
before going live with an insurer, the demo runs against it, and so do the end-to-end
tests. Run it with ``igo-gateway insurer-sim --config FILE`` (an example config is
``fixtures/insurer-sim.example.toml``; ``README.md`` beside this file explains it).

What it does, as an insurer would:

* plays VECOZO's side of the VSP-Koppeling message exchange over mutual TLS
  (upload, list, download, confirm, statuses) — :mod:`~adapters.insurer_sim.resource`;
* checks every received file with the codec and answers with a retour file in the
  declaration's retour standard (KZ302 for KZ301), granting at the declared tariff or
  rejecting lines by its rules: not insured 0320, already declared 0587, tariff not as
  agreed 0611; a whole-file technical rejection 0001 for invalid files or on demand —
  :mod:`~adapters.insurer_sim.rules`;
* books each claim once: the same bytes, ``referentieId`` or factuurnummer again from the
  same sender answers with the first ``traceerId`` — :mod:`~adapters.insurer_sim.insurer`;
* misbehaves on purpose when told to: the first N uploads answer 5xx, the next ones are
  stored but answered too late (a client timeout for a file the insurer has), answers and
  retours come late — ``[faults]`` in the config, or ``PUT /sim/faults`` while running;
* shows what it booked at ``GET /sim/claims`` (JSON), so a rehearsal or a test can check
  that nothing was declared twice.

Everything is held in memory; a restart starts afresh.
"""
