"""An event is encoded once for all its stream subscribers (bench/api.py: the loop spent
its time encoding and compressing the same event per subscriber)."""

from __future__ import annotations

import json

from infra.bundle import serve_command
from shared.models import ExecutionEvent


def event() -> ExecutionEvent:
    return ExecutionEvent(
        execution_id="e1",
        workflow_id="w1",
        seq=3,
        type="step.succeeded",
        step_id="a",
        data={"output": {"x": [1, 2]}},
    )


def test_the_wire_form_is_the_events_json_dict() -> None:
    e = event()
    assert json.loads(e.wire_json()) == e.to_json_dict()
    assert json.loads(e.wire_json())["stepId"] == "a"


def test_the_wire_form_is_encoded_once() -> None:
    e = event()
    assert e.wire_json() is e.wire_json()
    assert event().wire_json() is not e.wire_json()


def test_the_stream_server_does_not_compress_each_frame() -> None:
    command = serve_command("status-stream")
    assert command[command.index("--ws-per-message-deflate") + 1] == "false"


def test_a_changed_copy_is_encoded_anew() -> None:
    e = event()
    e.wire_json()
    assert json.loads(e.model_copy(update={"seq": 4}).wire_json())["seq"] == 4
    assert e.model_copy(deep=True).wire_json() == e.wire_json()
