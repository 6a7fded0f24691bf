"""The JSON form of a customer state (to_dict), and what main stored as JSON before the typed records and msgpack.

States are stored as msgpack now (tests/unit/test_state_upgrade.py); JSON bytes of every earlier version still
load, and to_dict still gives the same JSON, which these tests compare byte for byte.
"""
from __future__ import annotations

import msgspec
import orjson

from projections.state import EXPIRED, OPEN, USED, CustomerState, Hold, Lot, Order, Pending, Rfm

# A state as stored (RocksDB, changelog) by main before lots, orders and coupons became records: a
# history with lots, an order refunded, one reviewed, and coupons used, expired and open.
STORED_BY_MAIN = (
    b'{"customer_id":"c1","birthday":"1990-05-17","timezone":"Europe/Paris","first_seen_ms":1767232800000,'
    b'"as_of_ms":1768528800000,"events_applied":11,"seen_event_ids":{"e1":1767232800000,"e2":1767236400000,'
    b'"e3":1767319200000,"e4":1767405600000,"e5":1767409200000,"e6":1767492000000,"e7":1767495600000,'
    b'"e8":1767499200000,"e9":1767578400000,"e10":1767664800000,"e11":1768528800000},"lots":[[1798855200000,11],'
    b'[1798945200000,10],[1799028000000,5],[1799899200000,50]],"debt_points":0,"points_balance":76,'
    b'"ledger_seq":10,"orders":{"o1":[1767236400000,120000,0,1200,0,1],"o2":[1767319200000,8050,3000,96,35,0]},'
    b'"redemption_ids":{},"daily_counts":{"checkin|2026-01-04":1},"lifetime_spend_minor":125050,'
    b'"spend_12m_minor":125050,"last_purchase_ms":1767319200000,"last_interaction_ms":1768528800000,'
    b'"tier":"premium","status":"active","last_win_back_ms":null,"birthday_done_year":2025,'
    b'"birthday_due_ms":1778968800000,"tier_due_ms":1798772400000,"next_due_ms":1769997600000,"orders_12m":2,'
    b'"rfm":[5,2,3],"value":"medium","rfm_due_ms":1769997600000,"birthday_fired_year":0,'
    b'"claim_ids":{"k1":1767495600000,"k2":1767499200000,"k3":1768528800000},"claims_per_year":{"mug|2026":2,'
    b'"tea|2026":1},"coupons":{"c1:k1":{"reward_id":"mug","claim_id":"k1","points":100,'
    b'"issued_at_ms":1767495600000,"expires_at_ms":1770087600000,"coupon_value_minor":2000,"percent_off":null,'
    b'"min_order_minor":5000,"refund":false,"state":"used","closed_at_ms":1767578400000,"order_id":"o1"},'
    b'"c1:k2":{"reward_id":"tea","claim_id":"k2","points":50,"issued_at_ms":1767499200000,'
    b'"expires_at_ms":1768363200000,"coupon_value_minor":null,"percent_off":15,"min_order_minor":null,'
    b'"refund":true,"state":"expired","closed_at_ms":1768363200000,"order_id":null},"c1:k3":{"reward_id":"mug",'
    b'"claim_id":"k3","points":100,"issued_at_ms":1768528800000,"expires_at_ms":1771120800000,'
    b'"coupon_value_minor":2000,"percent_off":null,"min_order_minor":5000,"refund":false,"state":"open",'
    b'"closed_at_ms":null,"order_id":null}},"coupon_due_ms":1771120800000,"remind_lot_ms":null,'
    b'"remind_due_ms":null,"reminded_until_ms":0,"tier_left_ms":{"premium":0},"member_day_due_ms":null}'
)
# The same state as stored since each state carries its input offset (null: folded without offsets).
STORED_WITH_OFFSET = STORED_BY_MAIN[:-1] + b',"input_offset":null}'
# ... and since checkout: open holds, pending points, the last ledger entries and command outcomes (none here).
CHECKOUT_FIELDS = (b',"holds":{},"held_points":0,"hold_due_ms":null,"pending":[],"pending_points":0,"history":[],'
                   b'"commands":{}}')
