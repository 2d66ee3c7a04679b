"""The tools' argument types (seglite.apps.arguments): one place checks values, every tool says the same."""

from __future__ import annotations

import argparse

import pytest

from seglite.apps import arguments


@pytest.mark.parametrize(
    "convert, good, bad, expected",
    [
        (arguments.positive_int, {"1": 1, "12": 12}, ["0", "-3", "1.5", "x"], "a positive integer"),
        (arguments.non_negative_int, {"0": 0, "7": 7}, ["-1", "x"], "an integer >= 0"),
        (arguments.at_least(17), {"17": 17, "20": 20}, ["16", "x"], "an integer >= 17"),
        (arguments.positive_float, {"0.5": 0.5, "3": 3.0}, ["0", "-1", "inf", "nan", "x"], "a positive number"),
        (arguments.unit_interval, {"0": 0.0, "1": 1.0, "0.25": 0.25}, ["-0.1", "1.5", "nan"], "a number from 0 to 1"),
        (arguments.device, {"cpu": "cpu", "cuda": "cuda", "cuda:1": "cuda:1"}, ["tpu", "cuda:x", "", "CPU"],
         "cpu, cuda or cuda:N"),
    ],
)
def test_each_type_takes_what_it_says_and_names_what_it_expected(convert, good, bad, expected) -> None:
    for text, value in good.items():
        assert convert(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^expected {expected}, got {text!r}$"):
            convert(text)


def test_at_least_says_why() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected an integer >= 3 \(two warm-up\), got '2'$"):
        arguments.at_least(3, " (two warm-up)")("2")


def test_every_tool_is_a_console_script_of_the_same_main() -> None:
    """`seglite-predict ...` runs what `python tools/predict.py ...` runs (setup.py declares one per tools/*.py)."""
    from importlib.metadata import entry_points
    from pathlib import Path

    tools = sorted(path.stem for path in (Path(__file__).parents[1] / "tools").glob("*.py"))
    scripts = {entry.name: entry.value for entry in entry_points(group="console_scripts") if entry.name.startswith("seglite-")}
    assert scripts == {f"seglite-{tool.replace('_', '-')}": f"seglite.apps.{tool}:main" for tool in tools}
    for tool in tools:
        shim = (Path(__file__).parents[1] / "tools" / f"{tool}.py").read_text()
        assert f"from seglite.apps.{tool} import main" in shim
