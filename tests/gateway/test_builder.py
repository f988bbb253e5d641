"""The composition root: each part built once, with its collaborators given to its
constructor, and used by the command lines and the admin dev server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from adapters.admin.blocking import opened_stores
from adapters.admin.devserver import dev_config
from adapters.bundle_workers import BundleWorkers
from gateway.admin.service import AdminService
from gateway.builder import GatewayBuilder, built_once
from gateway.cli.admin import admin_session
from gateway.cli.cases import _bulk_service
from gateway.config import GatewayConfig
from gateway.metrics import Metrics
from tests.tools import write_cli_config

ACCESSORS = (
    "layouts",
    "catalogue",
    "terms",
    "admin_names",
    "intake",
    "bundling_lock",
    "bundler",
    "unpacker",
    "resolver",
    "insurer_states",
    "insurer_links",
    "forwarder",
    "collector",
    "admin_service",
    "bulk_service",
    "reprocessor",
    "admin_site",
    "notifier",
)


@pytest.fixture
def builders(tmp_path: Path) -> Iterator[tuple[GatewayBuilder, GatewayBuilder]]:
    """Two builders on one store: one as a command line has it, one as ``serve`` (with
    metrics, bundling after an administrator's change)."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    config = dev_config(url, "127.0.0.1", 0)
    with opened_stores(url, None) as stores:
        yield (
            GatewayBuilder(config, stores.run, stores.store),
            GatewayBuilder(
                config, stores.run, stores.store, metrics=Metrics(), bundle_after_change=True
            ),
        )


@pytest.mark.parametrize("accessor", ACCESSORS)
def test_each_part_is_built_once(
    builders: tuple[GatewayBuilder, GatewayBuilder], accessor: str
) -> None:
    for builder in builders:
        first = getattr(builder, accessor)()
        assert first is not None
        assert getattr(builder, accessor)() is first
    # Each builder has its own: nothing is shared through module state.
    command_line, serving = builders
    assert getattr(command_line, accessor)() is not getattr(serving, accessor)()


def test_the_parts_that_share_a_service_share_the_one_object(
    builders: tuple[GatewayBuilder, GatewayBuilder],
) -> None:
    for builder in builders:
        service = builder.admin_service()
        assert builder.bulk_service().cases is service
        site = builder.admin_site()
        assert site.service is service
        assert site.bulk is builder.bulk_service()
        assert service.resolver is builder.resolver()
        assert service.admin is builder.store.admin
        assert service.search_store is builder.store.search
        assert service.layouts is builder.layouts()


class _Circular(GatewayBuilder):
    @built_once
    def first(self) -> object:
        return self.second()

    @built_once
    def second(self) -> object:
        return self.first()


def test_a_part_that_needs_itself_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with opened_stores(url, None) as stores:
        builder = _Circular(dev_config(url, "127.0.0.1", 0), stores.run, stores.store)
        with pytest.raises(RuntimeError, match="circular"):
            builder.first()
        # Nothing half-built is kept: a later call is refused the same way.
        with pytest.raises(RuntimeError, match="circular"):
            builder.second()


def test_a_command_line_opens_no_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    tls = {"cert": "x.pem", "key": "x.pem", "trust": "x.pem"}
    config = GatewayConfig.model_validate(
        {
            "igo": {"name": "Geboortezorg Voorbeeldstad", "agb": "53001234"},
            "store": {"url": url},
            "epd_api": {"tls": tls},
            "insurers": [
                {
                    "uzovi": "3311",
                    "name": "Zorgverzekeraar",
                    "link": {"base_url": "https://insurer.example/api", "tls": tls},
                }
            ],
        }
    )
    with opened_stores(url, None) as stores:
        builder = GatewayBuilder(config, stores.run, stores.store)
        with pytest.raises(RuntimeError, match="no connections"):
            builder.insurer_links()


def test_a_command_line_checks_files_itself_whatever_check_processes_says(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    config = dev_config(url, "127.0.0.1", 0)
    config = config.model_copy(
        update={"epd_api": config.epd_api.model_copy(update={"check_processes": 2})}
    )
    with opened_stores(url, None) as stores:
        builder = GatewayBuilder(config, stores.run, stores.store)
        assert builder.check_workers() is None
        assert builder.intake()._checks is None


def test_serve_s_bundler_has_a_bundle_worker_where_one_can_share_the_store(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"

    def built(store_url: str, processes: int, reactor: Any) -> GatewayBuilder:
        config = dev_config(store_url, "127.0.0.1", 0)
        config = config.model_copy(
            update={"bundling": config.bundling.model_copy(update={"worker_processes": processes})}
        )
        return GatewayBuilder(config, reactor, stores.store)

    with opened_stores(url, None) as stores:
        serving = built(url, 1, MemoryReactorClock())
        workers = serving.bundle_workers()
        assert isinstance(workers, BundleWorkers)
        assert serving.bundler()._workers is workers
        assert workers.started == 0  # started with a run's first batch, not before
        # None where it is turned off, for a command line, and for a store in memory
        # (a worker process could not open it).
        assert built(url, 0, MemoryReactorClock()).bundle_workers() is None
        assert built(url, 1, stores.run).bundle_workers() is None
        assert built("sqlite:///:memory:", 1, MemoryReactorClock()).bundle_workers() is None


def test_bundling_after_an_administrators_change_only_where_asked(
    builders: tuple[GatewayBuilder, GatewayBuilder],
) -> None:
    command_line, serving = builders
    assert command_line.admin_service().after_change is None
    assert serving.admin_service().after_change == serving.bundle_now
    # Counted only where there are metrics.
    assert command_line.admin_service().metrics is None
    assert serving.admin_service().metrics is not None


def test_services_take_the_builders_id_factory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    config = dev_config(url, "127.0.0.1", 0)
    ids = iter(f"id-{n}" for n in range(100))
    with opened_stores(url, None) as stores:
        builder = GatewayBuilder(config, stores.run, stores.store, new_id=lambda: next(ids))
        assert builder.intake()._new_id() == "id-0"
        assert builder.unpacker()._new_id() == "id-1"
        assert builder.collector()._new_id() == "id-2"


def test_the_command_lines_build_through_the_builder(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    path = tmp_path / "gateway.toml"
    write_cli_config(path, db)
    with admin_session(path) as session:
        assert isinstance(session.service, AdminService)
        assert session.service is session.builder.admin_service()
        bulk = _bulk_service(session)
        assert bulk is session.builder.bulk_service()
        assert bulk.cases is session.service
        assert session.builder.reprocessor() is session.builder.reprocessor()
        # No bundling from a command line: the running gateway's next run does it.
        assert session.service.after_change is None


# Where each part may be constructed besides the builder, and why.
ALLOWED = {
    ("adapters/admin/site.py", "BulkService("),  # build_bulk_service, for tests
    # The storage facade builds each area store once; the builder takes them from it.
    *(
        ("adapters/storage/facade.py", f"{store}(")
        for store in (
            "SqlAdminStore",
            "SqlBatchStore",
            "SqlSearchStore",
            "SqlReprocessStore",
            "SqlResolutionStore",
            "SqlNoticeStore",
        )
    ),
    ("gateway/repeating.py", "LoopingCall("),  # the one scheduled-job timer
    ("gateway/jobs.py", "LoopingCall("),  # a job lease's heartbeat, inside a run
    # The bundle worker's process builds its bundler from what the builder handed it.
    ("adapters/bundle_workers/worker.py", "Bundler("),
}
BUILT_BY_THE_BUILDER = (
    "AdminService(",
    "BulkService(",
    "SqlAdminStore(",
    "SqlBatchStore(",
    "SqlSearchStore(",
    "SqlReprocessStore(",
    "SqlResolutionStore(",
    "SqlNoticeStore(",
    "Reprocessor(",
    "Resolver(",
    "Unpacker(",
    "Bundler(",
    "Intake(",
    "Forwarder(",
    "RetourCollector(",
    "Notifier(",
    "LoopingCall(",
)


def test_serve_the_command_lines_and_the_dev_server_build_only_through_the_builder() -> None:
    root = Path(__file__).resolve().parents[2]
    found = []
    for package in ("gateway", "adapters"):
        for source in sorted((root / package).rglob("*.py")):
            relative = source.relative_to(root).as_posix()
            if relative == "gateway/builder.py":
                continue
            text = source.read_text(encoding="utf-8")
            for call in BUILT_BY_THE_BUILDER:
                for line in text.splitlines():
                    code = line.split("#", 1)[0]
                    called = f" {call}" in code or f"({call}" in code or f"={call}" in code
                    defined = code.lstrip().startswith(("class ", "def "))
                    if called and not defined and (relative, call) not in ALLOWED:
                        found.append(f"{relative}: {line.strip()}")
    assert found == []
