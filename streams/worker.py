"""Start a stream worker in the foreground."""
from __future__ import annotations

import faust

from streams.app import create_app
from streams.logs import configure_logging, lifecycle
from streams.settings import Settings


def run_worker(settings: Settings, log_format: str = "text") -> None:
    """Run one worker until it is stopped (SIGTERM or Ctrl-C)."""
    configure_logging(log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    lifecycle("worker starting", app_id=settings.app_id, broker=settings.broker, broker_kind=settings.broker_kind,
              partitions=settings.partitions, clock=settings.clock, web_port=settings.web_port,
              data_dir=str(settings.data_dir))
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, override_logging=False)
    worker.execute_from_commandline()
    lifecycle("worker stopped", app_id=settings.app_id)
