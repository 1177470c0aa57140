"""Storage URIs: ``s3://bucket/key``, ``file:///abs/path`` or a plain local path, parsed, joined and compared.

Pure functions, no policy: whether a local path may be used is the ``Store``'s decision.

Every name round-trips exactly (path -> URI -> path is the same path, key -> URI -> key the same key):

- a plain path is taken literally: never percent-decoded, never cut at ``#`` or ``?``;
- a ``file://`` URI is percent-encoded (RFC 8089), as ``Path.as_uri()`` writes it, and its path is
  decoded when it is parsed; a raw ``#`` or ``?`` in it is refused, not cut off;
- an ``s3://`` URI names its key literally, as the AWS CLI does: ``s3://bucket/a b#1?x`` is the key
  ``a b#1?x``, and a listed key always gives back a URI that names it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

from mlpipe.exceptions import InvalidRequestError

# Bucket naming rules: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET_RE = re.compile(r"^(?!xn--)(?!sthree-)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# RFC 3986's scheme: a letter, then letters, digits, "+", "-" or ".", then a colon.
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CONTROL = "\r\n\t\x00"
LOCAL_SCHEME = "file"
S3_SCHEME = "s3"


def parse_uri(uri: str) -> tuple[str, str]:
    """Validate a storage URI and return ``("s3", "bucket/key")`` or ``("file", "/abs/path")``."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidRequestError(f"storage URI {uri!r} is empty or not a string; use s3://bucket/prefix")
    if any(ch in uri for ch in _CONTROL):
        raise InvalidRequestError(f"storage URI {uri!r} contains control characters")
    scheme = scheme_of(uri)
    if scheme == S3_SCHEME:
        return S3_SCHEME, _s3_location(uri)
    if scheme == LOCAL_SCHEME:
        return LOCAL_SCHEME, _file_path(uri)
    if scheme == "":
        return LOCAL_SCHEME, str(Path(uri).expanduser().absolute())
    raise InvalidRequestError(
        f"storage URI {uri!r} has the unsupported scheme {scheme!r}; use s3://bucket/prefix or a local directory "
        "(a relative path whose first part has a colon: start it with ./)"
    )


def scheme_of(uri: str) -> str:
    """The URI's scheme in lower case (``s3``, ``file``, ...), or "" for a plain path."""
    match = _SCHEME_RE.match(uri)
    return match.group(1).lower() if match else ""


def is_local(uri: str) -> bool:
    """True for ``file://...`` and a plain path (no scheme), which name this machine's disk."""
    return scheme_of(uri) in {LOCAL_SCHEME, ""}


def _s3_location(uri: str) -> str:
    """``bucket/key`` of ``s3://bucket/key``, the key taken literally (no decoding; ``#`` and ``?`` are in it)."""
    rest = uri.split(":", 1)[1]
    if not rest.startswith("//"):
        raise InvalidRequestError(f"storage URI {uri!r} is not of the form s3://bucket/prefix")
    bucket, _, key = rest[2:].partition("/")
    if not _BUCKET_RE.match(bucket):
        raise InvalidRequestError(f"storage URI {uri!r}: {bucket!r} is not a valid S3 bucket name")
    key = key.lstrip("/")
    if "//" in key or any(seg in {".", ".."} for seg in key.split("/")):
        raise InvalidRequestError(f"storage URI {uri!r}: the key has an empty, '.' or '..' segment")
    return f"{bucket}/{key}"


def _file_path(uri: str) -> str:
    """The absolute path a ``file:`` URI names, percent-decoded (the inverse of ``Path.as_uri()``)."""
    if "#" in uri or "?" in uri:
        raise InvalidRequestError(
            f"storage URI {uri!r}: a file URI's '#' and '?' start a fragment and a query, which name no file; "
            "percent-encode them (%23, %3F) or give the plain path instead"
        )
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise InvalidRequestError(f"storage URI {uri!r} is not a valid URI: {exc}") from exc
    if parts.netloc not in {"", "localhost"}:
        raise InvalidRequestError(f"storage URI {uri!r}: file URIs must not name a host")
    path = os.fsdecode(unquote_to_bytes(parts.path))
    if any(ch in path for ch in _CONTROL):
        raise InvalidRequestError(f"storage URI {uri!r} names a path with control characters")
    return str(Path(path).expanduser().absolute())


def join_uri(base: str, *parts: str) -> str:
    """``base`` (a prefix URI) with ``parts`` appended as path segments (each part may hold several, split at
    ``/``); a ``.`` or ``..`` segment, which would name something outside ``base``, is refused."""
    scheme, location = parse_uri(base)
    segments = [segment for part in parts for segment in part.split("/") if segment]
    for segment in segments:
        if segment in {".", ".."}:
            raise InvalidRequestError(
                f"cannot join {'/'.join(parts)!r} to {base!r}: a '.' or '..' segment names no object under it"
            )
    if scheme == S3_SCHEME:
        return f"s3://{location.rstrip('/')}/" + "/".join(segments)
    return Path(location, *segments).as_uri()


def sibling_uri(uri: str, name: str) -> str:
    """The URI of ``name`` (one segment) in the same folder or prefix as ``uri``."""
    scheme, location = parse_uri(uri)
    if not name or "/" in name or name in {".", ".."}:
        raise InvalidRequestError(f"{name!r} is not the name of a file beside {uri}")
    if scheme == S3_SCHEME:
        return f"s3://{location.rsplit('/', 1)[0]}/{name}"
    return Path(location).with_name(name).as_uri()
