"""Validation of input events (docs/events.md) and loading of the policy (docs/rules.md)."""
from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from schemas.events import EVENT_TYPES, EventBase
from schemas.policy import Policy, PolicyError, load_policy
from schemas.policy_doc import policy_changed_document
from schemas.validate import Rejection, validate_document, validate_message
from tests.support.events import doc

VALID = [
    doc("customer.registered", birthday="1990-05-20", timezone="Europe/Berlin"),
    doc("customer.registered", birthday="05-20"),
    doc("customer.registered"),
    doc("customer.profile_updated", timezone="America/New_York"),
    doc("order.paid", order_id="o1", amount="19.99"),
    doc("order.paid", order_id="o1", amount=19.99, currency="USD"),
    doc("order.refunded", order_id="o1", amount="5"),
    doc("redemption.requested", redemption_id="r1", points=100, reward="mug"),
    doc("customer.checked_in"),
    doc("content.shared", channel="wechat"),
    doc("content.shared"),
    doc("review.posted", order_id="o1", rating=5),
    doc("customer.visited", channel="app"),
    doc("points.adjusted", points=-20, reason="goodwill correction"),
    doc("customer.erased"),
    doc("reward.claimed", claim_id="k1", reward_id="mug"),
    doc("coupon.used", coupon_id="c1:k1", order_id="o1"),
    doc("coupon.used", coupon_id="c1:k1", order_id="o1", amount="59.90"),
    doc("hold.requested", hold_id="h1", points=300, expires_in=900),
    doc("hold.captured", hold_id="h1", points=200),
    doc("hold.captured", hold_id="h1"),
    doc("hold.released", hold_id="h1"),
    doc("clock.tick", customer=None),
    policy_changed_document(Policy(), "2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z", "p1", name="spring"),
]


def rejection_of(document: object) -> Rejection:
    result = validate_document(document)
    assert isinstance(result, Rejection), result
    return result


def with_fields(document: dict, **fields: object) -> dict:
    return {**document, **fields}


def without(document: dict, field: str) -> dict:
    return {k: v for k, v in document.items() if k != field}


@pytest.mark.parametrize("document", VALID, ids=lambda d: d["event_type"])
def test_every_event_type_validates_into_its_model(document):
    event = validate_document(document)
    assert isinstance(event, EventBase), event
    assert isinstance(event, EVENT_TYPES[document["event_type"]])
    assert event.event_id == document["event_id"]


def test_every_contract_event_type_is_covered():
    assert {d["event_type"] for d in VALID} == set(EVENT_TYPES)


def test_schema_version_defaults_to_1_and_1_is_accepted():
    assert validate_document(doc("customer.visited")).schema_version == 1
    assert isinstance(validate_document(with_fields(doc("customer.visited"), schema_version=1)), EventBase)


@pytest.mark.parametrize("raw", [b"", b"{not json", b"\xff\xfe"])
def test_bytes_that_are_not_json_are_invalid_json(raw):
    assert validate_message(raw, b"c1").reason == "invalid_json"


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"text"', b"null"])
def test_json_that_is_not_an_object_is_rejected(raw):
    assert validate_message(raw, b"c1").reason == "not_an_object"


@pytest.mark.parametrize("event_type", ["order.shipped", None, 7, "ORDER.PAID"])
def test_unknown_event_type_is_rejected(event_type):
    assert rejection_of(with_fields(doc("customer.visited"), event_type=event_type)).reason == "unknown_event_type"


def test_missing_event_type_is_unknown_event_type():
    assert rejection_of(without(doc("customer.visited"), "event_type")).reason == "unknown_event_type"


@pytest.mark.parametrize("document, field", [
    (without(doc("customer.visited"), "event_id"), "event_id"),
    (without(doc("customer.visited"), "customer_id"), "customer_id"),
    (without(doc("customer.visited"), "occurred_at"), "occurred_at"),
    (without(doc("order.paid", order_id="o1", amount="1"), "payload"), "payload"),
    (doc("order.paid", order_id="o1"), "payload.amount"),
    (doc("order.paid", amount="1"), "payload.order_id"),
    (doc("order.refunded", order_id="o1"), "payload.amount"),
    (doc("redemption.requested", points=5), "payload.redemption_id"),
    (doc("redemption.requested", redemption_id="r1"), "payload.points"),
    (doc("review.posted", order_id="o1"), "payload.rating"),
    (doc("points.adjusted", points=5), "payload.reason"),
])
def test_missing_field_is_rejected_and_named(document, field):
    rejection = rejection_of(document)
    assert rejection.reason == "missing_field"
    assert rejection.detail.startswith(field)


