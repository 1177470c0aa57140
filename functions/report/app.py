"""Report step: the run's summary (which task was present, ran, failed or was not run) for the execution's end."""

from __future__ import annotations

from typing import Any

from mlpipe import PipelineError, Settings, build_report
from mlpipe.backfill import build_backfill_report
from mlpipe.observability import instrumented, record_run

try:
    SETTINGS: Settings | None = Settings.from_env()
except PipelineError:  # the plan names the bad setting; the report still reports, without resolving the run
    SETTINGS = None


@instrumented("report")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return ``{"summary": {...}, "cause": "<summary as JSON>"}``: a run's, or a backfill's given the Map's results."""
    if "backfill_results" in event:
        return build_backfill_report(event["backfill_results"])
    report = build_report(event, SETTINGS)
    record_run(report["summary"])
    return report
