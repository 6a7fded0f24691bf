"""The `loyalty` command's entry point: a stop signal is a clean stop from the process's first moment."""
import os
import signal


def _stop_before_the_command(signum: int, _frame: object) -> None:
    """Ctrl-C or SIGTERM while Python still loads the command: nothing has started, so end at once, quietly."""
    os._exit(128 + signum)  # as a shell reports a signal; no traceback out of some import


def main() -> None:
    """Run `loyalty`; each command takes over Ctrl-C and SIGTERM as it starts (tools.cli_common.friendly)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_before_the_command)
    from tools.cli import main as loyalty  # here, after the handlers: loading the commands takes a while
    loyalty()
