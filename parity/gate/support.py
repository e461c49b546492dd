"""Declared support: which shapes, dtypes and devices an attention kernel claims to handle (docs/contract.md).

    import parity

    @parity.supports(head_dim_multiple=16, min_window=16)
    def my_attention(query, key, value, global_query, global_key, global_value, token_kind, window): ...

The gate generates cases only inside the support (never drawn and thrown away) and reports which shapes of
each profile the support excluded. A kernel that raises on a supported case fails with the verdict `error`.
A kernel without a declaration supports everything (and is assumed to have a backward).

Two declarations change what the gate asks rather than which shapes it draws:

    @parity.supports(compute_dtype="float32")   # float64 in and out, float32 inside (HF's softmax):
                                                # judged by float32's budget, and the report says so
    @parity.supports(padding=False)             # a sliding-window kernel without a key mask: no padding
                                                # is drawn ("edges": left/right padding only, no holes)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from parity.harness.tolerances import DTYPE_ORDER, dtype_name

DEVICES = ("cpu", "cuda")
ATTRIBUTE = "__led_parity_support__"
# What padding a kernel takes, most to least: any layout, one valid span per row (left/right padding and
# empty rows, no holes: what varlen cu_seqlens can say), none at all (a kernel with no key mask).
PADDING = (True, "edges", False)
PADDING_FLAGS = {True: "any", "edges": "edges", False: "none"}


def _positive_int(name: str, value, minimum: int = 1):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"support: {name} must be an int >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class Support:
    """What a kernel handles. None = no limit. `backward` False declares a forward-only kernel.

    head_dims: the allowed head dims (a set), or None for any; head_dim_multiple: head_dim % it == 0.
    min_window/max_window: bounds on the (even) window; max_seq: longest seq; max_globals: most global
    tokens in one row; dtypes/devices: what it runs on (names, e.g. ("float32", "bfloat16"), ("cuda",)).
    compute_dtype: the precision the kernel computes in when it is lower than its inputs' (its outputs are then
    judged by that dtype's budget); padding: True (any layout), "edges" (left/right padding only), False (none).
    """

    head_dims: tuple[int, ...] | None = None
    head_dim_multiple: int = 1
    min_window: int = 2
    max_window: int | None = None
    max_seq: int | None = None
    max_globals: int | None = None
    dtypes: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None
    backward: bool = True
    compute_dtype: str | None = None
    padding: bool | str = True

    def __post_init__(self):
        if self.head_dims is not None:
            dims = tuple(self.head_dims) if not isinstance(self.head_dims, int) else (self.head_dims,)
            if not dims:
                raise ValueError("support: head_dims must name at least one head dim, got an empty set")
            for d in dims:
                _positive_int("head_dims entry", d)
            object.__setattr__(self, "head_dims", tuple(sorted(set(dims))))
        _positive_int("head_dim_multiple", self.head_dim_multiple)
        _positive_int("min_window", self.min_window, 2)
        _positive_int("max_window", self.max_window, 2)
        _positive_int("max_seq", self.max_seq)
        _positive_int("max_globals", self.max_globals, 0)
        if self.max_window is not None and self.max_window < self.min_window:
            raise ValueError(f"support: max_window {self.max_window} is below min_window {self.min_window}")
        if self.head_dims is not None and not any(d % self.head_dim_multiple == 0 for d in self.head_dims):
            raise ValueError(f"support: no head dim of {self.head_dims} is a multiple of "
                             f"head_dim_multiple {self.head_dim_multiple}")
        if self.dtypes is not None:
            names = (self.dtypes,) if isinstance(self.dtypes, str) else tuple(self.dtypes)
            object.__setattr__(self, "dtypes", tuple(dtype_name(d) for d in names))
        if self.devices is not None:
            names = (self.devices,) if isinstance(self.devices, str) else tuple(self.devices)
            bad = [d for d in names if d not in DEVICES]
            if bad:
                raise ValueError(f"support: devices must be among {', '.join(DEVICES)}, got {bad[0]!r}")
            object.__setattr__(self, "devices", names)
        if not isinstance(self.backward, bool):
            raise TypeError(f"support: backward must be True or False, got {self.backward!r}")
        if self.compute_dtype is not None:
            object.__setattr__(self, "compute_dtype", dtype_name(self.compute_dtype))
        if not any(self.padding is p for p in PADDING) and self.padding != "edges":
            raise ValueError(f"support: padding must be True, 'edges' or False, got {self.padding!r}")

    # -------------------------------------------------------------------------------- queries
    def head_dim_ok(self, head_dim: int) -> bool:
        return head_dim % self.head_dim_multiple == 0 and (self.head_dims is None or head_dim in self.head_dims)

    def window_ok(self, window: int) -> bool:
        return window >= self.min_window and (self.max_window is None or window <= self.max_window)

    def seq_ok(self, seq: int) -> bool:
        return self.max_seq is None or seq <= self.max_seq

    def globals_limit(self, valid_tokens: int) -> int:
        """The most global tokens a row with `valid_tokens` non-padding tokens may have."""
        return valid_tokens if self.max_globals is None else min(valid_tokens, self.max_globals)

    def why_not(self, window: int, seq: int, head_dim: int) -> str | None:
        """Why the shape is outside the support (None when it is inside)."""
        if not self.window_ok(window):
            return f"window {window}"
        if not self.head_dim_ok(head_dim):
            return f"head_dim {head_dim}"
        if not self.seq_ok(seq):
            return f"seq {seq}"
        return None

    def budget_dtype(self, dtype) -> str:
        """The dtype whose budget judges a run in `dtype`: the declared compute_dtype when it is less precise."""
        dtype = dtype_name(dtype)
        if self.compute_dtype is not None and DTYPE_ORDER.index(self.compute_dtype) > DTYPE_ORDER.index(dtype):
            return self.compute_dtype
        return dtype

    def drawn(self, case):
        """A drawn case (CaseRecipe or AttentionCase) with the padding the kernel takes: padding=False turns
        padding tokens into local ones, "edges" fills the holes inside each row's valid span."""
        if self.padding is True:
            return case
        kinds = np.array(case.token_kind, copy=True)
        for row in kinds:
            valid = np.flatnonzero(row)
            if self.padding is False:
                row[row == 0] = 1
            elif valid.size:
                span = row[valid[0]:valid[-1] + 1]
                span[span == 0] = 1
        return dataclasses.replace(case, token_kind=kinds)

    def check_run(self, dtype, device: str) -> None:
        """ValueError when the run asks for a dtype or device the kernel does not declare."""
        dtype = dtype_name(dtype)
        if self.dtypes is not None and dtype not in self.dtypes:
            raise ValueError(f"the kernel supports dtypes {', '.join(self.dtypes)}; --dtype {dtype} is outside")
        if self.devices is not None and device not in self.devices:
            raise ValueError(f"the kernel supports devices {', '.join(self.devices)}; --device {device} is outside")

    def narrowed(self, **limits) -> Support:
        """This support with further limits (None entries ignored); sets and bounds intersect."""
        limits = {k: v for k, v in limits.items() if v is not None}
        unknown = set(limits) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"support: unknown limit(s) {', '.join(sorted(unknown))}")
        merged = dataclasses.asdict(self)
        for name, value in limits.items():
            old = merged[name]
            if old is None or name in ("backward", "compute_dtype"):
                merged[name] = value
            elif name == "padding":  # the lesser padding wins
                merged[name] = PADDING[max(_padding_rank(old), _padding_rank(value))]
            elif name in ("head_dims", "dtypes", "devices"):
                value = (value,) if isinstance(value, (int, str)) else tuple(value)
                kept = tuple(v for v in old if v in value)
                if not kept:
                    raise ValueError(f"support: {name} {value} leaves nothing of the kernel's {old}")
                merged[name] = kept
            elif name == "head_dim_multiple":
                from math import lcm

                merged[name] = lcm(old, value)
            elif name == "min_window":
                merged[name] = max(old, value)
            else:
                merged[name] = min(old, value)
        return Support(**merged)

    def describe(self) -> str:
        parts = []
        if self.head_dims is not None:
            parts.append(f"head_dims {','.join(map(str, self.head_dims))}")
        if self.head_dim_multiple > 1:
            parts.append(f"head_dim % {self.head_dim_multiple} == 0")
        if self.min_window > 2:
            parts.append(f"window >= {self.min_window}")
        if self.max_window is not None:
            parts.append(f"window <= {self.max_window}")
        if self.max_seq is not None:
            parts.append(f"seq <= {self.max_seq}")
        if self.max_globals is not None:
            parts.append(f"globals per row <= {self.max_globals}")
        if self.dtypes is not None:
            parts.append(f"dtypes {','.join(self.dtypes)}")
        if self.devices is not None:
            parts.append(f"devices {','.join(self.devices)}")
        if not self.backward:
            parts.append("forward only")
        if self.compute_dtype is not None:
            parts.append(f"computes in {self.compute_dtype}")
        if self.padding is not True:
            parts.append("no padding" if self.padding is False else "padding at the row edges only (no holes)")
        return "; ".join(parts) or "everything"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _padding_rank(value) -> int:
    return 1 if value == "edges" else PADDING.index(bool(value))


def padding_value(text: str):
    """The CLI's --padding any|edges|none -> True, "edges", False (ValueError naming the value)."""
    for value, flag in PADDING_FLAGS.items():
        if text == flag:
            return value
    raise ValueError(f"--padding must be one of {', '.join(PADDING_FLAGS.values())}, got {text!r}")


def supports(**limits):
    """Decorator: declare what the kernel supports (the fields of `Support`); returns the kernel itself."""
    support = Support(**limits)

    def declare(kernel):
        setattr(kernel, ATTRIBUTE, support)
        return kernel

    return declare


def support_of(kernel) -> Support:
    """The kernel's declared Support (everything when it declares none)."""
    declared = getattr(kernel, ATTRIBUTE, None)
    if declared is None:
        return Support()
    if not isinstance(declared, Support):
        raise TypeError(f"{ATTRIBUTE} of the kernel must be a parity.Support, got {type(declared).__name__}")
    return declared


__all__ = ["Support", "supports", "support_of", "DTYPE_ORDER"]
