"""The report's page on its own: every string from storage escaped, one point per model, no markup injected."""

from __future__ import annotations

import re
from typing import Any

from mlpipe.reporting_html import model_points, render_report

HOSTILE = '<script>alert("x")</script>&"\''


def report_with(text: str) -> dict[str, Any]:
    model = {
        "uri": f"file:///m/{text}/model.pkl",
        "identity": f"model-{text}",
        "state": "present",
        "made": text,
        "cv_accuracy": 0.9,
        "estimator": text,
        "hyperparameters": {text: text},
    }
    published = model | {"identity": f"published-{text}", "uri": f"file:///p/{text}/model.pkl", "model": "other"}
    status = {"runs": [{"run_date": text, "datasets": [], "models": [model], "published": [published]}]}
    champion = {
        "model_uri": published["uri"],
        "identity": published["identity"],
        "run_date": text,
        "estimator": text,
        "metrics": {"cv_accuracy": 0.9},
        "promoted_at": text,
        "promoted_by": text,
        "action": text,
        "previous": {"identity": text},
    }
    card = {
        "rows": text,
        "cv_accuracy": {"method": text},
        "cv_metrics": {
            "per_class": {text: {"precision": 1.0, "recall": 0.5, "f1": 0.6, "support": 3}, "b": {}},
            "confusion_matrix": {"labels": [text, "b"], "matrix": [[3, 0], [1, 2]]},
        },
    }
    return {
        "artifact_root": text,
        "publish_uri": text,
        "status": status,
        "champion": champion,
        "history": [champion],
        "card": card,
        "card_error": None,
        "points": model_points(status, champion),
        "drift": drifted(text),
        "generated_at": text,
    }


def drifted(text: str) -> dict[str, Any]:
    """The report's ``drift``: the newest model's card's drift, a numeric and a categorical feature named ``text``."""
    features = {
        f"{text}-n": {"measure": "psi", "value": 0.42},
        f"{text}-c": {"measure": "linf", "value": 0.3, "unseen_share": 0.25, "unseen": [text]},
        "flat": {"measure": "psi", "value": 0.0},
    }
    drift = {"features": features, "max": {"feature": f"{text}-n", "value": 0.42}, "contract": {"champion": text}}
    change = {"changes": [{"detail": text}]}
    return {"identity": text, "run_date": text, "kind": "rejected", "drift": drift, "schema_change": change}


def test_every_string_from_storage_is_escaped() -> None:
    page = render_report(report_with(HOSTILE))
    assert "<script" not in page
    assert 'alert("x")' not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&quot;&#x27;" in page


def test_a_model_that_no_published_model_references_is_rejected_and_the_champion_marked() -> None:
    points = report_with("a")["points"]
    assert [(p["identity"], p["kind"]) for p in points] == [("published-a", "champion"), ("model-a", "rejected")]
    page = render_report(report_with("a"))
    assert page.count('<circle class="point ') == 2


def test_the_drift_section_has_a_bar_and_a_row_per_feature_longest_for_the_largest() -> None:
    page = render_report(report_with("x"))
    section = page.split('<section id="drift">', 1)[1].split("</section>", 1)[0]
    widths = dict(re.findall(r'data-feature="([^"]+)" data-value="[^"]*" x="\d+" y="\d+" width="([0-9.]+)"', section))
    assert set(widths) == {"x-n", "x-c", "flat"}
    assert float(widths["x-n"]) > float(widths["x-c"]) > float(widths["flat"]) == 0.0
    assert section.count("<tr><td>") == 3
    assert "Schema changed (accepted, so not promoted automatically): x" in section
    no_drift = render_report(report_with("x") | {"drift": None})
    assert "No drift measured" in no_drift


def test_the_models_table_shows_each_models_own_score() -> None:
    # Given: a classifier's report, and the same with its models made regressors (a card's score is R²)
    report = report_with("a")
    page = render_report(report)
    regressors = [p | {"task": "regression", "r2": 0.8125, "cv_accuracy": None} for p in report["points"]]
    regression_page = render_report(report | {"points": regressors})
    # Then: the table names the score of each kind; a regressor's row is never a blank accuracy
    assert "<th>CV score</th>" in page
    assert '<td class="num">accuracy 0.9000</td>' in page
    assert '<td class="num">R² 0.8125</td>' in regression_page
    assert '<td class="num">accuracy' not in regression_page
