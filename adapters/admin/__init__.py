"""The IGO administrator's workplace on the web: its own Twisted site on its own port.

* :mod:`adapters.admin.config` — :class:`AdminConfig` (host, port, session lifetime, TLS);
* :mod:`adapters.admin.site` — :func:`build_admin_site` (the site on services
  :class:`gateway.builder.GatewayBuilder` built): server-rendered pages (Jinja2,
  autoescaped, no JavaScript), a JSON API under ``/api/``, sessions and CSRF;
* :mod:`adapters.admin.blocking` — running store work from the command line;
* :mod:`adapters.admin.demo` and :mod:`adapters.admin.devserver` — example cases and a
  site to try them on (and to drive in browser tests).
"""
