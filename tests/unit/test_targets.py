"""One contract, two stores: every test here runs against a local directory and against S3 (moto)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from mlpipe.exceptions import (
    InvalidRequestError,
    StorageError,
    StorageUnavailableError,
    TargetChangedError,
    TargetExistsError,
)
from mlpipe.storage import LocalTarget, S3Target, Store, join_uri, parse_uri
from mlpipe.storage import s3 as targets
from tests.conftest import ARTIFACTS
from tests.stores import store
from tests.stores import target as target_for


class Boom(Exception):
    pass


@pytest.fixture(params=["local", "s3"])
def make_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    """A factory of targets under a fresh root, in the store named by the parameter."""
    if request.param == "local":
        yield lambda name: target_for(str(tmp_path / "store" / name))
    else:
        request.getfixturevalue("aws")
        yield lambda name: target_for(f"s3://{ARTIFACTS}/store/{name}")


def test_missing_target_does_not_exist(make_target: Callable[[str], Any]) -> None:
    assert make_target("a/b.csv").exists() is False


def test_written_target_exists_with_its_bytes(make_target: Callable[[str], Any]) -> None:
    target = make_target("a/b.csv")
    target.write_bytes(b"1,2,3\n")
    assert target.exists()
    assert target.read_bytes() == b"1,2,3\n"


def test_nothing_is_visible_until_the_write_completes(make_target: Callable[[str], Any]) -> None:
    target = make_target("model.pkl")
    with target.atomic_write() as handle:
        handle.write(b"partial")
        assert not target.exists()
    assert target.exists()


def test_an_exception_inside_the_write_leaves_nothing(make_target: Callable[[str], Any]) -> None:
    target = make_target("model.pkl")
    with pytest.raises(Boom), target.atomic_write() as handle:
        handle.write(b"half a model")
        raise Boom
    assert not target.exists()


def test_a_conditional_write_never_replaces_an_existing_target(make_target: Callable[[str], Any]) -> None:
    target = make_target("dataset.csv")
    target.write_bytes(b"first")
    with pytest.raises(TargetExistsError):
        target.write_bytes(b"second")
    assert target.read_bytes() == b"first"


def test_overwrite_replaces_atomically(make_target: Callable[[str], Any]) -> None:
    target = make_target("metrics.json")
    target.write_bytes(b"old")
    target.write_bytes(b"new", overwrite=True)
    assert target.read_bytes() == b"new"


def test_the_block_can_read_back_what_it_wrote_before_the_commit(make_target: Callable[[str], Any]) -> None:
    target = make_target("x.csv")
    with target.atomic_write() as handle:
        handle.write(b"abc")
        handle.seek(0)
        assert handle.read() == b"abc"
    assert target.read_bytes() == b"abc"


def write_pieces(target: Any, data: bytes, *, piece: int = 64 * 1024, **kwargs: Any) -> None:
    """``data`` through ``stream_write``, in pieces as a download writes them."""
    with target.stream_write(**kwargs) as sink:
        for start in range(0, len(data), piece):
            sink.write(data[start : start + piece])


def test_a_stream_write_appears_only_when_its_block_ends(make_target: Callable[[str], Any]) -> None:
    target = make_target("a/dataset.csv")
    with target.stream_write() as sink:
        sink.write(b"5.1,3.5,1.4,0.2,Iris-setosa\n")
        sink.write(b"7.0,3.2,4.7,1.4,Iris-versicolor\n")
        assert not target.exists()
    assert target.read_bytes() == b"5.1,3.5,1.4,0.2,Iris-setosa\n7.0,3.2,4.7,1.4,Iris-versicolor\n"


def test_an_exception_inside_a_stream_write_leaves_nothing(make_target: Callable[[str], Any]) -> None:
    # The last check (the validator's end-of-file checks) fails after every byte was written
    target = make_target("a/dataset.csv")
    with pytest.raises(Boom), target.stream_write() as sink:
        sink.write(b"x" * 100_000)
        raise Boom
    assert not target.exists()


def test_a_conditional_stream_write_never_replaces_an_existing_target(make_target: Callable[[str], Any]) -> None:
    target = make_target("dataset.csv")
    write_pieces(target, b"first")
    with pytest.raises(TargetExistsError):
        write_pieces(target, b"second")
    assert target.read_bytes() == b"first"
    write_pieces(target, b"third", overwrite=True)
    assert target.read_bytes() == b"third"


def test_an_empty_stream_write_makes_an_empty_object(make_target: Callable[[str], Any]) -> None:
    target = make_target("empty.csv")
    with target.stream_write():
        pass
    assert target.exists()
    assert target.read_bytes() == b""


def test_a_stream_write_larger_than_the_part_size_goes_up_in_parts(aws: Any, small_parts: int) -> None:
    # Given a body of 13.5 parts, written in pieces that do not line up with the parts
    target = target_for(f"s3://{ARTIFACTS}/big/dataset.csv")
    data = bytes(range(256)) * (small_parts * 27 // 512)
    write_pieces(target, data, piece=100_003)
    # Then the object is those bytes, made of 14 parts
    head = aws.head_object(Bucket=ARTIFACTS, Key="big/dataset.csv")
    assert head["ETag"].strip('"').endswith("-14")
    assert target.sha256() == hashlib.sha256(data).hexdigest()
    assert target.read_bytes() == data


def test_a_stream_write_that_fails_after_some_parts_aborts_its_multipart_upload(aws: Any, small_parts: int) -> None:
    target = target_for(f"s3://{ARTIFACTS}/big/dataset.csv")
    with pytest.raises(Boom), target.stream_write() as sink:
        for _ in range(40):
            sink.write(b"y" * 65536)  # 10 parts' worth: several are uploaded before the failure
        raise Boom
    assert not target.exists()
    assert aws.list_multipart_uploads(Bucket=ARTIFACTS).get("Uploads", []) == []


def test_a_conditional_multipart_stream_write_never_replaces(aws: Any, small_parts: int) -> None:
    target = target_for(f"s3://{ARTIFACTS}/big/dataset.csv")
    write_pieces(target, b"a" * (3 * small_parts))
    with pytest.raises(TargetExistsError):
        write_pieces(target, b"b" * (3 * small_parts))  # refused by CompleteMultipartUpload's If-None-Match
    assert target.read_bytes()[:1] == b"a"
    assert aws.list_multipart_uploads(Bucket=ARTIFACTS).get("Uploads", []) == []


def test_a_stream_write_to_a_missing_bucket_fails_while_writing_not_hanging(aws: Any, small_parts: int) -> None:
    target = S3Target("no-such-bucket-here", "dataset.csv")
    with pytest.raises(StorageError, match=r"s3://no-such-bucket-here/dataset\.csv: the bucket does not exist"):
        write_pieces(target, b"z" * (40 * small_parts))


def test_s3_stream_writes_and_reads_use_no_temporary_file(
    aws: Any, small_parts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_spool(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a temporary file was made")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_spool)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_spool)
    target = target_for(f"s3://{ARTIFACTS}/big/dataset.csv")
    data = b"0123456789" * small_parts
    write_pieces(target, data)
    with target.open_read() as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_streamed_s3_read_seeks_with_a_new_get(aws: Any) -> None:
    target = target_for(f"s3://{ARTIFACTS}/x.csv")
    target.write_bytes(b"0123456789")
    with target.open_read() as handle:
        assert handle.read(4) == b"0123"
        assert handle.tell() == 4
        handle.seek(0)
        assert handle.read() == b"0123456789"  # a second pass, as training reads a dataset twice
        handle.seek(7)
        assert handle.read(10) == b"789"
        assert handle.read(10) == b""
        assert handle.seek(-2, 2) == 8
        assert handle.read() == b"89"
        handle.seek(50)
        assert handle.read() == b""


def test_a_streamed_s3_read_refuses_an_object_replaced_between_passes(aws: Any) -> None:
    target = target_for(f"s3://{ARTIFACTS}/metrics.json")
    target.write_bytes(b"old")
    with target.open_read() as handle:
        assert handle.read() == b"old"
        target.write_bytes(b"new!", overwrite=True)
        handle.seek(0)
        with pytest.raises(StorageError, match="changed while it was read"):
            handle.read()


def test_a_streamed_s3_read_resumes_where_the_stream_broke_off(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:

    target = target_for(f"s3://{ARTIFACTS}/x.csv")
    target.write_bytes(b"0123456789" * 1000)
    ranges: list[str | None] = []
    original = targets._ObjectReader._open

    def breaking_open(self: Any) -> None:
        original(self)
        ranges.append(self._position)
        body, reads = self._body, []

        class Breaks:
            def read(self, amount: int) -> bytes:
                reads.append(amount)
                if len(ranges) < 3 and len(reads) == 2:
                    raise ReadTimeoutError(endpoint_url="s3")
                return bytes(body.read(min(amount, 3000)))

            def close(self) -> None:
                body.close()

        self._body = Breaks()

    monkeypatch.setattr(targets._ObjectReader, "_open", breaking_open)
    with target.open_read() as handle:
        assert handle.read() == b"0123456789" * 1000
    assert ranges == [0, 3000, 6000]  # two resumptions, each a ranged GET from where the stream stopped


def test_a_streamed_s3_read_that_keeps_breaking_off_is_unavailable(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:

    target = target_for(f"s3://{ARTIFACTS}/x.csv")
    target.write_bytes(b"abc")
    original = targets._ObjectReader._open

    def broken_open(self: Any) -> None:
        original(self)

        class Broken:
            def read(self, amount: int) -> bytes:
                raise ReadTimeoutError(endpoint_url="s3")

            def close(self) -> None:
                pass

        self._body = Broken()

    monkeypatch.setattr(targets._ObjectReader, "_open", broken_open)
    with pytest.raises(StorageUnavailableError, match="broke off at byte 0 3 times"), target.open_read() as handle:
        handle.read()


def test_sha256_is_of_the_stored_bytes(make_target: Callable[[str], Any]) -> None:
    target = make_target("m.pkl")
    target.write_bytes(b"hello")
    assert target.sha256() == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def test_delete_removes_and_tolerates_absence(make_target: Callable[[str], Any]) -> None:
    target = make_target("gone.csv")
    target.write_bytes(b"x")
    target.delete()
    target.delete()
    assert not target.exists()


def test_large_writes_go_through_multipart_and_stay_conditional(aws: Any) -> None:
    # Given an object bigger than boto3's multipart threshold (8 MiB)
    target = target_for(f"s3://{ARTIFACTS}/big.bin")
    payload = b"x" * (9 * 1024 * 1024)
    target.write_bytes(payload)
    # When a second conditional write of the same size completes its multipart upload
    with pytest.raises(TargetExistsError):
        target.write_bytes(b"y" * len(payload))
    # Then the first object is intact
    assert target.read_bytes()[:1] == b"x"


def test_local_partial_files_are_hidden_and_removed(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "d" / "model.pkl")
    with pytest.raises(Boom), target.atomic_write() as handle:
        handle.write(b"x")
        assert [p.name.startswith(".model.pkl.") for p in (tmp_path / "d").iterdir()] == [True]
        raise Boom
    assert not (tmp_path / "d").exists()  # the directory the write made goes too


def test_s3_errors_other_than_404_are_raised_with_the_uri(aws: Any) -> None:
    target = S3Target("no-such-bucket-here", "k")
    with pytest.raises(StorageError, match="s3://no-such-bucket-here/k"):
        target.write_bytes(b"x")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "empty"),
        ("http://example.com/x", "unsupported scheme"),
        ("s3://Bad_Bucket/x", "not a valid S3 bucket name"),
        ("s3://ok-bucket/a//b", "empty, '.' or '..' segment"),
        ("s3://ok-bucket/../b", "empty, '.' or '..' segment"),
        ("file://host/x", "must not name a host"),
        ("gs://bucket/x", "unsupported scheme"),
    ],
)
def test_invalid_uris_are_refused_with_the_reason(uri: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse_uri(uri)


def test_local_paths_are_refused_where_only_s3_makes_sense(tmp_path: Path) -> None:
    in_aws = Store(allow_local=False)
    for uri in (str(tmp_path / "x"), (tmp_path / "x").as_uri(), "relative/x"):
        with pytest.raises(InvalidRequestError, match="local path"):
            in_aws.target(uri)
        with pytest.raises(InvalidRequestError, match="local path"):
            in_aws.list(uri)
    assert in_aws.target("s3://bucket/key").uri == "s3://bucket/key"


def test_a_sibling_is_in_the_same_folder_and_store(make_target: Callable[[str], Any]) -> None:
    model = make_target("2026-01-01/model-a/model.pkl")
    card = model.sibling("metrics.json")
    assert type(card) is type(model)
    assert card.uri == model.uri.rsplit("/", 1)[0] + "/metrics.json"
    card.write_bytes(b"{}")
    assert make_target("2026-01-01/model-a/metrics.json").read_bytes() == b"{}"


def test_join_uri_appends_segments() -> None:
    assert join_uri("s3://bucket/prefix/", "2026-01-02", "model.pkl") == "s3://bucket/prefix/2026-01-02/model.pkl"
    assert join_uri("s3://bucket", "a.csv") == "s3://bucket/a.csv"
    assert join_uri("/tmp/root", "a", "b.csv") == "file:///tmp/root/a/b.csv"


def test_replace_if_swaps_only_the_version_that_was_read(make_target: Callable[[str], Any]) -> None:

    target = make_target("champion.json")
    assert target.read_versioned() == (None, None)
    target.replace_if(b"first", None)  # only if it does not exist
    with pytest.raises(TargetChangedError):
        target.replace_if(b"again", None)
    data, version = target.read_versioned()
    assert data == b"first"
    target.replace_if(b"second", version)
    with pytest.raises(TargetChangedError):
        target.replace_if(b"stale", version)  # the version read before is gone
    assert target.read_bytes() == b"second"


def test_a_store_lists_complete_objects_only(make_target: Callable[[str], Any]) -> None:
    list_under = store().list
    make_target("2026-01-01/model-a/model.pkl").write_bytes(b"m")
    make_target("2026-01-01/model-a/metrics.json").write_bytes(b"{}")
    root = make_target("x").uri.rsplit("/", 1)[0]
    found = list_under(root)
    assert [o.relative for o in found] == ["2026-01-01/model-a/metrics.json", "2026-01-01/model-a/model.pkl"]
    assert [o.size for o in found] == [2, 1]
    assert list_under(root + "/nothing-here") == []


def test_a_failed_local_write_removes_the_directories_it_made(tmp_path: Path) -> None:
    # Given a root that exists, and a target two directories below it that do not
    (tmp_path / "root").mkdir()
    target = LocalTarget(tmp_path / "root" / "artifacts" / "2026-01-01" / "dataset.csv")
    # When the write fails
    with pytest.raises(Boom), target.atomic_write() as handle:
        handle.write(b"partial")
        raise Boom
    # Then neither the file nor the directories made for it are left; the root that existed stays
    assert [p.name for p in tmp_path.rglob("*")] == ["root"]


def test_a_failed_local_write_keeps_directories_that_existed(tmp_path: Path) -> None:
    (tmp_path / "2026-01-01").mkdir()
    (tmp_path / "2026-01-01" / "other.csv").write_bytes(b"x")
    target = LocalTarget(tmp_path / "2026-01-01" / "dataset.csv")
    with pytest.raises(Boom), target.atomic_write():
        raise Boom
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["2026-01-01", "other.csv"]


def test_sweep_removes_only_what_killed_writes_left(make_target: Callable[[str], Any]) -> None:
    # A target's sweep leaves every complete object alone: on S3 there is never anything to remove (an unfinished
    # upload is invisible), locally only stale hidden spool files and the folders they leave empty go
    target = make_target("2026-01-01/model-a/model.pkl")
    target.write_bytes(b"m")
    assert target.sweep(empty_folders=2) == []
    assert target.read_bytes() == b"m"
    missing = make_target("2026-01-02/model-b/model.pkl")
    assert missing.sweep(empty_folders=2) == []
    assert not missing.exists()
