"""Base model: camelCase JSON, snake_case Python, strict about unknown fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class ApiModel(BaseModel):
    """Models exchanged with users: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The model as a JSON-ready dict with camelCase keys."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RecordModel(BaseModel):
    """Internal records (step runs, events): camelCase on the wire, extra fields kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
