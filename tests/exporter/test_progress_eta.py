"""One ETA rule for every progress display (exporter events, wizard, CLI)."""

from __future__ import annotations

import pytest

from cellucid_nb.exporter.progress import EtaEstimator, ProgressReporter


def test_no_eta_before_a_tenth_of_the_work_and_one_second():
    eta = EtaEstimator()
    assert eta.update(0.05, 5.0) is None  # 5 % done: too early, whatever the time
    assert eta.update(0.5, 0.5) is None  # half done but only 0.5 s: too early
    assert eta.update(1.0, 0.5) == 0.0  # finished: nothing left


def test_eta_is_smoothed_towards_the_newest_value():
    eta = EtaEstimator(smoothing=0.5)
    # 20 % in 2 s -> 8 s left
    assert eta.update(0.2, 2.0) == pytest.approx(8.0)
    # 50 % in 3 s -> 3 s left raw; half-way between 8 and 3
    assert eta.update(0.5, 3.0) == pytest.approx(0.5 * 3.0 + 0.5 * 8.0)


def test_exporter_events_follow_the_rule():
    events = []
    rep = ProgressReporter(events.append, total=100, min_interval=0.0)
    rep.advance(1)
    rep.poll(force=True)  # 1 % done right at the start: the old rule guessed minutes here
    assert events[-1].eta is None
    rep.advance(99)
    rep.poll(force=True)
    assert events[-1].done == 100 and events[-1].eta == 0.0
