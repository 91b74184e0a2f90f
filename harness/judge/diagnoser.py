"""What a run asks about a failure (a Diagnoser, passed to harness.judge.runner.run_one), and asking it safely."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .findings import Finding

if TYPE_CHECKING:
    from ..cases.schema import Case
    from ..engines.base import EngineOutput
    from ..reference.agreement import Bound
    from .forward import Reference
    from .gradients import BackwardReference


class Diagnoser(Protocol):
    """What run_one asks about a failure: findings (harness.judge.findings), the closest explanation first, [] where
    nothing is known. harness.diagnosis.diagnose.Diagnoser asks the mutant catalogue; run_one(..., None) asks
    nothing (the mutation sweep judges thousands of deliberate failures). A diagnoser that raises costs only its
    own findings."""

    def forward(self, case: Case, engine: str, out: EngineOutput, ref: Reference, bound: Bound | None
                ) -> list[Finding]:
        """A wrong output (its shape, dtype or values): what reproduces it."""
        ...

    def gradients(self, case: Case, engine: str, out: EngineOutput, bref: BackwardReference, tensor: str
                  ) -> list[Finding]:
        """Wrong gradients (``tensor`` decided the fail): what reproduces them."""
        ...

    def error(self, case: Case, engine: str, exc: BaseException) -> list[Finding]:
        """An engine's exception: its likely cause."""
        ...


def ask(question: Any, *args: Any) -> list[Finding]:
    """A diagnoser's findings; never raises: a diagnosis that breaks is a finding of its own, the verdict stands."""
    try:
        return list(question(*args))
    except Exception as exc:  # noqa: BLE001 - a diagnosis is a hint; the verdict stands without it
        return [Finding("diagnosis_failed", type(exc).__name__, f"(diagnosis failed: {type(exc).__name__}: {exc})")]
