"""Progress of long evaluation passes: log lines with the rate and an ETA when no terminal shows a bar."""
from __future__ import annotations

import io
import logging

from posetransfer.metrics.progress import StreamProgress, format_seconds


def test_log_lines_carry_count_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="posetransfer.evaluation")
    progress = StreamProgress(200, "eval", interval=0.0, stream=io.StringIO())  # not a terminal: no bar
    progress.started -= 10.0  # 10 s ago
    progress.update(50)
    line = caplog.records[-1].getMessage()
    assert line.startswith("eval: 50/200 img (25.0%)") and "img/s" in line
    rate = float(line.split(", ")[1].split()[0])
    assert 4.0 < rate <= 5.0
    eta = line.rsplit("ETA ", 1)[1]
    minutes, seconds = (int(v) for v in eta.split(":"))
    assert 25 <= 60 * minutes + seconds <= 40  # 150 images left at ~5 img/s
    progress.close()
    quiet = StreamProgress(10, enabled=False, stream=io.StringIO())
    count = len(caplog.records)
    quiet.update(10)
    assert len(caplog.records) == count


def test_format_seconds():
    assert format_seconds(5) == "0:05" and format_seconds(3725) == "1:02:05" and format_seconds(-1) == "0:00"
