"""Checkout commands over HTTP: send the command as an event, then answer with the outcome the fold decided."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import quote

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from projections.checkout import ACCEPTED, known_command
from schemas.events import MAX_HOLD_SECONDS, NO_CONTROL, POINTS_LIMIT
from schemas.timeutil import format_ms
from streams.http_guard import json_answer, quote_input
from streams.peers import FORWARDED_HEADER, PeerUnavailable, key_partition
from streams.settings import INPUT_TOPIC

BODY_MAX_BYTES = 4096
# Shorter than the 128 of an event id: the event id is the command's id behind a prefix.
COMMAND_ID = Field(min_length=1, max_length=100, pattern=NO_CONTROL)
POINTS = Field(gt=0, le=POINTS_LIMIT, strict=True)
LOCAL_POLL_S, PEER_POLL_S = 0.002, 0.02  # how often a waiting command looks for its outcome (a dict read / a GET)
STATUS = {ACCEPTED: 200, "rejected": 422}


class Body(BaseModel):
    """A command's JSON body: unknown fields are refused, as a typo must not be taken for a default."""
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedemptionBody(Body):
    redemption_id: str = COMMAND_ID
    points: int = POINTS


class ClaimBody(Body):
    claim_id: str = COMMAND_ID
    reward_id: str = Field(min_length=1, max_length=128, pattern=NO_CONTROL)


class HoldBody(Body):
    hold_id: str = COMMAND_ID
    points: int = POINTS
    expires_in: int = Field(gt=0, le=MAX_HOLD_SECONDS, strict=True)


class CaptureBody(Body):
    points: Optional[int] = Field(default=None, gt=0, le=POINTS_LIMIT, strict=True)


class ReleaseBody(Body):
    pass


@dataclass(frozen=True)
class Command:
    """One kind of command: its body, the event it becomes, and what of it an outcome remembers."""
    kind: str                                  # the outcome's key prefix in the state: "redeem:{id}"
    event_type: str
    body: type[Body]
    command_id: Callable[[Body, Optional[str]], str]  # from the body, or the hold id in the path
    payload: Callable[[Body, str], dict]
    request: Callable[[Body], list]           # as the fold remembers it (projections), to tell a reuse of the id


COMMANDS = {command.kind: command for command in (
    Command("redeem", "redemption.requested", RedemptionBody, lambda b, _: b.redemption_id,
            lambda b, i: {"redemption_id": i, "points": b.points}, lambda b: [b.points]),
    Command("claim", "reward.claimed", ClaimBody, lambda b, _: b.claim_id,
            lambda b, i: {"claim_id": i, "reward_id": b.reward_id}, lambda b: [b.reward_id]),
    Command("hold", "hold.requested", HoldBody, lambda b, _: b.hold_id,
            lambda b, i: {"hold_id": i, "points": b.points, "expires_in": b.expires_in},
            lambda b: [b.points, b.expires_in]),
    Command("capture", "hold.captured", CaptureBody, lambda b, hold_id: hold_id,
            lambda b, i: {"hold_id": i, **({} if b.points is None else {"points": b.points})}, lambda b: [b.points]),
    Command("release", "hold.released", ReleaseBody, lambda b, hold_id: hold_id, lambda b, i: {"hold_id": i},
            lambda b: []),
)}


def parse_body(raw: bytes, model: type[Body]) -> Body | str:
    """Return the body, or why it is refused (a 400's reason)."""
    if len(raw) > BODY_MAX_BYTES:
        return f"body over {BODY_MAX_BYTES} bytes"
    try:
        doc = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return "body is not JSON"
    if not isinstance(doc, dict):
        return "body is not a JSON object"
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        return f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"


def outcome_doc(customer_id: str, kind: str, command_id: str, outcome: list) -> dict:
    """Return the answer for a remembered outcome: accepted with its ledger entry, or rejected with its reason."""
    at_ms, request, status, detail = outcome
    return {"customer_id": customer_id, "command": kind, "id": command_id, "status": status, **detail,
            "at": format_ms(at_ms), "request": request}


