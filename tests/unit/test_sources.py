"""Sources: what may be read, its version, and every bad input a named error with nothing written."""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from mlpipe import exceptions
from mlpipe.compression import gunzip
from mlpipe.config import Run, Settings, resolve_run
from mlpipe.sources import source_version
from mlpipe.storage import Store
from mlpipe.tasks import download, plan
from tests.conftest import ARTIFACTS, MODELS, SAMPLE, stores_empty

SOURCES = "mlpipe-test-sources"
DATE = "2026-11-25"
LOCAL = Settings(allow_local_storage=True, allow_loopback_sources=True)


def _input(source_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "run_date": DATE,
        "source_url": source_url,
        "artifact_root": f"s3://{ARTIFACTS}/runs",
        "publish_uri": f"s3://{MODELS}/iris",
    } | overrides


def _plan_and_download(source_url: str, settings: Settings = LOCAL, **overrides: Any) -> dict[str, Any]:
    store = Store.from_settings(settings)
    planned = plan(_input(source_url, **overrides), settings, store=store)
    run = Run.from_event(planned["run"], settings, needs=(), store=store)
    return download(run, store=store, settings=settings).as_dict()


def _nothing_written(aws: Any) -> None:
    assert stores_empty(aws) == {ARTIFACTS: [], MODELS: []}


@pytest.fixture
def sources(aws: Any) -> Any:
    aws.create_bucket(Bucket=SOURCES)
    return aws


# --- where a run may read -----------------------------------------------------------------------
def test_a_deployment_reads_only_its_source_locations() -> None:
    deployed = Settings.from_env({"SOURCE_LOCATIONS": f"{SOURCES}/exports/,other-bucket/daily/"})
    assert deployed.source_locations == (f"s3://{SOURCES}/exports/", "s3://other-bucket/daily/")
    deployed.check_source(f"s3://{SOURCES}/exports/{DATE}.csv")
    deployed.check_source("s3://other-bucket/daily/x.csv.gz")
    for outside in (f"s3://{SOURCES}/private/{DATE}.csv", f"s3://{SOURCES}-copy/exports/{DATE}.csv"):
        with pytest.raises(exceptions.InvalidRequestError) as refused:
            resolve_run(_input(outside), deployed)
        assert f"s3://{SOURCES}/exports/, s3://other-bucket/daily/" in str(refused.value)
        assert "SourceLocations" in str(refused.value)


def test_without_source_locations_a_deployment_reads_no_s3_but_a_local_run_reads_any() -> None:
    with pytest.raises(exceptions.InvalidRequestError, match="reads no S3 source; deploy with SourceLocations"):
        Settings().check_source(f"s3://{SOURCES}/x.csv")
    LOCAL.check_source(f"s3://{SOURCES}/anywhere/x.csv")


@pytest.mark.parametrize("value", ["just-a-bucket", "bucket/prefix*", "Bad_Bucket/x"])
def test_a_malformed_source_location_is_refused_at_start(value: str) -> None:
    with pytest.raises(exceptions.InvalidRequestError, match=r"SOURCE_LOCATIONS|bucket"):
        Settings.from_env({"SOURCE_LOCATIONS": value})


@pytest.mark.parametrize("path", ["/data/iris.csv", "file:///data/iris.csv", "./iris.csv"])
def test_a_local_path_is_refused_in_aws_with_the_reason(path: str) -> None:
    with pytest.raises(exceptions.InvalidRequestError, match="local path: in AWS a function's disk is its own"):
        resolve_run(_input(path), Settings(source_locations=(f"s3://{SOURCES}/",)))


def test_an_unknown_scheme_names_the_schemes_allowed() -> None:
    with pytest.raises(exceptions.InvalidRequestError, match=r"ftp.*http\(s\)://.*s3://bucket/key"):
        resolve_run(_input("ftp://example.org/iris.csv"), LOCAL)


