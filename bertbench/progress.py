"""Progress bars for long work: count, percentage, rate and ETA, drawn on a terminal only.

    bar = Progress(300, label="pretrain", unit="step", enabled=verbose)
    for step in range(300):
        ...
        bar.update(1, postfix={"loss": f"{loss:.3f}"})
    bar.close()

    pretrain  111/300  37% [#######.............] 2.6 step/s  0:42 elapsed, ETA 1:12  loss=3.210

- Drawn on stderr (stdout stays what a command prints, e.g. its JSON), redrawn in place with "\\r",
  at most every `min_interval` seconds; `close()` draws the final state and ends the line.
- Silent when the stream is not a terminal (logs, pipes, CI) or with `enabled=False` (`--quiet`,
  `verbose=False`): the work is the same, only nothing is drawn.
- Rate and ETA are counted from the work done in THIS process: a run resumed at step `initial`
  does not count the steps it skipped. ETA = (total - done) / rate, rate = (done - initial) / elapsed.
- `set_label(text)` changes the text in front (e.g. the runner's "run 7/23: no_nsp / SST-2 seed 1").
"""

import shutil
import sys
import time

BAR_WIDTH = 20  # characters of the [####....] bar


def format_duration(seconds):
    """0:42, 12:05, 1:02:03 (h:mm:ss); "?" for an unknown (None or infinite) duration."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rate_and_eta(done, total, elapsed, initial=0):
    """(units per second, seconds left) from the work done since `initial`; None where unknown."""
    new = done - initial
    if new <= 0 or elapsed <= 0:
        return None, None
    rate = new / elapsed
    left = None if total is None else max(total - done, 0) / rate
    return rate, left


def format_rate(rate, unit):
    """'2.6 step/s', or '3.2 s/step' when slower than one unit a second."""
    if rate is None:
        return f"? {unit}/s"
    if rate >= 1.0:
        return f"{rate:,.1f} {unit}/s"
    return f"{1.0 / rate:,.1f} s/{unit}"


def is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """A progress bar of `total` units (None: a counter without percentage and ETA).

    stream: where to draw (default sys.stderr, looked up at creation); enabled: None = draw when the
    stream is a terminal, False = never; clock: a function returning seconds (tests pass a fake).
    """

    def __init__(self, total, label="", unit="it", initial=0, enabled=None, stream=None,
                 min_interval=0.1, clock=time.monotonic):
        self.total, self.label, self.unit = total, label, unit
        self.initial = self.done = initial
        self.stream = sys.stderr if stream is None else stream
        self.active = enabled is not False and is_terminal(self.stream)
        self.min_interval, self.clock = min_interval, clock
        self.start = clock()
        self.postfix = ""
        self._last_draw = None
        self._width = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_label(self, label):
        self.label = label
        self._draw(force=True)

    def update(self, n=1, postfix=None):
        """Count `n` more units done; postfix: a string or {name: value} shown after the ETA."""
        self.done += n
        if postfix is not None:
            self.postfix = postfix if isinstance(postfix, str) else "  ".join(
                f"{k}={v}" for k, v in postfix.items())
        self._draw()

    def line(self):
        """The text of the bar now (what a terminal shows)."""
        elapsed = self.clock() - self.start
        rate, left = rate_and_eta(self.done, self.total, elapsed, self.initial)
        parts = [self.label] if self.label else []
        if self.total:
            fraction = min(max(self.done / self.total, 0.0), 1.0)
            filled = int(fraction * BAR_WIDTH)
            parts.append(f"{self.done}/{self.total} {fraction:4.0%} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}]")
        else:
            parts.append(f"{self.done}")
        timing = f"{format_duration(elapsed)} elapsed"
        if self.total:
            timing += f", ETA {format_duration(left)}"
        parts += [format_rate(rate, self.unit), timing]
        if self.postfix:
            parts.append(self.postfix)
        return "  ".join(parts)

    def _draw(self, force=False):
        if not self.active:
            return
        now = self.clock()
        if not force and self._last_draw is not None and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        text = self.line()
        columns = shutil.get_terminal_size((100, 20)).columns - 1
        text = text[:columns]
        pad = " " * max(self._width - len(text), 0)  # wipe what a longer previous line left
        self._width = len(text)
        self.stream.write("\r" + text + pad)
        self.stream.flush()

    def close(self):
        """Draw the final state and end the line (nothing when inactive); safe to call twice."""
        if self.active:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self.active = False