def outcome_path(customer_id: str, kind: str, command_id: str) -> str:
    """Return the URL path that answers a command's outcome (what a 202 says to ask again)."""
    return f"/customers/{quote(customer_id, safe='')}/commands/{kind}/{quote(command_id, safe='')}"


def local_outcome(views: Any, customer_id: str, key: str) -> Optional[list]:
    """Read a command's outcome from this worker's fold of the customer's partition (None: not decided here)."""
    fold = views.pipeline.loaded(key_partition(customer_id.encode(), views.settings.partitions))
    state = fold.store.get(customer_id) if fold is not None else None
    return None if state is None else known_command(state, key, views.pipeline.policy)


async def find_outcome(views: Any, request: Any, customer_id: str, kind: str, command_id: str) -> Optional[dict]:
    """Return a command's outcome document from the worker owning the customer, or None while undecided."""
    partition = key_partition(customer_id.encode(), views.settings.partitions)
    peers = views.peers
    owner = peers.owners().get(partition)
    if owner is not None and owner != peers.own_url and FORWARDED_HEADER not in request.headers:
        answer = await peers.get(owner, outcome_path(customer_id, kind, command_id))
        return answer.body if answer.status in STATUS.values() else None
    outcome = local_outcome(views, customer_id, f"{kind}:{command_id}")
    return None if outcome is None else outcome_doc(customer_id, kind, command_id, outcome)


def answer(web: Any, doc: dict, request_fields: list) -> Any:
    """Answer with an outcome: 200 accepted, 422 rejected, 409 when the id was used with another body."""
    if doc["request"] != request_fields:
        return json_answer(web, {"error": "conflict", "reason": f"{doc['command']} id {quote_input(doc['id'])} "
                                 f"was used with another body", "first": doc}, 409)
    return json_answer(web, doc, STATUS[doc["status"]])


async def send_command(views: Any, customer_id: str, command: Command, command_id: str, body: Body) -> None:
    """Produce the command's event to the input topic with the customer's key: the owner folds it like any other."""
    now = format_ms(int(time.time() * 1000))
    # The event id is the command's: a retry, from any worker, is a duplicate of the first.
    event = {"event_id": f"cmd:{command.kind}:{command_id}", "event_type": command.event_type,
             "customer_id": customer_id, "occurred_at": now, "schema_version": 1,
             "payload": command.payload(body, command_id)}
    key = customer_id.encode()
    await views.app.producer.send_and_wait(INPUT_TOPIC, key, orjson.dumps(event),
                                           key_partition(key, views.settings.partitions), None, None)


async def run_command(views: Any, web: Any, request: Any, customer_id: str, command: Command,
                      hold_id: Optional[str] = None) -> Any:
    """Send a command unless its id was decided already, and answer with its outcome (202 after the timeout)."""
    body = parse_body(await request.read(), command.body)
    if isinstance(body, str):
        return json_answer(web, {"error": "bad_request", "reason": body}, 400)
    command_id = command.command_id(body, hold_id)
    wanted = command.request(body)
    try:
        doc = await find_outcome(views, request, customer_id, command.kind, command_id)
    except PeerUnavailable:
        doc = None  # sent anyway: the fold refuses a second use of the id, and the answer comes from the log
    if doc is not None:  # a retry: the same answer, never a second debit
        return answer(web, doc, wanted)
    await send_command(views, customer_id, command, command_id, body)
    try:
        deadline = time.monotonic() + views.settings.command_timeout_s
        while time.monotonic() < deadline:
            local = views.peers.owners().get(key_partition(customer_id.encode(), views.settings.partitions))
            await asyncio.sleep(LOCAL_POLL_S if local in (None, views.peers.own_url) else PEER_POLL_S)
            doc = await find_outcome(views, request, customer_id, command.kind, command_id)
            if doc is not None:
                return answer(web, doc, wanted)
    except PeerUnavailable:
        pass  # the owner is moving: the command is in the log, and its outcome will be there to ask for
    path = outcome_path(customer_id, command.kind, command_id)
    return json_answer(web, {"status": "pending", "command": command.kind, "id": command_id, "url": path}, 202,
                       {"Location": path})
