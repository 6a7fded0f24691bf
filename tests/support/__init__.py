"""Helpers every test tier shares: event builders, the given/when/then scenario, invariants, the Prometheus parser."""
