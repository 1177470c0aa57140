"""mlpipe's modules are layers: each imports only from layers below it, so its import graph has no cycle.

Read from the source (the AST), function-local imports included and ``if TYPE_CHECKING:`` blocks left
out (they never run). A function-local import is only for a heavy library loaded lazily, so that a
Lambda function that never trains never pays for pandas or scikit-learn.
"""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tools.module_map import MODULES, graph, imports, rewrite

# Lowest first. A module may import from the layers below its own, never from its own or a higher one.
# docs/architecture.md shows the same table.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("exceptions", "version", "steps", "gate", "redaction"),
    ("storage.base", "storage.uris", "description", "scaling", "problem", "compression"),
    ("storage.local", "storage.s3", "dataset", "estimators", "naming"),
    ("storage.store",),
    ("storage",),
    ("identity", "artifacts", "lineage", "fetch", "sagemaker", "observability", "contract"),
    ("sources",),
    ("config", "champion", "publishing", "training"),
    ("planning", "loading", "report", "status", "modelconfig"),
    ("tasks", "predicting", "reporting_html", "backfill"),
    ("sagemaker_job", ""),  # "": the package itself (mlpipe/__init__.py), which states the public names
)
# What may be imported inside a function: heavy third-party libraries, loaded only when the work needs them.
LAZY = {"pandas", "sklearn", "numpy", "scipy", "boto3", "botocore", "s3transfer", "joblib", "requests"}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(edges[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> int:
    for number, members in enumerate(LAYERS):
        if module in members:
            return number
    raise AssertionError(f"mlpipe.{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")


def test_every_module_is_in_exactly_one_layer() -> None:
    listed = [module for members in LAYERS for module in members]
    assert sorted(listed) == sorted(MODULES)


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(graph()) == []


def test_no_module_imports_from_its_own_layer_or_above() -> None:
    upward = [
        f"mlpipe.{module} (layer {layer_of(module)}) imports mlpipe.{target} (layer {layer_of(target)})"
        for module, targets in graph().items()
        for target in targets
        if layer_of(target) >= layer_of(module)
    ]
    assert upward == []


def test_function_local_imports_are_only_heavy_libraries() -> None:
    local = [
        f"{path.relative_to(REPO)}:{line} imports {name} inside a function"
        for path in MODULES.values()
        for name, inside, line in imports(path)
        if inside and name.split(".")[0] not in LAZY
    ]
    assert local == []


def test_the_checks_see_an_upward_import_and_a_cycle() -> None:
    # A test that cannot fail is a defect: the same functions on a made-up graph
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("not_a_module")


def test_the_module_map_in_the_docs_shows_each_module_in_its_layer_with_its_imports() -> None:
    table = (REPO / "docs" / "architecture.md").read_text()
    for number, members in enumerate(LAYERS):
        for module in members:
            name = f"mlpipe.{module}" if module else "mlpipe"
            assert f"| {number} | `{name}` |" in table, f"docs/architecture.md: {name} is not in layer {number}"
    assert rewrite(table, graph()) == table, (
        "docs/architecture.md: the imports column is stale: python -m tools.module_map"
    )


def test_each_handler_parses_calls_one_function_and_returns_in_at_most_25_lines() -> None:
    for app in sorted((REPO / "functions").glob("*/app.py")):
        assert len(app.read_text().splitlines()) <= 25, app.relative_to(REPO)
