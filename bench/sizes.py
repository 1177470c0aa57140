"""Unzipped size of each function with all its layers, per build directory (``sam build`` output).

Lambda's hard limit is 250 MiB for a function's code plus all its layers, unzipped, counted in
apparent bytes (the files' lengths, not the disk blocks they take); this project keeps its
functions under a 225 MiB budget. The sizes are read from the build directory's template.yaml:
each function's CodeUri and Layers (Globals' and its own), each layer's ContentUri.

    python -m bench.sizes .aws-sam/build=x86_64 .aws-sam/build-arm64=arm64 [--check]

``DIR=ARCH`` also checks that every ELF file in the build (the layers' .so files) is for ARCH.
With ``--check`` the exit status is 1 when a function is over budget (the biggest contributors
are named) or a build has native code of the wrong or of mixed architectures.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.samtemplate import Template

MIB = 1024 * 1024
BUDGET_MIB = 225.0  # the project's budget: keep 25 MiB of Lambda's limit in reserve
LAMBDA_LIMIT_MIB = 250.0  # unzipped, function code + all layers
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "arm64"}  # e_machine: EM_X86_64, EM_AARCH64


def files_under(root: Path) -> Iterator[Path]:
    """Every file and symlink under ``root`` (what a zip of it holds), without following links."""
    for directory, dirnames, filenames in os.walk(root):
        for name in filenames:
            yield Path(directory, name)
        for name in dirnames:  # a symlink to a directory is stored as a link, not followed
            if os.path.islink(os.path.join(directory, name)):
                yield Path(directory, name)


def tree_size(root: Path) -> int:
    """Apparent size in bytes (``lstat().st_size`` summed), as Lambda counts the unzipped limit."""
    return sum(path.lstat().st_size for path in files_under(root))


def entry_sizes(layer_dir: Path) -> dict[str, int]:
    """Size of each top-level package or module of a layer (under ``python/``, where Lambda looks)."""
    sizes: dict[str, int] = {}
    for top in sorted(layer_dir.iterdir()):
        children = sorted(top.iterdir()) if top.is_dir() and top.name == "python" else [top]
        for child in children:
            label = str(child.relative_to(layer_dir))
            sizes[label] = tree_size(child) if child.is_dir() and not child.is_symlink() else child.lstat().st_size
    return sizes


def elf_machine(path: Path) -> str | None:
    """``x86_64``/``arm64``/other for an ELF file, None for anything else."""
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")  # EI_DATA: 1 = little-endian
    return ELF_MACHINES.get(machine, f"e_machine {machine:#x}")


def native_architectures(root: Path) -> Counter[str]:
    """How many ELF files under ``root`` are for each architecture."""
    found: Counter[str] = Counter()
    for path in files_under(root):
        if ".so" in path.name and not path.is_symlink():
            machine = elf_machine(path)
            if machine:
                found[machine] += 1
    return found


@dataclass
class FunctionSize:
    """A function's code and layers, in bytes."""

    logical_id: str
    code: int
    layers: dict[str, int]
    missing: list[str] = field(default_factory=list)  # layers not in this build (ARNs of other stacks)

    @property
    def total(self) -> int:
        return self.code + sum(self.layers.values())


@dataclass
class Build:
    """A build directory's functions and layers, measured."""

    directory: Path
    expected_arch: str | None
    functions: list[FunctionSize]
    layer_dirs: dict[str, Path]
    architectures: Counter[str]

    @property
    def arch(self) -> str:
        if len(self.architectures) == 1:
            return next(iter(self.architectures))
        if not self.architectures:
            return self.expected_arch or "no native code"
        return "mixed: " + ", ".join(f"{arch} ({count})" for arch, count in sorted(self.architectures.items()))


def measure(directory: Path, expected_arch: str | None = None) -> Build:
    """Measure every function of the build in ``directory``."""
    template_path = directory / "template.yaml"
    if not template_path.is_file():
        raise FileNotFoundError(f"{template_path} not found: build first (make build-all)")
    template = Template(template_path)
    layer_dirs: dict[str, Path] = {}
    layer_sizes: dict[str, int] = {}
    functions = []
    for function in template.functions():
        sizes: dict[str, int] = {}
        missing = []
        for layer in function.layers:
            uri = template.layer_content_uri(layer)
            if uri is None or not (directory / uri).is_dir():
                missing.append(layer)
                continue
            if layer not in layer_sizes:
                layer_dirs[layer] = directory / uri
                layer_sizes[layer] = tree_size(directory / uri)
            sizes[layer] = layer_sizes[layer]
        code_dir = directory / function.code_uri
        if not code_dir.is_dir():
            raise FileNotFoundError(f"{code_dir} ({function.logical_id}'s CodeUri) is not in the build")
        functions.append(FunctionSize(function.logical_id, tree_size(code_dir), sizes, missing))
    architectures: Counter[str] = Counter()
    for layer_dir in layer_dirs.values():
        architectures.update(native_architectures(layer_dir))
    for function in template.functions():
        architectures.update(native_architectures(directory / function.code_uri))
    return Build(directory, expected_arch, functions, layer_dirs, architectures)


