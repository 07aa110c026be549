"""What the API docs page lists: one row per operation of the OpenAPI schema."""
from __future__ import annotations

METHODS = ("get", "post", "put", "patch", "delete")


def _ref_name(obj) -> str:
    if not isinstance(obj, dict):
        return ""
    if "$ref" in obj:
        return obj["$ref"].rsplit("/", 1)[-1]
    if obj.get("type") == "array":
        inner = _ref_name(obj.get("items"))
        return f"[{inner}]" if inner else "array"
    return obj.get("type", "")


def operations_from_schema(schema: dict) -> list[dict]:
    """Operations in path order: method, path, summary, auth, request and response bodies.

    Parameters
    ----------
    schema : dict
        An OpenAPI 3 document (drf-spectacular's).

    Returns
    -------
    list of dict
        ``method``, ``path``, ``operation_id``, ``summary``, ``public`` (anonymous callers
        allowed), ``request`` (content type and component), ``responses`` [(status, component)].
    """
    out = []
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            request = ""
            for ctype, body in (op.get("requestBody") or {}).get("content", {}).items():
                request = f"{ctype}: {_ref_name(body.get('schema'))}"
                break
            responses = []
            for code, resp in op.get("responses", {}).items():
                content = resp.get("content", {})
                body = next(iter(content.values()), {}).get("schema") if content else None
                responses.append((code, _ref_name(body) or resp.get("description", "")))
            out.append({"method": method.upper(), "path": path,
                        "operation_id": op.get("operationId", ""),
                        "summary": op.get("summary") or op.get("description", "").split("\n")[0],
                        "public": {} in (op.get("security") or []),
                        "request": request, "responses": responses})
    return out
