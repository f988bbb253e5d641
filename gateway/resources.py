"""Where the gateway's data files (``schemas/``) are found.

In a source checkout or an editable install they live in the repository's top-level
``schemas/`` folder; a built wheel carries a copy as ``gateway/_schemas``. The
``IGO_GATEWAY_SCHEMAS`` environment variable points elsewhere, e.g. at an operator's
corrected layout files.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["schemas_dir"]


def schemas_dir() -> Path:
    override = os.environ.get("IGO_GATEWAY_SCHEMAS")
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent
    packaged = here / "_schemas"
    if packaged.is_dir():
        return packaged
    return here.parent / "schemas"
