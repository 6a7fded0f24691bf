"""The domain is pure: projections/ imports no framework and never reads a clock (STYLE rule 1)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_MODULES = sorted((ROOT / "projections").glob("**/*.py"))
FORBIDDEN_MODULES = {"faust", "kafka", "aiokafka", "rocksdict", "prometheus_client", "time"}
FORBIDDEN_NAMES = {"now", "utcnow", "today", "monotonic", "monotonic_ns", "perf_counter", "time_ns"}


def impurities(source: str) -> list[str]:
    """List the framework imports and clock reads in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"from {node.module} import ...")
            found += [f"from {node.module} import {a.name}" for a in node.names if a.name in FORBIDDEN_NAMES]
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_NAMES:
                found.append(f"attribute .{node.attr}")
            elif node.attr == "time" and isinstance(node.value, ast.Name) and node.value.id == "time":
                found.append("time.time")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_NAMES:
            found.append(f"call {node.func.id}()")
    return found


def test_the_domain_has_modules():
    assert {p.name for p in DOMAIN_MODULES} >= {"customer.py", "partition.py", "points.py", "state.py", "timeline.py"}


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda p: p.name)
def test_domain_module_imports_no_framework_and_reads_no_clock(path):
    assert impurities(path.read_text()) == []


@pytest.mark.parametrize("source", [
    "import faust", "import kafka.admin", "from aiokafka import AIOKafkaConsumer", "import rocksdict",
    "from prometheus_client import Counter", "import time", "from time import monotonic",
    "from datetime import datetime\nx = datetime.now()", "import datetime\nx = datetime.datetime.utcnow()",
    "from datetime import date\nx = date.today()", "x = time.time()", "x = now()",
])
def test_the_purity_check_catches_each_kind_of_impurity(source):
    assert impurities(source) != []


def test_importing_the_domain_loads_no_framework_module():
    code = ("import sys, projections.customer, projections.partition, projections.points, "
            "projections.state, projections.timeline\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN_MODULES - {'time'})!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
