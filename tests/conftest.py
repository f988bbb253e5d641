"""Suite-wide fixtures: the PostgreSQL server that tests marked ``postgres`` run against,
and a fresh schema on it per test (``pg_url``: ``search_path`` set through the URL's
``options``, the schema dropped afterwards, so runs on one server do not collide).

The server is ``IGO_TEST_POSTGRES_URL`` (default: trust auth on the local default port).
When it cannot be reached those tests are skipped — except in CI (``CI=true``), where an
unreachable server fails them, so that a broken CI database never passes silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

POSTGRES_URL_ENV = "IGO_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL, after checking it answers; skips (or fails in CI) if not."""
    url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        try:
            params = conninfo_to_dict(url)  # named without its password
        except psycopg.Error:
            params = {}
        where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
        reason = (
            f"PostgreSQL at {where}/{params.get('dbname', '')} is unreachable "
            f"({type(exc).__name__}); set {POSTGRES_URL_ENV} to a test server"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} — required in CI", pytrace=False)
        pytest.skip(reason)
    return url


def with_search_path(url: str, schema: str) -> str:
    """``url`` with its connections' ``search_path`` set to ``schema``."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose tables live in a fresh schema, dropped after the test."""
    schema = f"igo_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(postgres_url, schema)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
