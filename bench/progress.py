"""The benchmark's progress line on stderr: rewritten in place on a terminal, a line every few seconds elsewhere."""
from __future__ import annotations

import sys
import time
from typing import IO, Optional

_LOG_EVERY_S = 5.0  # not a terminal (a CI log): one line this often at most


class Progress:
    """Says which phase runs and how far it got, without flooding a log file."""

    def __init__(self, total_phases: int, stream: Optional[IO] = None, enabled: bool = True) -> None:
        self.total = total_phases
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.phase_no = 0
        self.phase_name = ""
        self.started = time.monotonic()
        self._last_line = 0.0
        self._width = 0  # length of the line rewritten in place (padded over, so no escape codes are needed)

    def phase(self, name: str) -> None:
        """Start the next phase."""
        self.phase_no += 1
        self.phase_name = name
        self._write(f"{self._prefix()} ...", force=True)

    def update(self, text: str) -> None:
        """Say how far the current phase got (throttled when not on a terminal)."""
        self._write(f"{self._prefix()}: {text}")

    def done(self, text: str) -> None:
        """Close the phase with its result."""
        self._write(f"{self._prefix()}: {text}", force=True, final=True)

    def note(self, text: str) -> None:
        """Say something outside any phase."""
        self._write(f"bench: {text}", force=True, final=True)

    def _prefix(self) -> str:
        elapsed = time.monotonic() - self.started
        return f"bench [{self.phase_no}/{self.total} {elapsed:5.0f}s] {self.phase_name}"

    def _write(self, line: str, force: bool = False, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width) + ("\n" if final else ""))
            self._width = 0 if final else len(line)
        elif force or now - self._last_line >= _LOG_EVERY_S:
            self.stream.write(line + "\n")
            self._last_line = now
        self.stream.flush()
