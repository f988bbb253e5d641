"""Insurer links: the adapters behind the port :class:`gateway.ports.insurer.InsurerLink`.

* :mod:`adapters.insurer_link.rest` — VECOZO-style REST over mutual TLS with the IGO's
  client certificate (Twisted ``Agent``);
* :mod:`adapters.insurer_link.directory` — outbox / inbox folders with atomic renames.
"""
