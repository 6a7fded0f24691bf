"""The loyalty policy (its rules: docs/rules.md), with its defaults, loaded from an optional loyalty.toml."""
from __future__ import annotations

import tomllib
from functools import cached_property
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import (
    BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator,
)

from schemas.timeutil import zone

TIERS = ("standard", "premium", "vip")
STATUSES = ("active", "potential", "dormant")
VALUES = ("high", "medium", "low", "none")
CAMPAIGNS = ("win_back", "birthday", "points_expiring", "tier_upgraded", "member_day")
Tier = Literal["standard", "premium", "vip"]
Status = Literal["active", "potential", "dormant"]
CampaignName = Literal["win_back", "birthday", "points_expiring", "tier_upgraded", "member_day"]
_MONEY_LIMIT = Decimal("10000000000.00")  # the largest amount an event may carry


class Section(BaseModel):
    """A policy section: frozen, unknown keys are an error (a typo must not pass silently)."""
    model_config = ConfigDict(frozen=True, extra="forbid")


class EarnPolicy(Section):
    multiplier: dict[str, Decimal] = {"standard": Decimal("1.0"), "premium": Decimal("1.2"), "vip": Decimal("1.5")}
    checkin_points: int = Field(default=5, ge=0)
    checkin_daily_max: int = Field(default=1, ge=0)
    share_points: int = Field(default=2, ge=0)
    share_daily_max: int = Field(default=3, ge=0)
    review_points: int = Field(default=10, ge=0)
    # An order's points become spendable this many days after it (the return window); 0: at once.
    pending_days: int = Field(default=0, ge=0, le=365)

    @field_validator("multiplier")
    @classmethod
    def _every_tier(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        if set(value) != set(TIERS) or any(m < 0 for m in value.values()):
            raise ValueError(f"multiplier needs a non-negative value for each tier {TIERS}")
        return value


class LotsPolicy(Section):
    expiry_days: int = Field(default=365, ge=1)


class TierPolicy(Section):
    window_days: int = Field(default=365, ge=1)
    premium_min: Decimal = Decimal("1000.00")
    vip_min: Decimal = Decimal("5000.00")

    @cached_property
    def premium_min_minor(self) -> int:
        return int(self.premium_min * 100)

    @cached_property
    def vip_min_minor(self) -> int:
        return int(self.vip_min * 100)


class StatusPolicy(Section):
    purchase_window_days: int = Field(default=365, ge=1)
    active_interaction_days: int = Field(default=30, ge=1)
    dormant_after_days: int = Field(default=180, ge=1)


class RfmPolicy(Section):
    """The R, F and M scores 1..5: fixed thresholds for scores 5, 4, 3 and 2 (else 1)."""
    recency_days: tuple[int, int, int, int] = (30, 90, 180, 365)   # at most this many whole days since the last purchase
    frequency_orders: tuple[int, int, int, int] = (12, 6, 3, 2)    # at least this many orders in the tier window
    monetary_min: tuple[Decimal, Decimal, Decimal, Decimal] = (
        Decimal("10000.00"), Decimal("5000.00"), Decimal("1000.00"), Decimal("300.00"))  # net spend, tier window

    @field_validator("recency_days")
    @classmethod
    def _rising(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if value[0] < 0 or any(a >= b for a, b in zip(value, value[1:])):
            raise ValueError("recency_days must rise strictly from 0 or more (the days for scores 5, 4, 3, 2)")
        return value

    @field_validator("frequency_orders", "monetary_min")
    @classmethod
    def _falling(cls, value: tuple, info) -> tuple:
        if value[-1] <= 0 or any(a <= b for a, b in zip(value, value[1:])):
            raise ValueError(f"{info.field_name} must fall strictly, all above 0 (the minimums for scores 5, 4, 3, 2)")
        if info.field_name == "monetary_min" and any(m != m.quantize(Decimal("0.01")) for m in value):
            raise ValueError("monetary_min amounts have at most 2 decimals")
        return value

    @cached_property
    def frequency_rising(self) -> tuple[int, ...]:
        """The frequency minimums in rising order (for bisect)."""
        return tuple(reversed(self.frequency_orders))

    @cached_property
    def monetary_rising_minor(self) -> tuple[int, ...]:
        """The monetary minimums in minor units, in rising order (for bisect)."""
        return tuple(int(m * 100) for m in reversed(self.monetary_min))


class ValuePolicy(Section):
    """The value class from the RFM scores: high first, then low, else medium (none without a purchase)."""
    high_min_r: int = Field(default=4, ge=1, le=5)      # high: R >= 4 and F + M >= 8
    high_min_f_plus_m: int = Field(default=8, ge=2, le=10)
    low_max_r: int = Field(default=2, ge=0, le=5)       # low: R <= 2 (0: never low)


class PointsExpiringPolicy(Section):
    """The reminder sent remind_days before a local date on which at least min_points expire."""
    remind_days: int = Field(default=30, ge=1, le=3650)
    min_points: int = Field(default=100, ge=1)


class MemberDayPolicy(Section):
    """The shop's member days (a day of every month and/or dates) and the customers they are for."""
    monthly_day: Optional[int] = Field(default=None, ge=1, le=28)
    dates: tuple[date, ...] = ()
    statuses: tuple[Status, ...] = ("active", "potential")
    tiers: tuple[Tier, ...] = TIERS

    @field_validator("dates")
    @classmethod
    def _sorted(cls, value: tuple[date, ...]) -> tuple[date, ...]:
        return tuple(sorted(set(value)))

    @cached_property
    def any_day(self) -> bool:
        """True when the policy names at least one member day."""
        return self.monthly_day is not None or bool(self.dates)

    @cached_property
    def last_midnight_bound_ms(self) -> Optional[int]:
        """Return a time after the last member day's midnight in every time zone (None: they never end)."""
        if self.monthly_day is not None or not self.dates:
            return None
        return (self.dates[-1].toordinal() - date(1970, 1, 1).toordinal() + 2) * 86_400_000


class CampaignPolicy(Section):
    win_back_cooldown_days: int = Field(default=90, ge=0)
    birthday_grace_days: int = Field(default=3, ge=0)
    default_timezone: str = "Asia/Shanghai"
    # At least a day: two congratulations for one tier on one date would share a trigger id.
    tier_upgrade_cooldown_days: int = Field(default=30, ge=1)
    disabled: tuple[CampaignName, ...] = ()
    points_expiring: PointsExpiringPolicy = PointsExpiringPolicy()
    member_day: MemberDayPolicy = MemberDayPolicy()

    @cached_property
    def enabled(self) -> frozenset[str]:
        """The campaigns that fire (every one not disabled)."""
        return frozenset(CAMPAIGNS) - frozenset(self.disabled)

    @cached_property
    def reminders_on(self) -> bool:
        """True when points_expiring reminders fire (checked per event: a plain attribute)."""
        return "points_expiring" in self.enabled

    @cached_property
    def member_days_on(self) -> bool:
        """True when member days are named and their campaign fires."""
        return self.member_day.any_day and "member_day" in self.enabled

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zone(value)
        except Exception:  # ZoneInfoNotFoundError is a KeyError, which pydantic would not report
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class RewardPolicy(Section):
    """One reward of the catalog: a coupon bought with points."""
    points: int = Field(ge=1, le=10**12)
    coupon_value: Optional[Decimal] = Field(default=None, gt=0, le=_MONEY_LIMIT, decimal_places=2)
    percent_off: Optional[int] = Field(default=None, ge=1, le=100)
    min_order: Optional[Decimal] = Field(default=None, gt=0, le=_MONEY_LIMIT, decimal_places=2)
    valid_days: int = Field(ge=1, le=3650)
    min_tier: Optional[Tier] = None
    per_customer_per_year: Optional[int] = Field(default=None, ge=1)
    refund_points_on_expiry: bool = False

    @model_validator(mode="after")
    def _one_discount(self) -> "RewardPolicy":
        if (self.coupon_value is None) == (self.percent_off is None):
            raise ValueError("a reward needs exactly one of coupon_value and percent_off")
        return self

    @cached_property
    def coupon_value_minor(self) -> Optional[int]:
        return None if self.coupon_value is None else int(self.coupon_value * 100)

    @cached_property
    def min_order_minor(self) -> Optional[int]:
        return None if self.min_order is None else int(self.min_order * 100)


RewardId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


class ClockPolicy(Section):
    """The wall-clock ticker of `loyalty worker --clock wall` (docs/events.md, "Time")."""
    tick_seconds: float = Field(default=60.0, gt=0)


class RetentionPolicy(Section):
    """How long per-customer memory is kept (bounded state)."""
    order_days: int = Field(default=400, ge=1)
    # Event ids catch a producer's resend (webhook and outbox retries stop within days); Kafka's own
    # redelivery after a crash is caught by the input offset saved with the states, however old.
    event_id_days: int = Field(default=7, ge=1)
    # Redemption and claim ids move points, and a customer has few: they are kept far longer.
    redemption_id_days: int = Field(default=400, ge=1)
    daily_counter_days: int = Field(default=40, ge=1)


class LimitsPolicy(Section):
    """Validation bounds: what an event may claim, and how much of a refused one the DLQ keeps."""
    max_amount: Decimal = Field(default=Decimal("1000000.00"), gt=0, le=Decimal("10000000000.00"), decimal_places=2)
    max_future_seconds: int = Field(default=86_400, ge=0)
    max_dlq_raw_bytes: int = Field(default=100_000, ge=1024, le=900_000)

    @cached_property
    def max_amount_minor(self) -> int:
        return int(self.max_amount * 100)

    @cached_property
    def max_future_ms(self) -> int:
        return self.max_future_seconds * 1000


class Policy(Section):
    """The whole loyalty policy; every section has the contract's defaults."""
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    earn: EarnPolicy = EarnPolicy()
    lots: LotsPolicy = LotsPolicy()
    tier: TierPolicy = TierPolicy()
    status: StatusPolicy = StatusPolicy()
    campaigns: CampaignPolicy = CampaignPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    clock: ClockPolicy = ClockPolicy()
    limits: LimitsPolicy = LimitsPolicy()
    rfm: RfmPolicy = RfmPolicy()
    value: ValuePolicy = ValuePolicy()
    rewards: dict[RewardId, RewardPolicy] = {}   # the reward catalog: [rewards.<reward_id>]

    @model_validator(mode="after")
    def _consistent(self) -> "Policy":
        if self.tier.premium_min > self.tier.vip_min:
            raise ValueError("tier.premium_min must not exceed tier.vip_min")
        if self.retention.order_days < max(self.tier.window_days, self.status.purchase_window_days):
            raise ValueError("retention.order_days must cover the tier window")
        if self.retention.redemption_id_days < self.retention.event_id_days:
            raise ValueError("retention.redemption_id_days must be at least retention.event_id_days")
        return self


class PolicyError(ValueError):
    """The policy file cannot be read or is invalid."""


def load_policy(path: Optional[Union[str, Path]] = None) -> Policy:
    """Load the policy from a loyalty.toml (missing sections and keys take the defaults)."""
    if path is None:
        return Policy()
    try:
        with open(path, "rb") as handle:
            return Policy.model_validate(tomllib.load(handle))
    except FileNotFoundError:
        raise PolicyError(f"policy file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise PolicyError(f"{path}: {where}: {err['msg']}") from None
