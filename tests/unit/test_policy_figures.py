"""The fold's plain copy of a policy's figures (projections/constants.py) follows the policy it is asked for."""
from projections.constants import figures
from schemas.policy import Policy
from schemas.timeutil import DAY_MS


def test_figures_follow_each_policy_asked_for():
    short = Policy.model_validate({"status": {"dormant_after_days": 10}, "tier": {"vip_min": "7000.00"}})
    default = Policy()
    for policy, dormant_days, vip_minor in ((short, 10, 700_000), (default, 180, 500_000), (short, 10, 700_000)):
        rules = figures(policy)
        assert (rules.dormant_ms, rules.vip_min_minor) == (dormant_days * DAY_MS, vip_minor)
        assert rules.window_ms == policy.tier.window_days * DAY_MS


def test_earn_ratios_are_the_exact_multipliers():
    policy = Policy.model_validate({"earn": {"multiplier": {"standard": "1.0", "premium": "1.25", "vip": "1.333"}}})
    assert figures(policy).earn_ratio == {"standard": (1, 1), "premium": (5, 4), "vip": (1333, 1000)}