@pytest.mark.parametrize("document, field", [
    (doc("order.paid", order_id="o1", amount=0), "payload.amount"),
    (doc("order.paid", order_id="o1", amount="0.00"), "payload.amount"),
    (doc("order.paid", order_id="o1", amount="-5"), "payload.amount"),
    (doc("order.refunded", order_id="o1", amount=-1), "payload.amount"),
    (doc("order.paid", order_id="o1", amount="19.999"), "payload.amount"),
    (doc("order.paid", order_id="o1", amount=0.001), "payload.amount"),
    (doc("order.paid", order_id="o1", amount=0.1 + 0.2), "payload.amount"),  # 0.30000000000000004
    (doc("order.paid", order_id="o1", amount="abc"), "payload.amount"),
    (doc("order.paid", order_id="o1", amount="NaN"), "payload.amount"),
    (doc("order.paid", order_id="o1", amount=True), "payload.amount"),
    (doc("order.paid", order_id="o1", amount=None), "payload.amount"),
    (doc("order.paid", order_id="o1", amount="1", currency="yuan"), "payload.currency"),
    (doc("review.posted", order_id="o1", rating=0), "payload.rating"),
    (doc("review.posted", order_id="o1", rating=6), "payload.rating"),
    (doc("review.posted", order_id="o1", rating="5"), "payload.rating"),
    (doc("review.posted", order_id="o1", rating=4.5), "payload.rating"),
    (doc("redemption.requested", redemption_id="r1", points=0), "payload.points"),
    (doc("redemption.requested", redemption_id="r1", points=-3), "payload.points"),
    (doc("redemption.requested", redemption_id="r1", points=2.5), "payload.points"),
    (doc("points.adjusted", points="7", reason="x"), "payload.points"),
    (doc("customer.registered", birthday="1990/05/20"), "payload.birthday"),
    (doc("customer.registered", birthday="02-30"), "payload.birthday"),
    (doc("customer.registered", birthday="2001-02-29"), "payload.birthday"),
    (doc("customer.registered", birthday="13-01"), "payload.birthday"),
    (doc("customer.profile_updated", timezone="Mars/Olympus_Mons"), "payload.timezone"),
    (doc("customer.profile_updated", timezone="+08:00"), "payload.timezone"),
    (doc("customer.visited", at="2026-01-01T10:00:00"), "occurred_at"),
    (doc("customer.visited", at="2026-01-01"), "occurred_at"),
    (doc("customer.visited", at="yesterday at noon, more or less"), "occurred_at"),
    (doc("customer.visited", at=1767232800), "occurred_at"),
    (doc("customer.visited", id=""), "event_id"),
    (doc("customer.visited", id="x" * 129), "event_id"),
    (doc("customer.visited", customer=""), "customer_id"),
    (doc("customer.visited", customer="c" * 65), "customer_id"),
    (doc("customer.visited", customer=None), "customer_id"),
    (with_fields(doc("customer.visited"), schema_version="1"), "schema_version"),
    (with_fields(doc("customer.visited"), schema_version=0), "schema_version"),
    (with_fields(doc("customer.visited"), payload=[1]), "payload"),
])
def test_invalid_field_is_rejected_and_named(document, field):
    rejection = rejection_of(document)
    assert rejection.reason == "invalid_field", rejection
    assert rejection.detail.startswith(field), rejection
    assert rejection.error.startswith("invalid_field: ")


def test_birthday_29_february_is_accepted_without_a_year_and_in_a_leap_year():
    assert isinstance(validate_document(doc("customer.registered", birthday="02-29")), EventBase)
    assert isinstance(validate_document(doc("customer.registered", birthday="2000-02-29")), EventBase)


@pytest.mark.parametrize("version", [2, 99])
def test_future_schema_version_is_unsupported(version):
    rejection = rejection_of(with_fields(doc("customer.visited"), schema_version=version))
    assert rejection.reason == "unsupported_schema_version"


def test_message_key_must_equal_customer_id():
    raw = orjson.dumps(doc("customer.visited", customer="c1"))
    assert isinstance(validate_message(raw, b"c1"), EventBase)
    assert validate_message(raw, b"c2").reason == "key_mismatch"


def test_tick_is_accepted_under_any_key():
    assert isinstance(validate_message(orjson.dumps(doc("clock.tick", customer=None)), b"p3"), EventBase)


@pytest.mark.parametrize("amount, minor", [
    ("19.99", 1999), (19.99, 1999), ("0.01", 1), (0.01, 1), ("0.1", 10), (0.1, 10), (0.3, 30),
    ("1000", 100_000), (1000, 100_000), ("1000.00", 100_000), (1.1, 110), (4.35, 435), (1.15, 115),
    ("99999999.99", 9_999_999_999), (123456.78, 12_345_678),
])
def test_amount_as_string_or_number_becomes_exact_minor_units(amount, minor):
    event = validate_document(doc("order.paid", order_id="o1", amount=amount))
    assert event.payload.amount_minor == minor
    assert type(event.payload.amount_minor) is int


def test_json_number_amount_is_exact_through_the_wire():
    event = validate_message(b'{"event_id":"e","event_type":"order.paid","customer_id":"c1",'
                             b'"occurred_at":"2026-01-01T10:00:00+08:00","payload":{"order_id":"o","amount":19.99}}',
                             b"c1")
    assert event.payload.amount_minor == 1999


