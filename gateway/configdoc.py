"""The configuration reference, rendered as Markdown from the config file's JSON Schema, so
that the documentation (``docs/configuration.md``) can never drift from the code."""

from __future__ import annotations

import json
from typing import Any

from gateway.config import config_json_schema

__all__ = ["reference_markdown"]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        all_of = node.get("allOf")
        if all_of and len(all_of) == 1:
            return {
                **_resolve(schema, all_of[0]),
                **{k: v for k, v in node.items() if k != "allOf"},
            }
        return node
    target = schema["$defs"][ref.rsplit("/", 1)[1]]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _type(schema: dict[str, Any], node: dict[str, Any]) -> str:
    node = _resolve(schema, node)
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "anyOf" in node:
        kinds = [_type(schema, n) for n in node["anyOf"] if n.get("type") != "null"]
        optional = any(n.get("type") == "null" for n in node["anyOf"])
        return " \\| ".join(kinds) + (" (optional)" if optional else "")
    kind = node.get("type", "object")
    if kind == "array":
        return f"list of {_type(schema, node.get('items', {}))}"
    if node.get("format") == "path":
        return "path"
    return str(kind)


def _is_section(schema: dict[str, Any], node: dict[str, Any]) -> bool:
    return _resolve(schema, node).get("type") == "object" and "properties" in _resolve(schema, node)


def _optional_section(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    """The section of an optional table (``X | None``), with the field's own description."""
    node = _resolve(schema, node)
    options = [n for n in node.get("anyOf", ()) if n.get("type") != "null"]
    if len(options) != 1 or len(node.get("anyOf", ())) != 2 or not _is_section(schema, options[0]):
        return None
    section = _resolve(schema, options[0])
    own = section.get("description", "")
    field = node.get("description", "")
    return {**section, "description": " ".join(t for t in (field, "(Optional.)", own) if t)}


def _is_section_list(schema: dict[str, Any], node: dict[str, Any]) -> bool:
    node = _resolve(schema, node)
    return node.get("type") == "array" and _is_section(schema, node.get("items", {}))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section(
    schema: dict[str, Any], node: dict[str, Any], name: str, out: list[str], *, many: bool = False
) -> None:
    node = _resolve(schema, node)
    title = "Top level (before the first table)" if not name else f"`[{name}]`"
    out += [f"## {f'`[[{name}]]`' if many else title}", ""]
    if node.get("description"):
        out += [node["description"], ""]
    required = set(node.get("required", ()))
    rows: list[str] = []
    nested: list[tuple[str, dict[str, Any], bool]] = []
    for key, prop in node.get("properties", {}).items():
        path = f"{name}.{key}" if name else key
        if _is_section(schema, prop):
            nested.append((path, prop, False))
            continue
        if _is_section_list(schema, prop):
            nested.append((path, _resolve(schema, prop)["items"], True))
            continue
        optional = _optional_section(schema, prop)
        if optional is not None:
            nested.append((path, optional, False))
            continue
        resolved = _resolve(schema, prop)
        default = "required" if key in required else f"`{json.dumps(resolved.get('default'))}`"
        description = resolved.get("description") or _resolve(schema, prop).get("title", "")
        rows.append(f"| `{key}` | {_type(schema, prop)} | {default} | {_cell(description)} |")
    if rows:
        out += ["| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    for path, child, is_list in nested:
        _section(schema, child, path, out, many=is_list)


def reference_markdown() -> str:
    schema = config_json_schema()
    out = [
        "# Configuration reference",
        "",
        "The gateway reads one TOML file (`igo-gateway serve --config FILE`). This reference "
        "is generated from the file's JSON Schema (`schemas/config.schema.json`) by "
        "`igo-gateway config reference`; do not edit it by hand. `igo-gateway config check` "
        "reports every problem of a file, each with its path, before anything starts. "
        "Relative paths are relative to the config file's directory. `[[name]]` is a list "
        "of tables.",
        "",
    ]
    _section(schema, schema, "", out)
    return "\n".join(out).rstrip() + "\n"
