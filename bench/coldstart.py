"""Cold start: how long each handler module takes to import, from a ``sam build`` directory, as on Lambda.

Each run is a fresh ``python3.12 -I -S -B`` process (no site-packages, no bytecode written: /opt
and /var/task are read-only on Lambda, so only the bytecode that ships is used) whose sys.path
is what Lambda's would be: the function's code, its layers' python/ directories, then a stand-in
for the runtime's own packages (boto3, botocore, s3transfer from the dev venv). Its environment
is the template's (Globals and the function's variables, intrinsics resolved with the parameters'
defaults) plus the variables Lambda sets (AWS_LAMBDA_FUNCTION_NAME, AWS_REGION, ...).

For the train function it also times what a training imports (``mlpipe.training`` and the
imports inside its functions, read from the build) and one training on the Iris sample (local
files), once with the ML layer as built and once with an ML layer built without any bytecode
(``make -C layers/ml PYC_LAYOUT=none``, into a temporary directory), and reports the ratio.

It also checks that only train loads pandas, scikit-learn, numpy or scipy (exit status 1 if not).

    python -m bench.coldstart .aws-sam/build [.aws-sam/build-arm64] [--runs 7] [--json-out FILE]
    python -m bench.coldstart --smoke .aws-sam/build .aws-sam/build-arm64    # make check-imports

``--smoke`` is the check that ``make test`` runs: one process per function, no layer without
bytecode; it fails when a handler cannot be imported from the build (a package missing from a
layer), when train cannot train, or when another function loads the ML libraries.

A build for another architecture than this machine's cannot run here: it is named, not measured.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.samtemplate import REPO, Function, Template, lambda_environment
from bench.sizes import native_architectures

HEAVY = ("pandas", "sklearn", "numpy", "scipy")
TRAIN = "train"
SAMPLE = REPO / "local" / "pipeline_local" / "data" / "iris.data"
# Lambda's python3.12 runtime ships these; the layers come first on sys.path, as in /opt.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")

# Runs in the measured process: sys.argv[1] is a JSON spec. Prints one line "BENCH {json}".
CHILD = r"""
import importlib, importlib.util, json, os, sys, time
spec = json.loads(sys.argv[1])
sys.path[0:0] = spec["path"]
t0 = time.perf_counter()
import app
t1 = time.perf_counter()
heavy_at_import = sorted({name.partition(".")[0] for name in sys.modules} & set(spec["heavy"]))
for name in spec["extra"]:
    importlib.import_module(name)
t2 = time.perf_counter()
invoke = None
if spec["event"] is not None:
    class Context:
        function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
        aws_request_id = "00000000-0000-0000-0000-000000000000"
        function_version = "$LATEST"
        log_group_name = "/aws/lambda/" + function_name
        log_stream_name = "bench"
        def get_remaining_time_in_millis(self):
            return 60000
    # The run's event as the plan step makes it, with a fresh local artifact root holding the dataset.
    from mlpipe.config import Settings, resolve_run
    from mlpipe.storage import Store
    event = resolve_run(spec["event"], Settings.from_env()).to_event()
    with open(spec["sample"], "rb") as sample:
        Store.on_this_machine().target(event["dataset_uri"]).write_bytes(sample.read())
    t3 = time.perf_counter()
    result = app.lambda_handler(event, Context())
    invoke = time.perf_counter() - t3
    if result.get("state") != "ran":
        raise SystemExit("the training did not run: %r" % (result,))
compiled = []  # modules of the layers that had to be compiled from source in this process
for module in list(sys.modules.values()):
    origin = getattr(getattr(module, "__spec__", None), "origin", None) or ""
    if origin.endswith(".py") and any(origin.startswith(root) for root in spec["layers"]):
        if not os.path.exists(importlib.util.cache_from_source(origin)):
            compiled.append(origin)
print("BENCH " + json.dumps({
    "import": t1 - t0, "extra": t2 - t1, "invoke": invoke,
    "heavy_at_import": heavy_at_import, "compiled": len(compiled), "compiled_some": sorted(compiled)[:10],
    "modules": len(sys.modules),
}))
"""


@dataclass
class Case:
    """One kind of measured process: a function, a sys.path, what to import after app, maybe an invocation."""

    label: str
    function: Function
    path: list[str]
    layers: list[str]
    env: dict[str, str]
    extra: list[str] = field(default_factory=list)
    invoke: bool = False
    samples: list[dict[str, Any]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(float(s[key]) for s in self.samples)


def host_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def build_arch(directory: Path) -> str | None:
    """The architecture of a build's native code (None when it has none)."""
    found = native_architectures(directory)
    return found.most_common(1)[0][0] if found else None


