"""Run a peer (bench.peer_loop, bench.peer_quix) as a child process on the backlog and read its rate."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import orjson

from bench.workers import BenchError
from streams.settings import Settings
from tools.processes import stop_process

PEERS = {"loop": "bench.peer_loop", "quix": "bench.peer_quix"}
_NEEDS = {"quix": "quixstreams"}  # a peer's framework, from the `bench` extra


def run_peer(name: str, settings: Settings, workdir: Path, records: int, timeout_s: float) -> float:
    """Run one peer until it has folded `records` input records; return its steady events/s."""
    needed = _NEEDS.get(name)
    if needed and importlib.util.find_spec(needed) is None:
        raise BenchError(f"{needed} is not installed (pip install -e '.[bench]', or `make bench`)")
    state_dir = workdir / f"peer-{name}"
    state_dir.mkdir()
    log = workdir / f"peer-{name}.log"
    command = [sys.executable, "-m", PEERS[name], "--broker", settings.bootstrap_servers[0],
               "--group", f"bench-peer-{name}-{os.getpid()}", "--records", str(records),
               "--state-dir", str(state_dir)]
    with open(log, "wb") as errors:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise BenchError(f"the {name} peer did not finish in {timeout_s:.0f}s") from None
        finally:  # also when the benchmark itself is interrupted
            stop_process(proc, timeout_s=5)
    lines = out.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
        raise BenchError(f"the {name} peer exited with code {proc.returncode}: {' '.join(tail)[:300]}")
    return float(orjson.loads(lines[-1])["events_per_second"])
