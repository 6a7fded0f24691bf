"""`loyalty query segment`: walk a segment's pages and print ids, one JSON document or CSV rows as they come."""
from __future__ import annotations

import csv
from typing import Iterator, NamedTuple, Optional, TextIO

import orjson

from projections.documents import MEMBER_FIELDS
from tools.query import QueryError, warn_if_partial


class Segment(NamedTuple):
    """The status, tier and value class asked for (None: any)."""
    status: Optional[str]
    tier: Optional[str]
    value: Optional[str]


def pages(source, segment: Segment, cursor: Optional[str], limit: int, members: bool, walk: bool) -> Iterator[dict]:
    """Yield the page at the cursor, then (walk) every page after it to the last."""
    while True:
        doc = source.page(*segment, cursor, limit, members)
        if doc.get("partial"):
            if walk:  # an export without some partitions' members would look complete
                partitions = ", ".join(str(p) for p in doc.get("missing_partitions", []))
                raise QueryError(f"the worker(s) owning partition {partitions} did not answer; the export stopped "
                                 f"incomplete: retry in a moment")
            warn_if_partial(doc)
        yield doc
        cursor = doc.get("next")
        if not walk or cursor is None:
            return


def write_ids(docs: Iterator[dict], out: TextIO) -> None:
    """Write the ids, one a line."""
    for doc in docs:
        out.writelines(customer_id + "\n" for customer_id in doc["customer_ids"])


def write_csv(docs: Iterator[dict], out: TextIO) -> None:
    """Write a header and one CSV row per member (RFC 4180; an empty cell for no last purchase)."""
    writer = csv.writer(out)
    writer.writerow(MEMBER_FIELDS)
    for doc in docs:
        writer.writerows([("" if row[field] is None else row[field]) for field in MEMBER_FIELDS]
                         for row in doc["members"])


def write_json(docs: Iterator[dict], segment: Segment, out: TextIO) -> None:
    """Write `{"status", "tier", "value", "customer_ids"}` as echo_json would, one page at a time."""
    head = orjson.dumps({**segment._asdict(), "customer_ids": []}, option=orjson.OPT_INDENT_2).decode()
    opening = head[:-len("[]\n}")]
    written = 0
    for doc in docs:
        for customer_id in doc["customer_ids"]:
            out.write((opening + "[\n" if written == 0 else ",\n") + "    " + orjson.dumps(customer_id).decode())
            written += 1
    out.write(head + "\n" if written == 0 else "\n  ]\n}\n")
