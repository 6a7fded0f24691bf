"""The fast validation path gives exactly what pydantic alone gives: the same events, the same rejections."""
from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas.events import EVENT_TYPES, MAX_AMOUNT_MINOR, ChannelPayload, CustomerVisited, EventBase
from schemas.fast_events import fast_event
from schemas.policy import Policy
from schemas.validate import (
    Rejection, validate_document, validate_document_reference, validate_message, validate_record,
)
from tests.unit.test_fuzz import (
    BROADCAST, FUZZ, HOSTILE, TIMESTAMPS, VALID_IDS, VALID_PAYLOADS, VALID_TIMES, VALUES, dumps, near_valid_documents,
)
from tools.synthetic import synthetic_history

POLICY = Policy.model_validate({"limits": {"max_amount": "5000.00"}})
FUZZ_MORE = settings(FUZZ, max_examples=400)
# Keys a producer may add or misspell: unknown ones, and field names instead of their JSON names.
ODD_KEYS = ["occurred_at_ms", "amount_minor", "extra", "event_type", "payload", "schema_version", "customer_id",
            "birthday", "timezone", "currency", "amount", "channel", "reward", "hold_id"]
ODD_VALUES = st.one_of(VALUES, st.sampled_from([
    None, True, False, 1.0, 0, -1, 2**64, "", " ", "\u00a0", "\u2028", "\ud800", "é", "😀", "CNY", "USD", "1.5",
    "2026-01-01T00:00:00Z", "Asia/Shanghai", "02-29", {}, [], [[[]]], {"a": {"b": [1, {"c": None}]}},
]))


class Text(str):
    """A str subclass: only callers in Python can pass one, and the fast path must not be fooled by it."""


def snapshot(result: object) -> tuple:
    """Everything observable of a validation result: a rejection's text, or a model's class, fields and sets."""
    if isinstance(result, Rejection):
        return ("rejection", result.reason, result.detail)
    assert isinstance(result, EventBase), result
    return _model_snapshot(result)


def _model_snapshot(model: object) -> tuple:
    """A model's class, its fields in order (payloads recursively), the fields set, extras and private values."""
    fields = [(name, _model_snapshot(value) if isinstance(value, BaseModel) else (type(value), value))
              for name, value in model.__dict__.items()]
    payload = model.__dict__.get("payload")
    shared_default = payload is not None and payload is type(model).model_fields["payload"].default
    return (type(model), fields, type(model.model_fields_set), sorted(model.model_fields_set),
            model.__pydantic_extra__, model.__pydantic_private__, shared_default)


def assert_same(doc: object, key: object = None, timestamp_ms: object = None) -> None:
    """Check validate_document, validate_message and validate_record against the pydantic reference."""
    assert snapshot(validate_document(doc)) == snapshot(validate_document_reference(doc)), doc
    try:
        raw = dumps(doc)
    except (TypeError, ValueError):
        return  # e.g. a str subclass is still text to json; a lone surrogate cannot be encoded
    assert_same_bytes(raw, key, timestamp_ms)


def assert_same_bytes(raw: bytes, key: object = None, timestamp_ms: object = None) -> None:
    """Check validate_message and validate_record on a raw message against the reference."""
    for currency in (None, "CNY"):
        assert (snapshot(validate_message(raw, key, currency, max_amount_minor=500_000, timestamp_ms=timestamp_ms,
                                          max_future_ms=86_400_000))
                == snapshot(validate_message(raw, key, currency, max_amount_minor=500_000, timestamp_ms=timestamp_ms,
                                             max_future_ms=86_400_000, reference=True))), raw
    assert (snapshot(validate_record(raw, key, POLICY, timestamp_ms))
            == snapshot(validate_record(raw, key, POLICY, timestamp_ms, reference=True))), raw