STORED_NOW = STORED_WITH_OFFSET[:-1] + CHECKOUT_FIELDS


def _json(state: CustomerState) -> bytes:
    """The state's JSON form: what to_bytes stored before msgpack."""
    return orjson.dumps(state.to_dict())


def test_a_state_stored_by_main_decodes_to_typed_records():
    state = CustomerState.from_bytes(STORED_BY_MAIN)
    assert state.lots == [Lot(1798855200000, 11), Lot(1798945200000, 10), Lot(1799028000000, 5),
                          Lot(1799899200000, 50)]
    assert state.orders == {"o1": Order(1767236400000, 120000, 0, 1200, 0, True),
                            "o2": Order(1767319200000, 8050, 3000, 96, 35, False)}
    assert state.orders["o1"].reviewed is True and state.orders["o2"].reviewed is False
    assert [(c.state, c.refund, c.order_id) for c in state.coupons.values()] == [
        (USED, False, "o1"), (EXPIRED, True, None), (OPEN, False, None)]
    assert (state.window_spend_minor, state.window_orders, state.points_balance) == (125050, 2, 76)
    assert state.daily_counts == {("checkin", "2026-01-04"): 1}  # stored as "checkin|2026-01-04"
    assert state.claims_per_year[("mug", 2026)] == 2 and state.rfm == Rfm(5, 2, 3)


def test_a_state_stored_by_main_encodes_back_to_the_same_bytes_with_its_input_offset_unknown():
    state = CustomerState.from_bytes(STORED_BY_MAIN)
    assert state.input_offset is None, "a state stored before input offsets skips no record by offset"
    assert state.to_dict() == {**orjson.loads(STORED_NOW), "input_offset": None}
    assert _json(state) == STORED_NOW
    assert CustomerState.from_bytes(state.to_bytes()) == state
    stored = msgspec.msgpack.decode(state.to_bytes())  # FORMAT 2: the tuple keys stored as arrays
    assert stored[0] == 2
    assert stored[1 + CustomerState.__slots__.index("daily_counts")] == {("checkin", "2026-01-04"): 1}
    assert stored[1 + CustomerState.__slots__.index("claims_per_year")] == state.claims_per_year  # (id, year)
    assert stored[1 + CustomerState.__slots__.index("rfm")] == [5, 2, 3]


def test_a_state_stored_with_its_input_offset_decodes_and_encodes_to_the_same_bytes():
    stored = STORED_BY_MAIN[:-1] + b',"input_offset":1234567}'
    state = CustomerState.from_bytes(stored)
    assert state.input_offset == 1234567 and _json(state) == stored[:-1] + CHECKOUT_FIELDS


def test_a_state_stored_before_checkout_decodes_with_nothing_held_pending_or_remembered():
    state = CustomerState.from_bytes(STORED_WITH_OFFSET)
    assert (state.holds, state.held_points, state.hold_due_ms) == ({}, 0, None)
    assert (state.pending, state.pending_points, state.history, state.commands) == ([], 0, [], {})
    assert _json(state) == STORED_NOW


def test_a_state_with_holds_pending_points_and_history_encodes_back_to_the_same_bytes():
    stored = STORED_WITH_OFFSET[:-1] + (
        b',"holds":{"h1":[30,1768528800000,1768532400000]},"held_points":30,"hold_due_ms":1768532400000,'
        b'"pending":[[1769738400000,12,"o3"]],"pending_points":12,"history":[[10,1768528800000,"redeem",-100,76]],'
        b'"commands":{"hold:h1":[1768528800000,[30,3600],"accepted",{"points":30}]}}')
    state = CustomerState.from_bytes(stored)
    assert state.holds["h1"] == Hold(30, 1768528800000, 1768532400000)
    assert state.pending == [Pending(1769738400000, 12, "o3")]
    assert _json(state) == stored
    clone = state.clone()
    clone.holds["h1"].points, clone.pending[0].points = 1, 1
    clone.history.append([11]), clone.commands.clear()
    assert _json(state) == stored


