"""mlpipe's import graph read from its source (AST), and the module map in docs/architecture.md rewritten from it.

``python -m tools.module_map`` after adding or changing an import; ``tests/unit/test_layers.py`` fails
while the table and the code disagree. The layers themselves are ``LAYERS`` in that test.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
PACKAGE = REPO / "layers" / "core" / "python" / "mlpipe"
ROW = re.compile(r"^\| (?P<layer>\d+) \| `(?P<module>mlpipe[\w.]*)` \| (?P<what>.*) \| (?P<imports>[^|]*) \|$")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """``(imported module, inside a function, line)`` for every import that runs."""
    found: list[tuple[str, bool, int]] = []

    class Visitor(ast.NodeVisitor):
        depth = 0

        def visit_If(self, node: ast.If) -> None:
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                self.generic_visit(node)

        def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
            self.depth += 1
            self.generic_visit(node)
            self.depth -= 1

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_Import(self, node: ast.Import) -> None:
            found.extend((alias.name, self.depth > 0, node.lineno) for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            for alias in node.names:  # `from mlpipe import tasks` imports the module mlpipe.tasks
                full = f"{node.module}.{alias.name}"
                found.append(
                    (full if full.removeprefix("mlpipe.") in MODULES else str(node.module), self.depth > 0, node.lineno)
                )

    Visitor().visit(ast.parse(path.read_text(), str(path)))
    return found


def own(name: str) -> str | None:
    """The mlpipe module ``name`` is (or is in), without the ``mlpipe.`` prefix; None for another package."""
    if name != "mlpipe" and not name.startswith("mlpipe."):
        return None
    module = name.removeprefix("mlpipe").removeprefix(".")
    while module not in MODULES and "." in module:
        module = module.rsplit(".", 1)[0]
    return module


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges[module] = {target for name, _, _ in imports(path) if (target := own(name)) not in (None, module)}
    return edges


def imports_column(imports: set[str]) -> str:
    """The table's spelling of a module's imports: sorted names without ``mlpipe.``, or ``nothing``."""
    return ", ".join(sorted(name or "mlpipe" for name in imports)) or "nothing"


def rewrite(text: str, graph: dict[str, set[str]]) -> str:
    """``text`` with each module row's last column set from ``graph`` (module without ``mlpipe.`` → its imports)."""
    lines = []
    for line in text.splitlines():
        match = ROW.match(line)
        module = match["module"].removeprefix("mlpipe").removeprefix(".") if match else ""
        lines.append(
            f"| {match['layer']} | `{match['module']}` | {match['what']} | {imports_column(graph[module])} |"
            if match
            else line
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    """Rewrite the table in place; 0."""
    DOC.write_text(rewrite(DOC.read_text(), graph()))
    print(f"rewrote the module map in {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
