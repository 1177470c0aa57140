"""The command line refuses what it can before any work: values (a usage error, exit 2), names and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import pytest

from pipeline_local.cli import main
from pipeline_local.cli.models import write_whole


@pytest.mark.parametrize("command", [["run"], ["contract", "diff"]])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "lots"])
def test_a_max_drift_that_is_not_a_finite_number_of_0_or_more_is_a_usage_error(
    command: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([*command, f"--max-drift={value}"])
    assert stopped.value.code == 2
    assert f"argument --max-drift: {value!r} is not a" in capsys.readouterr().err


def test_a_model_name_with_no_document_and_no_source_is_refused_not_given_the_iris_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given: a model documented as "winex", and a run that mistypes it
    monkeypatch.chdir(tmp_path)
    configs = tmp_path / ".pipeline" / "model-configs"
    configs.mkdir(parents=True)
    (configs / "winex.json").write_text('{"source_url": "https://example.org/wine.csv"}')
    # Then: refused, naming the documented models; nothing trained or published
    assert main(["run", "--model", "winxe"]) == 1
    error = capsys.readouterr().err
    assert "UnknownModelError: model 'winxe' has no configuration document" in error
    assert "(documented: winex)" in error
    assert sorted(p.name for p in (tmp_path / ".pipeline").iterdir()) == ["model-configs"]


@pytest.mark.parametrize("where", ["missing-folder/out.csv", "a-folder"])
def test_predict_checks_its_output_before_any_work(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "in.csv").write_text("5.1,3.5,1.4,0.2\n")
    code = main(["predict", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / where)])
    error = capsys.readouterr().err
    assert code == 1
    assert "pipeline predict: InvalidRequestError: --output" in error
    assert "Traceback" not in error


def test_an_output_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text("the old predictions\n")

    def half_then_fail(handle: TextIO) -> None:
        handle.write("label\nIris-setosa\n")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_whole(path, half_then_fail)
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]  # no partial file beside it
    assert path.read_text() == "the old predictions\n"
    write_whole(path, lambda handle: handle.write("label\nIris-virginica\n"))
    assert path.read_text() == "label\nIris-virginica\n"
