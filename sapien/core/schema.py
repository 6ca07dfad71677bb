"""OpenAPI details drf-spectacular cannot infer: our token authentication and the error responses."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "example": "validation_error"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
            },
        }
    },
}
ERROR_STATUSES = {
    "400": "The request is malformed or has invalid fields.",
    "401": "No token, or a token that is invalid, expired or revoked.",
    "403": "The token lacks the scope, or a plan limit was reached.",
    "404": "No such object in the caller's organization.",
    "405": "Method not allowed.",
    "409": "The request conflicts with the current state.",
    "413": "The request body is too large.",
    "415": "Unsupported media type.",
    "429": "Too many requests; see Retry-After.",
}


class OrganizationTokenScheme(OpenApiAuthenticationExtension):
    target_class = "sapien.core.auth.OrganizationTokenAuthentication"
    name = "oauth2"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "oauth2",
            "flows": {
                "clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}},
                "password": {"tokenUrl": "/oauth/token", "scopes": {}},
            },
        }


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every operation may answer the documented error shape (postprocessing hook)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_STATUSES.items():
                responses.setdefault(status, {"description": description, **reference})
    return result


IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes a retry safe: the first successful answer to this key is stored for ESL_IDEMPOTENCY_HOURS (24) "
        "and returned, with Idempotent-Replayed: true, to a retry with the same method, path, caller and body, "
        "without a second write or event. The same key with another request is a 422 idempotency_key_reused. "
        "Per organization; 1 to 255 visible ASCII characters, e.g. a UUID."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


def add_idempotency_key_header(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every POST and PATCH of the API takes ``Idempotency-Key`` (postprocessing hook; sapien.core.idempotency)."""
    reused = {
        "description": "The Idempotency-Key was already used with a different request.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for path, path_item in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method in ("post", "patch"):
            operation = path_item.get(method)
            if operation is None:
                continue
            parameters = operation.setdefault("parameters", [])
            if not any(p.get("in") == "header" and p.get("name") == "Idempotency-Key" for p in parameters):
                parameters.append(IDEMPOTENCY_KEY_PARAMETER)
            operation.setdefault("responses", {}).setdefault("422", reused)
    return result
