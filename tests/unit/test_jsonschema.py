"""The committed JSON Schema matches the models, and accepts what validation accepts."""
import orjson

from schemas.jsonschema import SCHEMA_PATH, event_json_schema, render


def test_the_committed_schema_is_up_to_date():
    assert SCHEMA_PATH.read_bytes() == render(), "run: python -m schemas.jsonschema"


def test_the_schema_names_every_event_type_and_uses_the_wire_field_names():
    schema = event_json_schema()
    text = orjson.dumps(schema).decode()
    for event_type in ("customer.registered", "order.paid", "order.refunded", "redemption.requested",
                       "customer.checked_in", "content.shared", "review.posted", "customer.visited",
                       "points.adjusted", "customer.erased", "customer.profile_updated", "clock.tick",
                       "reward.claimed", "coupon.used"):
        assert f'"{event_type}"' in text
    assert '"occurred_at"' in text and '"amount"' in text
    assert '"claim_id"' in text and '"reward_id"' in text and '"coupon_id"' in text
    assert "occurred_at_ms" not in text and "amount_minor" not in text
