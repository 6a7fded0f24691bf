"""Validation bounds (issue "Nothing lost, nothing stops the worker", defect 3a): every input that once passed
validation and then crashed the worker is now a rejection, and valid events at the bounds fold without error."""
from __future__ import annotations

import json

import orjson
import pytest

from projections.effects import Output
from schemas.events import MAX_AMOUNT_MINOR, POINTS_LIMIT, EventBase
from schemas.policy import LimitsPolicy, Policy, PolicyError, load_policy
from schemas.timeutil import MAX_OCCURRED_AT_MS, MIN_OCCURRED_AT_MS, format_ms, parse_rfc3339_ms
from schemas.validate import Rejection, validate_message, validate_record
from tests.support.events import doc, ev, tick
from tests.support.scenario import given

POLICY = Policy()
NOW_MS = parse_rfc3339_ms("2026-01-01T00:00:00Z")  # the Kafka record's timestamp in these tests


def raw(event_type: str, at: str = "2026-01-01T00:00:00Z", customer="c1", id=None, **payload) -> bytes:
    # json, not orjson: orjson cannot write integers beyond 64 bits
    return json.dumps(doc(event_type, at, customer, id, **payload), ensure_ascii=False).encode()


def rejected(value: bytes, key=b"c1", timestamp_ms=None) -> Rejection:
    result = validate_record(value, key, POLICY, timestamp_ms)
    assert isinstance(result, Rejection), result
    return result


# ---- each input that crashed the worker (it passed validation) -------------------------------------------


@pytest.mark.parametrize("amount", ["1e30", "1e309", "1E+400", "1e999999999", 1e308, 1e30, 10**30,
                                    "10000000000.01", 18446744073709551616])
def test_a_huge_amount_is_invalid_field(amount):
    rejection = rejected(raw("order.paid", order_id="o1", amount=amount))
    assert rejection.reason == "invalid_field" and rejection.detail.startswith("payload.amount: ")
    assert "maximum" in rejection.detail


@pytest.mark.parametrize("amount", ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "-0", "-0.00",
                                    "1e-999999999", "0.001", "x" * 2_000_000, "1_000.00" * 10])
def test_amounts_that_are_not_a_positive_cent_amount_are_invalid_field(amount):
    rejection = rejected(raw("order.refunded", order_id="o1", amount=amount))
    assert (rejection.reason, rejection.detail[:15]) == ("invalid_field", "payload.amount:")
    assert len(rejection.detail) < 200


@pytest.mark.parametrize("event_type, payload", [
    ("points.adjusted", {"points": 9223372036854775807, "reason": "x"}),
    ("points.adjusted", {"points": -9223372036854775807, "reason": "x"}),
    ("points.adjusted", {"points": POINTS_LIMIT + 1, "reason": "x"}),
    ("points.adjusted", {"points": -POINTS_LIMIT - 1, "reason": "x"}),
    ("points.adjusted", {"points": 18446744073709551616, "reason": "x"}),  # parsed as a float
    ("redemption.requested", {"redemption_id": "r1", "points": 9223372036854775807}),
    ("redemption.requested", {"redemption_id": "r1", "points": POINTS_LIMIT + 1}),
])
def test_points_beyond_the_limit_are_invalid_field(event_type, payload):
    rejection = rejected(raw(event_type, **payload))
    assert rejection.reason == "invalid_field" and rejection.detail.startswith("payload.points: ")


@pytest.mark.parametrize("event_type, at, payload", [
    ("clock.tick", "9999-06-01T00:00:00Z", {}),  # with a birthday customer: year 10000
    ("customer.visited", "0001-01-01T00:00:00+08:00", {}),  # before year 1 in UTC
    ("customer.checked_in", "9999-12-31T20:00:00Z", {}),  # year 10000 in Asia/Shanghai
    ("customer.checked_in", "9999-12-31T20:00Z", {}),
    ("order.paid", "9999-06-01T00:00:00Z", {"order_id": "o1", "amount": "1.00"}),  # its lot expires in 10000
    ("customer.visited", "1999-12-31T23:59:59.999Z", {}),
    ("customer.visited", "2200-01-01T00:00:00Z", {}),
    ("customer.visited", "2200-01-01T08:00:00+08:00", {}),
    ("customer.visited", "2000-01-01T07:59:59+08:00", {}),
    ("customer.visited", "0001-01-01T00:00:00-23:59", {}),
    ("customer.visited", "9999-12-31T23:59:59-23:59", {}),
])
def test_occurred_at_outside_2000_to_2200_is_invalid_field(event_type, at, payload):
    customer = None if event_type == "clock.tick" else "c1"
    rejection = rejected(raw(event_type, at, customer, **payload))
    assert rejection.reason == "invalid_field" and rejection.detail.startswith("occurred_at: ")


@pytest.mark.parametrize("text", ["x" * 10_000, "2026-01-01T00:00:00\x00Z", "2026-01-01T00:00:00 Z",
                                  "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00+24:00",
                                  "2026-W01-1T00:00:00Z", "２０２６-01-01T00:00:00Z", "2026-01-01T00:00Z"])