@st.composite
def odd_documents(draw) -> dict:
    """A near-valid document, then keys removed, odd keys added, and values swapped for str subclasses."""
    document = draw(near_valid_documents())
    for _ in range(draw(st.integers(0, 2))):
        payload = document.get("payload")
        target = payload if isinstance(payload, dict) and draw(st.booleans()) else document
        action = draw(st.sampled_from(["drop", "add", "subclass"]))
        if action == "drop" and target:
            del target[draw(st.sampled_from(sorted(target, key=str)))]
        elif action == "add":
            target[draw(st.sampled_from(ODD_KEYS))] = draw(ODD_VALUES)
        elif action == "subclass":
            strings = sorted(name for name, value in target.items() if type(value) is str)
            if strings:
                name = draw(st.sampled_from(strings))
                target[name] = Text(target[name])
    return document


@st.composite
def one_field_off(draw) -> dict:
    """A valid document of a random type, optional keys left out, then at most one of its own fields made odd."""
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    payload = dict(draw(VALID_PAYLOADS[event_type]))
    document = {"event_id": draw(VALID_IDS), "event_type": event_type,
                "customer_id": None if event_type in BROADCAST else draw(st.sampled_from(["c1", "c2"])),
                "occurred_at": draw(VALID_TIMES), "schema_version": 1, "payload": payload}
    for name in draw(st.sets(st.sampled_from(["schema_version", "payload", "customer_id"]))):
        if name != "payload" or not payload:
            del document[name]
    fields = sorted({*document, *payload, *EVENT_TYPES[event_type].model_fields["payload"].annotation.model_fields,
                     "amount"} - {"amount_minor"})
    if draw(st.booleans()):
        name = draw(st.sampled_from(fields))
        value = draw(st.one_of(HOSTILE[name], ODD_VALUES) if name in HOSTILE else ODD_VALUES)
        (document if name in document or name not in payload and draw(st.booleans()) else payload)[name] = value
    return document


def key_for(document: dict, choice: int) -> object:
    """The record key: the customer's (usually), none, or another one."""
    customer_id = document.get("customer_id")
    if choice == 0 and isinstance(customer_id, str):
        return customer_id.encode("utf-8", "surrogatepass")
    return (None, b"", b"c2")[choice % 3]


@FUZZ_MORE
@given(document=near_valid_documents(), choice=st.integers(0, 3), timestamp_ms=TIMESTAMPS)
def test_near_valid_documents_give_the_reference_result(document, choice, timestamp_ms):
    assert_same(document, key_for(document, choice), timestamp_ms)


@FUZZ_MORE
@given(document=one_field_off(), choice=st.integers(0, 3), timestamp_ms=TIMESTAMPS)
def test_documents_with_one_field_off_give_the_reference_result(document, choice, timestamp_ms):
    assert_same(document, key_for(document, choice), timestamp_ms)


@FUZZ_MORE
@given(document=odd_documents(), choice=st.integers(0, 3), timestamp_ms=TIMESTAMPS)
def test_documents_with_odd_keys_and_values_give_the_reference_result(document, choice, timestamp_ms):
    assert_same(document, key_for(document, choice), timestamp_ms)


@FUZZ
@given(document=st.fixed_dictionaries({name: HOSTILE[name] for name in
                                       ("event_id", "customer_id", "occurred_at", "payload", "event_type")},
                                      optional={"schema_version": HOSTILE["schema_version"]}))
def test_hostile_envelopes_give_the_reference_result(document):
    assert_same(document)


@FUZZ
@given(value=st.one_of(st.binary(max_size=200), st.binary(max_size=20).map(lambda b: b"{" + b), VALUES),
       key=st.one_of(st.none(), st.binary(max_size=5)), timestamp_ms=TIMESTAMPS)
def test_any_value_gives_the_reference_result(value, key, timestamp_ms):
    assert snapshot(validate_document(value)) == snapshot(validate_document_reference(value))
    if isinstance(value, bytes):
        assert (snapshot(validate_record(value, key, POLICY, timestamp_ms))
                == snapshot(validate_record(value, key, POLICY, timestamp_ms, reference=True)))


