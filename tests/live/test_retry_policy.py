"""RetryPolicy refuses a bad value when it is made, naming the option."""

from __future__ import annotations

import pytest

from quantflow_async import InvalidValue
from quantflow_async.live.venue_retry import RetryPolicy


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("attempts", -1, "attempts: must be >= 0, got -1"),
        ("attempts", 2.0, "attempts: expected an int, got float"),
        ("attempts", True, "attempts: expected an int, got bool"),
        ("first_delay", -0.1, "first_delay: must be >= 0 seconds and finite, got -0.1"),
        ("max_delay", float("inf"), "max_delay: must be >= 0 seconds and finite, got inf"),
        ("deadline", float("nan"), "deadline: must be >= 0 seconds and finite, got nan"),
        ("rate_limit_delay", "1", "rate_limit_delay: expected a number of seconds, got str"),
        ("max_delay", 0.1, "max_delay: must be >= first_delay (0.25), got 0.1"),
    ],
)
def test_a_bad_value_is_refused_naming_the_option(option: str, value: object, message: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        RetryPolicy(**{option: value})  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_zero_attempts_and_zero_delays_are_allowed() -> None:
    policy = RetryPolicy(attempts=0, first_delay=0, max_delay=0, deadline=0, rate_limit_delay=0)
    assert policy.attempts == 0
