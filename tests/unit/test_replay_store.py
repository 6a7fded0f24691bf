"""`loyalty replay --out` deletes nothing it did not create, and `query --store` never invites it to."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tools.cli import main
from tools.store import MARKER, ReplayStore, StoreError, check_target

# Nothing listens on port 1: a command that reached the broker would fail differently (and slowly).
NO_BROKER = "kafka://127.0.0.1:1"


def _worker_data_dir(root: Path) -> Path:
    """Lay out a directory as `loyalty worker --data-dir` leaves it (Faust's tables under v1/tables)."""
    table = root / "v1" / "tables" / "customers-0.db"
    table.mkdir(parents=True)
    (table / "CURRENT").write_text("MANIFEST-000001\n")
    return root


def _replay(*args: str):
    return CliRunner().invoke(main, ["replay", "--broker", NO_BROKER, *args])


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_replay_refuses_a_directory_with_unrelated_files_and_leaves_them(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8 not a store")
    (out / "notes").mkdir()
    (out / "notes" / "todo.txt").write_text("keep me")
    before = _files(out)
    result = _replay("--out", str(out))
    assert result.exit_code == 2, result.output
    assert "not a replay store" in result.output and "new directory" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert _files(out) == before


def test_replay_refuses_a_workers_data_dir_and_says_what_it_looks_like(tmp_path):
    data = _worker_data_dir(tmp_path / "data1")
    before = _files(data)
    result = _replay("--out", str(data))
    assert result.exit_code == 2
    assert "worker's data dir" in result.output
    assert _files(data) == before


def test_query_store_on_a_workers_data_dir_does_not_suggest_replaying_into_it(tmp_path):
    data = _worker_data_dir(tmp_path / "data1")
    result = CliRunner().invoke(main, ["query", "customer", "c1", "--store", str(data)])
    assert result.exit_code == 2
    assert "not a replay store" in result.output and "worker's data dir" in result.output
    assert f"--out {data}" not in result.output and "--out data1" not in result.output


def test_query_store_on_a_plain_directory_says_it_is_not_a_replay_store(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    result = CliRunner().invoke(main, ["query", "stats", "--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a replay store" in result.output and f"--out {tmp_path}" not in result.output


def test_a_store_replaces_only_a_store_it_marked(tmp_path):
    out = tmp_path / "replay"
    store = ReplayStore.fresh(out)
    store.write({}, {"records": 1})
    store.close()
    assert (out / MARKER).exists()
    store = ReplayStore.fresh(out)  # an earlier replay store: replaced
    store.write({}, {"records": 2})
    store.close()
    store = ReplayStore(out)
    try:
        assert store.meta() == {"records": 2}
    finally:
        store.close()
    (out / "mine.txt").write_text("a user's file inside a replay store")
    with pytest.raises(StoreError, match="mine.txt"):
        ReplayStore.fresh(out)
    assert (out / "mine.txt").read_text().startswith("a user's file") and (out / "CURRENT").exists()


def test_a_new_or_empty_directory_is_accepted_and_a_file_is_refused(tmp_path):
    check_target(tmp_path / "new" / "deeper")
    (tmp_path / "empty").mkdir()
    store = ReplayStore.fresh(tmp_path / "empty")
    store.close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        check_target(tmp_path / "file")


def test_reading_a_store_changes_none_of_its_files(tmp_path):
    store = ReplayStore.fresh(tmp_path / "r")
    store.write({}, {"records": 0})
    store.close()
    before = _files(tmp_path / "r")
    ReplayStore(tmp_path / "r").close()
    assert _files(tmp_path / "r") == before
