"""`loyalty tail`: read any topic (ledger, updates, triggers, coupons, DLQ, parked deliveries) from the CLI."""
from __future__ import annotations

from typing import Optional

import click
import orjson

from streams.kafka_auth import KAFKA_AUTH_ENV
from tools.cli_common import UserError, broker_option, env_epilog, friendly, settings_from


@click.command(epilog=env_epilog(KAFKA_AUTH_ENV))
@broker_option
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Every record, not only the last --lines.")
@click.option("-n", "--lines", type=click.IntRange(0), default=10, show_default=True,
              help="How many of the latest records to show (without --from-beginning).")
@click.option("--customer", "customer_id", help="Only the records about this customer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (topic, partition, offset, timestamp, key, "
                                                      "value).")
@click.option("--follow", "-f", is_flag=True, help="Then print new records as they arrive, until Ctrl-C.")
@friendly
def tail(broker: str, broker_kind: str, topic: str, from_beginning: bool, lines: int, customer_id: Optional[str],
         as_json: bool, follow: bool) -> None:
    """Print a topic's latest records (or all of them), in human form or as JSON lines."""
    from tools.topic_view import as_json as json_line, human, tail as read  # here: the CLI starts faster
    settings = settings_from(broker, broker_kind)
    try:
        for record, doc in read(settings.broker, topic, lines, from_beginning, customer_id, follow):
            click.echo(orjson.dumps(json_line(topic, record, doc)).decode() if as_json else human(topic, record, doc))
    except KeyError:
        raise UserError(f"topic {topic} does not exist") from None
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (friendly makes it one) ends --follow: the normal way out
        pass
