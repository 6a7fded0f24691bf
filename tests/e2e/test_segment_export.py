"""`loyalty query segment` pages: 200,000 members exported as CSV from a store, every id once, memory bounded."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import orjson
import pytest

from projections.state import CustomerState
from projections.documents import MEMBER_FIELDS
from schemas.timeutil import format_ms
from tools.store import ReplayStore

MEMBERS, OTHERS = 200_000, 10_000
CHUNK = 20_000


def state(n: int) -> CustomerState:
    """Customer n: the first MEMBERS are dormant, the others active; odd ones have a purchase."""
    customer = CustomerState(f"c{n:07d}", 1_700_000_000_000)
    customer.status = "dormant" if n < MEMBERS else "active"
    customer.tier, customer.value = ("standard", "premium", "vip")[n % 3], ("high", "low")[n % 2]
    customer.points_balance = n - 5
    customer.last_purchase_ms = 1_700_000_000_000 + n * 1000 if n % 2 else None
    return customer


def write_store(path, count: int) -> None:
    """A replay store of customers 0..count-1 (written a chunk at a time, as replay holds no more)."""
    store = ReplayStore.fresh(path)
    for start in range(0, count, CHUNK):
        store.write({s.customer_id: s.to_bytes() for s in map(state, range(start, min(count, start + CHUNK)))},
                    {"clocks": {}})
    store.close()


def run(*args: str, out_path) -> tuple[int, int, str]:
    """Run `loyalty ARGS` with stdout to a file; return its exit code, peak RSS (KiB) and stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    with open(out_path, "wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "tools", *args], stdout=out, stderr=subprocess.PIPE, env=clean)
        stderr = child.stderr.read().decode()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest of every child's
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss, stderr


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "store"
    write_store(path, MEMBERS + OTHERS)
    return path


def test_csv_export_of_200000_members_every_id_once_in_the_memory_of_a_small_one(big_store, tmp_path):
    small = tmp_path / "small"
    write_store(small, 2_000)
    code, small_rss_kib, stderr = run("query", "segment", "--status", "dormant", "--format", "csv",
                                      "--store", str(small), out_path=tmp_path / "small.csv")
    assert code == 0, stderr
    code, rss_kib, stderr = run("query", "segment", "--status", "dormant", "--format", "csv",
                                "--store", str(big_store), out_path=tmp_path / "big.csv")
    assert code == 0, stderr
    with open(tmp_path / "big.csv", newline="") as exported:
        rows = csv.reader(exported)
        assert tuple(next(rows)) == MEMBER_FIELDS
        count = 0
        for n, row in enumerate(rows):  # every member, once, in id order, with its fields
            expected = state(n)
            last_purchase = "" if expected.last_purchase_ms is None else format_ms(expected.last_purchase_ms)
            assert row == [expected.customer_id, expected.tier, "dormant", expected.value,
                           str(expected.points_balance), last_purchase], row
            count += 1
    assert count == MEMBERS
    # 200,000 rows held at once would take well over 100 MB; a page at a time stays near the small run.
    print(f"peak RSS: {rss_kib} KiB for {MEMBERS} members, {small_rss_kib} KiB for 1,000 (of 2,000)")
    assert rss_kib < small_rss_kib + 40_000, (rss_kib, small_rss_kib)


def test_one_page_then_the_next_from_its_cursor(big_store, tmp_path):
    code, _, stderr = run("query", "segment", "--status", "dormant", "--tier", "vip", "--limit", "3",
                          "--store", str(big_store), out_path=tmp_path / "p1")
    assert code == 0 and (tmp_path / "p1").read_text().split() == ["c0000002", "c0000005", "c0000008"]
    cursor = stderr.strip().removeprefix("next page: --cursor ")
    assert stderr.startswith("next page: --cursor ") and " " not in cursor
    code, _, stderr = run("query", "segment", "--status", "dormant", "--tier", "vip", "--limit", "2", "--json",
                          "--cursor", cursor, "--store", str(big_store), out_path=tmp_path / "p2")
    page = orjson.loads((tmp_path / "p2").read_bytes())
    assert code == 0 and page["customer_ids"] == ["c0000011", "c0000014"] and page["next"], stderr
    code, _, stderr = run("query", "segment", "--value", "high", "--status", "active", "--cursor", page["next"],
                          "--store", str(big_store), out_path=tmp_path / "rest")
    rest = (tmp_path / "rest").read_text().split()  # the walk from a cursor: every later member (of any segment)
    assert code == 0 and rest == [f"c{n:07d}" for n in range(MEMBERS, MEMBERS + OTHERS, 2)], stderr


def test_the_json_of_a_whole_segment_is_the_document_it_always_was(tmp_path):
    write_store(tmp_path / "store", 30)
    for args, ids in ((("--status", "dormant", "--tier", "vip"), [f"c{n:07d}" for n in range(2, 30, 3)]),
                      (("--status", "active"), [])):
        code, _, stderr = run("query", "segment", *args, "--json", "--store", str(tmp_path / "store"),
                              out_path=tmp_path / "out.json")
        assert code == 0, stderr
        segment = {"status": args[1], "tier": args[3] if len(args) > 2 else None, "value": None}
        # As `echo_json` prints it: the format of `--json` before pages existed.
        expected = orjson.dumps({**segment, "customer_ids": ids}, option=orjson.OPT_INDENT_2).decode() + "\n"
        assert (tmp_path / "out.json").read_text() == expected


@pytest.mark.parametrize("args, needle", [
    (("--limit", "0"), "--limit"), (("--limit", "10001"), "--limit"),
    (("--cursor", "%%%"), "--cursor"), (("--json", "--format", "csv"), "--json"),
])
def test_a_bad_page_option_is_one_line_and_exit_2(tmp_path, args, needle):
    write_store(tmp_path / "store", 3)
    code, _, stderr = run("query", "segment", "--status", "dormant", *args, "--store", str(tmp_path / "store"),
                          out_path=tmp_path / "out")
    assert code == 2 and needle in stderr and "Traceback" not in stderr, stderr
