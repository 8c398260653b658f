"""Progress of long evaluation passes: a tqdm bar on a terminal, periodic log lines with an ETA otherwise.

Why both: DeepFashion's 8,570 test pairs (and its real set for FID) take hours on a CPU, and such runs are
usually started under ``nohup`` or a scheduler where a tqdm bar is switched off; a line every
``interval`` seconds with the rate and the time left tells how long the run still needs.
"""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("posetransfer.evaluation")


def format_seconds(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StreamProgress:
    """``update(n)`` / ``close()``, the signature of a tqdm bar (so it can be passed as a bar factory)."""

    def __init__(self, total: int, desc: str = "eval", unit: str = "img", interval: float = 30.0,
                 enabled: bool = True, stream=None) -> None:
        self.total = int(total)
        self.desc = desc
        self.unit = unit
        self.interval = interval
        self.done = 0
        self.started = time.perf_counter()
        self._last = self.started
        self._bar = None
        self._enabled = enabled
        stream = sys.stderr if stream is None else stream
        if enabled and getattr(stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, file=stream)  # tqdm shows rate + ETA

    def status(self) -> str:
        """``desc: done/total (p%), rate unit/s, ETA h:mm:ss``."""
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = format_seconds(left) if left == left else "?"
        percent = 100.0 * self.done / self.total if self.total else 100.0
        return f"{self.desc}: {self.done}/{self.total} {self.unit} ({percent:.1f}%), {rate:.2f} {self.unit}/s, ETA {eta}"

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if self._enabled and (now - self._last >= self.interval or self.done >= self.total):
            self._last = now
            log.info("%s", self.status())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