@pytest.mark.parametrize("text, utc", [
    ("2026-01-01T10:00:00+08:00", "2026-01-01T02:00:00+00:00"),
    ("2026-01-01T02:00:00Z", "2026-01-01T02:00:00+00:00"),
    ("2026-01-01T02:00:00.250z", "2026-01-01T02:00:00.250000+00:00"),
    ("2025-12-31T21:00:00-05:00", "2026-01-01T02:00:00+00:00"),
])
def test_occurred_at_with_any_offset_is_the_same_instant(text, utc):
    from datetime import datetime
    expected_ms = int(datetime.fromisoformat(utc).timestamp() * 1000)
    assert validate_document(doc("customer.visited", at=text)).occurred_at_ms == expected_ms


def test_unknown_payload_fields_are_ignored_for_forward_compatibility():
    event = validate_document(doc("customer.checked_in", mood="happy"))
    assert isinstance(event, EventBase)


def test_events_are_frozen():
    event = validate_document(doc("customer.visited"))
    with pytest.raises(ValidationError, match="frozen_instance"):
        event.customer_id = "c2"
    assert event.customer_id == "c1"


# ---- policy --------------------------------------------------------------------------------


def write(tmp_path, text: str):
    path = tmp_path / "loyalty.toml"
    path.write_text(text)
    return path


def test_no_policy_file_gives_the_contract_defaults():
    policy = load_policy(None)
    assert policy == Policy()
    assert policy.earn.multiplier == {"standard": Decimal("1.0"), "premium": Decimal("1.2"), "vip": Decimal("1.5")}
    assert (policy.earn.checkin_points, policy.earn.checkin_daily_max) == (5, 1)
    assert (policy.earn.share_points, policy.earn.share_daily_max) == (2, 3)
    assert policy.earn.review_points == 10
    assert policy.lots.expiry_days == 365
    assert (policy.tier.window_days, policy.tier.premium_min_minor, policy.tier.vip_min_minor) == (365, 100_000, 500_000)
    assert (policy.status.purchase_window_days, policy.status.active_interaction_days,
            policy.status.dormant_after_days) == (365, 30, 180)
    assert (policy.campaigns.win_back_cooldown_days, policy.campaigns.birthday_grace_days) == (90, 3)
    assert policy.campaigns.default_timezone == "Asia/Shanghai"


def test_empty_policy_file_gives_the_defaults(tmp_path):
    assert load_policy(write(tmp_path, "")) == Policy()


def test_policy_file_overrides_one_key_and_keeps_the_other_defaults(tmp_path):
    policy = load_policy(write(tmp_path, "[lots]\nexpiry_days = 30\n\n[earn]\nshare_daily_max = 5\n"))
    assert policy.lots.expiry_days == 30
    assert policy.earn.share_daily_max == 5
    assert policy.earn.share_points == 2
    assert policy.tier == Policy().tier


def test_policy_file_overrides_thresholds_as_decimals(tmp_path):
    policy = load_policy(write(tmp_path, '[tier]\npremium_min = "500.50"\n'))
    assert policy.tier.premium_min_minor == 50_050


@pytest.mark.parametrize("text", [
    "[lots]\nexpiry_dayz = 30\n",
    "[earnings]\ncheckin_points = 5\n",
    "mystery = 1\n",
])
def test_unknown_policy_key_is_an_error(tmp_path, text):
    with pytest.raises(PolicyError):
        load_policy(write(tmp_path, text))


@pytest.mark.parametrize("text", [
    "[lots\nexpiry_days = 30\n",
    "expiry_days = = 3\n",
])
def test_invalid_toml_is_a_policy_error(tmp_path, text):
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(write(tmp_path, text))


@pytest.mark.parametrize("text", [
    "[lots]\nexpiry_days = 0\n",
    '[tier]\npremium_min = "6000"\n',
    '[earn]\nmultiplier = {standard = 1.0, premium = 1.2}\n',
    '[campaigns]\ndefault_timezone = "Nowhere/Special"\n',
])
def test_invalid_policy_values_are_errors(tmp_path, text):
    with pytest.raises(PolicyError):
        load_policy(write(tmp_path, text))


def test_missing_policy_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "absent.toml")


def test_an_order_in_another_currency_than_the_policy_is_rejected():
    raw = b'{"event_id":"e","event_type":"order.paid","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z",' \
          b'"payload":{"order_id":"o","amount":"1.00","currency":"USD"}}'
    assert validate_message(raw, b"c", "CNY").reason == "unsupported_currency"
    assert not isinstance(validate_message(raw, b"c", "USD"), Rejection)


def test_the_clock_section_sets_the_wall_tick_interval(tmp_path):
    path = tmp_path / "loyalty.toml"
    path.write_text("[clock]\ntick_seconds = 5\n")
    assert load_policy(path).clock.tick_seconds == 5
    assert load_policy(None).clock.tick_seconds == 60
