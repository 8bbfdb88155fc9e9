"""docs/schema.graphql is the schema the server serves (it once drifted from the code)."""

from __future__ import annotations

from pathlib import Path

from shared.api.graphql.schema import schema

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "schema.graphql"


def test_the_checked_in_schema_is_the_served_one() -> None:
    served = str(schema).rstrip() + "\n"
    assert DOCUMENT.read_text() == served, (
        "docs/schema.graphql is stale: regenerate it with "
        'python -c "from shared.api.graphql.schema import schema; print(schema)"'
    )
