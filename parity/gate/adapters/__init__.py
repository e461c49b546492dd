"""Adapters: gate a kernel written to another library's interface, without writing glue (docs/contract.md).

    from parity.gate import gate
    from transformers.models.led.modeling_led import LEDEncoderSelfAttention
    gate(LEDEncoderSelfAttention, adapter="hf-module", dtype="float32")     # HF's drop-in attention module
    gate(flash_attn_func, adapter="local", dtype="bfloat16", device="cuda")  # FlashAttention-style, (b, s, h, d)
    gate(flash_attn_varlen_func, adapter="local-varlen", ...)                # packed rows, cu_seqlens

`adapt(kernel, name)` returns a function with the contract's signature that runs `kernel` through the named
interface; what the interface cannot express becomes a declaration (`@parity.supports`) on it, merged with the
kernel's own, so the gate draws only cases the interface can state. Window parameters come from
led_ref.explore.conventions.
"""

from __future__ import annotations

from collections.abc import Callable

ADAPTERS = ("hf-module", "local", "local-varlen")


def adapt(kernel, name: str) -> Callable:
    """The contract-signature function that runs `kernel` through adapter `name` (one of ADAPTERS)."""
    if name == "hf-module":
        from parity.gate.adapters.hf_module import hf_module_kernel

        return hf_module_kernel(kernel)
    if name in ("local", "local-varlen"):
        from parity.gate.adapters.local import local_kernel

        return local_kernel(kernel, varlen=name == "local-varlen")
    raise ValueError(f"adapter must be one of {', '.join(ADAPTERS)}; got {name!r}")


__all__ = ["ADAPTERS", "adapt"]
