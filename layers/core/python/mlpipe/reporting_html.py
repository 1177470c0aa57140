"""The pipeline's history as one self-contained HTML page (``pipeline report --html FILE``).

What it shows:

- every model's CV accuracy by run date, as an SVG scatter chart: each published model, the
  champion marked, and each model in the artifacts that no published model references ("rejected /
  not published"); one ``<circle class="point" data-identity=... data-kind=...>`` per model;
- the champion's timeline, from ``champion_history``: promotions, hand promotions and rollbacks;
- the current champion's confusion matrix and per-class precision and recall, from its card;
- the newest model's drift from the champion's data contract, per feature (its card's ``drift``, ``mlpipe.contract``).

For regression models (``task`` regression in the card: ``docs/regression.md``): their CV R² and
CV RMSE by run date (``score_chart``, ``<circle class="point" data-r2=...>`` / ``data-rmse``), and
for a regression champion its cross-validated predictions against the actual values and its
residuals against the predictions (``scatter_chart``, one ``<circle class="pair">`` per row the
card keeps), with R², RMSE, MAE and the mean predictor's RMSE.

What exists comes from ``mlpipe.status.collect_status``, the champion from ``mlpipe.champion``.
The page is standard library only: inline SVG and CSS, no script, no font, image or style fetched
(a Content-Security-Policy of ``default-src 'none'`` says so to the browser), and every string
from storage escaped with ``html.escape``.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpipe.artifacts import Record, check_stored, read_metrics
from mlpipe.champion import champion_uri, read_champion, read_history
from mlpipe.exceptions import PipelineError
from mlpipe.gate import manifest_score, score_words
from mlpipe.status import collect_status
from mlpipe.storage import Store

KIND_LABELS = {
    "champion": "champion",
    "published": "published",
    "rejected": "rejected / not published",
    "incomplete": "incomplete (its model or its card is missing)",
}
COLORS = {
    "champion": "#d97706",
    "published": "#2563eb",
    "rejected": "#9ca3af",
    "precision": "#2563eb",
    "recall": "#16a34a",
}
ACTION_COLORS = {"promote": "#2563eb", "manual": "#7c3aed", "rollback": "#dc2626"}
NOT_SHOWN = "its card is not shown"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #111827; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #d1d5db; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f4f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.85rem; } .muted { color: #6b7280; } svg { display: block; margin: 0.5rem 0; }
svg text { font-family: inherit; font-size: 12px; fill: #374151; }
"""


