"""Why a customer is where they are: tier, status, value, points and campaigns, with the numbers behind them.

Reads one state and the policy only (no log, no wall clock): `loyalty explain`, `--store` and
`GET /customers/{id}/explain` all call `explain`. "Now" is the partition clock when the caller knows it
(never past it: no time rule is then pending), else the state's `as_of`; "if nothing happens" lists the
changes the time rules would make with no further event.
"""
from __future__ import annotations

from typing import Optional

from msgspec.structs import asdict

from projections.checkout import available_points, open_holds, pending_points
from projections.points import points_expiring
from projections.state import CustomerState
from projections.timeline import status_for, tier_for
from projections.value import recency_due_ms, rfm_at, value_for
from projections.documents import money
from schemas.policy import Policy
from schemas.timeutil import DAY_MS, format_ms, local_date, parse_rfc3339_ms


def _time(ms: Optional[int]) -> Optional[str]:
    return None if ms is None else format_ms(ms)


def _date(ms: int) -> str:
    return format_ms(ms)[:10]


def _days_ago(ms: Optional[int], now: int) -> str:
    return "never" if ms is None else f"{_date(ms)}, {(now - ms) // DAY_MS} whole days ago"


def explain(state: CustomerState, policy: Policy, clock_ms: Optional[int] = None) -> dict:
    """Return the explanation of one customer: per topic, the numbers and `why` in plain words.

    clock_ms: the clock of the customer's partition (or an earlier one), if known.
    """
    now = state.as_of_ms if clock_ms is None else max(state.as_of_ms, clock_ms)
    window = _window_orders(state, policy, now)
    status = _status(state, policy, now)
    return {
        "customer_id": state.customer_id,
        "as_of": format_ms(now),
        "tier": _tier(state, policy, window, now),
        "status": status,
        "value": _value(state, policy, window, now),
        "points": _points(state),
        "campaigns": _campaigns(state, policy, status["if_nothing_happens"]),
    }


def _window_orders(state: CustomerState, policy: Policy, now: int) -> list[dict]:
    """The orders inside the tier window at as_of, oldest first, with their net and when each leaves."""
    window_ms = policy.tier.window_days * DAY_MS
    rows = []
    for order_id, order in state.orders.items():
        leaves_ms = order.paid_at_ms + window_ms
        if now < leaves_ms:
            rows.append({"order_id": order_id, "paid_at": format_ms(order.paid_at_ms), "paid": order.paid_minor,
                         "refunded": order.refunded_minor, "net": order.paid_minor - order.refunded_minor,
                         "leaves_window_at": leaves_ms})
    rows.sort(key=lambda row: (row["leaves_window_at"], row["order_id"]))
    return rows


def _tier(state: CustomerState, policy: Policy, window: list[dict], now: int) -> dict:
    """The tier from the net spend of the orders in the window, and the drops as they leave it."""
    rules = policy.tier
    spend = state.window_spend_minor
    changes, tier = [], state.tier
    for row in window:
        if row["net"] > 0:
            spend -= row["net"]
            if tier_for(spend, policy) != tier:
                tier = tier_for(spend, policy)
                changes.append({"at": format_ms(row["leaves_window_at"]), "tier": tier, "spend_12m": money(spend),
                                "order_leaving": row["order_id"]})
    counted = sum(1 for row in window if row["net"] > 0)
    why = [f"{state.tier}: net spend {money(state.window_spend_minor)} from {counted} order(s) paid in the "
           f"{rules.window_days} days to {_date(now)}; premium from {rules.premium_min}, "
           f"vip from {rules.vip_min}."]
    why += [f"order {row['order_id']}: paid {money(row['paid'])} on {row['paid_at'][:10]}, refunded "
            f"{money(row['refunded'])}, net {money(row['net'])}, counts until {_date(row['leaves_window_at'])}"
            for row in window]
    why.append(_if_nothing("tier", state.tier, [(c["at"], f"{c['tier']} (spend {c['spend_12m']} once "
                                                          f"{c['order_leaving']} leaves)") for c in changes]))
    orders = [{**row, "paid": money(row["paid"]), "refunded": money(row["refunded"]), "net": money(row["net"]),
               "leaves_window_at": format_ms(row["leaves_window_at"])} for row in window]
    return {"tier": state.tier, "spend_12m": money(state.window_spend_minor), "window_days": rules.window_days,
            "premium_min": str(rules.premium_min), "vip_min": str(rules.vip_min), "orders": orders,
            "if_nothing_happens": changes, "why": why}


