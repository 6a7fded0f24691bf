"""HTTP views of every worker: one customer (routed to its owner), segments and stats (gathered), metrics."""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import orjson

from projections.explain import explain
from projections.views import Totals, customer_view
from schemas.policy import STATUSES, TIERS, VALUES
from streams.metrics import CONTENT_TYPE
from streams.pipeline import Pipeline
from streams.settings import INPUT_TOPIC


def _json(web: Any, data: Any, status: int = 200) -> Any:
    return web.bytes(orjson.dumps(data), content_type="application/json", status=status)


def register_views(app: Any, pipeline: Pipeline, metrics: Any, customers: Any) -> None:
    """Add the contract's HTTP API to the app's web server."""

    def ready() -> bool:
        """Tell whether this worker's partitions are recovered and loaded."""
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            return False
        for tp in app.assignor.assigned_actives():
            if tp.topic == INPUT_TOPIC:
                pipeline.fold(tp.partition)
        return True

    def recovering(web: Any) -> Any:
        """Answer 503 with how many of this worker's partitions are loaded (the CLI shows it)."""
        assigned = [tp.partition for tp in app.assignor.assigned_actives() if tp.topic == INPUT_TOPIC]
        loaded = sum(1 for partition in assigned if partition in pipeline.folds)
        return _json(web, {"error": "recovering", "recovered": loaded, "partitions": len(assigned)}, 503)

    async def peers() -> list[str]:
        """Return the other workers' URLs (from the partition assignment)."""
        own = str(app.conf.canonical_url).rstrip("/")
        hosts = app.router.table_metadata(customers.name).keys()
        return [str(h).rstrip("/") for h in hosts if str(h).rstrip("/") != own]

    async def gather(path: str) -> list[dict]:
        """GET a local-scope document from every other worker."""
        async def one(url: str) -> dict:
            async with app.http_client.get(url + path) as response:
                response.raise_for_status()
                return orjson.loads(await response.read())
        return await asyncio.gather(*(one(url) for url in await peers()))

    @app.page("/customers/{customer_id}")
    @app.table_route(table=customers, match_info="customer_id")
    async def get_customer(web, request, customer_id: str):
        """Return one customer's projection (routed to the worker owning the key)."""
        if not ready():
            return recovering(web)
        # The folds' stores: the state as of the last batch folded, like /stats (RocksDB gets it a few
        # milliseconds later, once the broker has acknowledged the batch).
        for fold in list(pipeline.folds.values()):
            state = fold.store.get(customer_id)
            if state is not None:
                return _json(web, customer_view(state))
        return _json(web, {"error": f"no customer {customer_id!r}"}, 404)

    @app.page("/customers/{customer_id}/explain")
    @app.table_route(table=customers, match_info="customer_id")
    async def get_explanation(web, request, customer_id: str):
        """Explain one customer's tier, status, value, points and campaigns (routed like /customers/{id})."""
        if not ready():
            return recovering(web)
        # "Now" is the clock of the customer's own partition (no time rule is pending up to it).
        owner = next((fold for fold in list(pipeline.folds.values()) if fold.store.get(customer_id) is not None), None)
        if owner is None:
            return _json(web, {"error": f"no customer {customer_id!r}"}, 404)
        return _json(web, explain(owner.store.get(customer_id), pipeline.policy, owner.clock_ms))

    @app.page("/segments")
    async def get_segment(web, request):
        """Return the ids of customers with a status, tier and/or value class, from every worker."""
        # An empty parameter means "any", as an absent one does (never a segment named "").
        status, tier = request.query.get("status") or None, request.query.get("tier") or None
        value = request.query.get("value") or None
        if (status and status not in STATUSES) or (tier and tier not in TIERS) or (value and value not in VALUES) \
                or not (status or tier or value):
            return _json(web, {"error": f"give status in {STATUSES}, tier in {TIERS} and/or value in {VALUES}"}, 400)
        if not ready():
            return recovering(web)
        ids = set()
        for fold in list(pipeline.folds.values()):
            ids |= fold.segment(status, tier, value)
        if request.query.get("scope") != "local":
            asked = {k: v for k, v in (("status", status), ("tier", tier), ("value", value)) if v}
            for doc in await gather(f"/segments?{urlencode({**asked, 'scope': 'local'})}"):
                ids.update(doc["customer_ids"])
        return _json(web, {"status": status, "tier": tier, "value": value, "customer_ids": sorted(ids)})

    @app.page("/stats")
    async def get_stats(web, request):
        """Return counts by status and tier, points outstanding and events applied, over every worker."""
        if not ready():
            return recovering(web)
        totals = pipeline.totals()
        if request.query.get("scope") != "local":
            for doc in await gather("/stats?scope=local"):
                totals.merge(Totals.from_dict(doc))
        return _json(web, totals.to_dict())

    @app.page("/metrics")
    async def get_metrics(web, request):
        """Return this worker's metrics in the Prometheus text format."""
        return web.bytes(metrics.render(), content_type=CONTENT_TYPE.split(";")[0])
