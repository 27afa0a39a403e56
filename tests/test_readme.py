"""The README's runnable command blocks work as written, and its links point at files."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()

#: A ```bash block right after a line "<!-- runnable -->".
RUNNABLE = re.compile(r"<!-- runnable -->\s*\n```bash\n(.*?)\n```", re.S)


def runnable_blocks() -> list[str]:
    return RUNNABLE.findall(README)


def test_readme_is_short_and_has_a_table_of_contents():
    assert len(README.encode()) < 10_000
    assert "## Contents" in README
    for heading in ("## Install", "## Five-minute tour", "## Documentation"):
        assert heading in README


def test_readme_marks_at_least_the_tour_runnable():
    assert any("scroll_to_ome.py" in block for block in runnable_blocks())


def test_every_local_link_of_the_readme_and_docs_exists():
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), (page.name, target)


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_runnable_readme_block_succeeds(tmp_path, index):
    """Run the block with bash in a fresh directory that looks like a checkout (the
    scripts and the package, linked), with ``python`` the interpreter of the tests."""
    work = tmp_path / "checkout"
    work.mkdir()
    for entry in [ROOT / "scrollzarr", *ROOT.glob("*.py")]:
        (work / entry.name).symlink_to(entry)
    shim = tmp_path / "bin"
    shim.mkdir()
    # a script, not a link: a linked venv interpreter would not find its packages
    (shim / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shim / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
    block = runnable_blocks()[index]
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{block}\n{proc.stderr[-3000:]}"