def _status(state: CustomerState, policy: Policy, now: int) -> dict:
    """The status from the last purchase and interaction, and its changes as the windows close."""
    rules = policy.status
    last_interaction, last_purchase = state.last_interaction_ms, state.last_purchase_ms
    quiet_since = last_interaction if last_interaction is not None else state.first_seen_ms
    moments = [quiet_since + rules.dormant_after_days * DAY_MS]
    if last_interaction is not None:
        moments.append(last_interaction + rules.active_interaction_days * DAY_MS)
    if last_purchase is not None:
        moments.append(last_purchase + rules.purchase_window_days * DAY_MS)
    changes, status = [], state.status
    for at_ms in sorted(t for t in moments if t > now):
        if status_for(state, at_ms, policy) != status:
            status = status_for(state, at_ms, policy)
            changes.append({"at": format_ms(at_ms), "status": status})
    why = [f"{state.status}: last purchase {_days_ago(last_purchase, now)}; last interaction "
           f"{_days_ago(last_interaction, now)}.",
           f"active = a purchase in the last {rules.purchase_window_days} days and an interaction in the last "
           f"{rules.active_interaction_days}; dormant = no interaction in {rules.dormant_after_days} days"
           + ("" if last_interaction is not None else f" (counted from the first event, {_date(state.first_seen_ms)})")
           + "; else potential.",
           _if_nothing("status", state.status, [(c["at"], c["status"]) for c in changes])]
    return {"status": state.status, "last_purchase_at": _time(last_purchase),
            "last_interaction_at": _time(last_interaction), "purchase_window_days": rules.purchase_window_days,
            "active_interaction_days": rules.active_interaction_days, "dormant_after_days": rules.dormant_after_days,
            "if_nothing_happens": changes, "why": why}


def _value(state: CustomerState, policy: Policy, window: list[dict], now: int) -> dict:
    """The R, F and M scores with their inputs and thresholds, the class, and how time would change them."""
    rules, rule = policy.rfm, policy.value
    last = state.last_purchase_ms
    base = {"value": state.value, "rfm": None if state.rfm is None else asdict(state.rfm),
            "recency_days": rules.recency_days, "frequency_orders": rules.frequency_orders,
            "monetary_min": [str(m) for m in rules.monetary_min],
            "high": f"R >= {rule.high_min_r} and F + M >= {rule.high_min_f_plus_m}", "low": f"R <= {rule.low_max_r}"}
    if last is None:
        return {**base, "if_nothing_happens": [], "why": ["none: no purchase yet, so no R, F and M scores."]}
    r, f, m = state.rfm.r, state.rfm.f, state.rfm.m
    days = (now - last) // DAY_MS
    changes, value, orders, spend = [], state.value, state.window_orders, state.window_spend_minor
    leaving = [row for row in window if row["net"] > 0]
    moments, t = set(row["leaves_window_at"] for row in leaving), recency_due_ms(last, now, policy)
    while t is not None:
        moments.add(t)
        t = recency_due_ms(last, t, policy)
    for at_ms in sorted(moments):
        for row in leaving:
            if row["leaves_window_at"] == at_ms:
                orders, spend = orders - 1, spend - row["net"]
        scores = rfm_at(last, orders, spend, at_ms, policy)
        if value_for(scores, policy) != value:
            value = value_for(scores, policy)
            changes.append({"at": format_ms(at_ms), "value": value, "rfm": asdict(scores)})
    limits = ", ".join(f"{5 - i} up to {d}" for i, d in enumerate(rules.recency_days))
    why = [f"{state.value}: R {r}, F {f}, M {m}; high is {base['high']}, low is {base['low']}, else medium.",
           f"R {r}: {days} whole days since the last purchase on {_date(last)} ({limits} days, else 1).",
           f"F {f}: {state.window_orders} paid order(s) not fully refunded in the {policy.tier.window_days}-day window "
           f"({', '.join(f'{5 - i} from {n}' for i, n in enumerate(rules.frequency_orders))}, else 1).",
           f"M {m}: net spend {money(state.window_spend_minor)} in the window "
           f"({', '.join(f'{5 - i} from {a}' for i, a in enumerate(rules.monetary_min))}, else 1).",
           _if_nothing("value", state.value, [(c["at"], c["value"]) for c in changes])]
    return {**base, "recency_whole_days": days, "frequency": state.window_orders,
            "monetary": money(state.window_spend_minor), "if_nothing_happens": changes, "why": why}


