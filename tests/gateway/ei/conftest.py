from __future__ import annotations

import pytest

from gateway.ei import LayoutRegistry
from gateway.loading import load_layouts


@pytest.fixture(scope="session")
def registry() -> LayoutRegistry:
    return load_layouts()