def test_a_state_stored_before_rewards_decodes_with_no_coupons_and_typed_lots_and_orders():
    old = orjson.loads(STORED_BY_MAIN)
    for name in ("claim_ids", "claims_per_year", "coupons", "coupon_due_ms", "remind_lot_ms", "remind_due_ms",
                 "reminded_until_ms", "tier_left_ms", "member_day_due_ms"):
        del old[name]
    state = CustomerState.from_bytes(orjson.dumps(old))
    assert state.coupons == {} and state.claim_ids == {} and state.reminded_until_ms == 0
    assert state.lots[0] == Lot(1798855200000, 11) and state.orders["o2"].refunded_minor == 3000
    assert state.to_dict()["orders"] == old["orders"] and state.to_dict()["lots"] == old["lots"]


def test_a_clone_shares_no_record_with_its_original():
    state = CustomerState.from_bytes(STORED_BY_MAIN)
    clone = state.clone()
    clone.lots[0].points += 1
    clone.orders["o1"].refunded_minor = 1
    clone.coupons["c1:k3"].state = USED
    assert _json(state) == STORED_NOW
    assert clone != state


def test_folding_the_same_history_now_stores_exactly_what_main_stored():
    from schemas.policy import Policy
    from tests.support.events import day, ev, tick
    from tests.support.scenario import given
    policy = Policy.model_validate({"retention": {"event_id_days": 400}, "rewards": {  # ids kept as main kept them
        "mug": {"points": 100, "coupon_value": "20.00", "min_order": "50.00", "valid_days": 30},
        "tea": {"points": 50, "percent_off": 15, "valid_days": 10, "refund_points_on_expiry": True}}})
    s = given(
        ev("customer.registered", day(0), id="e1", birthday="1990-05-17", timezone="Europe/Paris"),
        ev("order.paid", day(0, 1), id="e2", order_id="o1", amount="1200.00"),
        ev("order.paid", day(1), id="e3", order_id="o2", amount="80.50"),
        ev("order.refunded", day(2), id="e4", order_id="o2", amount="30.00"),
        ev("review.posted", day(2, 1), id="e5", order_id="o1", rating=5),
        ev("customer.checked_in", day(3), id="e6"),
        ev("reward.claimed", day(3, 1), id="e7", claim_id="k1", reward_id="mug"),
        ev("reward.claimed", day(3, 2), id="e8", claim_id="k2", reward_id="tea"),
        ev("coupon.used", day(4), id="e9", coupon_id="c1:k1", order_id="o1"),
        ev("points.adjusted", day(5), id="e10", points=-1000, reason="correction"),
        ev("reward.claimed", day(15), id="e11", claim_id="k3", reward_id="mug"),
        tick(day(20)), policy=policy)
    stored = s.state().to_dict()
    history, commands = stored.pop("history"), stored.pop("commands")
    assert orjson.dumps(stored) == STORED_NOW.replace(b',"history":[],"commands":{}', b"")
    assert [entry[0] for entry in history] == list(range(1, 11)) and history[-1][4] == 76
    assert {key: outcome[2] for key, outcome in commands.items()} == {
        "claim:k1": "accepted", "claim:k2": "accepted", "claim:k3": "accepted"}


def test_every_attribute_is_stored_under_its_key_in_slot_order():
    from projections.state import _STORED
    state = CustomerState.from_bytes(STORED_BY_MAIN)
    assert list(state.to_dict()) == [key for key, _ in _STORED], "to_dict must list every slot, in slot order"
    for key, name in _STORED:
        if key not in ("lots", "orders", "coupons", "holds", "pending", "rfm", "daily_counts", "claims_per_year"):
            # (records and tuple-keyed counts are compared above)
            assert state.to_dict()[key] is getattr(state, name), key
