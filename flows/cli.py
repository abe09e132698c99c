"""The ``xtract`` command line.

Subcommands live in ``flows.commands`` (one module each). Arguments are checked
before Prefect is imported, so a typo costs a fraction of a second and one clear
line on stderr, not a server start.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import pkgutil
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from flows.startup import skip_exit_collection
from xtract_blocks.errors import ConfigurationError


class UsageError(ConfigurationError):
    """Bad command-line input, reported as one line before any work starts."""


#: The run finished (or stopped) but could not report all of its status to the Prefect API.
EXIT_STATUS_UNREPORTED = 3
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM outside a flow run (inside one Prefect raises its own ``TerminationSignal``)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _is_sigterm(exc: BaseException) -> bool:
    return isinstance(exc, Terminated) or getattr(exc, "signal", None) == signal.SIGTERM


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def check_writable_dir(path: str, what: str) -> str:
    """Create ``path`` if needed and prove it is writable; returns it absolute."""
    out = os.path.abspath(path)
    probe_dir = out
    while not os.path.exists(probe_dir):
        probe_dir = os.path.dirname(probe_dir)
    if not os.path.isdir(probe_dir):
        raise UsageError(f"{what} is not a directory: {probe_dir}")
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".write-test-{uuid.uuid4().hex}")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{what} is not writable: {out} ({exc.strerror or exc})") from None
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"xtract: error: {message}\n")


def command_modules() -> list[ModuleType]:
    import flows.commands as pkg

    mods = [importlib.import_module(f"{pkg.__name__}.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)]
    return sorted(mods, key=lambda m: (m.NAME != "run", m.NAME))


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = _Parser(prog="xtract", description="Crawl file repositories and extract their metadata with Prefect.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands = {}
    for mod in command_modules():
        mod.add_arguments(sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP))
        commands[mod.NAME] = mod
    return parser, commands


def _run_command(module: ModuleType, args: argparse.Namespace) -> int:
    """The subcommand's exit code; usage errors, Ctrl-C and SIGTERM become one line and 2 / 130 / 143."""
    try:
        return int(module.run(args))
    except UsageError as exc:
        print(f"xtract: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xtract: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_SIGINT
    except BaseException as exc:
        if not _is_sigterm(exc):
            raise
        print("xtract: terminated; rerun the same command to resume", file=sys.stderr)
        return EXIT_SIGTERM


#: Prefect flushes its log and event queues at exit with no time limit: against an API that is gone
#: that never ends. The command line (not an in-process caller) ends at the latest this long after.
EXIT_DRAIN_LIMIT_S = 20.0


def _bound_exit(code: int) -> None:
    """Arm a timer that ends the process with ``code`` if Prefect's exit flush outlasts the limit."""
    if "prefect" not in sys.modules:
        return

    def end() -> None:
        from flows.prefect_server import stop_all

        stop_all()  # a server this run started is not left behind
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    timer = threading.Timer(EXIT_DRAIN_LIMIT_S, end)
    timer.daemon = True
    timer.start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Ctrl-C and SIGTERM end it with one line and 130 / 143.

    The journal commits whole batches, so an interrupted run leaves it consistent and the
    same command resumes; workers ignore SIGINT and are killed by the run as it stops.
    """
    atexit.register(skip_exit_collection)
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        code = _run_command(commands[args.command], args)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    if argv is None:  # the command line itself: its exit is bounded
        _bound_exit(code)
    return code


if __name__ == "__main__":  # ``python -m flows.cli``: use the importable module's classes
    from flows.cli import main as _main

    sys.exit(_main())
