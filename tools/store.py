"""A local RocksDB (rocksdict) store of customer states: the output of `loyalty replay`, read by `query --store`."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator, Optional

import orjson
from rocksdict import Options, Rdict, WriteBatch

from projections.state import CustomerState

_CUSTOMER = b"c/"
_META = b"meta"


class StoreError(RuntimeError):
    """The store directory is missing or not a replay store."""


class ReplayStore:
    """Customer states by id, plus a metadata record, in one RocksDB directory."""

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not (self.path / "CURRENT").exists():
            raise StoreError(f"{self.path} is not a replay store (run `loyalty replay --out {self.path}`)")
        options = Options(raw_mode=True)
        options.create_if_missing(create)
        self.db = Rdict(str(self.path), options=options)

    @classmethod
    def fresh(cls, path: Path) -> "ReplayStore":
        """Create an empty store, replacing what was at that path."""
        path = Path(path)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return cls(path, create=True)

    def write(self, states: dict[str, CustomerState], meta: dict) -> None:
        """Write states in sorted key order and the metadata, in one batch."""
        batch = WriteBatch(raw_mode=True)
        for customer_id in sorted(states):
            batch.put(_CUSTOMER + customer_id.encode(), states[customer_id].to_bytes())
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

    def states(self) -> Iterator[CustomerState]:
        """Yield every customer state in id order."""
        for key, value in self.db.items(from_key=_CUSTOMER):
            if not key.startswith(_CUSTOMER):
                break
            yield CustomerState.from_bytes(value)

    def meta(self) -> dict:
        """Return the replay's metadata."""
        raw = self.db.get(_META)
        return {} if raw is None else orjson.loads(raw)

    def close(self) -> None:
        """Close the database."""
        self.db.close()
