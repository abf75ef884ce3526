"""Progress bars: drawn on a terminal only, ETA arithmetic by hand, and what the commands show."""

import io

import pytest

from bertbench.progress import Progress, format_duration, format_rate, rate_and_eta


class FakeStream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


class FakeClock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


def test_eta_by_hand():
    # 30 of 300 steps in 10 s: 3 steps/s, 270 left -> 90 s
    assert rate_and_eta(30, 300, 10.0) == (3.0, 90.0)
    # resumed at step 100: 30 new steps in 10 s -> 3/s; 170 left -> 56.67 s
    rate, left = rate_and_eta(130, 300, 10.0, initial=100)
    assert rate == 3.0 and left == pytest.approx(170 / 3)
    assert rate_and_eta(0, 300, 5.0) == (None, None)  # nothing done yet: unknown
    assert rate_and_eta(10, None, 5.0) == (2.0, None)  # no total: a rate, no ETA
    assert rate_and_eta(400, 300, 10.0)[1] == 0.0  # past the total: nothing left
    assert [format_duration(s) for s in (0, 42.4, 90, 725, 3723, None, float("inf"))] == \
        ["0:00", "0:42", "1:30", "12:05", "1:02:03", "?", "?"]
    assert format_rate(2.56, "step") == "2.6 step/s" and format_rate(0.25, "step") == "4.0 s/step"


def test_draws_on_a_terminal_with_counts_rate_and_eta(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the line is cut at the terminal's width (pytest-xdist workers: 80)
    stream, clock = FakeStream(tty=True), FakeClock()
    bar = Progress(300, label="pretrain", unit="step", stream=stream, clock=clock, min_interval=0)
    clock.now += 10.0
    bar.update(30, postfix={"loss": "3.210"})
    line = stream.getvalue().split("\r")[-1]
    assert line.startswith("pretrain  30/300  10% [##..................]")
    assert "3.0 step/s" in line and "0:10 elapsed, ETA 1:30" in line and "loss=3.210" in line
    bar.set_label("run 7/23: no_nsp / SST-2 seed 1")
    assert stream.getvalue().split("\r")[-1].startswith("run 7/23: no_nsp / SST-2 seed 1  30/300")
    bar.close()
    bar.close()  # twice is harmless
    assert stream.getvalue().endswith("\n") and stream.getvalue().count("\n") == 1


def test_a_line_is_cut_to_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    stream, clock = FakeStream(tty=True), FakeClock()
    bar = Progress(300, label="pretrain", unit="step", stream=stream, clock=clock, min_interval=0)
    clock.now += 10.0
    bar.update(30, postfix={"loss": "3.210"})
    assert stream.getvalue().split("\r")[-1] == "pretrain  30/300  10% [##.............."  # 39: no wrap


def test_redraws_are_throttled_but_the_last_state_is_drawn_on_close():
    stream, clock = FakeStream(tty=True), FakeClock()
    bar = Progress(1000, stream=stream, clock=clock, min_interval=1.0)
    for _ in range(100):
        clock.now += 0.001
        bar.update()
    assert stream.getvalue().count("\r") == 1  # the first update only
    bar.close()
    assert "100/1000" in stream.getvalue().split("\r")[-1]


@pytest.mark.parametrize("tty, enabled", [(False, None), (False, True), (True, False)])
def test_silent_when_not_a_terminal_or_disabled(tty, enabled):
    stream = FakeStream(tty=tty)
    with Progress(10, stream=stream, enabled=enabled) as bar:
        for _ in range(10):
            bar.update()
    assert stream.getvalue() == "" and bar.done == 10


def test_a_resumed_run_counts_only_its_own_steps():
    stream, clock = FakeStream(tty=True), FakeClock()
    bar = Progress(300, unit="step", initial=100, stream=stream, clock=clock, min_interval=0)
    clock.now += 10.0
    bar.update(30)
    assert "130/300" in bar.line() and "3.0 step/s" in bar.line() and "ETA 0:57" in bar.line()


def test_without_a_total_it_counts():
    bar = Progress(None, unit="batch", stream=FakeStream(tty=True), clock=FakeClock())
    bar.update(5)
    assert "ETA" not in bar.line() and bar.line().startswith("5  ")


def test_pretraining_bar_follows_steps_and_verbose(monkeypatch):
    """pretrain()'s bar: steps of this process, the latest loss and logged metrics, off with verbose=False."""
    import sys

    from bertbench.pretraining.loop import _Progress

    terminal = FakeStream(tty=True)
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("COLUMNS", "300")  # lines are cut to the terminal's width
    progress = _Progress(4, verbose=True, initial=2)  # resumed at step 2
    progress.bar.min_interval = 0
    progress.update(3, 256, {"loss": 2.5})
    progress.update(4, 256, {"lm_loss": 2.25, "learning_rate": 1e-4}, force=True)
    lines = terminal.getvalue().split("\r")
    assert lines[1].startswith("pretrain  3/4  75% [") and "loss=2.5000" in lines[1] and "tokens/s=" in lines[1]
    assert lines[-1].startswith("pretrain  4/4 100% [") and "lm_loss=2.2500 learning_rate=0.0001" in lines[-1]
    assert terminal.getvalue().endswith("\n")  # closed at the last step
    quiet = FakeStream(tty=True)
    monkeypatch.setattr(sys, "stderr", quiet)
    progress = _Progress(4, verbose=False)
    progress.update(4, 256, {"loss": 2.5}, force=True)
    assert quiet.getvalue() == ""
