"""`pipeline report --html`: the pipeline's history as one self-contained page, made from real runs, read back as
HTML and opened in headless Chromium (tests/cdp.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from mlpipe.champion import champion_history, promote, read_champion, rollback
from mlpipe.status import collect_status
from mlpipe.storage import Store
from tests.cdp import CHROMIUM, open_page
from tests.cli import pipeline, run_pipeline
from tests.conftest import REPO

ARTIFACTS_DIR = REPO / ".pytest-artifacts"


@dataclass(frozen=True)
class History:
    """Four real runs under one root: two dates, two hyperparameter sets, one model published elsewhere only."""

    root: Path
    artifact_root: str
    publish_uri: str
    published: dict[str, str]  # name -> published model URI
    rejected_model: str  # the identity of the model no published model here references


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    # Given: models for two dates and two hyperparameter sets, each promoted as it is published, then a rollback
    root = tmp_path_factory.mktemp("history")
    publish_uri = str(root / ".pipeline" / "published" / "iris")  # model iris's location
    published = {}
    for name, args in (
        ("first", ["--run-date", "2026-11-25"]),
        ("c10", ["--run-date", "2026-11-25", "--hyperparameters", '{"C": 10}']),
        ("second_date", ["--run-date", "2026-11-26"]),
    ):
        summary = run_pipeline(*args, cwd=root)
        published[name] = summary["tasks"]["upload"]["target"]
        promote(publish_uri, published[name], summary["run_date"], promoted_by="test", store=Store.on_this_machine())
    rollback(publish_uri, promoted_by="test", store=Store.on_this_machine())
    # and a model trained into the same artifacts but published somewhere else: not published here
    elsewhere = run_pipeline(
        "--run-date",
        "2026-11-26",
        "--hyperparameters",
        '{"C": 0.05}',
        "--publish-uri",
        str(root / "elsewhere"),
        cwd=root,
    )
    rejected = elsewhere["tasks"]["train"]["target"].rsplit("/", 2)[-2]
    return History(root, str(root / ".pipeline" / "artifacts"), publish_uri, published, rejected)


@pytest.fixture(scope="module")
def report(history: History) -> Path:
    """The page, written by the command as a user runs it."""
    path = history.root / "report" / "history.html"
    result = pipeline("report", "--html", str(path), cwd=history.root)
    assert result.returncode == 0, result.stderr
    assert f"wrote {path}: 4 models over 2 run dates, 4 champion changes" in result.stdout
    return path


class Elements(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def having(self, tag: str, css_class: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and css_class in (a.get("class") or "").split()]


def parse(path: Path) -> Elements:
    elements = Elements()
    elements.feed(path.read_text())
    return elements


def identity_of(uri: str) -> str:
    return uri.rsplit("/", 2)[-2]


def test_the_chart_has_one_point_per_model_the_champion_marked_and_the_unpublished_one_rejected(
    history: History, report: Path
) -> None:
    points = parse(report).having("circle", "point")
    kinds = {p["data-identity"]: p["data-kind"] for p in points}
    champion = read_champion(history.publish_uri, store=Store.on_this_machine())
    assert champion is not None
    assert champion["model_uri"] == history.published["c10"]  # the rollback undid the second date's promotion
    assert kinds == {
        identity_of(history.published["first"]): "published",
        identity_of(history.published["c10"]): "champion",
        identity_of(history.published["second_date"]): "published",
        history.rejected_model: "rejected",
    }
    assert len(points) == len(kinds)  # one point per model, none twice
    status = collect_status(history.artifact_root, history.publish_uri, store=Store.on_this_machine())
    accuracy = {
        e["identity"]: e["cv_accuracy"] for run in status["runs"] for k in ("models", "published") for e in run[k]
    }
    for point in points:
        assert float(point["data-cv-accuracy"] or "nan") == pytest.approx(accuracy[point["data-identity"]])
    dates = {p["data-identity"]: p["data-run-date"] for p in points}
    assert dates[history.rejected_model] == dates[identity_of(history.published["second_date"])] == "2026-11-26"


def test_the_timeline_shows_every_promotion_and_the_rollback_in_order(history: History, report: Path) -> None:
    events = parse(report).having("circle", "event")
    changes = champion_history(history.publish_uri, store=Store.on_this_machine())
    assert (
        [e["data-action"] for e in events]
        == [c["action"] for c in changes]
        == [
            "promote",
            "promote",
            "promote",
            "rollback",
        ]
    )
    assert [e["data-identity"] for e in events] == [
        identity_of(history.published[name]) for name in ("first", "c10", "second_date", "c10")
    ]


def test_the_champions_confusion_matrix_and_per_class_metrics_come_from_its_card(
    history: History, report: Path
) -> None:
    champion = read_champion(history.publish_uri, store=Store.on_this_machine())
    assert champion is not None
    card = json.loads(Path(champion["model_uri"].removeprefix("file://")).with_name("metrics.json").read_text())
    elements = parse(report)
    matrix = card["cv_metrics"]["confusion_matrix"]
    cells = {(c["data-true"], c["data-predicted"]): int(c["data-count"] or -1) for c in elements.having("rect", "cell")}
    labels = matrix["labels"]
    assert cells == {(t, p): matrix["matrix"][i][j] for i, t in enumerate(labels) for j, p in enumerate(labels)}
    for metric in ("precision", "recall"):
        bars = {b["data-class"]: float(b[f"data-{metric}"] or "nan") for b in elements.having("rect", f"bar-{metric}")}
        assert bars == pytest.approx({label: v[metric] for label, v in card["cv_metrics"]["per_class"].items()})


def test_the_page_is_self_contained(report: Path) -> None:
    page = report.read_text()
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(", page, re.IGNORECASE)
    assert not re.search(r"\b(?:src|href)=", page)
    assert set(re.findall(r"https?://[^\s\"'<]+", page)) == {"http://www.w3.org/2000/svg"}  # a namespace, not a fetch
    (policy,) = [a for t, a in parse(report).tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert policy["content"] == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def test_an_empty_pipeline_gives_a_page_that_says_so(tmp_path: Path) -> None:
    result = pipeline("report", "--html", "empty.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "empty.html").read_text()
    assert "There is no champion yet" in page
    assert "No model with a CV accuracy was found" in page
    assert parse(tmp_path / "empty.html").having("circle", "point") == []


# --- in a real browser ----------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: `make browser` installs it (make test does)"
)


@pytest.mark.slow
@needs_chromium
def test_the_report_renders_in_chromium_without_errors_or_network(
    history: History, report: Path, tmp_path: Path
) -> None:
    with open_page(report.as_uri(), tmp_path / "profile") as page:
        counts: dict[str, Any] = page.evaluate(
            """({
                points: document.querySelectorAll("svg.cv-chart circle.point").length,
                champion: document.querySelectorAll("circle.point[data-kind=champion]").length,
                rejected: document.querySelectorAll("circle.point[data-kind=rejected]").length,
                events: document.querySelectorAll("svg.timeline circle.event").length,
                cells: document.querySelectorAll("svg.confusion rect.cell").length,
                chartWidth: document.querySelector("svg.cv-chart").getBoundingClientRect().width,
                pointWidth: document.querySelector("circle.point").getBoundingClientRect().width,
                title: document.title,
            })"""
        )
        screenshot = page.screenshot(ARTIFACTS_DIR / "report.png")
        record = page.record
    print(f"report screenshot: {screenshot}")
    assert record.console_errors == []
    assert record.page_errors == []
    assert record.requests == [report.as_uri()]  # the page itself, and nothing else
    assert record.outside_requests == []
    assert counts["points"] == 4
    assert (counts["champion"], counts["rejected"], counts["events"], counts["cells"]) == (1, 1, 4, 9)
    assert counts["chartWidth"] > 0
    assert counts["pointWidth"] > 0  # drawn, not only present in the DOM
    assert counts["title"] == "mlpipe: the pipeline's history"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@needs_chromium
def test_the_browser_check_sees_errors_and_requests_when_a_page_has_them(tmp_path: Path) -> None:
    # A page that does what the report must not: the checks above would fail on it
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><title>bad</title></head><body>"
        '<img src="http://127.0.0.1:9/pixel.png">'
        '<script>console.error("broken"); throw new Error("uncaught")</script></body></html>'
    )
    with open_page(bad.as_uri(), tmp_path / "profile") as page:
        record = page.record
    assert record.console_errors == ["broken"]
    assert any("uncaught" in error for error in record.page_errors)
    assert record.outside_requests == ["http://127.0.0.1:9/pixel.png"]
