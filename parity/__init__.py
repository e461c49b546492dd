"""parity: prove led_ref (the NumPy spec) and led_torch agree, and gate attention kernels against the contract.

Rooms: harness/ (cases, comparisons, tolerances, reports, generation parity), gate/ (the kernel gate),
commands/ (`led-parity`, one module per command), perf/ (bench), hf/ (HF transformers helpers).
See docs/parity.md, docs/contract.md and docs/architecture.md.
"""

from parity.gate.support import Support, support_of, supports

__all__ = ["Support", "support_of", "supports"]
