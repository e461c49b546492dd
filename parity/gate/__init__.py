"""The kernel gate: does an attention kernel meet the contract of docs/contract.md?

    from parity.gate import gate
    result = gate(my_kernel, profile="realistic", dtype="bfloat16", seed=0, backward=True)
    assert result.passed, result.message()

judge (cases through the kernel and the reference, verdicts), support (what a kernel declares with
`@parity.supports`), profiles (the shape grids: toy, boundary, realistic), reference (the float64 torch
reference of the contract, forward and backward), broken_kernels (planted bugs the gate must reject),
pytest_plugin (`assert_kernel_matches_spec`, the `led_kernel_gate` fixture).
"""

from parity.gate.judge import GateResult, KernelError, KernelFailure, KernelMismatch, assert_gate, check_case, gate
from parity.gate.support import Support, support_of, supports

__all__ = ["GateResult", "KernelError", "KernelFailure", "KernelMismatch", "Support", "assert_gate", "check_case",
           "gate", "support_of", "supports"]