# --- the version: identity and the check in the download ----------------------------------------
def test_source_id_names_the_dataset_and_the_version_is_still_checked(sources: Any) -> None:
    sources.put_object(Bucket=SOURCES, Key="a.csv", Body=SAMPLE.read_bytes())
    store = Store.from_settings(LOCAL)
    first = plan(_input(f"s3://{SOURCES}/a.csv", source_id="iris"), LOCAL, store=store)["run"]
    sources.put_object(Bucket=SOURCES, Key="a.csv", Body=SAMPLE.read_bytes()[:-100])
    second = plan(_input(f"s3://{SOURCES}/a.csv", source_id="iris"), LOCAL, store=store)["run"]
    assert first["dataset_uri"] == second["dataset_uri"]  # the user's name is the identity
    assert first["source_version"] != second["source_version"]  # but each run reads what its plan saw
    with pytest.raises(exceptions.SourceChangedError, match="changed since the run was planned"):
        download(Run.from_event(first, LOCAL, needs=(), store=store), store=store, settings=LOCAL)
    _nothing_written(sources)


def test_http_source_identity_follows_its_etag_and_a_changed_etag_is_refused(aws: Any, http_server: Any) -> None:
    etag = {"value": '"v1"'}

    def serve(handler: Any) -> None:
        body = SAMPLE.read_bytes()
        handler.send_response(200)
        handler.send_header("ETag", etag["value"])
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command == "GET":
            handler.wfile.write(body)

    http_server.routes["/etag.csv"] = serve
    store = Store.from_settings(LOCAL)
    url = http_server.url("/etag.csv")
    first = plan(_input(url), LOCAL, store=store)["run"]
    assert first["source_version"] == {"etag": '"v1"'}
    etag["value"] = '"v2"'
    second = plan(_input(url), LOCAL, store=store)["run"]
    assert second["dataset_uri"] != first["dataset_uri"]
    with pytest.raises(exceptions.SourceChangedError, match="ETag is '\"v2\"', the plan named '\"v1\"'"):
        download(Run.from_event(first, LOCAL, needs=(), store=store), store=store, settings=LOCAL)
    _nothing_written(aws)
    assert download(Run.from_event(second, LOCAL, needs=(), store=store), store=store, settings=LOCAL).state == "ran"


