"""Where targets live: the target contract, its two backends (a local directory, S3) and the Store that makes them.

- ``base``: the contract (``Target``: ``exists()``, streamed reads, atomic and conditional writes).
- ``local``: ``LocalTarget``, for local runs.
- ``s3``: ``S3Target``, streamed multipart writes and ranged reads, error mapping, the clients.
- ``uris``: parsing and joining storage URIs (pure).
- ``store``: ``Store``, made once from Settings, holding the local-path policy and the S3 clients.
"""

from mlpipe.storage.base import CHUNK_SIZE, Sink, StoredObject, Target, sha256_of
from mlpipe.storage.local import LocalTarget
from mlpipe.storage.s3 import S3Clients, S3Target, storage_error
from mlpipe.storage.store import Store
from mlpipe.storage.uris import join_uri, parse_uri, sibling_uri

__all__ = [
    "CHUNK_SIZE",
    "LocalTarget",
    "S3Clients",
    "S3Target",
    "Sink",
    "Store",
    "StoredObject",
    "Target",
    "join_uri",
    "parse_uri",
    "sha256_of",
    "sibling_uri",
    "storage_error",
]
