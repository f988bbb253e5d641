"""The IGO administrator's workplace, its core: accounts and roles, the tamper-evident
audit log, cases computed from the store and the actions on them.

* :mod:`gateway.admin.accounts` — roles and permissions, scrypt password hashes, session
  tokens, CSRF tokens, login throttling (pure);
* :mod:`gateway.admin.audit` — the hash-chained audit log and its verification (pure);
* :mod:`gateway.admin.cases` — case kinds, states, filters, counts and which actions fit
  (pure);
* :mod:`gateway.admin.fileview` — a masked, readable view of an EI file (pure);
* :mod:`gateway.admin.labels` — what the administrator reads: Dutch labels and texts,
  names for codes (pure);
* :mod:`gateway.admin.consequences` — what an action on a case (or a batch) will do, in
  Dutch (pure);
* :mod:`gateway.admin.serialise` — the admin models as JSON, for the API and the command
  line;
* :mod:`gateway.admin.service` — :class:`AdminService`, which the web site, the JSON API
  and the command line all go through;
* :mod:`gateway.admin.metrics` — the workplace's metrics.

Its ports (the admin store, the search, the batches) are in :mod:`gateway.ports.admin`; the
adapters are :mod:`adapters.admin` (the web site) and :mod:`adapters.storage.admin` (the
SQL).
"""
