"""The one version number: the package's (pyproject.toml reads it here), the lineage's, ``pipeline --version``'s."""

__version__ = "0.2.0"