@FUZZ
@given(amount=st.one_of(st.integers(-2, MAX_AMOUNT_MINOR + 2).map(lambda m: f"{m // 100}.{m % 100:02d}"),
                        st.integers(-2, 10**11), st.floats(-1.0, 1e11), st.sampled_from(["0.001", "1.1", "01.10"])),
       event_type=st.sampled_from(["order.paid", "order.refunded", "coupon.used"]),
       currency=st.sampled_from(["CNY", "USD", "cny", "CN", "ÀBC"]))
def test_amounts_and_currencies_at_the_bounds_give_the_reference_result(amount, event_type, currency):
    payload = {"order_id": "o1", "amount": amount}
    payload.update({"currency": currency} if event_type == "order.paid" else
                   {"coupon_id": "c1:o1"} if event_type == "coupon.used" else {})
    assert_same({"event_id": "e1", "event_type": event_type, "customer_id": "c1",
                 "occurred_at": "2026-01-01T00:00:00Z", "payload": payload}, b"c1", 1_767_225_600_000)


# Values at and beside every bound of every field (lengths, ranges, types, signs, texts), for the sweep below.
BOUNDARY_VALUES = [
    None, True, False, 0, 1, -1, 2, 5, 6, -5, 1.0, 0.5, -0.01, 10**12, 10**12 + 1, -10**12, -10**12 - 1, 2**63,
    "-1.00", "-0.01", "0", "0.00", "0.01", "1.001", "12.34", "-12.34", "1e2", " 1", "1 ", "", " ", "a",
    "x" * 64, "x" * 65, "x" * 128, "x" * 129, "x" * 200, "x" * 201, "x" * 256, "x" * 257, "a\x00", "\x7f", "a\nb",
    "\u00a0", "\ud800", "😀", "CNY", "USD", "Cny", "02-29", "02-30", "2000-02-29", "Asia/Tokyo", "Mars/Base",
    "2026-01-01T00:00:00Z", "2026-01-01T00:00:00+0800", "1999-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
    [], {}, [1], {"a": 1}, Text("c1"),
]
VALID_DOCUMENTS = {
    "customer.registered": {"birthday": "02-29", "timezone": "Asia/Tokyo"}, "customer.profile_updated": {},
    "order.paid": {"order_id": "o1", "amount": "12.34", "currency": "CNY"},
    "order.refunded": {"order_id": "o1", "amount": 5}, "redemption.requested": {"redemption_id": "r1", "points": 5},
    "customer.checked_in": {}, "content.shared": {"channel": "app"}, "review.posted": {"order_id": "o1", "rating": 5},
    "customer.visited": {}, "points.adjusted": {"points": -5, "reason": "ops"}, "customer.erased": {},
    "reward.claimed": {"claim_id": "k1", "reward_id": "w1"},
    "coupon.used": {"coupon_id": "c1:k1", "order_id": "o1", "amount": "0.01"}, "clock.tick": {},
    "hold.requested": {"hold_id": "h1", "points": 5, "expires_in": 600}, "hold.captured": {"hold_id": "h1"},
    "hold.released": {"hold_id": "h1"},
}


@pytest.mark.parametrize("event_type", sorted(VALID_DOCUMENTS))
def test_every_field_swept_through_boundary_values_gives_the_reference_result(event_type):
    payload_model = EVENT_TYPES[event_type].model_fields["payload"].annotation
    payload_keys = {field.alias or name for name, field in payload_model.model_fields.items()} | {"amount_minor"}
    envelope = {"event_id": "e1", "event_type": event_type, "customer_id": None if event_type in BROADCAST else "c1",
                "occurred_at": "2026-01-01T00:00:00+08:00", "schema_version": 1}
    assert isinstance(fast_event({**envelope, "payload": VALID_DOCUMENTS[event_type]}), EventBase)
    for value in BOUNDARY_VALUES:
        for name in (*envelope, "occurred_at_ms", "payload"):
            assert_same({**envelope, "payload": VALID_DOCUMENTS[event_type], name: value}, b"c1", 1_767_196_800_000)
        for name in sorted(payload_keys):
            assert_same({**envelope, "payload": {**VALID_DOCUMENTS[event_type], name: value}}, b"c1",
                        1_767_196_800_000)