def mib(size: int) -> str:
    return f"{size / MIB:.1f}"


def print_table(build: Build, budget_mib: float, out: list[str]) -> None:
    """The size table of one build, into ``out``."""
    layers = list(build.layer_dirs)
    out.append(
        f"{build.arch}: {build.directory}  (MiB, unzipped apparent size; budget {budget_mib:g}, "
        f"Lambda limit {LAMBDA_LIMIT_MIB:g})"
    )
    header = ["function", "code", *layers, "total", "headroom"]
    rows = [
        [
            f.logical_id,
            mib(f.code),
            *(mib(f.layers[name]) if name in f.layers else "-" for name in layers),
            mib(f.total),
            f"{budget_mib - f.total / MIB:.1f}",
        ]
        for f in build.functions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        out.append(
            "  "
            + "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for f in build.functions:
        if f.missing:
            out.append(f"  note: {f.logical_id}'s layers {', '.join(f.missing)} are not in this build: not counted")


def contributors(build: Build, function: FunctionSize, top: int) -> list[str]:
    """The ``top`` biggest top-level packages/directories across a function's layers (and its code)."""
    entries = [
        (size, f"{layer}/{label}")
        for layer in function.layers
        for label, size in entry_sizes(build.layer_dirs[layer]).items()
    ]
    entries.append((function.code, f"{function.logical_id} (code)"))
    entries.sort(reverse=True)
    return [f"    {size / MIB:7.1f} MiB  {label}" for size, label in entries[:top]]


def overlaps(build: Build, function: FunctionSize) -> list[str]:
    """Top-level names that two of a function's layers both ship: in /opt the later layer's copy wins."""
    seen: dict[str, str] = {}
    clashes = []
    for layer in function.layers:
        for label in entry_sizes(build.layer_dirs[layer]):
            if label in seen:
                clashes.append(f"{label} ({seen[label]} and {layer})")
            seen[label] = layer
    return clashes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("builds", nargs="+", metavar="DIR[=ARCH]", help="sam build directories")
    parser.add_argument("--check", action="store_true", help="exit 1 when a function is over budget")
    parser.add_argument("--budget-mib", type=float, default=BUDGET_MIB, help=f"default {BUDGET_MIB:g}")
    parser.add_argument("--top", type=int, default=10, help="contributors named for a function over budget")
    args = parser.parse_args(argv)

    out: list[str] = []
    failures: list[str] = []
    for spec in args.builds:
        directory, _, expected = spec.partition("=")
        try:
            build = measure(Path(directory), expected or None)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print_table(build, args.budget_mib, out)
        if len(build.architectures) > 1 or (
            expected and build.architectures and set(build.architectures) != {expected}
        ):
            failures.append(f"{directory}: native code is {build.arch}, expected {expected or 'one architecture'}")
        biggest = max(build.functions, key=lambda f: f.total)
        for function in build.functions:
            for clash in overlaps(build, function):
                out.append(f"  warning: {function.logical_id}: two layers ship {clash}")
            if function.total > args.budget_mib * MIB:
                failures.append(
                    f"{directory}: {function.logical_id} is {mib(function.total)} MiB, over the "
                    f"{args.budget_mib:g} MiB budget (Lambda's limit: {LAMBDA_LIMIT_MIB:g} MiB); biggest parts:"
                )
                failures.extend(contributors(build, function, args.top))
        if not args.check:
            out.append(f"  biggest parts of {biggest.logical_id}:")
            out.extend(contributors(build, biggest, args.top))
        out.append("")
    print("\n".join(out).rstrip())
    if args.check:
        if failures:
            print("\nsize check FAILED:\n" + "\n".join(failures), file=sys.stderr)
            return 1
        print(f"\nsize check passed: every function with its layers is within {args.budget_mib:g} MiB")
    elif failures:
        print("\nwarning:\n" + "\n".join(failures), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
