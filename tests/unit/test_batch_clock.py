"""When the batch engine sends a request's token text: decided on clock values compared with each
other only, never with the clock's origin (``time.perf_counter`` counts from boot)."""

from __future__ import annotations

from typing import Any

import pytest

from slmnode.engine.batch import Job, TextOut


def _job(t0: float, interval: float, *, stream: bool) -> Job:
    sampler: Any = None  # (not used by the decision)
    return Job(rid="a", tokens=[2, 3], max_tokens=8, sampler=sampler, text=TextOut([]), t0=t0, interval=interval,
               sent_at=None if stream else t0)


@pytest.mark.parametrize("uptime", [0.02, 5.0, 3599.0, 86400.0])
def test_a_streams_first_text_goes_at_once_whatever_the_uptime(uptime: float) -> None:
    job = _job(uptime, 3600.0, stream=True)
    assert job.text_due(uptime + 0.01)  # a clock value smaller than the interval included
    job.sent_at = uptime + 0.01
    assert not job.text_due(uptime + 1.0)
    assert job.text_due(uptime + 0.01 + 3600.0)


@pytest.mark.parametrize("uptime", [0.02, 86400.0])
def test_a_non_streaming_requests_text_waits_one_interval_from_its_start(uptime: float) -> None:
    job = _job(uptime, 1.0, stream=False)
    assert not job.text_due(uptime + 0.5)
    assert job.text_due(uptime + 1.0)