def test_a_weak_etag_is_no_version_but_last_modified_is(aws: Any, http_server: Any) -> None:
    def serve(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("ETag", 'W/"weak"')
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    http_server.routes["/weak.csv"] = serve
    run = plan(_input(http_server.url("/weak.csv")), LOCAL, store=Store.from_settings(LOCAL))["run"]
    assert run["source_version"] is None
    served = plan(_input(http_server.url("/iris.data")), LOCAL, store=Store.from_settings(LOCAL))["run"]
    assert set(served["source_version"]) == {"last_modified"}  # the test server's files have no ETag


def test_a_local_file_changed_after_the_plan_is_refused(aws: Any, tmp_path: Path) -> None:
    data = tmp_path / "iris.csv"
    data.write_bytes(SAMPLE.read_bytes())
    store = Store.from_settings(LOCAL)
    run = plan(_input(str(data)), LOCAL, store=store)["run"]
    data.write_bytes(SAMPLE.read_bytes() + SAMPLE.read_bytes()[:40])
    with pytest.raises(exceptions.SourceChangedError, match=f"source {data} changed"):
        download(Run.from_event(run, LOCAL, needs=(), store=store), store=store, settings=LOCAL)
    _nothing_written(aws)


# --- bad input: a named error, nothing written --------------------------------------------------
def test_a_local_directory_is_refused_in_the_plan(aws: Any, tmp_path: Path) -> None:
    with pytest.raises(exceptions.InvalidRequestError, match=f"source {tmp_path} is a directory; name the CSV"):
        _plan_and_download(str(tmp_path))
    _nothing_written(aws)


def test_an_unreadable_local_file_is_refused_in_the_plan(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "secret.csv"
    data.write_bytes(SAMPLE.read_bytes())
    data.chmod(0)
    if os.geteuid() == 0:  # root reads every file: make this one unreadable to the check as it is to anyone else
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != data)
    with pytest.raises(exceptions.InvalidRequestError, match="not readable by this user; check its permissions"):
        _plan_and_download(str(data))
    _nothing_written(aws)


def test_a_missing_local_file_is_not_ready(aws: Any, tmp_path: Path) -> None:
    with pytest.raises(exceptions.SourceNotReadyError, match="no such file"):
        _plan_and_download(str(tmp_path / "later.csv"))
    _nothing_written(aws)


def test_a_missing_bucket_is_a_wrong_source_not_data_that_has_not_arrived(sources: Any) -> None:
    # A key that is not there yet is waited for; a bucket that does not exist is a mistake in the URL
    with pytest.raises(exceptions.SourceNotReadyError, match="is not there"):
        _plan_and_download(f"s3://{SOURCES}/exports/{{run_date}}.csv")
    with pytest.raises(exceptions.InvalidRequestError, match="there is no bucket 'no-such-mlpipe-bucket'"):
        _plan_and_download("s3://no-such-mlpipe-bucket/exports/{run_date}.csv")
    _nothing_written(sources)


def test_real_s3s_bare_404_for_a_missing_bucket_is_told_apart_from_a_missing_key() -> None:
    # Real S3 answers a HEAD with a bare 404 (no code in a body) for a missing bucket as for a missing key
    store = Store.from_settings(LOCAL)
    target = store.target("s3://gone-bucket/exports/2026-11-25.csv")
    with Stubber(target.client) as stub:  # type: ignore[attr-defined]
        stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
        stub.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
        with pytest.raises(exceptions.InvalidRequestError, match="there is no bucket 'gone-bucket'"):
            source_version(target.uri, store=store, policy=LOCAL.fetch_policy(1024))
        stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
        stub.add_response("head_bucket", {})
        with pytest.raises(exceptions.SourceNotReadyError, match="is not there"):
            source_version(target.uri, store=store, policy=LOCAL.fetch_policy(1024))


def test_a_corrupt_gzip_is_refused_with_where_it_broke(sources: Any) -> None:
    packed = gzip.compress(SAMPLE.read_bytes())
    broken = packed[:200] + bytes(b ^ 0xFF for b in packed[200:260]) + packed[260:]
    sources.put_object(Bucket=SOURCES, Key="broken.csv.gz", Body=broken)
    with pytest.raises(exceptions.SourceFormatError, match=r"not a valid gzip stream.*compressed byte") as raised:
        _plan_and_download(f"s3://{SOURCES}/broken.csv.gz")
    assert "upload it again" in str(raised.value)
    _nothing_written(sources)


def test_a_truncated_gzip_is_refused(sources: Any) -> None:
    sources.put_object(Bucket=SOURCES, Key="cut.csv.gz", Body=gzip.compress(SAMPLE.read_bytes())[:-30])
    with pytest.raises(exceptions.SourceFormatError, match="ends inside a member"):
        _plan_and_download(f"s3://{SOURCES}/cut.csv.gz")
    _nothing_written(sources)


def test_the_size_limit_counts_decompressed_bytes(sources: Any) -> None:
    sources.put_object(Bucket=SOURCES, Key="bomb.csv.gz", Body=gzip.compress(SAMPLE.read_bytes() * 200))
    with pytest.raises(exceptions.SourceTooLargeError, match="counted after decompression"):
        _plan_and_download(f"s3://{SOURCES}/bomb.csv.gz", max_source_bytes=100_000)
    _nothing_written(sources)


def _zip(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.writestr(name, SAMPLE.read_bytes())
    return buffer.getvalue()


def test_a_zip_with_two_files_names_them(sources: Any) -> None:
    sources.put_object(Bucket=SOURCES, Key="two.zip", Body=_zip("a.csv", "b.csv"))
    with pytest.raises(exceptions.SourceFormatError, match=r"zip with 2 files \(a.csv, b.csv\).*exactly one CSV"):
        _plan_and_download(f"s3://{SOURCES}/two.zip")
    _nothing_written(sources)


def test_a_zip_with_one_csv_is_read_from_s3_and_from_disk(sources: Any, tmp_path: Path) -> None:
    sources.put_object(Bucket=SOURCES, Key="one.zip", Body=_zip("folder/", "folder/iris.csv"))
    result = _plan_and_download(f"s3://{SOURCES}/one.zip")
    assert result["state"] == "ran"
    dataset = sources.get_object(Bucket=ARTIFACTS, Key=result["target"].split("/", 3)[3])["Body"].read()
    assert dataset == SAMPLE.read_bytes()
    local = tmp_path / "iris.zip"
    local.write_bytes(_zip("iris.csv"))
    assert _plan_and_download(str(local), run_date="2026-11-26")["state"] == "ran"


def test_a_corrupt_zip_is_refused(sources: Any) -> None:
    sources.put_object(Bucket=SOURCES, Key="bad.zip", Body=_zip("iris.csv")[:-40])
    with pytest.raises(exceptions.SourceFormatError, match="not a readable zip archive"):
        _plan_and_download(f"s3://{SOURCES}/bad.zip")
    _nothing_written(sources)


def test_an_upload_the_source_url_does_not_name_is_ignored_not_failed(sources: Any) -> None:
    settings = Settings(source_url=f"s3://{SOURCES}/exports/{{run_date}}.csv", allow_local_storage=True)
    upload = {"trigger": "upload", "uploaded_at": "2026-11-25T10:00:00Z"}
    for key in ("exports/notes.txt", "exports/2026-13-01.csv", "other/2026-11-25.csv"):
        planned = plan(_input(f"s3://{SOURCES}/{key}") | upload, settings, store=Store.from_settings(settings))
        assert planned["start_at"] == "ignore"
        assert key in planned["source"]["ignored"]
    _nothing_written(sources)


def test_gunzip_reads_several_members_as_one_stream() -> None:
    data = SAMPLE.read_bytes()
    packed = gzip.compress(data[:1000]) + gzip.compress(data[1000:])
    assert b"".join(gunzip((packed[i : i + 7] for i in range(0, len(packed), 7)), "x")) == data


def test_a_missing_http_source_is_waited_for_even_when_named(aws: Any, http_server: Any) -> None:
    waiting = Settings(allow_local_storage=True, allow_loopback_sources=True, source_wait_seconds=90)
    store = Store.from_settings(waiting)
    missing = _input(http_server.url("/later.csv"), source_id="partner:daily")
    first = plan(missing, waiting, store=store)
    assert (first["start_at"], first["source"]) == ("wait", {"replans": 0, "waited": 60, "wait_seconds": 60})
    second = plan(missing, waiting, store=store, source=first["source"])
    assert second["source"] == {"replans": 0, "waited": 90, "wait_seconds": 30}
    with pytest.raises(exceptions.SourceNotReadyError, match=r"HTTP 404.*\(waited 90 s"):
        plan(missing, waiting, store=store, source=second["source"])
    # Without a wait, a named http(s) source is not asked for its version at all (no HEAD): the download finds it
    assert plan(missing, LOCAL, store=store)["start_at"] == "download"
    _nothing_written(aws)


def test_an_http_gzip_is_told_by_its_bytes_with_or_without_content_encoding(aws: Any, http_server: Any) -> None:
    packed = gzip.compress(SAMPLE.read_bytes())
    (http_server.root / "plain-name.csv").write_bytes(packed)  # gzip bytes under a plain name, no Content-Encoding

    def encoded_twice(handler: Any) -> None:  # a .gz file sent with Content-Encoding: gzip on top
        body = gzip.compress(packed)
        handler.send_response(200)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    http_server.routes["/twice.csv.gz"] = encoded_twice
    for number, path in enumerate(("/plain-name.csv", "/twice.csv.gz")):
        result = _plan_and_download(http_server.url(path), run_date=f"2026-11-2{number}", source_id=path)
        dataset = aws.get_object(Bucket=ARTIFACTS, Key=result["target"].split("/", 3)[3])["Body"].read()
        assert dataset == SAMPLE.read_bytes(), path


def test_a_zip_over_http_is_refused_saying_where_a_zip_is_read(aws: Any, http_server: Any) -> None:
    (http_server.root / "iris.zip").write_bytes(_zip("iris.csv"))
    with pytest.raises(exceptions.SourceFormatError, match="read only from S3 or a local file"):
        _plan_and_download(http_server.url("/iris.zip"))
    _nothing_written(aws)
