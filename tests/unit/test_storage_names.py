"""Any name a folder or file may have round-trips exactly: path -> URI -> path is the same path, on both stores.

A local root whose path needs URL escaping (a space, ``%``, ``#``, ``?``, non-ASCII) used to send every
output to a sibling folder named with ``%20``: ``Path.as_uri()`` percent-encodes, and the file URI's
path was not decoded again. A plain path is taken literally (never decoded, never split at ``#`` or
``?``); a ``file://`` URI is percent-decoded (RFC 8089); an ``s3://`` URI names its key literally.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlpipe.exceptions import InvalidRequestError
from mlpipe.storage import LocalTarget, Store, parse_uri, sibling_uri
from tests.conftest import ARTIFACTS

# Any printable character but "/" (a folder separator) and NUL, a name of at most 255 bytes, not "." or "..".
NAME_CHARACTERS = st.characters(exclude_characters="/\x00", codec="utf-8").filter(str.isprintable)
NAMES = (
    st.text(NAME_CHARACTERS, min_size=1, max_size=30)
    .filter(lambda name: name not in {".", ".."})
    .filter(lambda name: len(name.encode()) <= 255)
)
ODD = ["my data %20 #1 é", "%", "%2520", "a#b", "a?b=c", "..x", "...", ".. ", " ", "~", "file:x", "s3:x", "☃ ü"]


def _hidden(relative: str) -> bool:
    """A local listing leaves out hidden files (a write's spool file): any part starting with a dot."""
    return any(part.startswith(".") for part in relative.split("/"))


@settings(max_examples=150, deadline=None)
@given(root=NAMES, folder=NAMES, name=NAMES, other=NAMES)
@example(root="my data %20 #1 é", folder="2026-01-01", name="model.pkl", other="metrics.json")
@example(root="%20", folder="#1", name="a?b", other="%2520")
@example(root="..x", folder="...", name=".. ", other="~")
def test_local_names_round_trip_through_the_store(root: str, folder: str, name: str, other: str) -> None:
    store = Store.on_this_machine()
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / root
        expected = base / folder / name
        # Given a root named anyhow, as a plain path and as the file URI of that path
        for given_root in (str(base), base.as_uri()):
            uri = store.join(given_root, folder, name)
            target = store.target(uri)
            # Then the target is exactly there, and its URI and its path agree both ways
            assert isinstance(target, LocalTarget)
            assert target.path == expected
            assert target.uri == uri == expected.as_uri()
            assert store.target(str(expected)).uri == uri
            assert parse_uri(uri) == ("file", str(expected))
            assert store.target(LocalTarget(expected).uri).path == expected
        target = store.target(store.join(str(base), folder, name))
        # When it is written, the file is at that very path, and nowhere else
        target.write_bytes(b"x")
        assert os.path.isfile(expected)
        assert [p for p in Path(scratch).rglob("*") if p.is_file()] == [expected]
        assert target.exists()
        sibling = target.sibling(other)
        assert isinstance(sibling, LocalTarget)
        assert sibling.path == base / folder / other
        assert store.target(sibling_uri(target.uri, other)).path == base / folder / other
        # And a listing finds it under its own name, with a URI that leads back to it
        for listed_root in (str(base), base.as_uri(), store.join(str(base), "")):
            found = store.list(listed_root)
            relative = f"{folder}/{name}"
            if _hidden(relative):
                assert found == []
                continue
            assert [o.relative for o in found] == [relative]
            assert store.target(found[0].uri).path == expected
            assert store.target(found[0].uri).read_bytes() == b"x"


@pytest.mark.parametrize("name", ODD)
def test_a_plain_path_is_never_decoded_nor_split(tmp_path: Path, name: str) -> None:
    path = tmp_path / name / "x.csv"
    assert parse_uri(str(path)) == ("file", str(path))
    assert Store.on_this_machine().target(str(path)).path == path  # type: ignore[attr-defined]


def test_a_file_uri_is_percent_decoded(tmp_path: Path) -> None:
    assert parse_uri("file:///tmp/my%20data%20%2520%20%231%20%C3%A9/x") == ("file", "/tmp/my data %20 #1 é/x")
    assert parse_uri("file:///tmp/plain/x") == ("file", "/tmp/plain/x")  # what needs no escaping is unchanged
    assert parse_uri("file:///tmp/%E2%98%83") == ("file", "/tmp/☃")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("file:///tmp/a#b", "percent-encode"),
        ("file:///tmp/a?b", "percent-encode"),
    ],
)
def test_a_file_uri_with_a_raw_query_or_fragment_is_refused_not_cut(uri: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse_uri(uri)


@pytest.mark.parametrize("segment", [".", ".."])
def test_joining_a_dot_segment_is_refused(tmp_path: Path, segment: str) -> None:
    store = Store.on_this_machine()
    for root in (str(tmp_path), "s3://bucket-name/prefix"):
        with pytest.raises(InvalidRequestError, match=r"'\.' or '\.\.'"):
            store.join(root, segment, "x.csv")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(folder=NAMES, name=NAMES, other=NAMES)
@example(folder="my data %20 #1 é", name="a#b?c=d", other="%2520")
@example(folder="...", name="%", other=".. ")
def test_s3_keys_round_trip_through_the_store(aws: Any, folder: str, name: str, other: str) -> None:
    store = Store.on_this_machine()
    root = f"s3://{ARTIFACTS}/{uuid.uuid4().hex}"
    uri = store.join(root, folder, name)
    # The key is the names, literally: no escaping, no cutting at # or ?
    assert uri == f"{root}/{folder}/{name}"
    target = store.target(uri)
    assert target.uri == uri
    assert parse_uri(uri) == ("s3", uri.removeprefix("s3://"))
    target.write_bytes(b"x")
    key = uri.split("/", 3)[3]
    assert aws.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read() == b"x"
    assert target.exists()
    assert target.sibling(other).uri == f"{root}/{folder}/{other}"
    assert sibling_uri(uri, other) == f"{root}/{folder}/{other}"
    found = store.list(root)
    assert [o.relative for o in found] == [f"{folder}/{name}"]
    assert store.target(found[0].uri).read_bytes() == b"x"
