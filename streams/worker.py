"""Start a stream worker in the foreground."""
from __future__ import annotations

import faust

from streams.app import create_app
from streams.settings import Settings


def run_worker(settings: Settings) -> None:
    """Run one worker until it is stopped (SIGTERM or Ctrl-C)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
