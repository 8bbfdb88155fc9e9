"""Request parsing at the edge: bodies (JSON, YAML for definitions), query parameters.

Bodies are capped at ``MAX_BODY_BYTES`` (PAYLOAD_TOO_LARGE); a body that does not
parse is INVALID_INPUT; a well-formed body of the wrong shape is VALIDATION_FAILED
with one JSON-pointer issue per problem.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from shared.errors import DefinitionInvalid, InputInvalid, Issue, WorkflowError

MAX_BODY_BYTES = 1024 * 1024
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})

M = TypeVar("M", bound=BaseModel)


class PayloadTooLarge(WorkflowError):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(WorkflowError):
    code = "UNSUPPORTED_MEDIA_TYPE"


async def read_bytes(request: Request) -> bytes:
    """The raw body, refusing more than ``MAX_BODY_BYTES`` before reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds {MAX_BODY_BYTES}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_yaml(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media in YAML_TYPES


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputInvalid(f"body is not UTF-8: {exc.reason}") from exc


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """The JSON body (any content type but YAML); ``{}`` for an empty optional body."""
    if _is_yaml(request):
        raise UnsupportedMediaType("this endpoint takes application/json")
    text = _decode(await read_bytes(request))
    if optional and not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputInvalid(f"body is not valid JSON: {exc}") from exc


async def read_documents(request: Request) -> list[Any]:
    """Definition bodies: JSON (an object or a list) or YAML (one or more documents)."""
    if not _is_yaml(request):
        body = await read_json(request)
        return body if isinstance(body, list) else [body]
    text = _decode(await read_bytes(request))
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InputInvalid(f"body is not valid YAML: {exc}".splitlines()[0]) from exc
    if not documents:
        raise InputInvalid("body holds no YAML document")
    return documents


async def read_definition(request: Request) -> dict[str, Any]:
    """One definition document, as JSON or YAML."""
    documents = await read_documents(request) if _is_yaml(request) else [await read_json(request)]
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise InputInvalid("body must hold exactly one definition object")
    document: dict[str, Any] = documents[0]
    return document


def parse_body(model: type[M], body: Any) -> M:
    """Validate a JSON body against a request model; VALIDATION_FAILED with pointers."""
    if not isinstance(body, dict):
        raise InputInvalid("body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise DefinitionInvalid([_issue(item) for item in exc.errors()]) from exc


def _issue(item: Any) -> Issue:
    kind = str(item["type"])
    if kind == "missing":
        code = "FIELD_REQUIRED"
    elif kind == "extra_forbidden":
        code = "UNKNOWN_FIELD"
    elif kind.endswith(("_type", "_parsing")):
        code = "FIELD_TYPE"
    else:
        code = "INVALID_VALUE"
    path = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in item["loc"])
    return Issue(code, str(item["msg"]), path)


# -- query parameters ----------------------------------------------------------------


def _bad(name: str, message: str) -> InputInvalid:
    return InputInvalid(f"query parameter {name!r} {message}", path=f"/{name}")


def query_int(
    request: Request, name: str, *, default: int, low: int, high: int | None = None
) -> int:
    """An integer query parameter within ``low..high``."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"must be an integer, not {raw!r}") from None
    if value < low or (high is not None and value > high):
        limits = f"{low}..{high}" if high is not None else f">= {low}"
        raise _bad(name, f"must be {limits}, not {value}")
    return value


def query_limit(request: Request, high: int = 200, default: int = 50) -> int:
    return query_int(request, "limit", default=default, low=1, high=high)


def query_bool(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise _bad(name, f"must be true or false, not {raw!r}")


def query_list(request: Request, name: str) -> tuple[str, ...]:
    """``name=a,b`` and ``name=a&name=b`` alike."""
    values = request.query_params.getlist(name)
    return tuple(part.strip() for v in values for part in v.split(",") if part.strip())


def query_choice(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query_params.get(name) or None
    if raw is not None and raw not in choices:
        raise _bad(name, f"must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def if_match_version(request: Request) -> int | None:
    """The version an ``If-Match`` header expects (``3``, ``"3"`` or ``W/"3"``)."""
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InputInvalid(f"If-Match must be a workflow version, not {raw!r}")
    return int(value)
