"""JSON Schema of the input events, for producers written in other languages."""
from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import TypeAdapter

from schemas.events import Event

SCHEMA_PATH = Path(__file__).with_name("customer-event.schema.json")


def event_json_schema() -> dict:
    """Return the JSON Schema of one customer-events message."""
    schema = TypeAdapter(Event).json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "loyalty-stream customer event"
    return schema


def render() -> bytes:
    """Return the schema as stable, indented JSON."""
    return orjson.dumps(event_json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_bytes(render())
