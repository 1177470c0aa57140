"""Cost of a run and of a month of daily runs, from bench.warm's and bench.coldstart's figures.

Lambda is billed per request and per GB-second: each invocation's duration rounded up to the
next millisecond, times the function's MemorySize. Step Functions Standard is billed per state
transition (one per state entered, counted by bench.warm on the real state machine). A cold
start adds the handler's import (the INIT phase, billed for on-demand functions) and, for train,
the imports its first training does; with a daily schedule every run is cold: Lambda does not
keep an idle execution environment for a day.

The durations are this machine's, in process, with storage in a local directory: in AWS each S3
request adds network time (tens of ms), and a function below 1769 MB gets a fraction of a vCPU,
so CPU-bound work takes up to 1769/MemorySize times longer. The "CPU-scaled" figures apply that
factor, as an upper estimate. Prices: us-east-1 list prices, without the free tier.

    python -m bench.cost --warm .aws-sam/bench/warm.json [--coldstart .aws-sam/bench/coldstart.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from bench.samtemplate import REPO, Template
from bench.warm import measure

# us-east-1 list prices (USD), checked against the AWS pricing pages; no free tier applied.
LAMBDA_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}  # per GB-s (first 6 billion GB-s a month)
LAMBDA_REQUEST = 0.20 / 1_000_000  # per request
SFN_STANDARD_TRANSITION = 0.025 / 1_000  # per state transition, Standard workflows
LOGS_INGESTION_GB = 0.50  # CloudWatch Logs, per GB ingested (standard class)
CUSTOM_METRIC_MONTH = 0.30  # CloudWatch, per custom metric per month (first 10,000), prorated by the hour
XRAY_TRACE = 5.00 / 1_000_000  # X-Ray, per trace recorded
ALARM_METRIC_MONTH = 0.10  # CloudWatch standard-resolution alarm, per metric it evaluates, per month
PLATFORM_LOG_BYTES = 330  # Lambda's own START, END and REPORT lines per invocation (approximate)

FULL_VCPU_MB = 1769  # Lambda gives one full vCPU at 1769 MB, proportionally less below
DAYS_PER_MONTH = 365.25 / 12
HOURS_PER_MONTH = 730


def billed_ms(seconds: float) -> int:
    """Lambda rounds each invocation's duration up to the next millisecond."""
    return max(1, math.ceil(seconds * 1000))


def gb_seconds(ms: int, memory_mb: int) -> float:
    return ms / 1000 * memory_mb / 1024


def cold_extra_s(name: str, coldstart: dict[str, Any] | None) -> float:
    """What a cold invocation adds: the handler's import, and for train the imports of its first training."""
    if not coldstart:
        return 0.0
    for build in coldstart.get("builds", {}).values():
        figures = build.get("functions", {}).get(name)
        if figures:
            return float(figures.get("import_s", 0.0)) + float(figures.get("training_imports_s", 0.0))
    return 0.0


