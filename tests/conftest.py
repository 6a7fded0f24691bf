"""Test plugins shared by every tier, and the order `make test` runs them in parallel (pytest-xdist)."""
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.promtool"]

#: The modules whose tests take a minute or more, longest first: they start first, so that no process is left
#: running one of them alone at the end of a parallel run (figures in docs/testing.md).
SLOWEST_FIRST = [
    "integration/test_stop_during_catch_up.py", "integration/test_faults.py", "e2e/test_bench.py",
    "integration/test_deliver.py", "integration/test_policy_change.py", "integration/test_http_security.py",
    "integration/test_recovery.py", "integration/test_failover.py",
]
_TESTS = Path(__file__).resolve().parent


def _module(item: pytest.Item) -> str:
    return Path(str(item.path)).resolve().relative_to(_TESTS).as_posix()


def pytest_collection_modifyitems(config, items: list[pytest.Item]) -> None:
    """Slowest first: modules in SLOWEST_FIRST's order, then those with a broker test, then the rest.

    The sort is stable and by module, so each module's tests stay together and in their order (`--dist loadfile`
    runs a module in one process: a module_cluster's tests share one run and may depend on the tests before).
    """
    with_broker = {_module(item) for item in items if item.get_closest_marker("broker")}
    rank = {module: place for place, module in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(_module(item), len(rank) + (_module(item) not in with_broker)))
