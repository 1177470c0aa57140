"""Compressed sources: gzip decompressed while it streams, a zip holding exactly one file.

What a source is, is told by its first bytes (its magic number), never by its name alone: a ``.gz``
served with ``Content-Encoding: gzip`` arrives already decoded (requests decodes it) and is plain CSV
here, and a gzip body under any name is decompressed. The size limit of the download applies to
what comes out of here (the decompressed bytes), so a small archive cannot expand without bound;
each step of the decompression yields at most ``CHUNK`` bytes, so memory stays flat too.

A zip keeps its directory at the end: it is read in place from a seekable source (an S3 object
through ranged GETs, a local file), never from a stream.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import IO

from mlpipe.exceptions import SourceFormatError

CHUNK = 256 * 1024
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end record
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def kind(first: bytes) -> str:
    """``gzip``, ``zip`` or ``plain``, from the first bytes of a source."""
    if first.startswith(GZIP_MAGIC):
        return "gzip"
    if first.startswith(ZIP_MAGICS):
        return "zip"
    return "plain"


def decoded(chunks: Iterable[bytes], shown: str) -> Iterator[bytes]:
    """``chunks`` as they are, or decompressed when they are gzip (``shown`` names the source in errors).

    A zip here (a stream, not seekable) is a SourceFormatError saying where a zip can be read.
    """
    stream = iter(chunks)
    first = b""
    for first in stream:
        if first:
            break
    if not first:
        return
    found = kind(first)
    if found == "zip":
        raise SourceFormatError(
            f"source {shown!r} is a zip archive, which is read only from S3 or a local file (its directory is at the "
            "end): put it in S3, or serve the CSV itself or gzip-compressed"
        )
    rest = chain([first], stream)
    yield from gunzip(rest, shown) if found == "gzip" else rest


def gunzip(chunks: Iterable[bytes], shown: str) -> Iterator[bytes]:
    """Decompress a gzip stream (several members, as ``cat a.gz b.gz`` makes, are one stream), ``CHUNK`` at a time.

    A corrupt or truncated stream is a SourceFormatError naming the source and the compressed byte it broke at.
    """
    inflater = zlib.decompressobj(_GZIP_WBITS)
    consumed = 0  # compressed bytes taken in, for the error's "where"
    member_open = False  # the current member has started and not yet ended
    for chunk in chunks:
        data = chunk
        while data:
            member_open = True
            try:
                out = inflater.decompress(data, CHUNK)
            except zlib.error as exc:
                raise _corrupt(shown, consumed, str(exc)) from None
            if out:
                yield out
            if inflater.eof:  # a member ended: what follows is the next member
                consumed += len(data) - len(inflater.unused_data)
                data = inflater.unused_data
                inflater = zlib.decompressobj(_GZIP_WBITS)
                member_open = False
                continue
            consumed += len(data) - len(inflater.unconsumed_tail)
            data = inflater.unconsumed_tail
    if member_open:
        raise _corrupt(shown, consumed, "the stream ends inside a member (truncated)")


def _corrupt(shown: str, at: int, why: str) -> SourceFormatError:
    return SourceFormatError(
        f"source {shown!r} is not a valid gzip stream: {why}, at compressed byte {at}; the file is corrupt or was "
        "cut off: compress it again (gzip -t checks it) and upload it again"
    )


def zip_member(handle: IO[bytes], shown: str) -> tuple[str, IO[bytes]]:
    """The one file in the zip ``handle`` (seekable): its name and an open reader of its bytes.

    SourceFormatError when the archive is corrupt, encrypted, or holds no file or more than one
    (directories and macOS's ``__MACOSX/`` resource entries do not count).
    """
    try:
        archive = zipfile.ZipFile(handle)
        members = [
            info for info in archive.infolist() if not info.is_dir() and not info.filename.startswith("__MACOSX/")
        ]
        if len(members) != 1:
            names = ", ".join(info.filename for info in members[:10]) or "none"
            raise SourceFormatError(
                f"source {shown!r} is a zip with {len(members)} files ({names}); the pipeline reads a zip holding "
                "exactly one CSV file: zip the one file alone, or point source_url at the file itself"
            )
        member = members[0]
        if member.flag_bits & 0x1:
            raise SourceFormatError(
                f"source {shown!r}: {member.filename!r} in the zip is encrypted; zip it unencrypted"
            )
        return member.filename, archive.open(member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise SourceFormatError(
            f"source {shown!r} is not a readable zip archive ({exc}); zip the CSV again and upload it again"
        ) from None


def read_chunks(handle: IO[bytes], shown: str) -> Iterator[bytes]:
    """``handle``'s bytes, ``CHUNK`` at a time; a zip member's bad CRC or cut-off data is a SourceFormatError."""
    while True:
        try:
            chunk = handle.read(CHUNK)
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise SourceFormatError(
                f"source {shown!r}: the file in the zip is corrupt ({exc}); zip the CSV again and upload it again"
            ) from None
        if not chunk:
            return
        yield chunk
