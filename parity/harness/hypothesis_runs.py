"""How the project runs hypothesis: one seed gives one set of draws, and shrinking has a time budget.

Every search the project makes (`check`'s model cases, the kernel gate, the test suite's profiles) goes through
here, so three rules hold everywhere:

- **Same seed, same cases.** Hypothesis mixes the literal constants of every loaded local module into its
  draws, so the cases a seed gives depend on which modules happen to be imported. `stable_draws()` imports
  every module of led_ref, led_torch and parity first, which makes that pool the same in the CLI, the
  Python API, the pytest plugin and the test suite.
- **Shrinking is bounded.** A divergence just above its budget shrinks slowly and each try runs whole
  models or kernels: `ShrinkBudget` stops trying new cases once its seconds are spent (and the run's
  deadline, if any, stops drawing new ones), keeping the smallest failing case found. Given `tries`, it
  counts cases instead, so one seed shrinks to the same case on a fast and a slow machine; the seconds then
  only cap a runaway shrink.
- **No line-coverage notes.** Hypothesis' explain phase adds nothing to a report that already names the
  output and the case.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable, Hashable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.reporting import with_reporter

NO_EXPLAIN = [p for p in Phase if p.name != "explain"]
PROJECT_PACKAGES = ("led_ref", "led_torch", "parity")

_stable = False


def stable_draws() -> None:
    """Import every module of the project's packages once, so hypothesis' pool of local constants (and so
    the cases a seed draws) no longer depends on what the caller imported. Modules whose optional
    dependencies are missing are skipped; `__main__` modules are never run."""
    global _stable
    if _stable:
        return
    for package_name in PROJECT_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue
            try:
                importlib.import_module(info.name)
            except ImportError:
                continue
    _stable = True


class ShrinkBudget:
    """When a seeded search stops trying cases.

    Before the first failure, drawing stops at `deadline` (a `time.monotonic()` value, or None). Once a case
    has failed, hypothesis tries at most `tries` new cases (None: no count) for at most `seconds` (and not
    past the deadline); after that only cases already seen failing run again, so hypothesis settles on the
    smallest one found so far. A count of tries does not depend on the machine's speed: with `tries`, one
    seed gives one shrunk case, and `seconds` is only a safety cap.
    """

    def __init__(self, seconds: float, deadline: float | None = None, tries: int | None = None):
        if tries is not None and (isinstance(tries, bool) or not isinstance(tries, int) or tries < 0):
            raise ValueError(f"tries must be an int >= 0 or None, got {tries!r}")
        self.seconds, self.deadline, self.tries = seconds, deadline, tries
        self.first_failure: float | None = None
        self.failing: set = set()
        self.tried = 0  # new cases run since the first failure

    @property
    def shrinking(self) -> bool:
        return self.first_failure is not None

    def skips(self, key: Hashable) -> bool:
        now = time.monotonic()
        if not self.shrinking:
            return self.deadline is not None and now > self.deadline
        if key in self.failing:
            return False
        limit = self.first_failure + self.seconds
        if self.deadline is not None:
            limit = min(limit, self.deadline)
        if now > limit or (self.tries is not None and self.tried >= self.tries):
            return True
        self.tried += 1
        return False

    def failed(self, key: Hashable) -> None:
        if self.first_failure is None:
            self.first_failure = time.monotonic()
        self.failing.add(key)


def run_seeded(body: Callable, strategy, examples: int, seed: int, budget: ShrinkBudget,
               key: Callable[[object], Hashable], failure: type[BaseException]):
    """Run `body(case)` on up to `examples` cases of `strategy` drawn with `seed`.

    `body` raises `failure` for a failing case; hypothesis then shrinks it within `budget`. Returns
    (the shrunk failure, hypothesis' report lines), or None when every case tried passed.
    """
    stable_draws()

    @settings(max_examples=examples, database=None, deadline=None, print_blob=True, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), phases=NO_EXPLAIN, derandomize=False)
    @given(case=strategy)
    def search(case) -> None:
        case_key = key(case)
        if budget.skips(case_key):
            return
        try:
            body(case)
        except failure:
            budget.failed(case_key)
            raise

    report: list[str] = []
    with with_reporter(report.append):
        try:
            hypothesis_seed(seed)(search)()
        except failure as found:
            return found, report
    return None
