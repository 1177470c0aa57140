"""Secrets in a source URL (``user:password@``, a presigned URL's signature) are used for the download and
never stored or shown: not in lineage.json, the card, the run the state machine carries, a task's
outcome, an error's message or traceback, a log line, the summary or ``pipeline status``.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlpipe.config import Settings, resolve_run
from mlpipe.exceptions import (
    InvalidDatasetError,
    InvalidRequestError,
    PipelineError,
    SourceNotReadyError,
    SourceUnavailableError,
)
from mlpipe.redaction import has_secrets, redact_text, redact_url
from mlpipe.report import build_report
from mlpipe.status import collect_status, format_status
from pipeline_local.lambdas import LambdaContext, load_handler
from tests.conftest import ARTIFACTS, MODELS, SAMPLE, s3_keys
from tests.stores import store

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
DATE = "2026-11-25"
USER = "ops-reader-7f3a"  # unlike any word in the code, so finding it means the secret leaked
PASSWORD = "hunter2-Pa55"
SIGNATURE = "5ec2e7519a7e2e0fc0ffee0123456789abcdef"
CREDENTIAL_ID = "AKIAEXAMPLE7Q2"
CREDENTIAL = f"{CREDENTIAL_ID}%2F20261125%2Fus-east-1%2Fs3%2Faws4_request"
TOKEN = "FwoGZXIvYXdzEJr-session-token"
SECRETS = (PASSWORD, SIGNATURE, CREDENTIAL_ID, TOKEN, f"{USER}:")
QUERY = (
    f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={CREDENTIAL}&X-Amz-Date=20261125T030000Z"
    f"&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token={TOKEN}&X-Amz-Signature={SIGNATURE}"
)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://user:pass@example.org/data.csv", "https://example.org/data.csv"),
        ("https://ghp_token123@example.org/data.csv", "https://example.org/data.csv"),
        ("https://:pass@example.org:8443/data.csv", "https://example.org:8443/data.csv"),
        (f"https://bucket.s3.amazonaws.com/2026/iris.csv?{QUERY}", "https://bucket.s3.amazonaws.com/2026/iris.csv"),
        (
            "https://bucket.s3.amazonaws.com/iris.csv?AWSAccessKeyId=AKIAX&Expires=1767225600&Signature=abc%2Bdef%3D",
            "https://bucket.s3.amazonaws.com/iris.csv",
        ),
        (
            "https://storage.googleapis.com/b/iris.csv?X-Goog-Algorithm=GOOG4-RSA-SHA256"
            "&X-Goog-Credential=sa%40p.iam.gserviceaccount.com%2F20261125%2Fauto%2Fstorage%2Fgoog4_request"
            "&X-Goog-Date=20261125T030000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=0a1b2c",
            "https://storage.googleapis.com/b/iris.csv",
        ),
        (
            "https://acct.blob.core.windows.net/c/iris.csv?sv=2022-11-02&ss=b&srt=o&sp=r"
            "&se=2026-11-26T00:00:00Z&st=2026-11-25T00:00:00Z&spr=https&sig=abc%2Bdef%3D",
            "https://acct.blob.core.windows.net/c/iris.csv",
        ),
        (
            "https://d111.cloudfront.net/iris.csv?Expires=1767225600&Signature=abc~def&Key-Pair-Id=K2JCJMDEHXQW5F",
            "https://d111.cloudfront.net/iris.csv",
        ),
        ("https://example.org/export?table=iris&token=abc123", "https://example.org/export?table=iris"),
        ("https://example.org/export?access_token=abc&format=csv", "https://example.org/export?format=csv"),
        ("https://example.org/d.csv?key=abc", "https://example.org/d.csv"),
        ("https://example.org/d.csv?api_key=abc&apiKey=def&X-API-KEY=ghi", "https://example.org/d.csv"),
        ("https://example.org/d.csv?client_secret=abc&password=def", "https://example.org/d.csv"),
        ("https://example.org/d.csv?X%2DAmz%2DSignature=abc", "https://example.org/d.csv"),
        ("https://example.org/d.csv?a=1;sig=abc", "https://example.org/d.csv?a=1"),
        ("https://example.org/d.csv#access_token=abc", "https://example.org/d.csv"),
        ("http://u:p@[::1]:8080/x.csv?sig=1", "http://[::1]:8080/x.csv"),
        ("HTTPS://U:P@Example.ORG/Data.csv?Signature=1", "https://Example.ORG/Data.csv"),
        ("http://u:p@[oops/x?sig=abc&a=1", "http://[oops/x?sig=REDACTED&a=1"),
    ],
)
def test_a_url_is_redacted_to_what_names_the_data(url: str, redacted: str) -> None:
    assert has_secrets(url)
    assert redact_url(url) == redacted
    assert redact_url(redacted) == redacted


@pytest.mark.parametrize(
    "url",
    [
        "https://archive.ics.uci.edu/ml/machine-learning-databases/iris/iris.data",
        "https://example.org/{run_date}.csv",
        "https://example.org/2026-11-25.csv?format=csv&date=2026-11-25",
        "https://example.org/d.csv?keyword=iris&monkey=1&author=me&page_token=2&expires=never",
        "https://example.org/d.csv?se=2026&sp=r",  # SAS-like names without a signature are data
        "http://127.0.0.1:8000/iris.data",
        "sample:iris",
        "not a url at all",
        "http://[oops/x?a=1",
    ],
)
def test_a_url_without_secrets_is_left_as_it_is(url: str) -> None:
    assert not has_secrets(url)
    assert redact_url(url) == url


def test_text_that_quotes_a_url_or_its_query_is_redacted() -> None:
    url = f"https://{USER}:{PASSWORD}@example.org/iris.csv?{QUERY}"
    text = (
        f"GET {url} failed: HTTPSConnectionPool(host='example.org', port=443): Max retries exceeded with "
        f"url: /iris.csv?{QUERY} (Caused by ...) sig={SIGNATURE}"
    )
    cleaned = redact_text(text, url)
    assert not [secret for secret in SECRETS if secret in cleaned], cleaned
    assert "https://example.org/iris.csv" in cleaned
    assert "HTTPSConnectionPool(host='example.org', port=443)" in cleaned
    assert "sig=REDACTED" in cleaned
    # names in a path are not queries, and words that only look like secrets are kept
    prose = "the dataset s3://bucket/key=2026/token=a/d.csv has a column 'key', monkey=1 and keyword=x"
    assert redact_text(prose) == prose


def test_the_default_identity_of_a_presigned_url_survives_resigning() -> None:
    settings = Settings(artifact_root="s3://a-bucket/artifacts", publish_uri="s3://m-bucket/models")
    base = "https://bucket.s3.amazonaws.com/daily/{run_date}.csv"
    monday = resolve_run({"run_date": DATE, "source_url": f"{base}?{QUERY}"}, settings)
    resigned = f"{base}?{QUERY.replace(SIGNATURE, 'f' * 40).replace('20261125T030000Z', '20261125T090000Z')}"
    again = resolve_run({"run_date": DATE, "source_url": resigned}, settings)
    assert again.dataset_uri == monday.dataset_uri
    assert monday.identities["download"]["inputs"]["source"] == f"https://bucket.s3.amazonaws.com/daily/{DATE}.csv"
    other_path = resolve_run({"run_date": DATE, "source_url": f"{base.replace('daily', 'hourly')}?{QUERY}"}, settings)
    assert other_path.dataset_uri != monday.dataset_uri
    other_table = resolve_run({"run_date": DATE, "source_url": f"{base}?table=b&{QUERY}"}, settings)
    assert other_table.dataset_uri != monday.dataset_uri  # a parameter that is not a secret still names the data
    plain = resolve_run(
        {"run_date": DATE, "source_url": "https://bucket.s3.amazonaws.com/daily/{run_date}.csv"}, settings
    )
    assert plain.dataset_uri == monday.dataset_uri  # what the URL names, without the means to read it
    explicit = resolve_run({"run_date": DATE, "source_url": f"{base}?{QUERY}", "source_id": "daily"}, settings)
    assert explicit.identities["download"]["inputs"]["source"] == "daily"


def test_a_refused_url_is_named_without_its_secrets() -> None:
    settings = Settings(artifact_root="s3://a-bucket/artifacts", publish_uri="s3://m-bucket/models")
    for url in (
        f"http://{USER}:{PASSWORD}@169.254.169.254/latest/?{QUERY}",
        f"ftp://{USER}:{PASSWORD}@example.org/iris.csv?{QUERY}",
        f"https://{USER}:{PASSWORD}@example.org:99999/iris.csv?{QUERY}",
    ):
        with pytest.raises(InvalidRequestError) as refused:
            resolve_run({"run_date": DATE, "source_url": url}, settings)
        assert_clean(refused.value)


def assert_clean(value: Any) -> None:
    """No secret in ``value``: text, JSON-able data, or an exception with its whole traceback."""
    if isinstance(value, BaseException):
        text = "".join(traceback.format_exception(value))
    elif isinstance(value, str | bytes):
        text = value.decode() if isinstance(value, bytes) else value
    else:
        text = json.dumps(value, default=str)
    found = [secret for secret in SECRETS if secret in text]
    assert not found, f"{found} in {text}"


@pytest.fixture
def private_source(http_server: Any) -> Any:
    """``/private/iris.data`` answers only a request with the credentials and the signature; others 403."""
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def private(handler: Any) -> None:
        authorized = handler.headers.get("Authorization") == expected and f"X-Amz-Signature={SIGNATURE}" in handler.path
        body = SAMPLE.read_bytes() if authorized else b"forbidden"
        handler.send_response(200 if authorized else 403)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    http_server.routes["/private/iris.data"] = private
    http_server.secret_url = lambda path="/private/iris.data": (
        f"http://{USER}:{PASSWORD}@127.0.0.1:{http_server.server_address[1]}{path}?{QUERY}"
    )
    return http_server


def plan_input(source_url: str | None = None) -> dict[str, Any]:
    execution_input = {
        "run_date": DATE,
        "artifact_root": f"s3://{ARTIFACTS}/runs",
        "publish_uri": f"s3://{MODELS}/iris",
    }
    return execution_input | ({"source_url": source_url} if source_url else {})


def test_a_run_with_a_secret_url_stores_and_shows_no_secret(
    aws: Any, private_source: Any, invoke: Invoke, tmp_path: Path
) -> None:
    planned = invoke("plan", {"input": plan_input(private_source.secret_url()), "execution_id": "exec-1"})
    run = planned["run"]
    assert run["source_url"] == private_source.secret_url()  # the execution's own input: the download needs it
    assert_clean(run["identities"])
    assert_clean(run["source_id"])
    outcome = invoke("download", run)
    assert outcome["state"] == "ran"
    assert outcome["rows"] == 150  # the download used the real URL: the source checked both secrets
    assert_clean(outcome)
    trained = invoke("train", run)
    assert_clean(trained)
    keys = s3_keys(aws, ARTIFACTS)
    lineage_key = next(key for key in keys if key.endswith("lineage.json"))
    card_key = next(key for key in keys if key.endswith("metrics.json"))
    lineage = aws.get_object(Bucket=ARTIFACTS, Key=lineage_key)["Body"].read()
    card = aws.get_object(Bucket=ARTIFACTS, Key=card_key)["Body"].read()
    assert_clean(lineage)
    assert_clean(card)
    record = json.loads(lineage)
    shown = f"http://127.0.0.1:{private_source.server_address[1]}/private/iris.data"
    assert record["input_targets"][0]["uri"] == shown
    assert record["inputs"]["source"] == shown
    status = collect_status(f"s3://{ARTIFACTS}/runs", f"s3://{MODELS}/iris", store=store())
    assert_clean(status)
    assert_clean(format_status(status))


def test_the_deployed_source_url_travels_without_its_secrets(
    aws: Any, private_source: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The schedule starts runs with no source_url: the plan takes the deployment's, and the run the state
    # machine carries (every state's input in the history) holds it without its secrets.
    deployed = private_source.secret_url().replace(DATE, "{run_date}")
    monkeypatch.setenv("SOURCE_URL", deployed)
    context = LambdaContext("plan")
    planned = load_handler("plan")({"input": plan_input(), "execution_id": "exec-1"}, context)
    assert_clean(planned)
    assert planned["run"]["source_url"] == redact_url(private_source.secret_url())
    outcome = load_handler("download")(planned["run"], LambdaContext("download"))
    assert outcome["state"] == "ran"  # the download took the real URL from its own settings
    assert outcome["rows"] == 150
    assert private_source.requests[-1].endswith(f"X-Amz-Signature={SIGNATURE}")


def failing_download(invoke: Invoke, source_url: str) -> PipelineError:
    event = {"run_date": DATE, "source_url": source_url, "dataset_uri": f"s3://{ARTIFACTS}/runs/{DATE}/d.csv"}
    with pytest.raises(PipelineError) as failed:
        invoke("download", event)
    return failed.value


def test_a_failing_download_names_the_source_without_its_secrets(
    aws: Any, private_source: Any, invoke: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    def respond(status: int, body: bytes) -> Callable[[Any], None]:
        def route(handler: Any) -> None:
            handler.send_response(status)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        return route

    private_source.routes["/missing"] = respond(404, b"")
    private_source.routes["/broken"] = respond(503, b"")
    private_source.routes["/page"] = respond(200, b"<!DOCTYPE html>\n<html></html>\n")

    def redirect(handler: Any) -> None:
        handler.send_response(302)
        handler.send_header("Location", f"/missing?{QUERY}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    private_source.routes["/moved"] = redirect
    port = private_source.server_address[1]
    caplog.set_level(logging.INFO)
    cases = {
        "/missing": SourceNotReadyError,
        "/broken": SourceUnavailableError,
        "/page": InvalidDatasetError,
        "/moved": SourceNotReadyError,  # to /missing
    }
    for path, error in cases.items():
        failure = failing_download(invoke, private_source.secret_url(path))
        assert isinstance(failure, error), failure
        assert_clean(failure)
        assert f"http://127.0.0.1:{port}/" in str(failure)  # the source, as far as it can be shown
    refused = failing_download(invoke, f"http://{USER}:{PASSWORD}@127.0.0.1:{closed_port()}/iris.data?{QUERY}")
    assert isinstance(refused, SourceUnavailableError)
    assert_clean(refused)
    assert_clean(caplog.text)
    assert [record for record in caplog.records if "retrying" in record.getMessage()]  # the retries were logged


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_summary_of_a_failed_run_shows_no_secret(aws: Any, private_source: Any, invoke: Invoke) -> None:
    failure = failing_download(invoke, private_source.secret_url("/missing"))
    cause = json.dumps({"errorMessage": str(failure), "errorType": type(failure).__name__})
    report = build_report(
        {"run": {"run_date": DATE}, "tasks": {}, "failed_task": "download", "error": {"Error": "x", "Cause": cause}}
    )
    assert_clean(report)
    assert "HTTP 404" in report["summary"]["error"]["message"]


def test_status_shows_an_old_records_source_without_its_secrets(tmp_path: Path) -> None:
    folder = tmp_path / "artifacts" / DATE / "dataset-0123456789ab"
    folder.mkdir(parents=True)
    (folder / "dataset.csv").write_bytes(SAMPLE.read_bytes())
    secret_url = f"https://{USER}:{PASSWORD}@example.org/iris.csv?{QUERY}"
    record = {"inputs": {"source": secret_url}, "input_targets": [{"uri": secret_url}], "created_at": "2026-11-25"}
    (folder / "lineage.json").write_text(json.dumps(record))
    status = collect_status(str(tmp_path / "artifacts"), str(tmp_path / "models"), store=store())
    assert status["runs"][0]["datasets"][0]["source"] == "https://example.org/iris.csv"
    assert_clean(status)
    assert_clean(format_status(status))
