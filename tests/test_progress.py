"""Progress display: bars on a terminal, timed lines with rate and ETA in a log file."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import termios


from conftest import random_volume, run_script
from scrollzarr import progress


def test_sizes_are_binary_units_named_as_such():
    assert progress.size(0) == "0 B"
    assert progress.size(1023) == "1023 B"
    assert progress.size(1536) == "1.5 KiB"
    assert progress.size(3 * 2**30) == "3 GiB"
    assert progress.size(1.25 * 2**40) == "1.25 TiB"
    assert progress.size(512 * 2**20) == "512 MiB"
    assert progress.duration(3725) == "1:02:05"


def test_log_file_gets_lines_with_rate_and_eta_and_a_closing_line():
    log = io.StringIO()
    with progress.bar(4 * 2**30, "level 0", stream=log) as bar:
        bar.interval = 0  # a line on every update
        bar.update(2**30)
        bar.update(2**30)
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in log.getvalue()
    assert re.fullmatch(r"level 0: 1 GiB of 4 GiB \(25%\), [\d.]+ \S+/s, ETA \d+:\d\d:\d\d",
                        lines[0]), lines[0]
    assert lines[1].startswith("level 0: 2 GiB of 4 GiB (50%)")
    assert re.fullmatch(r"level 0: 2 GiB done in \d+:\d\d:\d\d \(.*/s\)", lines[2]), lines[2]


def test_quiet_shows_nothing_and_counts_units_other_than_bytes():
    log = io.StringIO()
    with progress.bar(10, "slices", unit="slice", quiet=True, stream=log) as bar:
        bar.update(3)
    assert log.getvalue() == ""
    with progress.bar(10, "slices", unit="slice", stream=log) as bar:
        bar.interval = 0
        bar.update(3)
    assert log.getvalue().startswith("slices: 3 slice of 10 slice (30%), ")


def test_a_terminal_gets_a_tqdm_bar():
    master, slave = pty.openpty()
    # a pseudo-terminal starts 0 columns wide: give it a real width
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    with os.fdopen(slave, "w") as terminal:
        with progress.bar(2**20, "level 0", stream=terminal) as bar:
            bar.update(2**20)
        terminal.flush()
    out = b""
    while select.select([master], [], [], 1.0)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the other side is closed and drained
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    out = out.decode()
    assert "\r" in out and "100%" in out and "iB/s" in out


def test_conversion_log_names_its_choices_then_what_it_wrote(tmp_path, stack_dir):
    src = stack_dir(random_volume((8, 16, 16)), first=3)
    out = tmp_path / "o.zarr"
    proc = run_script("scroll_to_ome.py", src, out, "--chunk_size", "8", "--nlevels", "2",
                      "--ranges", ",,4:", "--max_gb", "1", check=True)
    err = proc.stderr
    assert "\r" not in err  # stderr is a pipe: lines, not a bar
    start = next(line for line in err.splitlines() if line.startswith("8 slices"))
    for word in ("zarr v2", "NGFF 0.4", "<u2", "chunks 8^3", "no shards", "compression none",
                 "crop origin z,y,x = (4, 0, 0)"):
        assert word in start, (word, start)
    end = err.splitlines()[-2:]
    assert re.match(r"done: .*o\.zarr: 2 levels, [\d.]+ \S+ on disk, in \d+:\d\d:\d\d "
                    r"\(.*/s of level 0\)", end[0]), end
    assert end[1].startswith("next: ") and "serve_ome.py" in end[1]
