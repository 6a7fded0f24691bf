"""`loyalty query` and `loyalty explain`: what the projections hold, from a worker or a replay store."""
from __future__ import annotations

from typing import Optional

import click

from schemas.policy import STATUSES, TIERS, VALUES
from streams.segments import MAX_LIMIT
from streams.settings import DEFAULTS
from tools.cli_common import NotFound, UserError, echo_json, env_epilog, friendly

_CUSTOMER_ID_MAX = 64
_DEFAULT_URL = f"http://{DEFAULTS['web_host']}:{DEFAULTS['web_port']}"  # a worker's defaults
_TOKEN_EPILOG = env_epilog({"LOYALTY_API_TOKEN": "the workers' API token, sent as a bearer token (with --url)"})


def _source(url: str, store: Optional[str], policy_file: Optional[str] = None):
    """Pick the HTTP or the offline source."""
    from tools.query import HttpSource, StoreSource  # here: `loyalty --help` starts without RocksDB
    return StoreSource(store, policy_file) if store else HttpSource(url)


def _one_customer(customer_id: str, fetch) -> dict:
    """Check the id (exit 2 if no event could carry it), fetch the customer's document (exit 1 if unknown)."""
    if not 1 <= len(customer_id) <= _CUSTOMER_ID_MAX or not customer_id.isprintable():
        raise UserError(f"a customer id is 1 to {_CUSTOMER_ID_MAX} printable characters")
    document = fetch(customer_id)
    if document is None:
        raise NotFound(f"no customer {customer_id!r}")
    return document


def source_options(func):
    """Add --url, --store and --json."""
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)
    func = click.option("--store", type=click.Path(file_okay=False),
                        help="Read a store written by `loyalty replay --out DIR` instead of a worker.")(func)
    func = click.option("--url", envvar="LOYALTY_URL", default=_DEFAULT_URL, show_default=True,
                        help="A worker's HTTP address.")(func)
    return func


@click.group()
def query() -> None:
    """Show what the projections hold."""


@query.command("customer", epilog=_TOKEN_EPILOG)
@click.argument("customer_id")
@source_options
@friendly
def query_customer(customer_id: str, url: str, store: Optional[str], as_json: bool) -> None:
    """One customer's projection (exit 1 if unknown)."""
    view = _one_customer(customer_id, _source(url, store).customer)
    if as_json:
        echo_json(view)
        return
    click.echo(f"customer   {view['customer_id']}")
    click.echo(f"points     {view['points_balance']}" + (
        f" (available {view['points_available']}, held {view['points_held']}, pending {view['points_pending']})"
        if view.get("points_held") or view.get("points_pending") else ""))  # a store before checkout has none
    for pending in view.get("pending", ()):
        click.echo(f"pending    {pending['points']:>8} from {pending['available_at']} (order {pending['order_id']})")
    click.echo(f"tier       {view['tier']} (spend 12m {view['spend_12m']}, lifetime {view['lifetime_spend']})")
    click.echo(f"status     {view['status']} (last purchase {view['last_purchase_at'] or '-'}, "
               f"last interaction {view['last_interaction_at'] or '-'})")
    rfm = view.get("rfm")
    scores = f" (R {rfm['r']}, F {rfm['f']}, M {rfm['m']})" if rfm else " (no purchase)"
    click.echo(f"value      {view.get('value', '-')}{scores}")
    click.echo(f"birthday   {view['birthday'] or '-'} ({view['timezone'] or 'default time zone'})")
    for lot in view["points_expiring"]:
        click.echo(f"expiring   {lot['points']:>8} on {lot['expires_at']}")
    for coupon in view.get("coupons", ()):  # a replay store written before coupons existed has none
        off = f"{coupon['coupon_value']} off" if coupon["coupon_value"] is not None else f"{coupon['percent_off']}% off"
        orders = f" orders from {coupon['min_order']}" if coupon["min_order"] is not None else ""
        click.echo(f"coupon     {coupon['coupon_id']} ({coupon['reward_id']}): {off}{orders}, "
                   f"expires {coupon['expires_at']}")
    click.echo(f"events     {view['events_applied']}")


@query.command("segment", epilog=_TOKEN_EPILOG)
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--tier", type=click.Choice(TIERS))
@click.option("--value", type=click.Choice(VALUES), help="The value class (from the RFM scores).")
@click.option("--format", "output", type=click.Choice(["text", "json", "csv"]), default=None,
              help="text: ids, one a line; json: one document; csv: a row per member (id, tier, status, value, "
                   "balance, last purchase).  [default: text]")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT),
              help=f"Print one page of at most this many (1 to {MAX_LIMIT}) and the cursor of the next; "
                   "without it, every member, paged.")