def _points(state: CustomerState) -> dict:
    """The balance, its lots with their expiry, the debt, the next expiry, and what holds and pending points keep."""
    lots = points_expiring(state)
    holds, pending = open_holds(state), pending_points(state)
    why = [f"balance {state.points_balance}: lots {sum(lot['points'] for lot in lots)} minus debt {state.debt_points}."]
    why += [f"{lot['points']} points expire on {lot['expires_at'][:10]}" for lot in lots]
    why.append(f"next expiry: {lots[0]['points']} points on {lots[0]['expires_at'][:10]}." if lots
               else "nothing to expire.")
    if holds or pending:  # else available is the balance, and saying so adds nothing
        why.append(f"available {available_points(state)}: balance {state.points_balance} minus held "
                   f"{state.held_points} minus pending {state.pending_points}.")
    why += [f"{h['points']} points held by {h['hold_id']} until {h['expires_at']} (released then unless captured)"
            for h in holds]
    why += [f"{p['points']} points pending from order {p['order_id']}, spendable from {p['available_at'][:10]}"
            for p in pending]
    return {"balance": state.points_balance, "debt": state.debt_points, "lots": lots,
            "next_expiry": lots[0] if lots else None, "available": available_points(state),
            "held": state.held_points, "holds": holds, "pending": state.pending_points, "pending_entries": pending,
            "why": why}


def _campaigns(state: CustomerState, policy: Policy, status_changes: list[dict]) -> dict:
    """The last win-back and birthday with their trigger ids, and when each can fire next."""
    rules = policy.campaigns
    last = state.last_win_back_ms
    cooldown_until = None if last is None else last + rules.win_back_cooldown_days * DAY_MS
    dormant = next((c["at"] for c in status_changes if c["status"] == "dormant"), None)
    cooled = dormant is not None and (cooldown_until is None or parse_rfc3339_ms(dormant) >= cooldown_until)
    next_win_back = dormant if cooled else None
    win_back = {"last": None if last is None else {"trigger_id": f"win_back:{state.customer_id}:{_date(last)}",
                                                   "at": format_ms(last)},
                "not_before": _time(cooldown_until), "next_if_nothing_happens": next_win_back}
    why = [("win-back: last " + f"{win_back['last']['trigger_id']}; no other within {rules.win_back_cooldown_days} "
            f"days, so not before {_date(cooldown_until)}" if last is not None else "win-back: never fired")
           + (f"; next when dormant, on {next_win_back[:10]} if nothing happens." if next_win_back
              else "; fires when the customer next becomes dormant.")]
    fired = state.birthday_fired_year
    birthday = {"last": {"trigger_id": f"birthday:{state.customer_id}:{fired}", "year": fired} if fired else None,
                "next": None}
    if state.birthday is not None and state.birthday_due_ms is not None:
        year = local_date(state.birthday_due_ms, state.timezone or rules.default_timezone).year
        birthday["next"] = {"trigger_id": f"birthday:{state.customer_id}:{year}",
                            "at": format_ms(state.birthday_due_ms)}
    why.append("birthday: " + (f"last {birthday['last']['trigger_id']}" if fired else "never fired")
               + (f"; next {birthday['next']['trigger_id']} at {birthday['next']['at']} (local midnight, up to "
                  f"{rules.birthday_grace_days} days late)." if birthday["next"] else "; no birthday on file."))
    return {"win_back": win_back, "birthday": birthday, "why": why}


def _if_nothing(topic: str, now: str, changes: list[tuple[str, str]]) -> str:
    """Say what time alone would change, e.g. 'potential from 2026-12-31, dormant from 2027-05-29'."""
    if not changes:
        return f"if nothing happens, the {topic} stays {now}."
    return "if nothing happens: " + ", ".join(f"{what} from {at[:10]}" for at, what in changes) + "."
