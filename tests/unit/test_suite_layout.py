"""The test suite keeps its shape: shared helpers in tests/support, broker tests marked, invariants that can fail."""
from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.fixtures.kafka import pytest_collection_modifyitems
from tests.support.events import day, paid, refund
from tests.support.invariants import check_points, check_running_balances
from tests.support.scenario import given

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
    return found


@pytest.mark.parametrize("tier", ["unit", "integration", "support", "fixtures"])
def test_only_the_e2e_tests_import_tests_e2e(tier):
    offenders = {str(path.relative_to(TESTS)): sorted(m for m in imported_modules(path) if m.startswith("tests.e2e"))
                 for path in sorted((TESTS / tier).rglob("*.py"))}
    assert not {path: modules for path, modules in offenders.items() if modules}


def _item(nodeid: str, fixtures: tuple[str, ...], marked: bool) -> SimpleNamespace:
    return SimpleNamespace(nodeid=nodeid, fixturenames=fixtures,
                           get_closest_marker=lambda name: object() if marked and name == "broker" else None)


def test_a_test_starting_the_broker_through_a_fixture_must_be_marked_broker():
    fine = [_item("t::marked", ("run", "module_cluster"), True), _item("t::no_broker", ("tmp_path",), False)]
    pytest_collection_modifyitems(None, fine)
    with pytest.raises(pytest.UsageError, match=r"t::unmarked_cluster, t::unmarked_module_cluster$"):
        pytest_collection_modifyitems(None, [*fine, _item("t::unmarked_cluster", ("cluster",), False),
                                             _item("t::unmarked_module_cluster", ("run", "module_cluster"), False)])


def test_the_points_invariants_catch_a_balance_off_its_ledger_or_its_lots():
    s = given(paid("o1", "100.00"), refund("o1", "30.00", day(1)))
    check_points(s.state(), 70)
    with pytest.raises(AssertionError):
        check_points(s.state(), 71)
    s.state().points_balance = 71
    with pytest.raises(AssertionError):
        check_points(s.state(), 71)  # the ledger says 71, the lots 70


def test_the_running_balance_check_catches_a_wrong_balance_after():
    entries = [{"customer_id": "c1", "points": 100, "balance_after": 100},
               {"customer_id": "c2", "points": 5, "balance_after": 5},
               {"customer_id": "c1", "points": -30, "balance_after": 70}]
    assert check_running_balances(entries) == {"c1": 70, "c2": 5}
    with pytest.raises(AssertionError):
        check_running_balances([*entries, {"customer_id": "c2", "points": 1, "balance_after": 7}])