@click.option("--cursor", help="Start after the page that gave this cursor (`next`).")
@source_options
@friendly
def query_segment(status: Optional[str], tier: Optional[str], value: Optional[str], output: Optional[str],
                  limit: Optional[int], cursor: Optional[str], url: str, store: Optional[str], as_json: bool) -> None:
    """Customers with a status, a tier and/or a value class (all given must hold), in id order."""
    from tools.segment_export import Segment, pages, write_csv, write_ids, write_json  # here: the CLI starts faster
    if status is None and tier is None and value is None:
        raise UserError("give --status, --tier, --value, or several")
    if as_json and output not in (None, "json"):
        raise UserError(f"--json and --format {output}: give one")
    output = "json" if as_json else output or "text"
    segment = Segment(status, tier, value)
    docs = pages(_source(url, store), segment, cursor, limit or MAX_LIMIT, output == "csv", walk=limit is None)
    out = click.get_text_stream("stdout")
    if limit is None:  # every member from the cursor on, page after page: memory for one page only
        if output == "json":
            write_json(docs, segment, out)
        else:
            (write_csv if output == "csv" else write_ids)(docs, out)
        return
    doc = next(docs)
    if output == "json":
        echo_json({**segment._asdict(), "customer_ids": doc["customer_ids"], "next": doc["next"]})
        return
    (write_csv if output == "csv" else write_ids)(iter([doc]), out)
    if doc["next"] is not None:
        click.echo(f"next page: --cursor {doc['next']}", err=True)


@click.command("explain", epilog=_TOKEN_EPILOG)
@click.argument("customer_id")
@source_options
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), envvar="LOYALTY_POLICY",
              help="With --store: the policy to explain by, if the store does not keep the one it was replayed with.")
@friendly
def explain(customer_id: str, url: str, store: Optional[str], as_json: bool, policy_file: Optional[str]) -> None:
    """Why a customer has this tier, status, value class and these points, in plain words (exit 1 if unknown).

    It reads the customer's state only, from a worker or a replay store (--store), and says what would
    change, and when, if nothing else happens.
    """
    why = _one_customer(customer_id, _source(url, store, policy_file).explain)
    if as_json:
        echo_json(why)
        return
    click.echo(f"{'customer':<11}{why['customer_id']}, as of {why['as_of']}")
    for topic in ("tier", "status", "value", "points", "campaigns"):
        for n, line in enumerate(why[topic]["why"]):
            click.echo(f"{topic if n == 0 else '':<11}{line}")


@query.command("ledger", epilog=_TOKEN_EPILOG)
@click.argument("customer_id")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="Entries per page.")
@click.option("--cursor", type=click.IntRange(min=1), help="The next_cursor of the page before.")
@source_options
@friendly
def query_ledger(customer_id: str, limit: int, cursor: Optional[int], url: str, store: Optional[str],
                 as_json: bool) -> None:
    """A member's last ledger entries, newest first (exit 1 if unknown)."""
    page = _one_customer(customer_id, lambda cid: _source(url, store).ledger(cid, limit, cursor and str(cursor)))
    if as_json:
        echo_json(page)
        return
    for entry in page["entries"]:
        click.echo(f"{entry['occurred_at']}  {entry['kind']:<13} {entry['points']:>9}  balance {entry['balance_after']}")
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}")


@query.command("stats", epilog=_TOKEN_EPILOG)
@source_options
@friendly
def query_stats(url: str, store: Optional[str], as_json: bool) -> None:
    """Counts by status and tier, points outstanding, events applied."""
    stats = _source(url, store).stats()
    if as_json:
        echo_json(stats)
        return
    click.echo(f"customers           {stats['customers']}")
    click.echo("by status           " + ", ".join(f"{k} {v}" for k, v in stats["by_status"].items()))
    click.echo("by tier             " + ", ".join(f"{k} {v}" for k, v in stats["by_tier"].items()))
    if "by_value" in stats:  # a worker of an earlier version has none
        click.echo("by value            " + ", ".join(f"{k} {v}" for k, v in stats["by_value"].items()))
    click.echo(f"points outstanding  {stats['points_outstanding']}")
    if stats.get("policy_versions"):  # a store or a worker of an earlier version has none
        click.echo("policy              " + ", ".join(stats["policy_versions"]))
    click.echo(f"events applied      {stats['events_applied']}")
