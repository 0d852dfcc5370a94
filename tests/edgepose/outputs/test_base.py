"""The ``Output`` base: its counters, its one-line summary and its repr."""

from __future__ import annotations

from edgepose.outputs.base import FrameResult, Output


class _Counted(Output):
    kind = "counted"

    def open(self) -> None:
        pass

    def write(self, result: FrameResult) -> None:
        self.written += 1

    def close(self) -> None:
        pass


def test_a_new_output_has_written_dropped_and_failed_nothing() -> None:
    out = _Counted("tcp://here")
    assert (out.spec, out.written, out.dropped, out.error) == ("tcp://here", 0, 0, None)
    assert out.summary() == "tcp://here: 0 frame(s)"
    assert repr(out) == "_Counted('tcp://here')"


def test_the_summary_adds_what_was_dropped_and_what_stopped_it() -> None:
    out = _Counted("x")
    out.written, out.dropped = 5, 2
    assert out.summary() == "x: 5 frame(s), 2 dropped"
    out.error = "the peer went away"
    assert out.summary() == "x: 5 frame(s), 2 dropped, stopped: the peer went away"