def test_parse_rfc3339_ms_raises_only_value_error(text):
    with pytest.raises(ValueError):
        parse_rfc3339_ms(text)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-23:59"])
def test_parse_rfc3339_ms_of_the_extreme_years_is_outside_the_bounds(text):
    assert not MIN_OCCURRED_AT_MS <= parse_rfc3339_ms(text) < MAX_OCCURRED_AT_MS


@pytest.mark.parametrize("field, value", [
    ("event_id", "e\x00"), ("event_id", "e\n1"), ("event_id", "\x7f"), ("event_id", "x" * 2_000_000),
    ("order_id", "o\x00"), ("order_id", "o\x1f"),
])
def test_ids_with_control_characters_or_too_long_are_invalid_field(field, value):
    if field == "event_id":
        value_bytes = raw("order.paid", id=value, order_id="o1", amount="1.00")
    else:
        value_bytes = raw("order.paid", order_id=value, amount="1.00")
    rejection = rejected(value_bytes)
    assert rejection.reason == "invalid_field"
    assert rejection.detail.split(":")[0] in (field, f"payload.{field}")


def test_a_redemption_id_with_a_control_character_is_invalid_field():
    rejection = rejected(raw("redemption.requested", redemption_id="r\x00", points=5))
    assert rejection.detail == "payload.redemption_id: must not contain control characters"


@pytest.mark.parametrize("event_type, payload, field", [
    ("points.adjusted", {"points": 10, "reason": "x" * 2_000_000}, "payload.reason"),
    ("customer.visited", {"channel": "x" * 2_000_000}, "payload.channel"),
    ("content.shared", {"channel": "x" * 257}, "payload.channel"),
    ("redemption.requested", {"redemption_id": "r1", "points": 5, "reward": "x" * 2_000_000}, "payload.reward"),
    ("customer.profile_updated", {"timezone": "Europe/" + "x" * 2_000_000}, "payload.timezone"),
])
def test_free_text_longer_than_256_characters_is_invalid_field(event_type, payload, field):
    rejection = rejected(raw(event_type, **payload))
    assert rejection.reason == "invalid_field" and rejection.detail.startswith(field)
    assert len(rejection.detail) < 200  # the input is quoted 64 characters at most


def test_free_text_keeps_unicode_and_newlines_up_to_256_characters():
    event = validate_record(raw("points.adjusted", points=5, reason="客服\n" + "x" * 253), b"c1", POLICY)
    assert isinstance(event, EventBase) and len(event.payload.reason) == 256


@pytest.mark.parametrize("value", [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"event_id": "d", "payload": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    b'{"event_type": ' + b"[" * 1000 + b"]" * 1000 + b"}",  # str() of it would recurse too deep
    b'{"event_type": ' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}",
])
def test_deeply_nested_json_is_a_rejection(value):
    assert isinstance(validate_record(value, b"c1", POLICY, NOW_MS), Rejection)


def test_too_deep_json_is_invalid_json():
    assert rejected(b"[" * 10_000 + b"]" * 10_000).reason == "invalid_json"


@pytest.mark.parametrize("value", [b"\xff\xfe\x00{", b"\x00", b'{"a":"\x00"}', b"x" * 2_000_000,
                                   b'"' + b"x" * 2_000_000 + b'"', b"\xc3\x28", b"{}" * 100_000])
def test_bytes_that_are_not_an_event_are_rejected(value):
    rejection = rejected(value)
    assert rejection.reason in ("invalid_json", "not_an_object", "unknown_event_type")
    assert len(rejection.detail) <= 200


def test_an_unknown_event_type_is_quoted_64_characters_at_most():
    rejection = rejected(raw("x" * 2_000_000))
    assert rejection.reason == "unknown_event_type" and len(rejection.detail) < 100


def test_an_error_anywhere_in_validation_is_a_rejection_not_an_exception(monkeypatch):
    import schemas.validate as validation

    def explode(doc):
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(validation, "validate_document", explode)
    rejection = validation.validate_message(raw("customer.visited"), b"c1")
    assert rejection == Rejection("invalid_field", "event: cannot be validated (RecursionError)")


@pytest.mark.parametrize("value", [None, b"", bytearray(b"{}"), memoryview(b"[]"), "text"])
def test_any_value_type_is_a_rejection(value):
    assert isinstance(validate_message(value), Rejection)


# ---- the policy's [limits] -------------------------------------------------------------------------------------


def test_limits_defaults():
    limits = Policy().limits
    assert (limits.max_amount, limits.max_amount_minor) == (LimitsPolicy().max_amount, 100_000_000)
    assert (limits.max_future_seconds, limits.max_dlq_raw_bytes) == (86_400, 100_000)


def test_limits_from_a_policy_file(tmp_path):
    path = tmp_path / "loyalty.toml"
    path.write_text('[limits]\nmax_amount = "250.50"\nmax_future_seconds = 0\nmax_dlq_raw_bytes = 2048\n')
    limits = load_policy(path).limits
    assert (limits.max_amount_minor, limits.max_future_seconds, limits.max_dlq_raw_bytes) == (25_050, 0, 2048)


