"""The admin API's OpenAPI file matches what the site answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from adapters.admin.forms import FilterModel, SearchRequest, UserRequest
from adapters.admin.handlers import USER_OPERATIONS
from adapters.admin.routes import ADMIN_ROUTES
from gateway.admin.accounts import Permission
from gateway.admin.batches import BatchControl, BatchState, ItemOutcome, filter_json
from gateway.admin.cases import CaseAction, CaseFilter, CaseKind, case_id
from gateway.admin.search import HitKind
from gateway.ports.reprocess import ReprocessOutcome
from tests.adapters.admin.conftest import AdminWorld

SPEC = json.loads(
    (Path(__file__).parents[3] / "schemas" / "admin-api.openapi.json").read_text("utf-8")
)


def required(name: str) -> set[str]:
    return set(SPEC["components"]["schemas"][name]["required"])


def test_the_enums_are_the_codes() -> None:
    schemas = SPEC["components"]["schemas"]
    assert schemas["CaseKind"]["enum"] == [k.value for k in CaseKind]
    assert schemas["CaseAction"]["enum"] == [a.value for a in CaseAction]


def test_answers_carry_what_the_spec_requires(world: AdminWorld) -> None:
    auth = {"Authorization": f"Bearer {world.token('bea')}"}
    api = world.browser()
    cid = case_id(CaseKind.PARKED, world.seeded.parked)

    def get(path: str) -> Any:
        response = api.get(path, auth)
        assert response.status == 200, path
        return json.loads(response.body)

    assert required("Me") <= set(get("/api/me"))
    queue = get("/api/cases")
    assert required("Queue") <= set(queue)
    assert all(required("Case") <= set(case) for case in queue["cases"])
    view = get(f"/api/cases/{cid}")
    assert required("CaseView") <= set(view)
    assert all(required("AuditEntry") <= set(e) for e in view["history"])
    assert required("ChainReport") <= set(get("/api/audit/verify"))
    assert set(get("/api/audit")) == {"entries"}
    for path in SPEC["paths"]:
        assert path.startswith("/api/")


def test_the_search_answers_what_the_spec_requires(world: AdminWorld) -> None:
    schemas = SPEC["components"]["schemas"]
    assert schemas["HitKind"]["enum"] == [k.value for k in HitKind]
    assert set(schemas["SearchRequest"]["properties"]) == {
        field.alias or name for name, field in SearchRequest.model_fields.items()
    }
    assert "get" not in SPEC["paths"]["/api/search"]  # a BSN never goes in a URL
    auth = {"Authorization": f"Bearer {world.token('bea')}"}
    body = json.dumps({"participant": "33001234"}).encode()
    response = world.browser().request("POST", "/api/search", body, auth)
    assert response.status == 200
    found = json.loads(response.body)
    assert required("SearchResult") <= set(found)
    assert found["hits"]
    assert all(set(hit) == required("SearchHit") for hit in found["hits"])


def test_the_bulk_enums_are_the_codes() -> None:
    schemas = SPEC["components"]["schemas"]
    assert schemas["BatchState"]["enum"] == [s.value for s in BatchState]
    assert schemas["BatchControl"]["enum"] == [c.value for c in BatchControl]
    assert schemas["ItemOutcome"]["enum"] == [o.value for o in ItemOutcome]
    permissions = schemas["Me"]["properties"]["permissions"]["items"]["enum"]
    assert permissions == [p.value for p in Permission]
    fields = set(schemas["CaseFilter"]["properties"])
    assert fields == set(FilterModel.model_fields) == set(filter_json(CaseFilter()))


def test_batch_answers_carry_what_the_spec_requires(world: AdminWorld) -> None:
    auth = {"Authorization": f"Bearer {world.token('bea')}", "Content-Type": "application/json"}
    api = world.browser()
    request = {"filter": {"kinds": ["parked"]}, "action": "retry"}

    def call(method: str, path: str, body: Any = None) -> Any:
        raw = b"" if body is None else json.dumps(body).encode()
        response = api.request(method, path, raw, auth)
        assert response.status in (200, 201), path
        return json.loads(response.body)

    preview = call("POST", "/api/batches/preview", request)
    assert required("BatchPreview") <= set(preview)
    assert set(preview["filter"]) == set(SPEC["components"]["schemas"]["CaseFilter"]["properties"])
    batch = call("POST", "/api/batches", {**request, "selection": preview["selection"]})
    assert required("Batch") <= set(batch)
    one = call("GET", f"/api/batches/{batch['id']}")
    item_schema = SPEC["components"]["schemas"]["Batch"]["properties"]["items"]["items"]
    assert all(set(item_schema["required"]) <= set(item) for item in one["items"])
    assert all(required("Batch") <= set(b) for b in call("GET", "/api/batches")["batches"])
    assert required("Batch") <= set(call("POST", f"/api/batches/{batch['id']}/pause"))


def test_the_api_routes_are_the_spec_paths_with_the_same_methods() -> None:
    """Every route of the JSON API is in the spec with exactly its methods, and the spec
    has no path the site does not route."""

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path)

    routed: dict[str, set[str]] = {}
    for route in ADMIN_ROUTES:
        if route.access == "api":
            routed.setdefault(shape(route.path), set()).update(m.lower() for m in route.methods)
    documented = {
        shape(path): {m for m in operations if m in ("get", "post", "put", "patch", "delete")}
        for path, operations in SPEC["paths"].items()
    }
    assert routed == documented


def test_the_users_answer_what_the_spec_requires(world: AdminWorld) -> None:
    auth = {"Authorization": f"Bearer {world.token('bea')}"}
    users = json.loads(world.browser().get("/api/users", auth).body)["users"]
    assert users
    assert all(set(user) == required("User") for user in users)
    operations = SPEC["paths"]["/api/users/{name}/{operation}"]["post"]["parameters"][1]
    assert tuple(operations["schema"]["enum"]) == USER_OPERATIONS
    assert set(SPEC["components"]["schemas"]["UserRequest"]["properties"]) == set(
        UserRequest.model_fields
    )


def test_the_reprocess_answer_is_what_the_spec_requires(world: AdminWorld) -> None:
    schema = SPEC["components"]["schemas"]["ReprocessResult"]
    assert schema["properties"]["outcome"]["enum"] == [o.value for o in ReprocessOutcome]
    auth = {"Authorization": f"Bearer {world.token('otto')}"}
    answer = world.browser().request(
        "POST",
        f"/api/uploads/{world.seeded.intake_rejected}/reprocess",
        json.dumps({"reason": "layout"}).encode(),
        auth,
    )
    assert answer.status == 200
    assert required("ReprocessResult") == set(json.loads(answer.body))
