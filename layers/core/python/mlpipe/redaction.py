"""Secrets in URLs: what a source URL carries to be allowed in (``user:password@``, a presigned URL's signature,
an access token) is used for the request and nowhere else.

``redact_url`` gives the form that is recorded and shown: the URL without its user info, without its
secret query parameters (and, beside a signature, the parameters of the signing scheme: dates,
expiry, algorithm, signed headers, SAS fields) and without a fragment that holds a secret. What is
left names the data (scheme, host, port, path, the other query parameters), so a presigned URL
re-signed every day keeps one redacted form, and so one dataset identity (``mlpipe.config``). A URL
with no secret is returned unchanged. ``redact_text`` cleans a message that may quote a URL or its
query (an HTTP library's error text).

A secret in the path itself (``https://hooks.example/T0KEN/data.csv``) cannot be told from a name:
name such a source with ``source_id``, which then is what the identity and lineage record.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit

REDACTED = "REDACTED"

# Query parameter names, lower-cased with "-" and "_" removed, that carry a secret.
_SECRET_NAMES = frozenset(
    {
        "sig",
        "signature",
        "token",
        "key",
        "apikey",
        "auth",
        "authorization",
        "jwt",
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "credential",
        "credentials",
        "sas",
        "code",
    }
)
# ...and any name ending so (X-Amz-Signature, X-Goog-Credential, X-Amz-Security-Token, access_token,
# client_secret, AWSAccessKeyId, GoogleAccessId, private_key...).
_SECRET_SUFFIXES = (
    "signature",
    "token",
    "secret",
    "password",
    "passwd",
    "credential",
    "credentials",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "accesskeyid",
    "accessid",
    "sessionkey",
)
# Names that end so but page through a listing: data, not secrets.
_NOT_SECRET = frozenset({"pagetoken", "nextpagetoken", "continuationtoken", "nexttoken", "synctoken", "cursortoken"})
# The signing schemes' other parameters (AWS SigV4 and SigV2, Google, Azure SAS, CloudFront): not secrets, but they
# change with every signing, so beside a secret they are left out too.
_SIGNING = frozenset(
    {
        "xamzalgorithm",
        "xamzdate",
        "xamzexpires",
        "xamzsignedheaders",
        "xamzcontentsha256",
        "xamzuseragent",
        "xgoogalgorithm",
        "xgoogdate",
        "xgoogexpires",
        "xgoogsignedheaders",
        "expires",
        "policy",
        "keypairid",
        "sv",
        "ss",
        "srt",
        "sp",
        "se",
        "st",
        "sr",
        "spr",
        "sip",
        "si",
        "sdd",
        "skoid",
        "sktid",
        "skt",
        "ske",
        "sks",
        "skv",
        "saoid",
        "suoid",
        "scid",
        "rscc",
        "rscd",
        "rsce",
        "rscl",
        "rsct",
    }
)
_USERINFO = re.compile(r"://[^/?#\s]*@")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# A query-like name=value: at the start, after ?, &, ; or # (a query), or after a space, quote or bracket (prose), not
# inside a path (s3://bucket/key=2026/ is a name, not a secret).
_PAIR = re.compile(r"(?P<lead>^|[?&;#\s'\"(\[,])(?P<name>[A-Za-z0-9_.%~+\-]+)=(?P<value>[^&;\s'\"<>`#)\]]*)")
_SHORTEST_QUOTED_SECRET = 4  # shorter secret values are removed where they stand as name=value, not everywhere


def _normal(name: str) -> str:
    return re.sub(r"[-_.\s]", "", unquote_plus(name)).lower()


def is_secret_name(name: str) -> bool:
    """True when a query parameter called ``name`` (raw or percent-encoded) carries a secret."""
    normal = _normal(name)
    if normal in _NOT_SECRET:
        return False
    return normal in _SECRET_NAMES or normal.endswith(_SECRET_SUFFIXES)


def _pairs(query: str) -> list[tuple[str, str]]:
    """``(raw name, raw segment)`` of each parameter, split on ``&`` and ``;`` (servers differ on the latter)."""
    return [(segment.split("=", 1)[0], segment) for segment in re.split(r"[&;]", query) if segment]


def has_secrets(url: str) -> bool:
    """True when ``url`` carries user info or a secret query (or fragment) parameter."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not even a URL (an unclosed "[" ...): look for the same things in its text
        return bool(_USERINFO.search(url)) or any(is_secret_name(m.group("name")) for m in _PAIR.finditer(url))
    if "@" in parts.netloc:
        return True
    return any(is_secret_name(name) for part in (parts.query, parts.fragment) for name, _ in _pairs(part))


def redact_url(url: str) -> str:
    """``url`` without its secrets (see the module), or ``url`` itself when it has none."""
    if not has_secrets(url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _redact_pairs(_USERINFO.sub("://", url))
    host = parts.netloc.rpartition("@")[2]
    pairs = _pairs(parts.query)
    signed = any(is_secret_name(name) for name, _ in pairs)
    kept = [
        segment for name, segment in pairs if not is_secret_name(name) and not (signed and _normal(name) in _SIGNING)
    ]
    fragment = "" if any(is_secret_name(name) for name, _ in _pairs(parts.fragment)) else parts.fragment
    redacted = f"{parts.scheme}://{host}{parts.path}"
    if kept:
        redacted += "?" + "&".join(kept)
    if fragment:
        redacted += "#" + fragment
    return redacted


def _secret_values(url: str) -> set[str]:
    """The secret strings of ``url`` as they may be quoted: raw and percent-decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    values: set[str] = set()
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo:
        values |= {userinfo, *userinfo.split(":", 1)}
    for part in (parts.query, parts.fragment):
        for name, segment in _pairs(part):
            if is_secret_name(name) and "=" in segment:
                values.add(segment.split("=", 1)[1])
    return {form for value in values for form in (value, unquote_plus(value)) if len(form) >= _SHORTEST_QUOTED_SECRET}


def _redact_pairs(text: str) -> str:
    def redact(found: re.Match[str]) -> str:
        if not is_secret_name(found.group("name")):
            return found.group(0)
        return f"{found.group('lead')}{found.group('name')}={REDACTED}"

    return _PAIR.sub(redact, text)


def redact_text(text: str, *urls: str) -> str:
    """``text`` with every URL in it redacted, every ``name=value`` whose name is a secret's emptied to
    ``name=REDACTED``, and every secret of ``urls`` (the URLs the text is about) replaced by ``REDACTED``."""
    cleaned = _redact_pairs(_URL.sub(lambda found: redact_url(found.group(0)), text))
    for value in sorted({value for url in urls for value in _secret_values(url)}, key=len, reverse=True):
        cleaned = cleaned.replace(value, REDACTED)
    return cleaned
