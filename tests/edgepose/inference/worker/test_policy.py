"""The failover policy on its own: pure decisions, no processes."""

from __future__ import annotations

import itertools

import pytest

from edgepose.inference.worker.policy import FAIL_OVER, RESTART, FailoverPolicy


@pytest.mark.parametrize("kind, has_fallback, action", [
    ("edgetpu", True, FAIL_OVER),   # auto: the CPU twins take over
    ("edgetpu", False, RESTART),    # --device edgetpu (strict), or a model without a CPU twin
    ("cpu", True, RESTART),         # the CPU worker has nowhere else to go
    ("cpu", False, RESTART),
])
def test_which_device_next(kind: str, has_fallback: bool, action: str) -> None:
    assert FailoverPolicy.on_failure(kind, has_fallback) == action


def test_restarts_back_off_then_give_up() -> None:
    policy = FailoverPolicy(max_restarts=3)
    lane = object()
    assert [policy.restart_delay(lane) for _ in range(4)] == [0.0, 1.0, 2.0, None]
    assert policy.failures(lane) == 4


def test_delays_stop_growing_at_the_last_one() -> None:
    policy = FailoverPolicy(max_restarts=8, restart_delays=(0.0, 1.0, 2.0, 4.0, 8.0))
    lane = object()
    assert [policy.restart_delay(lane) for _ in range(9)] == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, None]


def test_a_success_starts_the_count_again_for_that_lane_only() -> None:
    policy = FailoverPolicy(max_restarts=2)
    tpu, cpu = object(), object()
    assert policy.restart_delay(tpu) == 0.0 and policy.restart_delay(tpu) == 1.0
    assert policy.restart_delay(cpu) == 0.0
    policy.succeeded(tpu)
    assert policy.failures(tpu) == 0 and policy.failures(cpu) == 1
    assert policy.restart_delay(tpu) == 0.0  # at once again after a success
    assert policy.restart_delay(cpu) == 1.0 and policy.restart_delay(cpu) is None


def test_zero_restarts_gives_up_at_the_first_failure() -> None:
    assert FailoverPolicy(max_restarts=0).restart_delay(object()) is None


def test_background_retries_double_up_to_the_cap() -> None:
    policy = FailoverPolicy(retry_first=1.0, retry_max=60.0)
    assert list(itertools.islice(policy.retry_delays(), 9)) == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_success_on_a_lane_that_never_failed_changes_nothing() -> None:
    """Every invoke reports success, most on lanes with no failure counted: a no-op."""
    policy = FailoverPolicy(max_restarts=1)
    lane = object()
    policy.succeeded(lane)
    assert policy.failures(lane) == 0 and policy.restart_delay(lane) == 0.0
