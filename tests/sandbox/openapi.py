"""Validate sandbox bodies against the official API descriptions in /work/shared/specs/openapi.

Handles Swagger 2.0 YAML (Constant Contact, Magento) and OpenAPI 3.0 JSON (Kibo). Each file
is parsed once per process, OpenAPI ``nullable`` / Swagger ``x-nullable`` become JSON-schema
``null`` types, and local ``$ref``s resolve through a ``referencing`` registry (Draft 4, the
dialect both formats build on, where ``$ref`` overrides its siblings).

    check = response_validator("magento-admin-2.4.9.yaml", "/V1/customers/search", "get", 200)
    check(resp.json())   # raises jsonschema.ValidationError on a mismatch

``path`` may be the spec's template ("/contacts/{contact_id}") or a concrete request path
("/v3/contacts/123", "/rest/default/V1/customers/search"); it is matched to a template.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_DIR = Path(os.environ.get("CC_SPECS_OPENAPI", "/work/shared/specs/openapi"))
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _convert(node: Any) -> Any:
    """Turn OpenAPI/Swagger schema dialect into plain Draft 4 (nullable, type: file)."""
    if isinstance(node, list):
        return [_convert(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v) for k, v in node.items()}
    nullable = out.pop("nullable", None) is True
    nullable = out.pop("x-nullable", None) is True or nullable
    if out.get("type") == "file":
        out.pop("type")
    if nullable:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        elif "$ref" in out or "allOf" in out or "oneOf" in out or "anyOf" in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def load_spec(spec_file_name: str) -> dict:
    """The parsed, dialect-converted document (cached for the session)."""
    path = SPEC_DIR / spec_file_name
    with path.open(encoding="utf-8") as fh:
        raw = json.load(fh) if path.suffix == ".json" else yaml.load(fh, Loader=_LOADER)  # noqa: S506
    return _convert(raw)


@cache
def _registry(spec_file_name: str) -> Registry:
    resource = Resource(contents=load_spec(spec_file_name), specification=DRAFT4)
    return Registry().with_resource(_uri(spec_file_name), resource)


def _uri(spec_file_name: str) -> str:
    return f"urn:spec:{spec_file_name}"


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _deref(doc: dict, node: dict) -> tuple[dict, str | None]:
    """Follow a local ``$ref`` on a response/parameter object; returns it and its pointer."""
    pointer = None
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"].lstrip("#")
        node = doc
        for part in pointer.split("/")[1:]:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, pointer


def match_path(spec_file_name: str, path: str) -> str:
    """The spec's path template for ``path`` (exact, or concrete with base path stripped)."""
    doc = load_spec(spec_file_name)
    paths = doc["paths"]
    if path in paths:
        return path
    candidates = [path]
    base = doc.get("basePath", "")
    if base and path.startswith(base + "/"):
        candidates.append(path[len(base) :])
    candidates.append(re.sub(r"^/rest(/[^/]+)?(?=/V1/)", "", path))  # Magento store codes
    candidates.append(re.sub(r"^/api(?=/commerce/|/platform/)", "", path))  # Kibo host prefix
    for cand in candidates:
        if cand in paths:
            return cand
    for cand in candidates:
        for template in paths:
            pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, cand):
                return template
    raise KeyError(f"{spec_file_name}: no path matches {path!r}")


def _pick_content(content: dict) -> tuple[str, dict]:
    for media in ("application/json", "text/json"):
        if media in content:
            return media, content[media]
    for media, value in content.items():
        if "json" in media:
            return media, value
    return next(iter(content.items()))


def _validator(spec_file_name: str, pointer: str) -> Callable[[Any], None]:
    schema = {"$ref": f"{_uri(spec_file_name)}#{pointer}"}
    validator = jsonschema.Draft4Validator(schema, registry=_registry(spec_file_name))

    def check(body: Any) -> None:
        if hasattr(body, "json") and callable(body.json):
            body = body.json()
        validator.validate(body)

    return check


@cache
def response_validator(
    spec_file_name: str, path: str, method: str, status: int | str
) -> Callable[[Any], None]:
    """A callable raising ``jsonschema.ValidationError`` when a response body breaks the spec.

    The body may be parsed JSON or a ``requests.Response``. Falls back to the ``default``
    response when the status is not listed; raises KeyError when neither has a schema.
    """
    doc = load_spec(spec_file_name)
    template = match_path(spec_file_name, path)
    method = method.lower()
    op = doc["paths"][template][method]
    responses = op["responses"]
    key = str(status) if str(status) in responses else "default"
    if key not in responses:
        raise KeyError(f"{method.upper()} {template}: no {status} or default response")
    base = f"/paths/{_escape(template)}/{method}/responses/{key}"
    response, ref = _deref(doc, responses[key])
    base = ref or base
    if "schema" in response:  # Swagger 2.0
        return _validator(spec_file_name, f"{base}/schema")
    if "content" in response:  # OpenAPI 3
        media, value = _pick_content(response["content"])
        if "schema" in value:
            return _validator(spec_file_name, f"{base}/content/{_escape(media)}/schema")
    raise KeyError(f"{method.upper()} {template} {key}: response has no schema")


@cache
def request_validator(spec_file_name: str, path: str, method: str) -> Callable[[Any], None]:
    """Like :func:`response_validator`, for the JSON request body (Kibo event payloads, ...)."""
    doc = load_spec(spec_file_name)
    template = match_path(spec_file_name, path)
    method = method.lower()
    base = f"/paths/{_escape(template)}/{method}"
    op = doc["paths"][template][method]
    for i, param in enumerate(op.get("parameters", [])):
        param, ref = _deref(doc, param)
        if param.get("in") == "body":
            return _validator(spec_file_name, f"{ref or f'{base}/parameters/{i}'}/schema")
    if "requestBody" in op:
        body, ref = _deref(doc, op["requestBody"])
        media, _value = _pick_content(body["content"])
        pointer = f"{ref or base + '/requestBody'}/content/{_escape(media)}/schema"
        return _validator(spec_file_name, pointer)
    raise KeyError(f"{method.upper()} {template}: no request body schema")


@cache
def schema_validator(spec_file_name: str, name: str) -> Callable[[Any], None]:
    """Validator for a named schema (Swagger ``definitions`` or OpenAPI ``components``)."""
    doc = load_spec(spec_file_name)
    if name in doc.get("definitions", {}):
        return _validator(spec_file_name, f"/definitions/{_escape(name)}")
    if name in doc.get("components", {}).get("schemas", {}):
        return _validator(spec_file_name, f"/components/schemas/{_escape(name)}")
    raise KeyError(f"{spec_file_name}: no schema named {name!r}")


def operations(spec_file_name: str) -> list[tuple[str, str]]:
    """All (METHOD, path template) pairs of a spec, for coverage checks."""
    paths = load_spec(spec_file_name)["paths"]
    return [(m.upper(), p) for p, item in paths.items() for m in item if m in _METHODS]
