"""parity: prove led_ref (the NumPy spec) and led_torch agree, and gate attention kernels against the contract.

Modules: strategies (hypothesis), tolerances (the one table), compare + report (per-output errors, first
divergence, JSON, reproducers), implementations (the one registry of sides: led_ref, led_torch per backend,
HF), check (model-level runs), generation (tie-aware), reference (the one float64 torch reference of the
kernel contract, forward and backward), support (`supports`: what a kernel declares), profiles (the gate's
shape grids), gate (kernel contract verdicts), broken_kernels (the gate's teeth), pytest_plugin, cli
(`python -m parity`: parses and dispatches to check_run, checkpoint_run (audit), replay, info, bench, ...).
See docs/parity.md and docs/contract.md.
"""

from .support import Support, support_of, supports

__all__ = ["Support", "support_of", "supports"]
