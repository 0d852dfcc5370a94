"""What every edgepose CLI shares: one-line errors, exit codes, logging setup."""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from edgepose.core.errors import EdgePoseError, OutputError, one_line
from edgepose.core.stdio import silence_stdout

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except for on/off flags (``--no-crops`` would read
    "(default: True)", the value of the setting it turns off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with defaults shown; usage errors are one line and exit code 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {one_line(message)} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


class OneLineFormatter(logging.Formatter):
    """Each log record one line, control characters escaped (a file name with a newline
    in it); a traceback (DEBUG) still follows on its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr; when stderr is the process's own (a CLI, not a test harness), what
    native libraries print there goes to the debug log (``edgepose.core.nativelog``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    if sys.stderr is sys.__stderr__:
        from edgepose.core.nativelog import capture_native_stderr

        capture_native_stderr()


# An OSError with one of these is about a path the user gave (exit 2); others (disk
# full, I/O error) are failures of a good start (exit 1).
_INPUT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR,
                 errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST}
_FIXES = {errno.ENOSPC: "free some space or write elsewhere",
          errno.EDQUOT: "free some space or write elsewhere",
          errno.EACCES: "pass a path you may write to", errno.EPERM: "pass a path you may write to",
          errno.EROFS: "the file system is read-only; write elsewhere",
          errno.ENOENT: "check the path", errno.ENOTDIR: "check the path",
          errno.EISDIR: "pass a file, not a folder", errno.EIO: "check the disk or device"}


def describe_os_error(err: OSError, what: str = "") -> str:
    """One line for an OSError: the file, what happened and the fix."""
    reason = err.strerror or str(err) or type(err).__name__
    fix = _FIXES.get(err.errno or 0, "check the path and try again")
    name = err.filename if err.filename is not None else what
    return f"{name}: {reason}; {fix}" if name else f"{reason}; {fix}"


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGINT, SIGTERM or SIGHUP while a CLI runs, so that
    every ``finally`` (temporary files removed, outputs closed) runs on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class StopHandler:
    """A handler of the stop signals (SIGINT, SIGTERM, SIGHUP where the OS has it):
    ``install`` makes this object their handler, ``restore`` puts the old ones back.
    Subclasses define ``__call__(signum, frame)``."""

    def __init__(self) -> None:
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        for name in STOP_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                self._old[sig] = signal.signal(sig, self)  # type: ignore[arg-type]
            except ValueError:  # not the main thread (embedded use): leave signals alone
                return

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


class _Interrupter(StopHandler):
    """The handler ``run_cli`` installs: the first stop signal raises ``Interrupted``;
    later ones are ignored, so that the clean-up it starts is not interrupted in turn."""

    def __init__(self) -> None:
        super().__init__()
        self.raised = False
        self.signum: int | None = None  # the signal whose ``Interrupted`` was raised

    def __call__(self, signum: int, frame: Any) -> None:
        if not self.raised:
            self.raised = True
            self.signum = signum
            raise Interrupted(signum)


_running: list[_Interrupter] = []  # the handler of the ``run_cli`` now running, if any


def check_stop() -> None:
    """Raise ``Interrupted`` again if a stop signal came during this ``run_cli`` and the
    exception its handler raised was swallowed (native code that calls back into Python,
    TensorFlow's converter and AutoGraph, can catch it and carry on). Call it before a
    command writes what it made, so that a stop is never followed by new files."""
    if _running and _running[-1].signum is not None:
        raise Interrupted(_running[-1].signum)


def _flush_stdout() -> None:
    """Flush stdout now, inside the error handling, and if that fails make sure the
    interpreter's own flush at exit cannot fail again (no 'Exception ignored')."""
    try:
        sys.stdout.flush()
    except OSError:
        silence_stdout()
        raise


class _NamedStdout:
    """stdout whose write errors name it ("stdout: No space left on device")."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        try:
            return int(self._inner.write(text))
        except OSError as err:
            if err.filename is None and not isinstance(err, BrokenPipeError):
                err.filename = "stdout"
            raise

    def flush(self) -> None:
        try:
            self._inner.flush()
        except OSError as err:
            if err.filename is None and not isinstance(err, BrokenPipeError):
                err.filename = "stdout"
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def run_cli(prog: str, func: Callable[[], int | None], *, interrupted: int = EXIT_RUNTIME,
            final: bool = False) -> int:
    """Run ``func``; turn every failure into one line on stderr and an exit code.

    An ``EdgePoseError`` exits 2 (bad input or config; ``OutputError`` and other
    mid-run failures are reported by the command and exit 1), an ``OSError`` is one line
    naming the file (exit 2 when it is about a path the user gave, else 1), a reader that
    went away (``| head``) exits 0. Ctrl-C, SIGTERM and SIGHUP alike raise
    ``Interrupted`` in ``func`` (its ``finally`` blocks clean up): one line saying so
    and the exit code ``interrupted`` (1: the command did not finish; ``edgepose-run``,
    which stops its outputs cleanly on these signals, passes 0). ``final``: the process
    exits after this (``main()`` called with ``argv=None``), so a signal that comes later,
    while the interpreter shuts down (TensorFlow takes seconds), is ignored rather than
    the default handlers restored.
    """
    real_stdout = sys.stdout
    sys.stdout = _NamedStdout(real_stdout)
    interrupter = _Interrupter()
    interrupter.install()
    _running.append(interrupter)
    try:
        rc = func()
        _flush_stdout()
        return EXIT_OK if rc is None else int(rc)
    except KeyboardInterrupt as err:
        interrupter.raised = True  # a second signal now is ignored
        return _stopped(prog, err.name if isinstance(err, Interrupted) else "SIGINT", interrupted)
    except Exception as err:
        if interrupter.signum is not None:
            # native code (TensorFlow's converter, a C extension calling back into Python)
            # turned the ``Interrupted`` into an error of its own: the stop is what happened
            logging.getLogger(prog).debug("the stop signal surfaced as: %s", err, exc_info=True)
            return _stopped(prog, signal.Signals(interrupter.signum).name, interrupted)
        return _failed(prog, err)
    finally:
        _running.remove(interrupter)
        sys.stdout = real_stdout
        interrupter.raised = True
        if not final:
            interrupter.restore()


def _stopped(prog: str, name: str, code: int) -> int:
    _error(prog, f"stopped by {name} before it finished", "")
    return code


def _failed(prog: str, err: Exception) -> int:
    """One line and the exit code for a failure ``run_cli`` knows; anything else (a bug)
    propagates with its traceback."""
    if isinstance(err, BrokenPipeError):
        silence_stdout()
        return EXIT_OK
    if isinstance(err, OutputError):
        _error(prog, str(err))
        return EXIT_RUNTIME
    if isinstance(err, EdgePoseError):
        _error(prog, str(err))
        return EXIT_USAGE
    if isinstance(err, OSError):
        if err.filename == "stdout":
            silence_stdout()
        _error(prog, describe_os_error(err))
        logging.getLogger(prog).debug("traceback", exc_info=err)
        return EXIT_USAGE if err.errno in _INPUT_ERRNOS else EXIT_RUNTIME
    raise err


def _error(prog: str, message: str, kind: str = "error: ") -> None:
    try:
        sys.stderr.write(f"{prog}: {kind}{one_line(message)}\n")
        sys.stderr.flush()
    except OSError:
        pass


def add_subcommands(parser: argparse.ArgumentParser, modules: Sequence[str]) -> None:
    """Each module has ``register(subparsers)`` that adds a parser with ``func=run``."""
    import importlib

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in modules:
        importlib.import_module(name).register(sub)
