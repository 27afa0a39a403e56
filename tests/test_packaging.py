"""The install files agree with each other."""

from __future__ import annotations

import re

from conftest import ROOT


def pins(lines):
    return sorted(m.group(0) for line in lines
                  if (m := re.match(r"[A-Za-z0-9_.\[\]-]+==[^\s#]+", line.strip())))


def test_environment_yml_pins_what_requirements_txt_pins():
    req = pins((ROOT / "requirements.txt").read_text().splitlines())
    env = pins(line.strip().lstrip("- ") for line in
               (ROOT / "environment.yml").read_text().splitlines())
    assert req and env == req
