"""A local RocksDB (rocksdict) store of customer states: the output of `loyalty replay`, read by `query --store`."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Optional

import orjson
from rocksdict import AccessType, Options, Rdict, WriteBatch

from projections.state import CustomerState

_CUSTOMER = b"c/"
_META = b"meta"
# The mark of a directory this tool created: only such a directory is ever replaced, so a mistyped
# --out can never delete a worker's state or anybody's files.
MARKER = "LOYALTY-REPLAY-STORE"
_MARKER_TEXT = "Written by `loyalty replay`; the next `loyalty replay --out` into this directory replaces it.\n"
# What RocksDB (and rocksdict) write into a database directory; nothing else is removed with it.
_DB_FILE = re.compile(r"^(CURRENT|IDENTITY|LOCK|LOG(\.old\.\d+)?|MANIFEST-\d+|OPTIONS-\d+(\.dbtmp)?"
                      r"|\d+\.(log|sst|blob|dbtmp)|rocksdict-config\.json)$")


class StoreError(RuntimeError):
    """The store directory is missing, not a replay store, or may not be replaced."""


def looks_like_worker_data(path: Path) -> bool:
    """True if path holds a worker's local state (Faust's tables under v*/tables)."""
    return any(p.is_dir() for p in Path(path).glob("v*/tables"))


def check_target(path: Path) -> None:
    """Fail unless a replay may write to path: a new or empty directory, or an earlier replay store."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise StoreError(f"--out {path}: is a file, not a directory")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    if MARKER not in entries:
        hint = "; it looks like a worker's data dir" if looks_like_worker_data(path) else ""
        raise StoreError(f"--out {path}: the directory holds files and is not a replay store{hint}; "
                         f"a replay only replaces a store it wrote: give a new directory")
    foreign = [name for name in entries if name != MARKER and not _DB_FILE.match(name)]
    if foreign:
        raise StoreError(f"--out {path}: a replay store, but it also holds {', '.join(foreign[:5])}; "
                         f"move those away or give a new directory")


class ReplayStore:
    """Customer states by id, plus a metadata record, in one RocksDB directory marked as a replay store."""

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = Path(path)
        if not create:
            _check_readable(self.path)
        options = Options(raw_mode=True)
        options.create_if_missing(create)
        # Read-only when reading: a query never changes the files of the store it reads.
        access = AccessType.read_write() if create else AccessType.read_only()
        self.db = Rdict(str(self.path), options=options, access_type=access)

    @classmethod
    def fresh(cls, path: Path) -> "ReplayStore":
        """Create an empty store in a new or empty directory, or in place of an earlier replay store."""
        path = Path(path)
        check_target(path)
        if (path / MARKER).exists():
            Rdict.destroy(str(path))  # removes RocksDB's own files only (check_target saw nothing else)
        path.mkdir(parents=True, exist_ok=True)
        (path / MARKER).write_text(_MARKER_TEXT)
        return cls(path, create=True)

    def write(self, states: dict[str, bytes], meta: dict) -> None:
        """Write encoded states (customer id -> CustomerState bytes) in sorted key order and the metadata, in one batch."""
        batch = WriteBatch(raw_mode=True)
        for customer_id in sorted(states):
            batch.put(_CUSTOMER + customer_id.encode(), states[customer_id])
        batch.put(_META, orjson.dumps(meta, option=orjson.OPT_SORT_KEYS))
        self.db.write(batch)
        self.db.flush()

    def get(self, customer_id: str) -> Optional[CustomerState]:
        """Return a customer's state, or None."""
        raw = self.db.get(_CUSTOMER + customer_id.encode())
        return None if raw is None else CustomerState.from_bytes(raw)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield every raw (key, value) pair in key order."""
        for key, value in self.db.items():
            yield key, value

    def states(self, after: Optional[str] = None) -> Iterator[CustomerState]:
        """Yield every customer state in id order (only those after this id, if one is given)."""
        # Keys sort as UTF-8 bytes, which is the order of the ids' code points: the order Python compares them in.
        start = _CUSTOMER if after is None else _CUSTOMER + after.encode()
        for key, value in self.db.items(from_key=start):
            if not key.startswith(_CUSTOMER):
                break
            if after is not None and key == start:
                continue
            yield CustomerState.from_bytes(value)

    def meta(self) -> dict:
        """Return the replay's metadata."""
        raw = self.db.get(_META)
        return {} if raw is None else orjson.loads(raw)

    def close(self) -> None:
        """Close the database."""
        self.db.close()


def _check_readable(path: Path) -> None:
    """Fail with a message that says what path is, if it is not a complete replay store."""
    if not path.is_dir():
        raise StoreError(f"{path}: no such directory; `loyalty replay --out {path}` writes a replay store there")
    if not (path / MARKER).exists():
        hint = (" (it looks like a worker's data dir: query the running worker with --url instead)"
                if looks_like_worker_data(path) else "")
        raise StoreError(f"{path} is not a replay store{hint}; `loyalty replay --out NEW_DIR` writes one")
    if not (path / "CURRENT").exists():
        raise StoreError(f"{path} is an unfinished replay store (was the replay stopped?); run the replay again")
