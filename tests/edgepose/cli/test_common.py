"""``run_cli``: every failure one line and an exit code; a stop signal is a stop even
when native code between the handler and ``run_cli`` turns it into an error of its own."""

from __future__ import annotations

import signal

import pytest

from edgepose.cli.common import EXIT_RUNTIME, EXIT_USAGE, check_stop, run_cli
from edgepose.core.errors import ConfigError, OutputError


def _mangled(signum: int):
    """What TensorFlow's converter did with Ctrl-C: the handler's exception raised inside
    a call from C came out as a SystemError, then as an AttributeError."""
    def work() -> None:
        try:
            signal.raise_signal(signum)
        except KeyboardInterrupt:
            raise AttributeError("'dict' object has no attribute '_type_spec'") from None
    return work


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_turned_into_another_error_is_reported_as_the_stop(capsys, signum: int) -> None:
    assert run_cli("prog", _mangled(signum)) == EXIT_RUNTIME
    name = signal.Signals(signum).name
    assert capsys.readouterr().err == f"prog: stopped by {name} before it finished\n"


def test_the_stop_code_is_the_callers(capsys) -> None:
    assert run_cli("edgepose-run", _mangled(signal.SIGINT), interrupted=0) == 0
    assert "stopped by SIGINT" in capsys.readouterr().err


def test_a_plain_interrupt_is_a_stop(capsys) -> None:
    def work() -> None:
        signal.raise_signal(signal.SIGINT)
    assert run_cli("prog", work) == EXIT_RUNTIME
    assert capsys.readouterr().err == "prog: stopped by SIGINT before it finished\n"


def test_without_a_signal_a_bug_keeps_its_traceback() -> None:
    def work() -> None:
        raise AttributeError("a bug")
    with pytest.raises(AttributeError, match="a bug"):
        run_cli("prog", work)


@pytest.mark.parametrize(("error", "code"), [(ConfigError("bad --x; pass 1"), EXIT_USAGE),
                                             (OutputError("disk gone; check it"), EXIT_RUNTIME)])
def test_known_errors_are_one_line(capsys, error: Exception, code: int) -> None:
    def work() -> None:
        raise error
    assert run_cli("prog", work) == code
    assert capsys.readouterr().err == f"prog: error: {error}\n"


def test_the_handlers_are_restored_after_the_run() -> None:
    before = signal.getsignal(signal.SIGINT)
    run_cli("prog", lambda: None)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_swallowed_stop_is_raised_again_at_the_next_check(capsys) -> None:
    """The handler's exception caught and dropped (AutoGraph falls back and carries on):
    ``check_stop`` before the command writes raises it again, so nothing is written."""
    wrote = []

    def work() -> None:
        try:
            signal.raise_signal(signal.SIGTERM)
        except KeyboardInterrupt:
            pass
        check_stop()
        wrote.append("file")
    assert run_cli("prog", work) == EXIT_RUNTIME
    assert wrote == [] and capsys.readouterr().err == "prog: stopped by SIGTERM before it finished\n"


def test_check_stop_without_a_signal_does_nothing() -> None:
    done = []

    def work() -> None:
        check_stop()
        done.append(1)
    assert run_cli("prog", work) == 0 and done == [1]
    check_stop()  # outside any run
