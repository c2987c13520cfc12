"""The /docs page: the OpenAPI document rendered server-side as plain HTML, no script and no CDN."""

from __future__ import annotations

import json
import re

from flask import render_template
from markupsafe import Markup, escape

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def render(spec: dict) -> str:
    operations = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                operations.append(_view(spec, path, method, operation, item.get("parameters", [])))
    operations.sort(key=lambda op: (_tag_rank(op["tag"]), op["tag"], op["path"], METHODS.index(op["method"])))
    groups: dict[str, list] = {}
    for operation in operations:
        groups.setdefault(operation["tag"], []).append(operation)
    components = spec["components"]
    schemas = {name: json.dumps(schema, indent=2) for name, schema in components.get("schemas", {}).items()}
    security = {name: inline(scheme.get("description", ""))
                for name, scheme in components.get("securitySchemes", {}).items()}
    return render_template("api_docs.html", spec=spec, description=inline(spec["info"].get("description", "")),
                           groups=groups, schemas=schemas, security=security)


def _tag_rank(tag: str) -> int:
    # The native API first, the service's own plumbing last.
    return {"verifications": 0, "demo": 2, "operations": 3}.get(tag, 1)


def inline(text: str) -> Markup:
    """Escaped text with `code spans` as <code>, the only Markdown these descriptions use."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def _view(spec: dict, path: str, method: str, operation: dict, shared_parameters: list) -> dict:
    """What the page shows of one operation, with shared responses resolved to their text."""
    shared = spec["components"].get("responses", {})
    responses = []
    for status, response in sorted(operation.get("responses", {}).items()):
        if "$ref" in response:
            response = shared.get(response["$ref"].rsplit("/", 1)[-1], {})
        responses.append({
            "status": status,
            "description": inline(response.get("description", "")),
            "types": {kind: json.dumps(media.get("schema", {}), indent=2)
                      for kind, media in response.get("content", {}).items()},
            "headers": sorted(response.get("headers", {})),
        })
    body = operation.get("requestBody", {})
    return {
        "tag": (operation.get("tags") or ["other"])[0],
        "path": path,
        "method": method,
        "anchor": operation.get("operationId") or f"{method}-{path}",
        "summary": operation.get("summary", ""),
        "description": inline(operation.get("description", "")),
        "security": [name for option in operation.get("security", []) for name in option],
        "parameters": [{**p, "description": inline(p.get("description", ""))}
                       for p in [*shared_parameters, *operation.get("parameters", [])]],
        "body": {kind: json.dumps(media.get("schema", {}), indent=2)
                 for kind, media in body.get("content", {}).items()},
        "body_required": body.get("required", False),
        "responses": responses,
    }
