"""The ``mridiff`` command itself: ``--version`` and help texts that show every default."""

from __future__ import annotations

import argparse

import pytest

import mridiff
from mridiff.cli import build_parser, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"mridiff {mridiff.__version__}"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_help_of_every_subcommand_shows_its_defaults(name: str) -> None:
    parser = _subcommands()[name]
    text = " ".join(parser.format_help().split())  # line wrapping aside
    for action in parser._actions:  # noqa: SLF001
        default = action.default
        if not action.option_strings or default is None or default is False or default == [] \
                or default == argparse.SUPPRESS:
            continue
        assert action.help and "default" in action.help, (name, action.option_strings)
        if "%(default)" in action.help:
            assert f"(default: {default})" in text, (name, action.option_strings)


def test_reconstruct_help_names_the_hidden_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("ddim (default 50)", "dpmpp2m (default 20)", "(default: 1)", "(default: 4)", "(default: random)",
                  "(default: 0)", "(default: mridiff-out)", "(default: the preset's, hard)",
                  "(default: balanced)", "(default: espirit)"):
        assert shown in text, shown