def usd(value: float) -> str:
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def report(warm: dict[str, Any], coldstart: dict[str, Any] | None, traces_per_run: int, alarms: int) -> list[str]:
    out = []
    functions: dict[str, Any] = warm["functions"]
    out.append("Cost per run: us-east-1 list prices, no free tier; Lambda durations measured here (x86_64 host)")
    out.append(
        f"  {'function':<10} {'MB':>5} {'warm ms':>8} {'cold +ms':>9} {'GB-s warm':>10} {'GB-s cold':>10} "
        f"{'GB-s cold, CPU-scaled':>22}"
    )
    totals = {"warm": 0.0, "cold": 0.0, "scaled": 0.0}
    present_gbs = 0.0
    for name, f in functions.items():
        memory = int(f["memory_mb"])
        warm_ms = billed_ms(f["fresh_s"])
        extra = cold_extra_s(name, coldstart)
        cold_ms = billed_ms(f["fresh_s"] + extra)
        scale = max(1.0, FULL_VCPU_MB / memory)
        scaled_ms = billed_ms((f["fresh_s"] + extra) * scale)
        row = {"warm": gb_seconds(warm_ms, memory), "cold": gb_seconds(cold_ms, memory)}
        row["scaled"] = gb_seconds(scaled_ms, memory)
        for key, value in row.items():
            totals[key] += value
        if name in warm["present_run"]["invocations"]:
            present_gbs += gb_seconds(billed_ms(f["present_s"]), memory)
        out.append(
            f"  {name:<10} {memory:>5} {warm_ms:>8} {extra * 1000:>9.0f} {row['warm']:>10.4f} {row['cold']:>10.4f} "
            f"{row['scaled']:>22.4f}"
        )
    out.append(
        f"  {'total':<10} {'':>5} {'':>8} {'':>9} {totals['warm']:>10.4f} {totals['cold']:>10.4f} "
        f"{totals['scaled']:>22.4f}"
    )
    if not coldstart:
        out.append("  (no cold-start figures given: cold = warm; pass --coldstart)")

    fresh_requests = sum(warm["fresh_run"]["invocations"].values())
    present_requests = sum(warm["present_run"]["invocations"].values())
    fresh_transitions = int(warm["fresh_run"]["transitions"])
    present_transitions = int(warm["present_run"]["transitions"])
    sfn_fresh = fresh_transitions * SFN_STANDARD_TRANSITION
    sfn_present = present_transitions * SFN_STANDARD_TRANSITION
    out.append("")
    out.append(f"  {'per run':<34} {'x86_64':>12} {'arm64':>12}")
    rows: list[tuple[str, float, float]] = []
    for label, gbs, requests, sfn in (
        ("fresh run, warm functions", totals["warm"], fresh_requests, sfn_fresh),
        ("fresh run, cold (a daily run)", totals["cold"], fresh_requests, sfn_fresh),
        ("fresh run, cold, CPU-scaled", totals["scaled"], fresh_requests, sfn_fresh),
        ("all-present rerun, warm", present_gbs, present_requests, sfn_present),
    ):
        x86 = gbs * LAMBDA_GB_SECOND["x86_64"] + requests * LAMBDA_REQUEST + sfn
        arm = gbs * LAMBDA_GB_SECOND["arm64"] + requests * LAMBDA_REQUEST + sfn
        rows.append((label, x86, arm))
        out.append(f"  {label:<34} {usd(x86):>12} {usd(arm):>12}")
    out.append(
        f"  of which Step Functions: {fresh_transitions} transitions = {usd(sfn_fresh)} (fresh), "
        f"{present_transitions} = {usd(sfn_present)} (all present); Lambda requests: "
        f"{fresh_requests} = {usd(fresh_requests * LAMBDA_REQUEST)} (fresh), {present_requests} (all present)"
    )
    daily = {label: (x86, arm) for label, x86, arm in rows}
    cold_x86, cold_arm = daily["fresh run, cold (a daily run)"]
    scaled_x86, scaled_arm = daily["fresh run, cold, CPU-scaled"]
    out.append(
        f"  per month, daily schedule ({DAYS_PER_MONTH:.2f} fresh runs, all cold): "
        f"x86_64 {usd(cold_x86 * DAYS_PER_MONTH)}, arm64 {usd(cold_arm * DAYS_PER_MONTH)} "
        f"(CPU-scaled: {usd(scaled_x86 * DAYS_PER_MONTH)}, {usd(scaled_arm * DAYS_PER_MONTH)})"
    )

    # What the run also costs outside Lambda and Step Functions, from what the functions printed.
    log_bytes = sum(warm["fresh_run"]["log_bytes"].values()) + fresh_requests * PLATFORM_LOG_BYTES
    metrics = len(warm["fresh_run"]["emf_metrics"])
    logs_month = log_bytes * DAYS_PER_MONTH / 1024**3 * LOGS_INGESTION_GB
    # A metric that gets data points in one hour of a day is billed for ~30 hours of the month's 730.
    metrics_month = metrics * CUSTOM_METRIC_MONTH * DAYS_PER_MONTH / HOURS_PER_MONTH
    xray_month = traces_per_run * XRAY_TRACE * DAYS_PER_MONTH
    out.append(
        f"  also billed per month: CloudWatch Logs {log_bytes / 1024:.1f} KiB/run = {usd(logs_month)}; "
        f"{metrics} custom metrics (EMF) = {usd(metrics_month)}"
        + (f"; X-Ray {traces_per_run} trace(s)/run = {usd(xray_month)}" if traces_per_run else "")
        + "; plus S3 requests and storage"
    )
    if alarms:
        out.append(
            f"  fixed per month, whatever runs: alarms evaluating {alarms} metric(s) = "
            f"{usd(alarms * ALARM_METRIC_MONTH)}"
        )
    return out


def traces_per_run(template: Any, warm: dict[str, Any]) -> int:
    """X-Ray traces a run records: one when the state machine is traced (the functions join its trace),
    else one per traced function invocation, else none."""
    for resource in template.resources.values():
        if resource.get("Type") == "AWS::Serverless::StateMachine":
            tracing = (resource.get("Properties") or {}).get("Tracing") or {}
            if str(template.resolve(tracing.get("Enabled", False))).lower() == "true":
                return 1
    traced = {f.name for f in template.functions() if f.tracing}
    return sum(count for name, count in warm["fresh_run"]["invocations"].items() if name in traced)


def alarm_metrics(template: Any) -> int:
    """Metrics evaluated by the template's CloudWatch alarms (a metric-math alarm pays for each metric it reads)."""
    count = 0
    for resource in template.resources.values():
        if resource.get("Type") == "AWS::CloudWatch::Alarm":
            props = resource.get("Properties") or {}
            queries = props.get("Metrics") or []
            count += sum(1 for query in queries if "MetricStat" in query) if queries else 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", type=Path, help="bench.warm --json-out file (else bench.warm runs now)")
    parser.add_argument("--coldstart", type=Path, help="bench.coldstart --json-out file")
    parser.add_argument("--runs", type=int, default=7, help="for bench.warm when --warm is not given")
    args = parser.parse_args(argv)

    template = Template(REPO / "template.yaml")
    warm = json.loads(args.warm.read_text()) if args.warm else measure(args.runs, template)
    coldstart = json.loads(args.coldstart.read_text()) if args.coldstart else None
    print("\n".join(report(warm, coldstart, traces_per_run(template, warm), alarm_metrics(template))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
