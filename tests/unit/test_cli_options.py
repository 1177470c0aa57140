"""Command-line values checked when the arguments are read: a usage error (exit 2), before any run starts."""

from __future__ import annotations

import pytest

from pipeline_local.cli import main


@pytest.mark.parametrize("command", [["run"], ["contract", "diff"]])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "lots"])
def test_a_max_drift_that_is_not_a_finite_number_of_0_or_more_is_a_usage_error(
    command: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([*command, f"--max-drift={value}"])
    assert stopped.value.code == 2
    assert f"argument --max-drift: {value!r} is not a" in capsys.readouterr().err
