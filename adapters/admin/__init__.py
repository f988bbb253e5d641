"""The IGO administrator's workplace on the web: its own Twisted site on its own port.

* :mod:`adapters.admin.config` — :class:`AdminConfig` (host, port, session lifetime, TLS);
* :mod:`adapters.admin.site` — :func:`build_admin_site`: the site, one resource that
  routes every request over the table in :mod:`adapters.admin.routes`;
* :mod:`adapters.admin.pages` — the server-rendered pages (Jinja2, autoescaped, no
  JavaScript; rendered by :mod:`adapters.admin.render`);
* :mod:`adapters.admin.api` — the JSON API under ``/api/`` (its JSON is
  :mod:`gateway.admin.serialise`'s);
* :mod:`adapters.admin.session` — sessions, cookies and CSRF;
* :mod:`adapters.admin.forms` — what a request brings: fields, filters, JSON bodies;
* :mod:`adapters.admin.errors` — every error's HTTP status, in one place;
* :mod:`adapters.admin.blocking` — running store work from the command line;
* :mod:`adapters.admin.demo` and :mod:`adapters.admin.devserver` — example cases and a
  site to try them on (and to drive in browser tests).
"""
