"""Regression end to end: statsmodels' grunfeld investments from a source over HTTP, through the real ASL on moto
(auto decides regression, the gate reads R² and the baseline rule), to a champion whose manifest carries the score;
then, as a user runs them, ``pipeline run``, ``pipeline predict`` with the label in the file and ``pipeline report``
opened in headless Chromium (predicted against actual, residuals, R² and RMSE by run date)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlpipe.champion import read_champion
from mlpipe.storage import Store
from pipeline_local.cli.common import DEFAULT_ARTIFACTS, DEFAULT_PUBLISHED
from pipeline_local.runner import LocalPipeline, local_aws, serve_directory
from tests.cdp import CHROMIUM, open_page
from tests.cli import pipeline as run_cli
from tests.cli import run_pipeline
from tests.conftest import MODELS
from tests.integration.conftest import states
from tests.integration.test_report import Elements
from tests.regression_datasets import FIXTURES

Input = Callable[..., dict[str, Any]]
GRUNFELD = {"dataset": {"label_column": "invest"}, "estimator": "random_forest", "target_transform": "log"}


def test_a_regression_run_through_the_state_machine_is_gated_on_r2_and_promoted(
    aws: Any, pipeline: LocalPipeline, run_input: Input, http_server: Any
) -> None:
    # Given: the grunfeld investments (a skewed positive target, a categorical firm column) served over HTTP
    (http_server.root / "grunfeld.csv").write_bytes((FIXTURES / "grunfeld.csv").read_bytes())
    source = {"source_url": http_server.url("/grunfeld.csv"), "source_id": "test:grunfeld"}
    # When: a run asks for a lift over the mean predictor that no model has (R² at most 1)
    rejected = pipeline.run(run_input(**source, **GRUNFELD, min_lift_over_baseline=1.0))
    # Then: the Choice rejects it on its R², naming the baseline rule; nothing is published
    assert rejected["status"] == "FAILED"
    assert (rejected["error"]["task"], rejected["error"]["type"]) == ("gate", "ModelRejectedError")
    assert "its CV R²" in rejected["error"]["message"]
    assert "min_lift_over_baseline 1.0000" in rejected["error"]["message"]
    assert rejected["gate"]["score_name"] == "cv_r2"
    assert rejected["gate"]["cv_accuracy"] is None
    # When: the default rule (beat the mean predictor) applies: published without retraining, and promoted
    published = pipeline.run(run_input(**source, **GRUNFELD))
    assert published["status"] == "SUCCEEDED", published.get("error")
    assert states(published) == {"download": "present", "train": "present", "upload": "ran"}
    gate = published["gate"]
    assert gate["passed"] is True
    assert gate["score"] > 0.8 > gate["baseline"] + 0.5
    manifest = read_champion(f"s3://{MODELS}/iris/iris", store=Store.on_this_machine())
    assert manifest is not None
    assert manifest["metrics"]["score_name"] == "cv_r2"
    assert manifest["metrics"]["score"] == pytest.approx(gate["score"])
    assert manifest["metrics"]["rmse"] > 0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("www")
    (root / "longley.csv").write_bytes((FIXTURES / "longley.csv").read_bytes())
    with serve_directory(root) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/longley.csv"


@pytest.fixture(scope="module")
def runs(served: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two run dates of longley's employment (16 rows, label first): the first with ``pipeline run`` as a user
    runs it, the second with the same runner in-process (a second subprocess would add seconds, not coverage)."""
    root = tmp_path_factory.mktemp("regression")
    summary = run_pipeline(
        "--run-date", "2026-11-25", "--source-url", served, "--label-column", "TOTEMP", "--task", "regression",
        "--estimator", "ridge", "--cv-folds", "3", cwd=root,
    )  # fmt: skip
    assert summary["gate"]["score_name"] == "cv_r2"
    execution_input = {
        "run_date": "2026-11-26",
        "source_url": served,
        "artifact_root": str(root / DEFAULT_ARTIFACTS),
        "publish_uri": str(root / DEFAULT_PUBLISHED),
        "dataset": {"label_column": "TOTEMP"},
        "task": "regression",
        "estimator": "ridge",
        "cv_folds": 3,
    }
    with local_aws():
        second = LocalPipeline(retry_delay_scale=0.0).run(execution_input)
    assert second["status"] == "SUCCEEDED", second.get("error")
    return root


@pytest.mark.slow
def test_pipeline_predict_reports_rmse_mae_and_r2_when_the_label_is_in_the_file(runs: Path) -> None:
    result = run_cli("predict", "--input", str(FIXTURES / "longley.csv"), "--json", cwd=runs)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["task"] == "regression"
    assert output["probabilities"] is None
    assert len(output["predictions"]) == 16
    assert all(isinstance(p, float) for p in output["predictions"])
    assert output["metrics"]["r2"] > 0.9
    assert "has no predict_proba" in result.stderr
    assert "on the label column 'TOTEMP' (16 rows): RMSE" in result.stderr
    assert "R² 0.9" in result.stderr


needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: `make browser`")


@pytest.mark.slow
@needs_chromium
def test_the_regression_report_renders_in_chromium(runs: Path, tmp_path: Path) -> None:
    path = runs / "report.html"
    result = run_cli("report", "--html", str(path), cwd=runs)
    assert result.returncode == 0, result.stderr
    elements = Elements()
    elements.feed(path.read_text())
    r2_points = [a for t, a in elements.tags if t == "circle" and "data-r2" in a]
    assert len(r2_points) == 2  # one model per run date (the same data: the second run found it present)
    with open_page(path.as_uri(), tmp_path / "profile") as page:
        counts: dict[str, Any] = page.evaluate(
            """({
                r2: document.querySelectorAll("svg.chart-r2 circle.point").length,
                rmse: document.querySelectorAll("svg.chart-rmse circle.point").length,
                predicted: document.querySelectorAll("svg.scatter-predicted circle.pair").length,
                residuals: document.querySelectorAll("svg.scatter-residuals circle.pair").length,
                pairWidth: document.querySelector("svg.scatter-predicted circle.pair").getBoundingClientRect().width,
            })"""
        )
        record = page.record
    assert record.console_errors == []
    assert record.page_errors == []
    assert record.outside_requests == []
    assert (counts["r2"], counts["rmse"]) == (2, 2)
    assert counts["predicted"] == counts["residuals"] == 16  # every row held out once by the 3 folds
    assert counts["pairWidth"] > 0