def _e(value: Any) -> str:
    """``value`` as text safe in HTML content and in attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "–"


def collect_report(artifact_root: str, publish_uri: str, *, store: Store) -> dict[str, Any]:
    """Everything the page shows: ``{"status", "champion", "history", "card", "card_error", "points", "skipped",
    ...}``; ``skipped`` names what is under the roots but is not the pipeline's (never shown as a model)."""
    status = collect_status(artifact_root, publish_uri, store=store)
    champion = read_champion(publish_uri, store=store)
    history, history_skipped = read_history(publish_uri, store=store)
    card: dict[str, Any] | None = None
    card_error = None
    if champion is not None:
        try:
            # The card is shown as the champion's only when the model's bytes are the ones champion.json records.
            record = Record(champion.get("sha256"), f"champion.json at {store.target(champion_uri(publish_uri)).uri}")
            card = check_stored(store.target(str(champion["model_uri"])), consequence=NOT_SHOWN, record=record)
        except PipelineError as exc:
            card_error = f"{type(exc).__name__}: {exc}"
    points = model_points(status, champion)
    return {
        "artifact_root": artifact_root,
        "publish_uri": publish_uri,
        "status": status,
        "champion": champion,
        "history": history,
        "card": card,
        "card_error": card_error,
        "points": points,
        "skipped": status.get("skipped", []) + history_skipped,
        "drift": newest_drift(points, store=store),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def newest_drift(points: list[dict[str, Any]], *, store: Store) -> dict[str, Any] | None:
    """The newest model's (by run date, then when made) drift and accepted schema change, from its card."""
    models = [p for p in points if p["kind"] != "incomplete"]
    if not models:
        return None
    newest = max(models, key=lambda p: (p["run_date"], str(p.get("made") or "")))
    try:
        card = read_metrics(store.target(newest["uri"]))
    except PipelineError:
        return None
    return newest | {"drift": card.get("drift"), "schema_change": card.get("schema_change")}


def model_points(status: dict[str, Any], champion: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One entry per model: each published model (``champion`` or ``published``), each model in the artifacts
    that no published model was made from (``rejected``), and each incomplete one (``incomplete``: a card
    without its model or the reverse, never drawn as a model), with its run date, identity, CV accuracy and
    estimator."""
    referenced = {p.get("model") for run in status["runs"] for p in run["published"] if p["state"] == "present"}
    champion_model = (champion or {}).get("model_uri")
    points = []
    for run in status["runs"]:
        for entry in run["published"]:
            kind = "champion" if entry["uri"] == champion_model else "published"
            points.append(_point(run["run_date"], entry, kind if entry["state"] == "present" else "incomplete"))
        for entry in run["models"]:
            if entry["state"] != "present":
                points.append(_point(run["run_date"], entry, "incomplete"))
            elif entry["identity"] not in referenced:
                points.append(_point(run["run_date"], entry, "rejected"))
    return points


def _point(run_date: str, entry: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "run_date": run_date,
        "identity": entry["identity"],
        "uri": entry["uri"],
        "kind": kind,
        "state": entry["state"],
        "cv_accuracy": entry.get("cv_accuracy"),
        "task": entry.get("task") or "classification",
        "r2": entry.get("score") if entry.get("score_name") == "cv_r2" else None,
        "rmse": entry.get("rmse"),
        "estimator": entry.get("estimator"),
        "hyperparameters": entry.get("hyperparameters") or {},
        "made": entry.get("made"),
    }


def render_report(report: dict[str, Any]) -> str:
    """The page for ``collect_report``'s result, as one HTML document."""
    champion = report["champion"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>mlpipe: the pipeline's history</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>mlpipe: the pipeline's history</h1>",
        f'<p class="muted">Generated {_e(report["generated_at"])} from the artifacts at '
        f"<code>{_e(report['artifact_root'])}</code> and the publish location <code>{_e(report['publish_uri'])}</code>."
        "</p>",
        _champion_summary(champion),
        _skipped(report.get("skipped") or []),
        '<section id="accuracy"><h2>CV accuracy by run date</h2>',
        accuracy_chart(report["points"]),
        _models_table(report["points"]),
        "</section>",
        _regression_section(report["points"]),
        '<section id="timeline"><h2>The champion over time</h2>',
        timeline_chart(report["history"]),
        _history_table(report["history"]),
        "</section>",
        '<section id="champion-metrics"><h2>The champion\'s cross-validated metrics</h2>',
        _champion_metrics(champion, report["card"], report["card_error"]),
        "</section>",
        "<section id=\"drift\"><h2>The newest model's data against the champion's contract</h2>",
        drift_chart(report.get("drift")),
        "</section>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(path: Path, *, artifact_root: str, publish_uri: str, store: Store) -> dict[str, int]:
    """Write the page to ``path`` (atomically: a temporary file beside it, then renamed); what it holds, counted."""
    report = collect_report(artifact_root, publish_uri, store=store)
    document = render_report(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # not mkstemp: its mode 0600 would stay
    try:
        with tmp.open("x", encoding="utf-8") as out:
            out.write(document)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {
        "models": len(report["points"]),
        "run_dates": len(report["status"]["runs"]),
        "champion_changes": len(report["history"]),
        "skipped": len(report.get("skipped") or []),
    }


# --- the sections ---------------------------------------------------------------------------------
def _champion_summary(champion: dict[str, Any] | None) -> str:
    if champion is None:
        return '<p id="champion">There is no champion yet: no model has been promoted.</p>'
    metrics = champion.get("metrics") or {}
    return (
        '<p id="champion">The champion is <strong>'
        f"{_e(champion.get('identity'))}</strong> ({_e(champion.get('estimator'))}, run date "
        f"{_e(champion.get('run_date'))}, {_champion_score(metrics)}), "
        f"{_e(champion.get('action'))} by {_e(champion.get('promoted_by'))} at {_e(champion.get('promoted_at'))}: "
        f"<code>{_e(champion.get('model_uri'))}</code></p>"
    )


def _champion_score(metrics: dict[str, Any]) -> str:
    name, value = manifest_score({"metrics": metrics})
    return f"{_e(score_words(name))} {_e(_num(value))}"


def _regression_section(points: list[dict[str, Any]]) -> str:
    """R² and RMSE by run date, when some model is a regressor (else nothing)."""
    if not any(p.get("task") == "regression" for p in points):
        return ""
    return (
        '<section id="regression"><h2>Regression: CV R² and RMSE by run date</h2>'
        + score_chart(points, "r2", "CV R²")
        + score_chart(points, "rmse", "CV RMSE")
        + "</section>"
    )


def _skipped(skipped: list[dict[str, str]]) -> str:
    """A note naming what is under the roots but is not the pipeline's: skipped, and left as it is."""
    if not skipped:
        return ""
    items = "".join(
        f"<li><code>{_e(entry.get('relative'))}</code> in <code>{_e(entry.get('root'))}</code>: "
        f"{_e(entry.get('reason'))}</li>"
        for entry in skipped
    )
    return (
        f'<section id="skipped"><p class="muted">Skipped {len(skipped)} entries under the roots that are not the '
        f"pipeline's (left as they are):</p><ul>{items}</ul></section>"
    )


def _ticks(low: float, high: float) -> tuple[float, float, float]:
    """A round step for the y axis and the range it spans (at most about eight gridlines)."""
    span = max(high - low, 1e-9)
    step = next((s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5) if span / s <= 8), 1.0)
    if span / step > 8:  # beyond 0 to 8 (an RMSE in the target's units): 1, 2, 2.5 or 5 times a power of ten
        power = 10.0 ** math.floor(math.log10(span / 8))
        step = next(power * m for m in (1, 2, 2.5, 5, 10) if span / (power * m) <= 8)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def _y_scale(
    lowest: float, highest: float, top: float, plot_h: float
) -> tuple[float, float, float, Callable[[float], float]]:
    """The y axis's rounded range and step (``_ticks``) and the function from a value to its y coordinate."""
    low, high, step = _ticks(lowest, highest)
    if high <= low:
        high = low + step

    def y_of(value: float) -> float:
        return top + (high - value) / (high - low) * plot_h

    return low, high, step, y_of


def accuracy_chart(points: list[dict[str, Any]]) -> str:
    """An SVG scatter chart: run dates across, CV accuracy up, one circle per complete model with a CV accuracy."""
    shown = [p for p in points if isinstance(p["cv_accuracy"], int | float) and p["kind"] != "incomplete"]
    if not shown:
        return '<p class="muted">No model with a CV accuracy was found.</p>'
    dates = sorted({p["run_date"] for p in shown})
    width, height = max(640, 90 * len(dates) + 120), 380
    left, right, top, bottom = 64, 24, 24, 90
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(p["cv_accuracy"]) for p in shown]
    low, high, step, y_of = _y_scale(min(values) - 0.01, min(1.0, max(values) + 0.01), top, plot_h)
    slot = plot_w / len(dates)
    out = [
        f'<svg class="chart cv-chart" role="img" aria-label="CV accuracy by run date" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    ticks = round((high - low) / step)
    for index in range(ticks + 1):
        value = low + index * step
        y = y_of(value)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_e(f"{value:.2f}")}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#6b7280"/>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#6b7280"/>')
    out.append(
        f'<text x="16" y="{top + plot_h / 2:.1f}" transform="rotate(-90 16 {top + plot_h / 2:.1f})" '
        'text-anchor="middle">CV accuracy</text>'
    )
    order = {"rejected": 0, "published": 1, "champion": 2}  # the champion drawn last, on top
    for index, date in enumerate(dates):
        centre = left + (index + 0.5) * slot
        out.append(
            f'<text class="date" x="{centre:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{_e(date)}</text>'
        )
        group = sorted((p for p in shown if p["run_date"] == date), key=lambda p: (order[p["kind"]], p["identity"]))
        spread = min(16.0, (slot - 12) / max(len(group), 1))
        for position, point in enumerate(group):
            x = centre + (position - (len(group) - 1) / 2) * spread
            out.append(_circle(point, x, y_of(float(point["cv_accuracy"]))))
    legend_y = height - 28
    for position, kind in enumerate(("champion", "published", "rejected")):
        x = left + position * 200
        out.append(
            f'<circle class="legend" cx="{x + 6}" cy="{legend_y}" r="6" {_style(kind)}/>'
            f'<text x="{x + 18}" y="{legend_y + 4}">{_e(KIND_LABELS[kind])}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def score_chart(points: list[dict[str, Any]], key: str, label: str) -> str:
    """An SVG scatter chart of the regression models' ``key`` (``r2`` or ``rmse``) by run date, one circle each."""
    shown = [p for p in points if isinstance(p.get(key), int | float) and p["kind"] != "incomplete"]
    if not shown:
        return f'<p class="muted">No regression model with a {_e(label)} was found.</p>'
    dates = sorted({p["run_date"] for p in shown})
    width, height = max(640, 90 * len(dates) + 120), 320
    left, right, top, bottom = 72, 24, 24, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(p[key]) for p in shown]
    pad = max((max(values) - min(values)) * 0.05, 0.01 * max(1.0, abs(max(values))))
    low, high, step, y_of = _y_scale(min(values) - pad, max(values) + pad, top, plot_h)
    slot = plot_w / len(dates)
    out = [
        f'<svg class="chart score-chart chart-{_e(key)}" role="img" aria-label="{_e(label)} by run date" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for index in range(round((high - low) / step) + 1):
        value = low + index * step
        y = y_of(value)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_e(f"{value:.4g}")}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#6b7280"/>')
    out.append(
        f'<text x="16" y="{top + plot_h / 2:.1f}" transform="rotate(-90 16 {top + plot_h / 2:.1f})" '
        f'text-anchor="middle">{_e(label)}</text>'
    )
    for index, date in enumerate(dates):
        centre = left + (index + 0.5) * slot
        out.append(
            f'<text class="date" x="{centre:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{_e(date)}</text>'
        )
        group = sorted((p for p in shown if p["run_date"] == date), key=lambda p: p["identity"])
        spread = min(16.0, (slot - 12) / max(len(group), 1))
        for position, point in enumerate(group):
            x = centre + (position - (len(group) - 1) / 2) * spread
            value = float(point[key])
            tip = (
                f"{point['identity']} ({KIND_LABELS[point['kind']]})\nrun date {point['run_date']}\n{label} {value:.4g}"
            )
            out.append(
                f'<circle class="point point-{_e(point["kind"])}" data-identity="{_e(point["identity"])}" '
                f'data-kind="{_e(point["kind"])}" data-{_e(key)}="{value!r}" cx="{x:.1f}" cy="{y_of(value):.1f}" '
                f'r="{8 if point["kind"] == "champion" else 6}" {_style(point["kind"])}>'
                f"<title>{_e(tip)}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)


def scatter_chart(xs: list[float], ys: list[float], *, x_label: str, y_label: str, name: str, diagonal: bool) -> str:
    """An SVG scatter of ``(xs[i], ys[i])``, with the line y = x (``diagonal``) or y = 0: one ``circle.pair`` each."""
    if not xs or len(xs) != len(ys):
        return f'<p class="muted">The card keeps no cross-validated predictions for the {_e(name)} chart.</p>'
    size, margin = 360, 64
    x_low, x_high, _ = _ticks(min(xs), max(xs))
    y_low, y_high, _ = _ticks(min(ys), max(ys))
    if diagonal:
        x_low = y_low = min(x_low, y_low)
        x_high = y_high = max(x_high, y_high)
    else:
        bound = max(abs(y_low), abs(y_high))
        y_low, y_high = -bound, bound
    x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        return margin + (x - x_low) / x_span * size, 16 + (y_high - y) / y_span * size

    width, height = size + margin + 24, size + 16 + 48
    out = [
        f'<svg class="chart scatter scatter-{_e(name)}" role="img" aria-label="{_e(y_label)} against {_e(x_label)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{margin}" y="16" width="{size}" height="{size}" fill="none" stroke="#6b7280"/>',
    ]
    (x0, y0), (x1, y1) = (at(x_low, x_low), at(x_high, x_high)) if diagonal else (at(x_low, 0), at(x_high, 0))
    out.append(f'<line class="reference" x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="#dc2626"/>')
    for value, anchor in ((x_low, "start"), (x_high, "end")):
        out.append(f'<text x="{at(value, y_low)[0]:.1f}" y="{size + 32}" text-anchor="{anchor}">{value:.4g}</text>')
    for value in (y_low, y_high):
        out.append(f'<text x="{margin - 6}" y="{at(x_low, value)[1] + 4:.1f}" text-anchor="end">{value:.4g}</text>')
    out.append(f'<text x="{margin + size / 2:.1f}" y="{size + 52}" text-anchor="middle">{_e(x_label)}</text>')
    out.append(
        f'<text x="14" y="{16 + size / 2:.1f}" transform="rotate(-90 14 {16 + size / 2:.1f})" '
        f'text-anchor="middle">{_e(y_label)}</text>'
    )
    for x, y in zip(xs, ys, strict=True):
        cx, cy = at(x, y)
        out.append(
            f'<circle class="pair" data-x="{x!r}" data-y="{y!r}" cx="{cx:.1f}" cy="{cy:.1f}" r="3" '
            f'fill="{COLORS["published"]}" fill-opacity="0.6"/>'
        )
    out.append("</svg>")
    return "".join(out)


def _regression_metrics(card: dict[str, Any]) -> str:
    """A regression champion's metrics: predicted against actual, residuals against predicted, and the numbers."""
    metrics = card.get("cv_metrics") or {}
    pairs = card.get("cv_predictions") or {}
    actual = [float(v) for v in pairs.get("actual") or []]
    predicted = [float(v) for v in pairs.get("predicted") or []]
    residuals = [a - p for a, p in zip(actual, predicted, strict=False)]
    method = (card.get("cv_r2") or {}).get("method")
    shown = f"{pairs.get('shown')} of {pairs.get('of')}" if pairs else "no"
    return (
        f'<p class="muted">Out-of-fold predictions of the {_e(method or "cross-validation")} on {_e(card.get("rows"))} '
        f"rows ({_e(shown)} shown): R² {_e(_num(metrics.get('r2')))}, RMSE {_e(_num(metrics.get('rmse')))}, MAE "
        f"{_e(_num(metrics.get('mae')))}, median absolute error {_e(_num(metrics.get('median_absolute_error')))}; "
        f"the mean predictor's RMSE {_e(_num(metrics.get('baseline_rmse')))}.</p>"
        "<h3>Predicted against actual</h3>"
        + scatter_chart(actual, predicted, x_label="actual", y_label="predicted", name="predicted", diagonal=True)
        + "<h3>Residuals against predicted</h3>"
        + scatter_chart(
            predicted, residuals, x_label="predicted", y_label="actual - predicted", name="residuals", diagonal=False
        )
    )


def _style(kind: str) -> str:
    if kind == "rejected":
        return f'fill="#ffffff" stroke="{COLORS[kind]}" stroke-width="2" stroke-dasharray="3 2"'
    if kind == "champion":
        return f'fill="{COLORS[kind]}" stroke="#78350f" stroke-width="3"'
    return f'fill="{COLORS[kind]}" stroke="#1e3a8a" stroke-width="1"'


def _circle(point: dict[str, Any], x: float, y: float) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(point["hyperparameters"].items())) or "defaults"
    tip = (
        f"{point['identity']} ({KIND_LABELS[point['kind']]})\nrun date {point['run_date']}\n"
        f"CV accuracy {_num(point['cv_accuracy'])}\n{point['estimator'] or '?'}: {params}"
    )
    radius = 8 if point["kind"] == "champion" else 6
    mark = (
        f'<text class="champion-label" x="{x:.1f}" y="{y - 14:.1f}" text-anchor="middle">champion</text>'
        if point["kind"] == "champion"
        else ""
    )
    return (
        f'<circle class="point point-{_e(point["kind"])}" data-identity="{_e(point["identity"])}" '
        f'data-kind="{_e(point["kind"])}" data-run-date="{_e(point["run_date"])}" '
        f'data-cv-accuracy="{_e(point["cv_accuracy"])}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" {_style(point["kind"])}>'
        f"<title>{_e(tip)}</title></circle>{mark}"
    )


def _models_table(points: list[dict[str, Any]]) -> str:
    rows = [
        '<table class="models"><thead><tr><th>run date</th><th>model</th><th>what</th><th>CV score</th>'
        "<th>estimator</th><th>non-default hyperparameters</th><th>state</th><th>made</th></tr></thead><tbody>"
    ]
    for point in sorted(points, key=lambda p: (p["run_date"], p["identity"])):
        params = ", ".join(f"{k}={v}" for k, v in sorted(point["hyperparameters"].items())) or "–"
        rows.append(
            f'<tr data-identity="{_e(point["identity"])}"><td>{_e(point["run_date"])}</td>'
            f'<td><code title="{_e(point["uri"])}">{_e(point["identity"])}</code></td>'
            f'<td>{_e(KIND_LABELS[point["kind"]])}</td><td class="num">{_e(_score_cell(point))}</td>'
            f"<td>{_e(point['estimator'] or '–')}</td><td>{_e(params)}</td><td>{_e(point['state'])}</td>"
            f"<td>{_e(point['made'])}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _score_cell(point: dict[str, Any]) -> str:
    """A model's own score in the models table: CV accuracy for a classifier, CV R² for a regressor."""
    if point["task"] == "regression":
        return f"R² {_num(point['r2'])}"
    return f"accuracy {_num(point['cv_accuracy'])}"


def timeline_chart(history: list[dict[str, Any]]) -> str:
    """An SVG timeline: one marker per change of champion, oldest on the left, coloured by its action."""
    if not history:
        return '<p class="muted">The champion has never changed: there is no history yet.</p>'
    step = 200
    width, height, left, axis_y = max(640, step * len(history) + 40), 170, 110, 60
    out = [
        f'<svg class="chart timeline" role="img" aria-label="the champion over time" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left - 20}" x2="{width - 20}" y1="{axis_y}" y2="{axis_y}" stroke="#6b7280"/>',
    ]
    for index, entry in enumerate(history):
        x = left + index * step
        action = str(entry.get("action") or "promote")
        color = ACTION_COLORS.get(action, "#374151")
        when = str(entry.get("promoted_at") or "")
        identity = entry.get("identity")
        tip = f"{action}: {identity} (run date {entry.get('run_date')})\n{when} by {entry.get('promoted_by')}"
        out.append(
            f'<circle class="event event-{_e(action)}" data-action="{_e(action)}" data-identity="{_e(identity)}" '
            f'cx="{x}" cy="{axis_y}" r="9" fill="{color}"><title>{_e(tip)}</title></circle>'
            f'<text x="{x}" y="{axis_y - 18}" text-anchor="middle" font-weight="600">{_e(action)}</text>'
            f'<text x="{x}" y="{axis_y + 28}" text-anchor="middle">{_e(identity)}</text>'
            f'<text x="{x}" y="{axis_y + 44}" text-anchor="middle">run {_e(entry.get("run_date"))}</text>'
            f'<text x="{x}" y="{axis_y + 60}" text-anchor="middle">{_e(when[:19].replace("T", " "))}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _history_table(history: list[dict[str, Any]]) -> str:
    if not history:
        return ""
    rows = [
        '<table class="history"><thead><tr><th>#</th><th>when (UTC)</th><th>action</th><th>champion</th>'
        "<th>run date</th><th>estimator</th><th>CV accuracy</th><th>by</th><th>replaced</th></tr></thead><tbody>"
    ]
    for index, entry in enumerate(history, 1):
        previous = (entry.get("previous") or {}).get("identity") or "–"
        rows.append(
            f'<tr data-action="{_e(entry.get("action"))}"><td class="num">{index}</td>'
            f"<td>{_e(entry.get('promoted_at'))}</td>"
            f"<td>{_e(entry.get('action'))}</td><td><code>{_e(entry.get('identity'))}</code></td>"
            f"<td>{_e(entry.get('run_date'))}</td><td>{_e(entry.get('estimator'))}</td>"
            f'<td class="num">{_e(_num((entry.get("metrics") or {}).get("cv_accuracy")))}</td>'
            f"<td>{_e(entry.get('promoted_by'))}</td><td><code>{_e(previous)}</code></td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _champion_metrics(champion: dict[str, Any] | None, card: dict[str, Any] | None, error: str | None) -> str:
    if champion is None:
        return '<p class="muted">No champion, so no metrics.</p>'
    if card is None:
        return f'<p class="error">The champion\'s card cannot be read: {_e(error)}</p>'
    if card.get("task") == "regression":
        return _regression_metrics(card)
    metrics = card.get("cv_metrics") or {}
    matrix = metrics.get("confusion_matrix") or {}
    per_class = metrics.get("per_class") or {}
    method = (card.get("cv_accuracy") or {}).get("method")
    return (
        f'<p class="muted">Out-of-fold predictions of the {_e(method or "cross-validation")} on {_e(card.get("rows"))} '
        f"rows: balanced accuracy {_e(_num(metrics.get('balanced_accuracy')))}, macro F1 "
        f"{_e(_num(metrics.get('macro_f1')))}.</p>"
        "<h3>Confusion matrix</h3>"
        + confusion_chart(matrix.get("labels") or [], matrix.get("matrix") or [])
        + "<h3>Precision and recall per class</h3>"
        + per_class_chart(per_class)
        + _per_class_table(per_class)
    )


def confusion_chart(labels: list[Any], matrix: list[list[int]]) -> str:
    """An SVG grid: true labels down, predicted labels across, each cell shaded by its share of its row."""
    if not labels or len(matrix) != len(labels):
        return '<p class="muted">The card has no confusion matrix.</p>'
    n = len(labels)
    cell = max(28, min(110, 480 // n))
    fits = max(3, cell // 7)  # characters of a column label that fit in a cell
    left, top = 150, 70
    width, height = left + n * cell + 20, top + n * cell + 20
    out = [
        f'<svg class="chart confusion" role="img" aria-label="confusion matrix" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left + n * cell / 2:.1f}" y="16" text-anchor="middle" font-weight="600">predicted label</text>',
        f'<text x="16" y="{top + n * cell / 2:.1f}" text-anchor="middle" font-weight="600" '
        f'transform="rotate(-90 16 {top + n * cell / 2:.1f})">true label</text>',
    ]
    for j, label in enumerate(labels):
        x = left + j * cell + cell / 2
        out.append(f'<text x="{x:.1f}" y="{top - 10}" text-anchor="middle">{_e(_short(label, fits))}</text>')
    for i, (label, row) in enumerate(zip(labels, matrix, strict=True)):
        total = sum(row) or 1
        y = top + i * cell
        out.append(f'<text x="{left - 8}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{_e(_short(label))}</text>')
        for j, count in enumerate(row):
            share = count / total
            fill = f"rgba(37, 99, 235, {0.08 + 0.92 * share:.3f})" if count else "#ffffff"
            ink = "#ffffff" if share > 0.5 else "#111827"
            out.append(
                f'<rect class="cell" data-true="{_e(label)}" data-predicted="{_e(labels[j])}" data-count="{count}" '
                f'x="{left + j * cell}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#d1d5db">'
                f"<title>{_e(f'true {label}, predicted {labels[j]}: {count} ({share:.0%} of the row)')}</title></rect>"
                f'<text x="{left + j * cell + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" '
                f'style="fill: {ink}">{count}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def per_class_chart(per_class: dict[str, dict[str, Any]]) -> str:
    """An SVG bar chart: for each class, its precision and its recall (0 to 1)."""
    if not per_class:
        return '<p class="muted">The card has no per-class metrics.</p>'
    left, bar, gap, scale = 150, 14, 14, 400
    width = left + scale + 130
    height = 40 + len(per_class) * (2 * bar + gap)
    out = [
        f'<svg class="chart per-class" role="img" aria-label="precision and recall per class" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in range(0, 11, 2):
        x = left + scale * tick / 10
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="20" y2="{height - 10}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{x:.1f}" y="14" text-anchor="middle">{tick / 10:.1f}</text>')
    for index, (label, values) in enumerate(per_class.items()):
        y = 24 + index * (2 * bar + gap)
        out.append(f'<text x="{left - 8}" y="{y + bar + 4}" text-anchor="end">{_e(_short(label))}</text>')
        for offset, metric in enumerate(("precision", "recall")):
            value = float(values.get(metric) or 0.0)
            out.append(
                f'<rect class="bar bar-{metric}" data-class="{_e(label)}" data-{metric}="{value!r}" x="{left}" '
                f'y="{y + offset * bar}" width="{scale * value:.1f}" height="{bar - 2}" fill="{COLORS[metric]}">'
                f"<title>{_e(f'{label}: {metric} {value:.4f}')}</title></rect>"
                f'<text x="{left + scale * value + 6:.1f}" y="{y + offset * bar + bar - 4}">{metric} {value:.3f}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def _per_class_table(per_class: dict[str, dict[str, Any]]) -> str:
    rows = [
        '<table class="per-class"><thead><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>'
        "<th>support</th></tr></thead><tbody>"
    ]
    for label, values in per_class.items():
        rows.append(
            f'<tr><td>{_e(label)}</td><td class="num">{_e(_num(values.get("precision")))}</td>'
            f'<td class="num">{_e(_num(values.get("recall")))}</td><td class="num">{_e(_num(values.get("f1")))}</td>'
            f'<td class="num">{_e(values.get("support"))}</td></tr>'
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _short(label: Any, limit: int = 20) -> str:
    text = str(label).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def drift_chart(newest: dict[str, Any] | None) -> str:
    """The newest model's drift per feature: an SVG bar per feature (PSI or L-infinity distance), and a table."""
    measured = (newest or {}).get("drift") or {}
    features = measured.get("features") or {}
    if not features:
        return '<p class="muted">No drift measured: the newest model\'s data had no contract to compare with.</p>'
    contract = measured.get("contract") or {}
    change = (newest or {}).get("schema_change") or {}
    intro = (
        f"<p>Model <strong>{_e(newest and newest['identity'])}</strong> ({_e(newest and newest['run_date'])}, "
        f"{_e(newest and newest['kind'])}) against the contract of the champion {_e(contract.get('champion'))}: "
        "PSI over the contract's deciles for numbers (under 0.1 is usually read as stable, over 0.25 as a shift), "
        "L-infinity distance of the category frequencies for categories.</p>"
    )
    if change.get("changes"):
        listed = "; ".join(str(c.get("detail")) for c in change["changes"])
        intro += f'<p class="error">Schema changed (accepted, so not promoted automatically): {_e(listed)}</p>'
    left, bar, scale = 150, 18, 400
    top = max([0.25] + [float(e.get("value") or 0.0) for e in features.values()])
    height = 20 + len(features) * (bar + 8)
    out = [
        f'<svg class="chart drift" role="img" aria-label="drift per feature" width="{left + scale + 160}" '
        f'height="{height}" viewBox="0 0 {left + scale + 160} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    rows = [
        '<table class="drift"><thead><tr><th>feature</th><th>measure</th><th>drift</th><th>unseen categories</th>'
        "</tr></thead><tbody>"
    ]
    for index, (name, entry) in enumerate(sorted(features.items())):
        value = entry.get("value")
        y = 10 + index * (bar + 8)
        shown = "–" if value is None else f"{entry.get('measure')} {value:.4f}"
        out.append(
            f'<text x="{left - 8}" y="{y + bar - 4}" text-anchor="end">{_e(_short(name))}</text>'
            f'<rect class="bar drift-bar" data-feature="{_e(name)}" data-value="{_e(value)}" x="{left}" y="{y}" '
            f'width="{scale * float(value or 0.0) / top:.1f}" height="{bar}" fill="{COLORS["champion"]}">'
            f"<title>{_e(f'{name}: {shown}')}</title></rect>"
            f'<text x="{left + scale * float(value or 0.0) / top + 6:.1f}" y="{y + bar - 4}">{_e(shown)}</text>'
        )
        unseen = entry.get("unseen") or []
        rows.append(
            f'<tr><td>{_e(name)}</td><td>{_e(entry.get("measure"))}</td><td class="num">{_e(_num(value))}</td>'
            f"<td>{_e(_num(entry.get('unseen_share')))} {_e(', '.join(map(str, unseen)))}</td></tr>"
        )
    out.append("</svg>")
    rows.append("</tbody></table>")
    return intro + "".join(out) + "".join(rows)