def test_the_fast_path_takes_every_event_of_the_synthetic_history_and_builds_the_reference_event():
    for document in synthetic_history(3_000, 300, seed=11):
        event = fast_event(orjson.loads(orjson.dumps(document)))
        assert event is not None, document
        assert snapshot(event) == snapshot(validate_document_reference(document)), document
    assert {d["event_type"] for d in synthetic_history(3_000, 300, seed=11)} >= set(EVENT_TYPES) - {
        "policy.changed", "reward.claimed", "coupon.used", "hold.requested", "hold.captured", "hold.released"}


def test_the_fast_path_leaves_unusual_documents_to_pydantic():
    base = {"event_id": "e1", "event_type": "customer.visited", "customer_id": "c1",
            "occurred_at": "2026-01-01T00:00:00Z", "payload": {"channel": "app"}}
    assert isinstance(fast_event(base), CustomerVisited)
    for odd in ({**base, "occurred_at_ms": 1}, {**base, "extra": 1}, {**base, "schema_version": True},
                {**base, "customer_id": Text("c1")}, {**base, "payload": {"channel": "a\nb"}},
                {**base, "payload": {"channel": "app", "x": 1}}, {**base, "occurred_at": "2026-01-01T00:00:00"}):
        assert fast_event(odd) is None, odd


def test_a_shared_payload_is_what_pydantic_gives_for_an_equal_payload():
    base = {"event_id": "e1", "event_type": "content.shared", "customer_id": "c1", "occurred_at": "2026-01-01T00:00:00Z"}
    first = validate_document({**base, "payload": {"channel": "app"}})
    for payload in ({"channel": "app"}, {"channel": Text("app")}, {Text("channel"): "app"}, {"channel": None},
                    {"channel": 1}, {"channel": True}, {}):
        assert_same({**base, "payload": payload})
    assert validate_document({**base, "payload": {"channel": "app"}}).payload is first.payload


def test_the_snapshot_tells_apart_what_the_fast_path_could_get_wrong():
    # The comparison must see a wrong fields set and a copied default payload, not only the field values.
    event = validate_document_reference({"event_id": "e1", "event_type": "customer.visited", "customer_id": "c1",
                                         "occurred_at": "2026-01-01T00:00:00Z"})
    assert snapshot(event.model_copy()) == snapshot(event)
    assert snapshot(event.model_copy(update={"payload": ChannelPayload()})) != snapshot(event)
    wider = event.model_copy()
    object.__setattr__(wider, "__pydantic_fields_set__", {*event.model_fields_set, "schema_version"})
    assert snapshot(wider) != snapshot(event)


REGISTERED = (b'{"event_id":"e1","event_type":"customer.registered","customer_id":"c1",'
              b'"occurred_at":"2026-01-01T00:00:00Z","schema_version":1,"payload":{}}')
