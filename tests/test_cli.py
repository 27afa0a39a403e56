"""Every script's command line: --version, dashed spellings of every option (hidden in
--help), no abbreviations."""

from __future__ import annotations

import argparse
import importlib

import pytest

from scrollzarr import __version__

SCRIPTS = ["scroll_to_ome", "ppm_to_layers", "decompress_tiffs", "serve_ome", "make_sample",
           "validate_ome", "zarr_to_ome"]


def parser_of(script: str) -> argparse.ArgumentParser:
    module = importlib.import_module(f"scrollzarr.scripts.{script}")
    return module.build_parser()


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_underscore_option_has_its_dashed_spelling(script):
    parser = parser_of(script)
    for action in options(parser):
        for name in action.option_strings:
            if name.startswith("--") and "_" in name:
                assert name.replace("_", "-") in action.option_strings, (script, name)
                # both spellings land in the same place
                assert parser._option_string_actions[name.replace("_", "-")] is action


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_each_option_once_by_its_underscore_name(script):
    text = parser_of(script).format_help()
    for action in options(parser_of(script)):
        for name in action.option_strings:
            if name.startswith("--") and "_" in name:
                assert name in text and name.replace("_", "-") not in text, (script, name)


@pytest.mark.parametrize("script", SCRIPTS)
def test_version_names_the_script_and_the_package(script, capsys):
    with pytest.raises(SystemExit) as exit_:
        parser_of(script).parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"{script}.py (scrollzarr {__version__})"


def test_dashed_spelling_sets_the_underscore_option():
    args = parser_of("scroll_to_ome").parse_args(["in", "out", "--chunk-size", "64",
                                                   "--first-new-level", "2"])
    assert args.chunk_size == 64 and args.first_new_level == 2


@pytest.mark.parametrize("script, abbreviated", [
    ("scroll_to_ome", "--chunk"), ("make_sample", "--sha"), ("decompress_tiffs", "--over")])
def test_abbreviations_are_refused_in_one_line(script, abbreviated, capsys):
    parser = parser_of(script)
    argv = {"scroll_to_ome": ["in", "out"], "make_sample": ["out"],
            "decompress_tiffs": ["in", "out"]}[script]
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([*argv, abbreviated, "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unrecognized arguments" in err