@pytest.mark.parametrize("text", ['max_amount = "0"', 'max_amount = "1.005"', 'max_amount = "1e30"',
                                  "max_future_seconds = -1", "max_dlq_raw_bytes = 1023", "max_dlq_raw_bytes = 10000000",
                                  "max_amount_minor = 5"])
def test_invalid_limits_are_policy_errors(tmp_path, text):
    path = tmp_path / "loyalty.toml"
    path.write_text(f"[limits]\n{text}\n")
    with pytest.raises(PolicyError, match="limits"):
        load_policy(path)


def test_an_amount_above_the_policy_maximum_is_invalid_field_and_the_maximum_itself_is_accepted():
    assert isinstance(validate_record(raw("order.paid", order_id="o1", amount="1000000.00"), b"c1", POLICY),
                      EventBase)
    rejection = rejected(raw("order.paid", order_id="o1", amount="1000000.01"))
    assert rejection == Rejection("invalid_field", "payload.amount: 1000000.01 exceeds the maximum of 1000000.00 "
                                                   "([limits] max_amount)")
    assert rejected(raw("order.refunded", order_id="o1", amount=2_000_000)).reason == "invalid_field"


def test_validate_message_checks_the_maximum_amount_only_when_given():
    value = raw("order.paid", order_id="o1", amount="5000000.00")
    assert isinstance(validate_message(value, b"c1", "CNY"), EventBase)
    assert validate_message(value, b"c1", "CNY", max_amount_minor=100_000_000).reason == "invalid_field"


@pytest.mark.parametrize("event_type, customer", [("customer.visited", "c1"), ("clock.tick", None)])
def test_an_event_more_than_max_future_seconds_after_its_record_is_occurred_at_in_future(event_type, customer):
    on_time = raw(event_type, format_ms(NOW_MS + 86_400_000), customer)
    too_late = raw(event_type, format_ms(NOW_MS + 86_400_001), customer)
    assert isinstance(validate_record(on_time, b"c1", POLICY, NOW_MS), EventBase)
    rejection = rejected(too_late, timestamp_ms=NOW_MS)
    assert rejection.reason == "occurred_at_in_future"
    assert "86400 s" in rejection.detail
    assert isinstance(validate_record(too_late, b"c1", POLICY, None), EventBase)  # timestamp unknown
    assert isinstance(validate_record(too_late, b"c1", POLICY, -1), EventBase)
    assert isinstance(validate_message(too_late, b"c1", timestamp_ms=NOW_MS), EventBase)  # no max_future_ms


def test_validate_record_uses_the_policy_currency_and_requires_the_key():
    assert rejected(raw("order.paid", order_id="o1", amount="1", currency="USD")).reason == "unsupported_currency"
    assert rejected(raw("customer.visited"), key=None).reason == "key_mismatch"
    assert isinstance(validate_record(raw("clock.tick", customer=None), None, POLICY), EventBase)


# ---- valid events at the bounds fold without error ----------------------------------------------------------


def test_the_bounds_are_2000_and_2200_utc():
    assert format_ms(MIN_OCCURRED_AT_MS) == "2000-01-01T00:00:00Z"
    assert format_ms(MAX_OCCURRED_AT_MS) == "2200-01-01T00:00:00Z"
    assert MAX_AMOUNT_MINOR == 10**12


@pytest.mark.parametrize("timezone", ["Asia/Shanghai", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
@pytest.mark.parametrize("birthday", ["02-29", "12-31", "01-01"])
def test_a_birthday_customer_folds_through_the_last_valid_instant(timezone, birthday):
    scenario = given(ev("customer.registered", "2000-01-01T00:00:00Z", birthday=birthday, timezone=timezone),
                     ev("order.paid", "2000-01-01T00:00:00Z", order_id="o0", amount="1000000.00"))
    scenario.when(tick("2199-12-31T23:00:00Z"),
                  ev("order.paid", "2199-12-31T23:30:00Z", order_id="o1", amount="1000000.00"),
                  ev("points.adjusted", "2199-12-31T23:40:00Z", points=POINTS_LIMIT, reason="max"),
                  ev("redemption.requested", "2199-12-31T23:50:00Z", redemption_id="r1", points=POINTS_LIMIT),
                  ev("points.adjusted", "2199-12-31T23:55:00Z", points=-POINTS_LIMIT, reason="min"),
                  ev("customer.checked_in", "2199-12-31T23:59:59.999Z"),
                  tick("2199-12-31T23:59:59.999Z"))
    state = scenario.state()
    assert state.to_bytes() and all(orjson.dumps(effect.record) for effect in scenario.history if isinstance(effect, Output))


def test_the_largest_amount_validation_accepts_earns_its_points():
    amount = f"{MAX_AMOUNT_MINOR // 100}.00"
    scenario = given(ev("order.paid", "2199-06-01T00:00:00Z", order_id="o1", amount=amount))
    assert scenario.state().points_balance == MAX_AMOUNT_MINOR // 100
    scenario.when(tick("2199-12-31T23:59:59Z"))
