"""Storage URIs: ``s3://bucket/key``, ``file:///abs/path`` or a plain local path, parsed, joined and compared.

Pure functions, no policy: whether a local path may be used is the ``Store``'s decision.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from mlpipe.exceptions import InvalidRequestError

# Bucket naming rules: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET_RE = re.compile(r"^(?!xn--)(?!sthree-)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
LOCAL_SCHEME = "file"
S3_SCHEME = "s3"


def parse_uri(uri: str) -> tuple[str, str]:
    """Validate a storage URI and return ``("s3", "bucket/key")`` or ``("file", "/abs/path")``."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidRequestError(f"storage URI {uri!r} is empty or not a string; use s3://bucket/prefix")
    if any(ch in uri for ch in "\r\n\t\x00"):
        raise InvalidRequestError(f"storage URI {uri!r} contains control characters")
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise InvalidRequestError(f"storage URI {uri!r} is not a valid URI: {exc}") from exc
    if parts.scheme == S3_SCHEME:
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if not _BUCKET_RE.match(bucket):
            raise InvalidRequestError(f"storage URI {uri!r}: {bucket!r} is not a valid S3 bucket name")
        if parts.query or parts.fragment:
            raise InvalidRequestError(f"storage URI {uri!r}: query strings and fragments are not allowed")
        if "//" in key or any(seg in {".", ".."} for seg in key.split("/")):
            raise InvalidRequestError(f"storage URI {uri!r}: the key has an empty, '.' or '..' segment")
        return S3_SCHEME, f"{bucket}/{key}"
    if is_local(uri):
        path = parts.path if parts.scheme == LOCAL_SCHEME else uri
        if parts.scheme == LOCAL_SCHEME and parts.netloc not in {"", "localhost"}:
            raise InvalidRequestError(f"storage URI {uri!r}: file URIs must not name a host")
        return LOCAL_SCHEME, str(Path(path).expanduser().absolute())
    raise InvalidRequestError(
        f"storage URI {uri!r} has the unsupported scheme {parts.scheme!r}; use s3://bucket/prefix or a local directory"
    )


def is_local(uri: str) -> bool:
    """True for ``file://...`` and a plain path (no scheme), which name this machine's disk."""
    scheme = urlsplit(uri).scheme
    return scheme == LOCAL_SCHEME or (scheme == "" and ":" not in uri.split("/", maxsplit=1)[0])


def join_uri(base: str, *parts: str) -> str:
    """``base`` (a prefix URI) with ``parts`` appended as path segments, normalised."""
    scheme, location = parse_uri(base)
    tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
    if scheme == S3_SCHEME:
        return f"s3://{location.rstrip('/')}/{tail}"
    return Path(location, tail).as_uri()


def sibling_uri(uri: str, name: str) -> str:
    """The URI of ``name`` in the same folder or prefix as ``uri``."""
    return uri.rsplit("/", 1)[0] + "/" + name
