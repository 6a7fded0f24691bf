"""Fuzzing validation (issue "Nothing lost, nothing stops the worker"): no input makes validation raise, and
every event it accepts folds, and serialises, without raising, even next to birthdays and at extreme times."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.effects import Output
from projections.partition import MemoryStore, PartitionFold
from schemas.events import EVENT_TYPES, EventBase
from schemas.policy import Policy
from schemas.policy_doc import policy_changed_document
from schemas.timeutil import MAX_OCCURRED_AT_MS, MIN_OCCURRED_AT_MS, format_ms
from schemas.validate import Rejection, validate_document, validate_message, validate_record
from tests.support.events import ev

FUZZ = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Rewards and member days too, so that claims, coupons and care campaigns meet the extreme times.
POLICY = Policy.model_validate({
    "rewards": {"o1": {"points": 1, "coupon_value": "10.00", "min_order": "0.01", "valid_days": 3650},
                "r1": {"points": 10**12, "percent_off": 100, "valid_days": 1, "refund_points_on_expiry": True,
                       "min_tier": "vip", "per_customer_per_year": 1}},
    "campaigns": {"member_day": {"monthly_day": 28, "dates": ["2199-12-31", "2000-01-01"],
                                 "statuses": ["active", "potential", "dormant"]}},
})
TIMESTAMPS = st.one_of(st.none(), st.just(-1), st.integers(0, 2**63 - 1),
                       st.integers(MIN_OCCURRED_AT_MS, MAX_OCCURRED_AT_MS))


@FUZZ
@given(value=st.one_of(st.binary(max_size=300), st.binary(max_size=20).map(lambda b: b"{" + b)),
       key=st.one_of(st.none(), st.binary(max_size=10)), timestamp_ms=TIMESTAMPS)
def test_validation_of_arbitrary_bytes_never_raises(value, key, timestamp_ms):
    assert isinstance(validate_message(value, key, "CNY"), (EventBase, Rejection))
    assert isinstance(validate_record(value, key, POLICY, timestamp_ms), (EventBase, Rejection))


# ---- hostile values -----------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(-10, 10**6), st.integers(-2**64, 2**64), st.integers(-10**40, 10**40),
    st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=0.001, max_value=10**7),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 0.0, 0.01, 0.005, 1e30, 2**63 - 1, -2**63, 2**64, 10**12,
                     10**12 + 1, -10**12, 10**10, 10**10 + 1, 999_999_999.99, 1_000_000]),
    st.sampled_from(["1e309", "1e30", "-1e309", "NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "-0", "0.00",
                     "0.01", "1000000.00", "1000000.01", "9999999999.99", "10000000000.00", "1e-999999999",
                     "1e999999999", "1E+2", " 12 ", "1_000", "0x10", "١٢", "12.3.4", ""]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.booleans(), st.none(),
)
TEXTS = st.one_of(
    st.sampled_from(["c1", "c2", "o1", "r1", "x" * 128, "x" * 129, "x" * 256, "x" * 257, "\x00c1", "c1\x7f",
                     "c\n1", "", " ", "客户", "😀" * 40]),
    st.text(max_size=20), st.text(st.characters(max_codepoint=0x20), max_size=5),
)
OFFSETS = st.one_of(st.sampled_from(["Z", "z", "+00:00", "-00:00", "+08:00", "+23:59", "-23:59", "+14:00",
                                     "-12:00", "+05:45", "", "+24:00", " Z"]),
                    st.builds(lambda h, m, sign: f"{sign}{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59),
                              st.sampled_from("+-")))
TIMES = st.one_of(
    st.sampled_from([
        "0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "9999-12-31T20:00:00Z",
        "9999-06-01T00:00:00Z", "2000-01-01T00:00:00Z", "1999-12-31T23:59:59.999Z", "2199-12-31T23:59:59.999Z",
        "2200-01-01T00:00:00Z", "2000-02-29T12:00:00+14:00", "2100-02-29T00:00:00Z", "2196-02-29T23:59:59-23:59",
        "2026-01-01T10:00:00", "2026-01-01", "2026-01-01T10:00:00.123456789+08:00", "1970-01-01T00:00:00Z"]),
    st.builds(lambda moment, offset: moment.strftime("%Y-%m-%dT%H:%M:%S") + offset,
              st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)), OFFSETS),
    st.builds(lambda moment, offset: moment.strftime("%Y-%m-%dT%H:%M:%S") + offset,
              st.datetimes(datetime(1999, 12, 30), datetime(2200, 1, 2)), OFFSETS),
    st.text(max_size=30), st.integers(), st.none(),
)
VALUES = st.one_of(NUMBERS, TEXTS, st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
# What a mutation may put into each field: mostly hostile, sometimes a valid extreme.
HOSTILE = {
    "event_id": TEXTS, "customer_id": st.one_of(TEXTS, st.none()), "occurred_at": TIMES, "payload": VALUES,
    "event_type": st.one_of(TEXTS, VALUES), "schema_version": st.sampled_from([1, 2, 0, -1, True, "1", 1.0, 2**70]),
    "amount": NUMBERS, "points": NUMBERS, "rating": NUMBERS, "order_id": TEXTS, "redemption_id": TEXTS,
    "reason": TEXTS, "channel": TEXTS, "reward": TEXTS, "claim_id": TEXTS, "reward_id": TEXTS, "coupon_id": TEXTS,
    "currency": st.sampled_from(["USD", "cny", "", "CN\x00"]),
    "birthday": st.sampled_from(["1900-02-29", "13-01", "00-00", "02-30", "", "\x00", "2-29"]),
    "timezone": st.sampled_from(["Mars/Base", "../../etc/passwd", "\x00", "", "Etc/GMT-14", "x" * 300]),
}
ENVELOPE = ("event_id", "customer_id", "occurred_at", "payload", "event_type", "schema_version")

# ---- valid values, many at their edges: a document of them alone validates ----------------------------

BIRTHDAYS = ["02-29", "2000-02-29", "1900-02-28", "0001-01-01", "9999-12-31", "12-31", "01-01"]
ZONES = ["Asia/Shanghai", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/St_Johns", "Etc/GMT+12", "UTC"]
VALID_TIMES = st.builds(
    lambda ms, minutes: datetime.fromtimestamp(ms / 1000, timezone(timedelta(minutes=minutes))).isoformat(),
    st.one_of(st.integers(MIN_OCCURRED_AT_MS, MAX_OCCURRED_AT_MS - 1),
              st.sampled_from([MIN_OCCURRED_AT_MS, MAX_OCCURRED_AT_MS - 1, MAX_OCCURRED_AT_MS - 3_600_000,
                               951_782_400_000, 7_232_803_200_000])),  # 2000-02-29, 2199-03-01
    st.sampled_from([0, 0, 480, -300, 23 * 60 + 59, -(23 * 60 + 59), 14 * 60, -12 * 60]))
VALID_AMOUNTS = st.one_of(
    st.integers(1, 10**12).map(lambda m: f"{m // 100}.{m % 100:02d}"), st.integers(1, 10**10),
    st.sampled_from(["0.01", "1000000.00", "10000000000.00", "1E+2", 0.01, 99.99, 1_000_000]))
VALID_IDS = st.one_of(st.sampled_from(["o1", "o1", "o2", "r1", "x" * 128, "客户-1", "😀", " "]),
                      st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=128))
VALID_TEXT = st.one_of(st.sampled_from(["ops", "x" * 256, "a\nb", "\x00"]), st.text(max_size=256))
PROFILE = st.fixed_dictionaries({}, optional={"birthday": st.sampled_from(BIRTHDAYS), "timezone": st.sampled_from(ZONES)})
VALID_PAYLOADS = {
    "customer.registered": PROFILE,
    "customer.profile_updated": PROFILE,
    "order.paid": st.fixed_dictionaries({"order_id": VALID_IDS, "amount": VALID_AMOUNTS},
                                        optional={"currency": st.just("CNY"),
                                                  "hold_id": st.one_of(st.none(), VALID_IDS)}),
    "order.refunded": st.fixed_dictionaries({"order_id": VALID_IDS, "amount": VALID_AMOUNTS}),
    "redemption.requested": st.fixed_dictionaries(
        {"redemption_id": VALID_IDS, "points": st.one_of(st.integers(1, 10**12), st.sampled_from([1, 10**12]))},
        optional={"reward": VALID_TEXT}),
    "customer.checked_in": st.just({}),
    "content.shared": st.fixed_dictionaries({}, optional={"channel": VALID_TEXT}),
    "review.posted": st.fixed_dictionaries({"order_id": VALID_IDS, "rating": st.integers(1, 5)}),
    "customer.visited": st.fixed_dictionaries({}, optional={"channel": VALID_TEXT}),
    "points.adjusted": st.fixed_dictionaries(
        {"points": st.one_of(st.integers(-10**12, 10**12), st.sampled_from([10**12, -10**12, 0])),
         "reason": VALID_TEXT.filter(bool)}),
    "customer.erased": st.just({}),
    "reward.claimed": st.fixed_dictionaries({"claim_id": VALID_IDS, "reward_id": st.sampled_from(["o1", "r1", "x"])}),
    "coupon.used": st.fixed_dictionaries(
        {"coupon_id": st.one_of(st.sampled_from(["c1:o1", "c2:r1", "c1:" + "x" * 128]), VALID_IDS),
         "order_id": VALID_IDS}, optional={"amount": VALID_AMOUNTS}),
    "hold.requested": st.fixed_dictionaries(
        {"hold_id": VALID_IDS, "points": st.one_of(st.integers(1, 10**12), st.sampled_from([1, 10**12])),
         "expires_in": st.one_of(st.integers(1, 30 * 86_400), st.sampled_from([1, 30 * 86_400]))}),
    "hold.captured": st.fixed_dictionaries({"hold_id": VALID_IDS},
                                           optional={"points": st.one_of(st.none(), st.integers(1, 10**12))}),
    "hold.released": st.fixed_dictionaries({"hold_id": VALID_IDS}),
    "clock.tick": st.just({}),
    "policy.changed": st.just(policy_changed_document(Policy(), "2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z",
                                                      "p1")["payload"]),
}
BROADCAST = ("clock.tick", "policy.changed")  # the event types without a customer


@st.composite
def near_valid_documents(draw) -> dict:
    """A valid document of a random type with up to two fields replaced by hostile or extreme values."""
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    document = {"event_id": draw(VALID_IDS), "event_type": event_type,
                "customer_id": None if event_type in BROADCAST else draw(st.sampled_from(["c1", "c2", "c3"])),
                "occurred_at": draw(VALID_TIMES), "payload": dict(draw(VALID_PAYLOADS[event_type]))}
    for field in draw(st.lists(st.sampled_from(sorted(HOSTILE)), max_size=2)):
        value = draw(HOSTILE[field])
        if field in ENVELOPE:
            document[field] = value
        elif isinstance(document["payload"], dict):
            document["payload"][field] = value
    return document


def dumps(document: dict) -> bytes:
    """Serialise like a foreign producer might: json writes integers beyond 64 bits and NaN (orjson would not)."""
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


def birthday_fold() -> PartitionFold:
    """A partition with customers whose birthdays, time zones, lots and debt reach the edges of the bounds."""
    fold = PartitionFold(MemoryStore(), POLICY)
    for event in (ev("customer.registered", "2000-01-01T00:00:00Z", customer="c1", birthday="02-29",
                     timezone="Pacific/Kiritimati"),
                  ev("customer.registered", "2000-01-01T00:00:00Z", customer="c2", birthday="12-31",
                     timezone="Pacific/Pago_Pago"),
                  ev("order.paid", "2000-01-01T00:00:01Z", customer="c1", order_id="o1", amount="1000000.00"),
                  ev("points.adjusted", "2000-01-01T00:00:02Z", customer="c2", points=-10**12, reason="debt"),
                  ev("reward.claimed", "2000-01-01T00:00:03Z", customer="c1", claim_id="o1", reward_id="o1")):
        fold.apply(event)
    return fold


def fold_and_serialise(fold: PartitionFold, event: EventBase) -> None:
    """Apply the event (twice: the second is a duplicate), then ticks up to the last valid instant."""
    ticks = sorted({min(event.occurred_at_ms + step, MAX_OCCURRED_AT_MS - 1)
                    for step in (1, 86_400_000, 366 * 86_400_000)} | {MAX_OCCURRED_AT_MS - 1})
    for item in (event, event, *(ev("clock.tick", format_ms(at), customer=None) for at in ticks)):
        _, effects = fold.apply(item)
        for effect in effects:
            if isinstance(effect, Output):  # notices are counted, never serialised
                orjson.dumps(effect.record)
    for state in fold.store.values():
        state.to_bytes()


@FUZZ
@given(document=near_valid_documents(), timestamp_ms=TIMESTAMPS)
def test_near_valid_events_never_make_validation_or_the_fold_raise(document, timestamp_ms):
    raw = dumps(document)
    customer_id = document["customer_id"]
    key = customer_id.encode("utf-8", "surrogatepass") if isinstance(customer_id, str) else None
    for result in (validate_document(document), validate_message(raw, key, "CNY"),
                   validate_record(raw, key, POLICY, timestamp_ms)):
        assert isinstance(result, (EventBase, Rejection))
        if isinstance(result, EventBase):
            assert MIN_OCCURRED_AT_MS <= result.occurred_at_ms < MAX_OCCURRED_AT_MS
            fold_and_serialise(birthday_fold(), result)


@FUZZ
@given(document=st.fixed_dictionaries({name: HOSTILE[name] for name in ENVELOPE}))
def test_documents_of_hostile_fields_never_make_validation_raise(document):
    assert isinstance(validate_message(dumps(document)), (EventBase, Rejection))
    assert isinstance(validate_document(document), (EventBase, Rejection))


@FUZZ
@given(moment=st.datetimes(datetime(2000, 1, 1), datetime(2199, 12, 31, 23, 59, 59)),
       offset_minutes=st.integers(-(23 * 60 + 59), 23 * 60 + 59),
       event_type=st.sampled_from(["customer.checked_in", "content.shared", "order.paid", "customer.visited"]))
def test_any_valid_instant_folds_next_to_birthdays(moment, offset_minutes, event_type):
    offset = timezone(timedelta(minutes=offset_minutes))
    at = moment.replace(tzinfo=timezone.utc).astimezone(offset).isoformat()
    payload = {"order_id": "o9", "amount": "1000000.00"} if event_type == "order.paid" else {}
    event = validate_document({"event_id": "f1", "event_type": event_type, "customer_id": "c1", "occurred_at": at,
                               "payload": payload})
    assert isinstance(event, EventBase), (at, event)
    fold_and_serialise(birthday_fold(), event)