def runtime_dir(into: Path) -> Path:
    """A directory like the runtime's own site-packages: links to the dev venv's boto3 and friends."""
    into.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        found = importlib.util.find_spec(name)
        if found is None or not found.origin:
            continue
        origin = Path(found.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (into / source.name).symlink_to(source)
    return into


def lazy_imports(module_file: Path) -> list[str]:
    """Modules imported inside the functions of ``module_file`` (the imports that wait for a call)."""
    tree = ast.parse(module_file.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    names.extend(alias.name for alias in inner.names)
                elif isinstance(inner, ast.ImportFrom) and inner.module and not inner.level:
                    names.append(inner.module)
    return list(dict.fromkeys(names))


def build_ml_layer_without_bytecode(into: Path, arch: str, python: str) -> Path:
    """The ML layer as the ML Makefile builds it with PYC_LAYOUT=none; returns its python/ directory."""
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(REPO / "layers" / "ml"),
        "build-MlDependenciesLayer",
        f"ARTIFACTS_DIR={into}",
        f"ARCH={arch}",
        "PYC_LAYOUT=none",
        f"PYTHON={python}",
    ]
    print(f"building the ML layer without bytecode into {into} ...", file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return into / "python"


def run_case(case: Case, python: str, scratch: Path, index: int) -> None:
    event = None
    if case.invoke:
        run_dir = scratch / f"{case.label.replace(' ', '_')}-{index}"
        run_dir.mkdir(parents=True)
        event = {
            "run_date": "2000-01-01",
            "artifact_root": str(run_dir / "artifacts"),
            "publish_uri": str(run_dir / "pub"),
        }
    spec = {
        "path": case.path,
        "layers": case.layers,
        "extra": case.extra,
        "event": event,
        "sample": str(SAMPLE),
        "heavy": list(HEAVY),
    }
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=case.env,
        cwd=case.path[0],
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH ")]
    if result.returncode or not lines:
        raise RuntimeError(
            f"{case.label}: the measured process failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )
    case.samples.append(json.loads(lines[-1][len("BENCH ") :]))


def cases_for(build: Path, template: Template, runtime: Path, no_bytecode_ml: Path | None) -> list[Case]:
    cases = []
    for function in template.functions():
        code = build / function.code_uri
        layers = [str(build / str(template.layer_content_uri(layer)) / "python") for layer in function.layers]
        env = lambda_environment(function, code)
        path = [str(code), *layers, str(runtime)]
        if function.name != TRAIN:
            cases.append(Case(function.name, function, path, layers, env))
            continue
        training = next((Path(p) / "mlpipe" / "training.py" for p in layers if (Path(p) / "mlpipe").is_dir()), None)
        extra = ["mlpipe.training", *(lazy_imports(training) if training else [])]
        local = env | {"MLPIPE_ALLOW_LOCAL_STORAGE": "true"}  # the training below reads and writes local files
        cases.append(Case(function.name, function, path, layers, local, extra, invoke=True))
        if no_bytecode_ml is not None:
            ml_dir = next(p for p in layers if (Path(p) / "sklearn").is_dir())
            swapped = [str(no_bytecode_ml) if p == ml_dir else p for p in layers]
            cases.append(
                Case(
                    f"{function.name} no-bytecode",
                    function,
                    [str(code), *swapped, str(runtime)],
                    swapped,
                    local,
                    extra,
                    True,
                )
            )
    return cases


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--smoke`` sets one run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("builds", nargs="+", type=Path, metavar="DIR", help="sam build directories")
    parser.add_argument("--runs", type=int, default=7, help="processes per case (median reported); default 7")
    parser.add_argument("--python", default=getattr(sys, "_base_executable", sys.executable), help="a CPython 3.12")
    parser.add_argument("--no-bytecode-layer", type=Path, help="an ML layer python/ dir without bytecode (else built)")
    parser.add_argument("--json-out", type=Path, help="also write the figures here (for bench.cost)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a check, for make test: one run per function, no layer without bytecode; exit 1 when a "
        "handler fails to import or train fails to train from the build, or another function loads the ML stack",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    version = subprocess.run(
        [args.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if version != "3.12":
        print(f"error: {args.python} is Python {version or '?'}; the Lambda runtime is python3.12", file=sys.stderr)
        return 2
    here = host_arch()
    results: dict[str, Any] = {"host_arch": here, "runs": args.runs, "builds": {}}
    skipped: list[str] = []
    status = measure_builds(args, here, results, skipped)
    if status:
        return status
    for line in skipped:
        print(line)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return verdict(args, here, results)


def measure_builds(args: argparse.Namespace, here: str, results: dict[str, Any], skipped: list[str]) -> int:
    """Measure each build of this machine's architecture into ``results["builds"]`` (the others into
    ``skipped``); the exit status: 0, or 2 (no template) or 1 (a measured process failed), said on stderr."""
    with tempfile.TemporaryDirectory(prefix="mlpipe-coldstart-") as tmp:
        scratch = Path(tmp)
        runtime = runtime_dir(scratch / "runtime")
        for build in args.builds:
            if not (build / "template.yaml").is_file():
                print(f"error: {build}/template.yaml not found: build first (make build-all)", file=sys.stderr)
                return 2
            arch = build_arch(build) or here
            if arch != here:
                skipped.append(f"{arch} ({build}): not measured: its native code is {arch}, this machine is {here}")
                continue
            no_bc = None
            if not args.smoke:
                no_bc = args.no_bytecode_layer or build_ml_layer_without_bytecode(
                    scratch / "ml-no-bytecode", arch, args.python
                )
            cases = cases_for(build.resolve(), Template(build / "template.yaml"), runtime, no_bc)
            print(f"measuring {len(cases)} cases x {args.runs} runs from {build} ...", file=sys.stderr)
            try:
                for index in range(args.runs):  # interleaved, so a slow moment of the machine hits every case alike
                    for case in cases:
                        run_case(case, args.python, scratch, index)
            except RuntimeError as exc:
                print(f"error: {build}: {exc}", file=sys.stderr)
                return 1
            results["builds"][str(build)] = report(build, arch, cases, args.runs)
    return 0


def verdict(args: argparse.Namespace, here: str, results: dict[str, Any]) -> int:
    """The exit status of measured ``results``: 1 when a function other than train loads the ML stack, or
    (``--smoke``) when no build was measured; said on stderr, and a smoke check's pass on stdout."""
    failed = [
        name
        for build in results["builds"].values()
        for name, figures in build["functions"].items()
        if name != TRAIN and figures["heavy_at_import"]
    ]
    if failed:
        print(f"error: {', '.join(failed)} load(s) pandas/sklearn/numpy/scipy: only train may", file=sys.stderr)
        return 1
    if args.smoke and not results["builds"]:
        print(
            f"error: no build for this machine's architecture ({here}) among {', '.join(map(str, args.builds))}",
            file=sys.stderr,
        )
        return 1
    if args.smoke:
        print("smoke check passed: every handler imports from the build, and train trains")
    return 0


def report(build: Path, arch: str, cases: list[Case], runs: int) -> dict[str, Any]:
    """Print the table of one build; return its figures."""
    print(f"Cold start, {arch}, {build}: median of {runs} fresh `python3.12 -I -S -B` processes, seconds")
    print(f"  {'function':<10} {'import app':>10}  pandas/sklearn/numpy/scipy loaded by the import")
    figures: dict[str, Any] = {}
    for case in cases:
        if case.label.endswith("no-bytecode"):
            continue
        heavy = sorted({m for s in case.samples for m in s["heavy_at_import"]})
        figures[case.function.name] = {
            "import_s": case.median("import"),
            "memory_mb": case.function.memory_mb,
            "heavy_at_import": heavy,
        }
        verdict = ", ".join(heavy) if heavy else "none"
        if heavy and case.function.name != TRAIN:
            verdict += "   <-- only train may load these"
        print(f"  {case.function.name:<10} {case.median('import'):>10.3f}  {verdict}")
    train = next((c for c in cases if c.label == TRAIN), None)
    bare = next((c for c in cases if c.label == f"{TRAIN} no-bytecode"), None)
    if train:
        print("\n  train, when it trains: app import (INIT), then what the first training imports:")
        print(textwrap.fill(", ".join(train.extra), width=110, initial_indent="    ", subsequent_indent="    "))
        print("  then one training on the Iris sample (local files)")
        print(
            f"  {'ML layer':<22} {'import app':>10} {'+ imports':>10} {'= total':>8} {'1st train':>10} {'compiled':>9}"
        )
        rows = [("as built (bytecode)", train)] + ([("without bytecode", bare)] if bare else [])
        for label, case in rows:
            init = statistics.median(float(s["import"]) + float(s["extra"]) for s in case.samples)
            compiled = statistics.median(int(s["compiled"]) for s in case.samples)
            print(
                f"  {label:<22} {case.median('import'):>10.3f} {case.median('extra'):>10.3f} {init:>8.3f} "
                f"{case.median('invoke'):>10.3f} {compiled:>9.0f}"
            )
        figures[TRAIN] |= {
            "training_imports": train.extra,
            "training_imports_s": train.median("extra"),
            "first_training_s": train.median("invoke"),
            "compiled_modules": statistics.median(int(s["compiled"]) for s in train.samples),
        }
        if bare:
            with_bc = train.median("import") + train.median("extra")
            without = bare.median("import") + bare.median("extra")
            figures[TRAIN]["no_bytecode"] = {
                "training_imports_s": bare.median("extra"),
                "first_training_s": bare.median("invoke"),
                "compiled_modules": statistics.median(int(s["compiled"]) for s in bare.samples),
            }
            figures[TRAIN]["bytecode_speedup"] = without / with_bc
            print(
                f"  without bytecode, app + training imports take {without / with_bc:.1f}x as long "
                f"({without:.2f} s instead of {with_bc:.2f} s)"
            )
        print("  (compiled = layer modules imported from .py with no shipped .pyc, compiled in that process)")
        missing = sorted({name for s in train.samples for name in s["compiled_some"]})
        if missing:
            print(
                "  warning: the first training compiles layer modules that ship without bytecode, on every "
                "cold start; add them to WARM_IMPORTS in layers/ml/Makefile: " + ", ".join(missing)
            )
    print()
    return {"arch": arch, "functions": figures}


if __name__ == "__main__":
    sys.exit(main())
