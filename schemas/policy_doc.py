"""A policy as a document in the log: its canonical JSON, its version and the `policy.changed` payload."""
from __future__ import annotations

import hashlib
from typing import Annotated, Optional

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.policy import Policy
from schemas.timeutil import MAX_OCCURRED_AT_MS, MIN_OCCURRED_AT_MS, parse_rfc3339_ms

PolicyName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def policy_document(policy: Policy) -> dict:
    """Return the whole policy as JSON-ready data (every key, defaults included)."""
    return policy.model_dump(mode="json")


def policy_digest(policy: Policy) -> str:
    """Return the first 12 hex digits of the SHA-256 of the policy's canonical JSON (equal rules, equal digest)."""
    canonical = orjson.dumps(policy_document(policy), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:12]


def policy_version(policy: Policy, name: Optional[str] = None) -> str:
    """Return a policy's version: its content digest, after the name the shop gave it (`name@digest`)."""
    digest = policy_digest(policy)
    return f"{name}@{digest}" if name else digest


def _effective_ms(value: object) -> int:
    """Parse effective_at (RFC 3339 with an offset) within the years an event may name."""
    if not isinstance(value, str):
        raise ValueError("effective_at must be an RFC 3339 string")
    at_ms = parse_rfc3339_ms(value)
    if not MIN_OCCURRED_AT_MS <= at_ms < MAX_OCCURRED_AT_MS:
        raise ValueError("effective_at must be from 2000-01-01 up to (not including) 2200-01-01")
    return at_ms


class PolicyChangedPayload(BaseModel):
    """The whole new policy, its version (checked against its content) and when it takes effect."""
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    policy: Policy
    version: str = Field(min_length=1, max_length=80)
    name: Optional[PolicyName] = None
    effective_at_ms: Annotated[int, BeforeValidator(_effective_ms)] = Field(alias="effective_at")

    @model_validator(mode="after")
    def _version_matches(self) -> "PolicyChangedPayload":
        expected = policy_version(self.policy, self.name)
        if self.version != expected:
            raise ValueError(f"version {self.version[:80]!r} does not match the policy's content ({expected!r})")
        return self


def policy_changed_document(policy: Policy, effective_at: str, published_at: str, event_id: str,
                            name: Optional[str] = None) -> dict:
    """Build the `policy.changed` event for a policy (what `loyalty policy publish` sends to every partition)."""
    payload = {"policy": policy_document(policy), "version": policy_version(policy, name), "effective_at": effective_at}
    if name:
        payload["name"] = name
    return {"event_id": event_id, "event_type": "policy.changed", "customer_id": None, "occurred_at": published_at,
            "schema_version": 1, "payload": payload}
