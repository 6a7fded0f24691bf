"""HTTP pages of the checkout and the storefront: commands with an answer, outcomes, a member's ledger and holds."""
from __future__ import annotations

from typing import Any, Optional

from faust.web import View
from pydantic import TypeAdapter, ValidationError
from typing_extensions import Annotated

from projections.checkout import available_points, known_command, open_holds
from projections.documents import ledger_page
from streams.commands import COMMAND_ID, COMMANDS, outcome_doc, run_command
from streams.http_guard import ErrorLog, guarded, json_answer, quote_input
from streams.http_views import Views, one_customer, read_tokens, valid_customer_id

LOOPBACK = ("127.0.0.1", "::1")
LEDGER_PAGE_MAX = 100
_command_id = TypeAdapter(Annotated[str, COMMAND_ID])


def _bad(web: Any, reason: str, status: int = 400) -> Any:
    return json_answer(web, {"error": "bad_request", "reason": reason}, status)


def _valid_command_id(command_id: str) -> bool:
    try:
        _command_id.validate_python(command_id)
    except ValidationError:
        return False
    return True


async def _command(views: Any, web: Any, request: Any, customer_id: str, kind: str,
                   hold_id: Optional[str] = None) -> Any:
    """Check who may send commands and the ids in the path, then run the command."""
    if views.settings.command_token is None and request.remote not in LOOPBACK:
        # No command token: the default stays closed to other hosts (README, "Checkout").
        return json_answer(web, {"error": "forbidden: set LOYALTY_COMMAND_TOKEN to take commands from other hosts"},
                           403)
    if not valid_customer_id(customer_id):
        return _bad(web, f"not a customer id: {quote_input(customer_id)}")
    if hold_id is not None and not _valid_command_id(hold_id):
        return _bad(web, f"not a hold id: {quote_input(hold_id)}")
    return await run_command(views, web, request, customer_id, COMMANDS[kind], hold_id)


async def post_redemption(views: Any, web: Any, request: Any, customer_id: str) -> Any:
    """Redeem points now: {redemption_id, points}."""
    return await _command(views, web, request, customer_id, "redeem")


async def post_claim(views: Any, web: Any, request: Any, customer_id: str) -> Any:
    """Claim a reward of the catalog: {claim_id, reward_id}."""
    return await _command(views, web, request, customer_id, "claim")


async def post_hold(views: Any, web: Any, request: Any, customer_id: str) -> Any:
    """Hold points at a checkout: {hold_id, points, expires_in}."""
    return await _command(views, web, request, customer_id, "hold")


async def post_capture(views: Any, web: Any, request: Any, customer_id: str, hold_id: str) -> Any:
    """Capture an open hold, all of it or {points} of it."""
    return await _command(views, web, request, customer_id, "capture", hold_id)


async def post_release(views: Any, web: Any, request: Any, customer_id: str, hold_id: str) -> Any:
    """Release an open hold."""
    return await _command(views, web, request, customer_id, "release", hold_id)


async def get_command_outcome(views: Any, web: Any, request: Any, customer_id: str, kind: str,
                              command_id: str) -> Any:
    """Answer a command's outcome (200 accepted, 422 rejected, 404 not decided), from the customer's owner."""
    if kind not in COMMANDS:
        return _bad(web, f"command is one of {sorted(COMMANDS)}")

    def render(fold: Any, state: Any) -> Any:
        outcome = known_command(state, f"{kind}:{command_id}", views.pipeline.policy)
        if outcome is None:
            return {"status": "unknown", "command": kind, "id": command_id}, 404
        doc = outcome_doc(customer_id, kind, command_id, outcome)
        return doc, 200 if doc["status"] == "accepted" else 422
    return await one_customer(views, web, request, customer_id, f"/commands/{kind}/{command_id}", render)


async def get_ledger(views: Any, web: Any, request: Any, customer_id: str) -> Any:
    """Return a member's ledger entries, newest first, a page at a time (?limit=&cursor=)."""
    limit_text, cursor_text = request.query.get("limit", "20"), request.query.get("cursor") or None
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= LEDGER_PAGE_MAX \
            or (cursor_text is not None and not cursor_text.isdigit()):
        return _bad(web, f"limit is 1 to {LEDGER_PAGE_MAX}, cursor the next_cursor of the page before")
    limit, cursor = int(limit_text), None if cursor_text is None else int(cursor_text)
    suffix = f"/ledger?limit={limit}" + ("" if cursor is None else f"&cursor={cursor}")
    return await one_customer(views, web, request, customer_id, suffix,
                              lambda fold, state: ledger_page(state, limit, cursor))


async def get_holds(views: Any, web: Any, request: Any, customer_id: str) -> Any:
    """Return a member's open holds and spendable points."""
    return await one_customer(views, web, request, customer_id, "/holds", lambda fold, state: {
        "customer_id": customer_id, "points_available": available_points(state), "points_held": state.held_points,
        "holds": open_holds(state)})


# The checkout's pages: per route, its methods with a handler and a scope ("read": the API token or the command
# token; "command": the command token). The README's HTTP table lists these routes too.
PAGES = (
    ("/customers/{customer_id}/ledger", {"get": (get_ledger, "read")}),
    ("/customers/{customer_id}/holds", {"get": (get_holds, "read"), "post": (post_hold, "command")}),
    ("/customers/{customer_id}/holds/{hold_id}/capture", {"post": (post_capture, "command")}),
    ("/customers/{customer_id}/holds/{hold_id}/release", {"post": (post_release, "command")}),
    ("/customers/{customer_id}/redemptions", {"post": (post_redemption, "command")}),
    ("/customers/{customer_id}/claims", {"post": (post_claim, "command")}),
    ("/customers/{customer_id}/commands/{kind}/{command_id}", {"get": (get_command_outcome, "read")}),
)
ROUTES = tuple(route for route, _ in PAGES)


def scope_tokens(settings: Any) -> dict[str, Any]:
    """Return the tokens each scope accepts: reads take either token (when reads want one), commands their own."""
    # Without a command token, commands come from this host only (_command), with the API token if one is set.
    return {"read": read_tokens(settings), "command": settings.command_token or settings.api_token}


def register_checkout_views(app: Any, views: Views, errors: ErrorLog) -> None:
    """Add the checkout's pages to the app's web server, each method behind its scope's token."""
    tokens = scope_tokens(views.settings)
    for route, methods in PAGES:
        handlers = {method: guarded(route, tokens[scope], errors, views)(handler)
                    for method, (handler, scope) in methods.items()}
        app.page(route)(type(handlers[next(iter(handlers))].__name__, (View,), handlers))
