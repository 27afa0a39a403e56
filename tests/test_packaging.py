"""The install files agree with each other, and the project installs as a package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
from packaging.requirements import Requirement

from conftest import ROOT

SCRIPTS = {"scroll-to-ome": "scroll_to_ome", "ppm-to-layers": "ppm_to_layers",
           "decompress-tiffs": "decompress_tiffs", "serve-ome": "serve_ome",
           "make-sample": "make_sample", "validate-ome": "validate_ome",
           "zarr-to-ome": "zarr_to_ome"}


def pins(lines):
    return sorted(m.group(0) for line in lines
                  if (m := re.match(r"[A-Za-z0-9_.\[\]-]+==[^\s#]+", line.strip())))


def pinned(name: str) -> dict[str, str]:
    """``{package: version}`` of one requirements file (not following ``-r``)."""
    return dict(p.split("==") for p in pins((ROOT / name).read_text().splitlines()))


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def base(name: str) -> str:
    return re.sub(r"\[.*\]", "", name).lower().replace("_", "-")


def test_environment_yml_pins_what_the_requirements_files_pin():
    req = pins((ROOT / "requirements.txt").read_text().splitlines())
    test = pins((ROOT / "requirements-test.txt").read_text().splitlines())
    env = pins(line.strip().lstrip("- ") for line in
               (ROOT / "environment.yml").read_text().splitlines())
    assert req and test and env == sorted(req + test)


def test_test_requirements_include_the_runtime_set_and_pin_nothing_twice():
    text = (ROOT / "requirements-test.txt").read_text()
    assert "-r requirements.txt" in text.splitlines()
    assert not {base(n) for n in pinned("requirements.txt")} & {
        base(n) for n in pinned("requirements-test.txt")}


def test_every_pin_lies_in_the_range_pyproject_accepts():
    project = pyproject()["project"]
    ranges = {}
    for spec in project["dependencies"] + [
            s for extra in project["optional-dependencies"].values() for s in extra]:
        r = Requirement(spec)
        if r.name != "scrollzarr":
            ranges[base(r.name)] = r.specifier
    runtime = {base(n): v for n, v in pinned("requirements.txt").items()}
    for name, version in {**runtime, **{base(n): v for n, v in
                                        pinned("requirements-test.txt").items()}}.items():
        if name in ranges:
            assert ranges[name].contains(version), (name, version, ranges[name])
    # every pin is a declared dependency (core or an extra)
    test = {base(n) for n in pinned("requirements-test.txt")}
    assert set(runtime) | test <= set(ranges), (set(runtime) | test) - set(ranges)


def test_requires_python_is_311_and_console_scripts_point_at_entries():
    project = pyproject()["project"]
    assert project["requires-python"] == ">=3.11"
    assert project["scripts"] == {k: f"scrollzarr.scripts.{v}:entry"
                                  for k, v in SCRIPTS.items()}


def test_no_sys_path_manipulation_in_the_package_scripts_or_tests():
    files = [*ROOT.glob("*.py"), *(ROOT / "scrollzarr").rglob("*.py"),
             *(ROOT / "tests").rglob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in files
                 if re.search(r"sys\.path\.(insert|append)", p.read_text())]
    assert not offenders


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_every_command_answers_version_through_python_m_dispatch(command, capsys):
    from scrollzarr import __main__, __version__

    with pytest.raises(SystemExit) as exit_:
        __main__.main([command, "--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"{command.replace('-', '_')}.py (scrollzarr {__version__})"


def test_python_m_scrollzarr_runs_a_command_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "scrollzarr", "make_sample", "--version"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "make_sample.py (scrollzarr " in proc.stdout


def test_python_m_scrollzarr_names_an_unknown_command():
    proc = subprocess.run([sys.executable, "-m", "scrollzarr", "frobnicate"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "unknown command 'frobnicate'" in proc.stderr


def test_wheel_holds_the_package_and_its_console_scripts(tmp_path):
    """Build the wheel as ``pip install .`` would (no network: no isolation, no deps),
    from a copy of the sources: setuptools leaves build/ beside pyproject.toml."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "scrollzarr", source / "scrollzarr",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = tmp_path.glob("scrollzarr-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "scrollzarr/__main__.py" in names and "scrollzarr/scripts/scroll_to_ome.py" in names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    [entry_points] = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for command, module in SCRIPTS.items():
        assert f"{command} = scrollzarr.scripts.{module}:entry" in text
    # installed from the wheel (its dependencies are those of this interpreter), the
    # console script runs from anywhere and names itself as it was called
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--no-index", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([str(target / "bin" / "scroll-to-ome"), "--version"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    from scrollzarr import __version__
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"scroll-to-ome (scrollzarr {__version__})"


def test_demo_says_in_one_line_that_python_is_too_old(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\ncase "$1" in -V) echo "Python 3.9.2";; *) exit 1;; esac\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "DEMO_PYTHON"}
    proc = subprocess.run(["bash", str(ROOT / "demo.sh"), str(tmp_path / "out")],
                          env={**env, "PYTHON": str(fake)}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: demo.sh needs Python >= 3.11; {fake} is Python 3.9.2 "
        "(set PYTHON=/path/to/python3.11)"]
    assert not (tmp_path / "out").exists()
