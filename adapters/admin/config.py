"""The admin site's settings: the ``[admin]`` section of the config file (defined with the
rest of the config file in :mod:`gateway.config`)."""

from __future__ import annotations

from gateway.config import AdminConfig, AdminTLS

__all__ = ["AdminConfig", "AdminTLS"]
