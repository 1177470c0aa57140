"""The pipeline's steps, stated once: everything else that names a step reads it from here.

Like Luigi's ``requires()``/``output()`` or Metaflow's graph, one table says what the pipeline is:
each step's name (the task, its ``force`` value, its key in the plan's ``tasks``), the Lambda
function that runs it, the state machine's states that run it, the fields of the run its event
must carry, and, for the three tasks that make a target, that target (the run's field, the
identity's family, the file). Identity, planning, the report, the handlers, the local runner, the
CLI, the benches and the tests read it; ``tests/unit/test_steps.py`` fails when the ASL's states,
Choice values, ResultPaths or Catch results, or the template's functions, disagree with it.

Adding a step means this table, the ASL, the template and the step's own module (its handler and
its task function), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Output:
    """A target a task makes: the run's field holding its URI, its identity's family, its file's name, the root
    it lives under (the setting and execution input naming it) and whether a card (metrics.json) completes it."""

    field: str
    family: str
    file: str
    root: str
    card: bool = False


@dataclass(frozen=True)
class Step:
    """One step of the pipeline: a Lambda function, the states that run it, and what its event needs."""

    name: str
    states: tuple[str, ...]
    needs: tuple[str, ...] = ()
    output: Output | None = None
    failed_state: str | None = None  # the Pass state its Catch leads to, whose Result is ``name``

    @property
    def function(self) -> str:
        """The function's folder (``functions/<name>/``); the template's resource is ``<Name>Function``."""
        return self.name

    @property
    def resource(self) -> str:
        """The template's logical id of the step's function, e.g. ``DownloadFunction``."""
        return f"{self.name.capitalize()}Function"


STEPS: tuple[Step, ...] = (
    Step("plan", states=("Plan the run",), failed_state="Planning failed"),
    Step(
        "download",
        states=("Download dataset",),
        needs=("run_date", "source_url", "dataset_uri"),
        output=Output("dataset_uri", "dataset", "dataset.csv", "artifact_root"),
        failed_state="Download failed",
    ),
    Step(
        "train",
        # On SageMaker the job trains ("Train on SageMaker", not a Lambda task); the function then reads its card.
        states=("Train model", "Read the trained model's card"),
        needs=("run_date", "dataset_uri", "model_uri"),
        output=Output("model_uri", "model", "model.pkl", "artifact_root", card=True),
        failed_state="Training failed",
    ),
    Step(
        "upload",
        states=("Publish model",),
        needs=("run_date", "model_uri", "published_uri"),
        output=Output("published_uri", "published", "model.pkl", "publish_uri", card=True),
        failed_state="Publishing failed",
    ),
    Step(
        "promote",
        states=("Promote if newest",),
        needs=("run_date", "published_uri", "publish_root"),
        failed_state="Promotion failed",
    ),
    Step("report", states=("Report the run",)),
)
BY_NAME = {step.name: step for step in STEPS}
# The tasks that make a target, in order: what the plan looks at top-down (from the last), and ``force`` names.
TASKS: tuple[str, ...] = tuple(step.name for step in STEPS if step.output)
OUTPUTS: dict[str, Output] = {step.name: step.output for step in STEPS if step.output}
FAMILIES: dict[str, str] = {name: output.family for name, output in OUTPUTS.items()}
FUNCTIONS: tuple[str, ...] = tuple(step.function for step in STEPS)
# The quality gate is a Choice, not a function: a rejection is reported as this failed "task".
GATE = "gate"
GATE_FAILED_STATE = "Model rejected"


def step(name: str) -> Step:
    """The step called ``name``; KeyError naming the steps there are."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no step {name!r}; the steps are {', '.join(BY_NAME)}") from None


def made_by(field: str) -> Step:
    """The task whose output is the run's ``field`` (``dataset_uri`` → download)."""
    for candidate in STEPS:
        if candidate.output and candidate.output.field == field:
            return candidate
    raise KeyError(f"no task makes {field!r}")


def state_to_step() -> dict[str, str]:
    """Each Task state of the ASL that runs a Lambda function, to its step's name."""
    return {state: candidate.name for candidate in STEPS for state in candidate.states}
