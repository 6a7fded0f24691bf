"""HTTP views of every worker: one customer (routed to its owner), segments and stats (gathered), metrics, health."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import quote

from pydantic import TypeAdapter, ValidationError

from projections.explain import explain
from projections.documents import Totals, customer_view
from schemas.events import CustomerId
from schemas.policy import STATUSES, TIERS, VALUES
from streams.http_guard import ErrorLog, bound_server_errors, guarded, json_answer, quote_input, unavailable
from streams.metrics import CONTENT_TYPE
from streams.peers import FORWARDED_HEADER, PeerUnavailable, Peers, key_partition
from streams.pipeline import Pipeline
from streams.segments import (PageError, local_page, merge_pages, page_document, page_from_document, page_request,
                              peer_path)
from streams.settings import INPUT_TOPIC, Settings

_customer_id = TypeAdapter(CustomerId)


def valid_customer_id(customer_id: str) -> bool:
    """True if the event schema accepts this customer id (internal keys such as the clock's never are)."""
    try:
        _customer_id.validate_python(customer_id)
    except ValidationError:
        return False
    return True


def partial_answer(doc: dict, missing: list[int]) -> dict:
    """Mark a gathered answer that lacks the partitions of workers that did not answer."""
    return {**doc, "partial": True, "missing_partitions": missing} if missing else doc


def register_views(app: Any, pipeline: Pipeline, metrics: Any, customers: Any,
                   settings: Settings) -> tuple["Views", ErrorLog]:
    """Add the HTTP API to the app's web server, every route but /metrics and /health behind the API token."""
    errors = ErrorLog()
    bound_server_errors(errors)
    peers = Peers(app, customers, settings.partitions, settings.api_token, errors)
    views = Views(app, pipeline, metrics, settings, peers)
    tokens = {"api": read_tokens(settings), "metrics": settings.metrics_token, "none": None}
    for route, handler, token in PAGES:
        app.page(route)(guarded(route, tokens[token], errors, views)(handler))
    return views, errors


def read_tokens(settings: Settings) -> Optional[tuple[str, ...]]:
    """Return the tokens a read accepts: none wanted without an API token, else it or the command token."""
    # The command token is the checkout's and reads too; the API token is the storefront's, read-only.
    if settings.api_token is None:
        return None
    return tuple(t for t in (settings.api_token, settings.command_token) if t)


@dataclass(frozen=True)
class Views:
    """What the page handlers share: the app, the pipeline whose folds they read, the metrics and the peers."""
    app: Any
    pipeline: Pipeline
    metrics: Any
    settings: Settings
    peers: Peers


def load_owned_folds(app: Any, pipeline: Pipeline) -> bool:
    """Load the folds of this worker's input partitions once its tables are recovered; False until then."""
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        return False
    for tp in app.assignor.assigned_actives():
        if tp.topic == INPUT_TOPIC:
            pipeline.fold(tp.partition)
    return True


def load_folds_once_recovered(views: Views) -> bool:
    """Load the folds of this worker's input partitions once its tables are recovered; False until then."""
    return load_owned_folds(views.app, views.pipeline)


def recovering(views: Views, web: Any) -> Any:
    """Answer 503 with how many of this worker's partitions are loaded (the CLI shows it)."""
    assigned = [tp.partition for tp in views.app.assignor.assigned_actives() if tp.topic == INPUT_TOPIC]
    loaded = sum(1 for partition in assigned if views.pipeline.loaded(partition) is not None)
    return unavailable(web, {"error": "recovering", "recovered": loaded, "partitions": len(assigned)})


async def one_customer(views: Views, web: Any, request: Any, customer_id: str, suffix: str, render) -> Any:
    """Answer for one customer, from the worker that owns the key; render(fold, state) makes the document."""
    if not valid_customer_id(customer_id):
        return json_answer(web, {"error": f"not a customer id: {quote_input(customer_id)}; "
                                          f"one is 1 to 64 characters without control characters"}, 400)
    partition = key_partition(customer_id.encode(), views.settings.partitions)
    peers = views.peers
    owner = peers.owners().get(partition)
    if owner is not None and owner != peers.own_url and FORWARDED_HEADER not in request.headers:
        try:
            answer = await peers.get(owner, "/customers/" + quote(customer_id, safe="") + suffix)
        except PeerUnavailable:
            return unavailable(web, {"error": "partition_unavailable", "partitions": [partition]})
        if answer.status == 503:
            return unavailable(web, answer.body)
        return json_answer(web, answer.body, answer.status)
    if not load_folds_once_recovered(views):
        return recovering(views, web)
    # The folds' stores: the state as of the last batch folded, like /stats (RocksDB gets it a few
    # milliseconds later, once the broker has acknowledged the batch).
    for fold in views.pipeline.loaded_folds():
        state = fold.store.get(customer_id)
        if state is not None:
            doc = render(fold, state)  # a document, or a (document, status) pair
            return json_answer(web, *doc) if isinstance(doc, tuple) else json_answer(web, doc)
    return json_answer(web, {"error": f"no customer {quote_input(customer_id)}"}, 404)


async def get_customer(views: Views, web: Any, request: Any, customer_id: str) -> Any:
    """Return one customer's projection, asking the worker that owns the key if it is not this one."""
    return await one_customer(views, web, request, customer_id, "", lambda fold, state: {
        **customer_view(state), "policy_version": fold.schedule.in_force.version})  # the rules of this answer


async def get_explanation(views: Views, web: Any, request: Any, customer_id: str) -> Any:
    """Explain one customer's tier, status, value, points and campaigns (routed like /customers/{id})."""
    # "Now" is the clock of the customer's own partition (no time rule is pending up to it).
    return await one_customer(views, web, request, customer_id, "/explain",
                              lambda fold, state: explain(state, fold.policy, fold.clock_ms))


async def get_segment(views: Views, web: Any, request: Any) -> Any:
    """Return a page of the ids (and rows) of customers with a status, tier and/or value class, from every worker."""
    # An empty parameter means "any", as an absent one does (never a segment named "").
    status, tier = request.query.get("status") or None, request.query.get("tier") or None
    value = request.query.get("value") or None
    if (status and status not in STATUSES) or (tier and tier not in TIERS) or (value and value not in VALUES) \
            or not (status or tier or value):
        return json_answer(web, {"error": f"give status in {STATUSES}, tier in {TIERS} and/or value in {VALUES}"},
                           400)
    try:
        asked = page_request(request.query)
    except PageError as exc:
        return json_answer(web, {"error": str(exc)}, 400)  # it quotes at most 64 characters of the input
    if not load_folds_once_recovered(views):
        return recovering(views, web)
    pages, missing = [local_page(views.pipeline.loaded_folds(), status, tier, value, asked)], []
    if request.query.get("scope") != "local":
        docs, missing = await views.peers.gather(peer_path(status, tier, value, asked))
        pages.extend(page_from_document(doc) for doc in docs)
    page = merge_pages(pages, asked)
    return json_answer(web, partial_answer({"status": status, "tier": tier, "value": value,
                                            **page_document(page, asked)}, missing))


async def get_stats(views: Views, web: Any, request: Any) -> Any:
    """Return counts by status and tier, points outstanding and events applied, over every worker."""
    if not load_folds_once_recovered(views):
        return recovering(views, web)
    totals, missing = views.pipeline.totals(), []
    versions = {fold.schedule.in_force.version for fold in views.pipeline.loaded_folds()}
    if request.query.get("scope") != "local":
        docs, missing = await views.peers.gather("/stats?scope=local")
        for doc in docs:
            totals.merge(Totals.from_dict(doc))
            versions.update(doc.get("policy_versions", ()))  # a peer of an earlier version sends none
    return json_answer(web, partial_answer({**totals.to_dict(), "policy_versions": sorted(versions)}, missing))


async def get_metrics(views: Views, web: Any, request: Any) -> Any:
    """Return this worker's metrics in the Prometheus text format."""
    return web.bytes(views.metrics.render(), content_type=CONTENT_TYPE.split(";")[0])


async def get_health(views: Views, web: Any, request: Any) -> Any:
    """Say that the worker's web server is up, and whether its partitions are loaded (no data, no token)."""
    return json_answer(web, {"status": "ok", "ready": load_folds_once_recovered(views)})


# The pages a worker serves, and the token each wants ("api": LOYALTY_API_TOKEN, "metrics": the metrics token,
# "none": open). The README's HTTP table lists exactly these routes (a test compares them).
PAGES = (
    ("/customers/{customer_id}", get_customer, "api"),
    ("/customers/{customer_id}/explain", get_explanation, "api"),
    ("/segments", get_segment, "api"),
    ("/stats", get_stats, "api"),
    ("/metrics", get_metrics, "metrics"),
    ("/health", get_health, "none"),
)
ROUTES = tuple(route for route, _, _ in PAGES)