# Raw JSON a foreign producer may send, for the sweep below: what a JSON parser may read in more than one way.
HOSTILE_TOKENS = [
    "NaN", "Infinity", "-Infinity", "-0", "-0.0", "0e0", "1e-999999999", "1e999999999", "1E2", "5.0", "5e0",
    "600", "1", "5", "-5", "1000000000000", "1000000000001", "-1000000000001", "9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616", "1" + "0" * 40, "0.1e1", "12.34e0",
    "true", "false", "null", "[]", "{}", "[1]", '{"a":1}', '"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"',
    '"\xed\xa0\x80"', '"\xff"', '"\xc0\xaf"', '"a\\u0000"', '"a\\n"', '"a\\r"', '"a\\u007f"', '"a\\u2028"',
    '"\\u00a0"', '"\uff11\uff12"', '"\u0661\u0662.\u0665"', '"12.50"', '"1e3"', '"12.345"', '"0.00"', '" 1"',
    '"CNY\\n"', '"cny"', '"\u0130BC"', '"2026-01-01T00:00:00+0800"', '"2026-01-01T00:00:00.0009999Z"',
    '"2026-01-01T00:00:00,5Z"', '"2026-01-01 00:00:00z"', '"2026-01-01T00:00:00.9999999+08:00"',
    '"\uff12026-01-01T00:00:00Z"', '"02-29"', '"Asia/Tokyo"', '"' + "x" * 129 + '"', '"' + "\U0001f600" * 64 + '"',
    '"' + "\U0001f600" * 65 + '"', '"customer.visited"', '"order.paid"', '"clock.tick"', '"policy.changed"',
]


def _items(mapping: dict) -> list[str]:
    """A JSON object's members as text, in order."""
    return [f"{json.dumps(key)}:{json.dumps(value, ensure_ascii=False)}" for key, value in mapping.items()]


def _message(envelope: list[str], payload: list[str]) -> bytes:
    """A message from its members' texts (the payload last), as raw UTF-8 (invalid sequences kept)."""
    text = "{" + ",".join([*envelope, '"payload":{' + ",".join(payload) + "}"]) + "}"
    return text.encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("event_type", sorted(VALID_DOCUMENTS))
def test_hostile_raw_values_and_duplicate_keys_give_the_reference_result(event_type):
    # Each token replaces a field, comes before it (the document's value wins) or after it (the token wins).
    envelope = {"event_id": "e1", "event_type": event_type, "customer_id": None if event_type in BROADCAST else "c1",
                "occurred_at": "2026-01-01T00:00:00+08:00", "schema_version": 1}
    payload = VALID_DOCUMENTS[event_type]
    assert isinstance(fast_event(orjson.loads(_message(_items(envelope), _items(payload)))), EventBase)
    names = [("envelope", name) for name in (*envelope, "occurred_at_ms", "extra")]
    names += [("payload", name) for name in (*payload, "amount", "amount_minor", "points", "channel", "extra")]
    for token in HOSTILE_TOKENS:
        for level, name in names:
            member = f'"{name}":{token}'
            for where in ("replace", "before", "after"):
                parts = {"envelope": _items(envelope), "payload": _items(payload)}
                items = parts[level]
                if where == "replace":
                    items[:] = [item for item in items if not item.startswith(f'"{name}":')] + [member]
                else:
                    items.insert(0 if where == "before" else len(items), member)
                assert_same_bytes(_message(parts["envelope"], parts["payload"]), b"c1", 1_767_196_800_000)


@pytest.mark.parametrize("raw", [
    b"\xef\xbb\xbf" + REGISTERED, b" \n" + REGISTERED + b" \t", REGISTERED + b"x", REGISTERED + b"\x00",
    REGISTERED[:-1], REGISTERED.replace(b'"payload":{}', b'"payload":null'), REGISTERED.replace(b"{}", b"[]"),
    REGISTERED.replace(b'"c1"', b'"c\\u0031"'), REGISTERED.replace(b'"event_id"', b'"event\\u005fid"'),
    REGISTERED.replace(b'"payload":{}', b'"payload":{},"payload":{"birthday":"13-01"}'),
    REGISTERED.replace(b'"payload":{}', b'"payload":{"birthday":"13-01"},"payload":{}'),
    REGISTERED.replace(b"{}", b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}"), b"[" + REGISTERED + b"]", b"null", b"1",
])
def test_hostile_whole_messages_give_the_reference_result(raw):
    assert_same_bytes(raw, b"c1", 1_767_196_800_000)
