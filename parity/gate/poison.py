"""How the gate hands a case to the kernel: the memory its six float inputs live in.

    contiguous   six fresh tensors
    packed       (batch, heads, seq, d) views of one (batch, seq, 6, heads, d) tensor, the layout a fused QKV
                 projection leaves behind (`case.strided`)
    poisoned     the same two layouts inside larger buffers whose memory before, between and after the
                 views holds NaN (`case.poisoned`): the contiguous form puts the six tensors one after the
                 other in one flat buffer with NaN gaps of `margin_rows(window)` rows; the packed form adds
                 NaN rows before and after the sequence, a seventh NaN slot and NaN columns past head_dim
    transposed   each tensor a (batch, heads, seq, d) view of its own (batch, heads, d, seq) tensor: head_dim
                 is not the unit-stride axis (`case.transposed`; a kernel, or a library op under it, that reads
                 head_dim as contiguous whatever the strides say gets other numbers)

A kernel that reads past the end of an input (a tile loaded without its bounds mask, a grid that
overruns the sequence) gets NaN there; multiplying it by a probability of 0 still gives NaN, so the
output shows it on valid tokens. The same kernel on contiguous tensors reads whatever memory lies
there, usually harmless numbers, which is why such bugs ship. `outside_read_cause` tells the two apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from parity.harness.strategies import AttentionCase

SLOTS = 6
ARRAYS = ("query", "key", "value", "global_query", "global_key", "global_value")
LAYOUTS = ("contiguous", "packed", "poisoned contiguous", "poisoned packed", "transposed")
GAP_COLUMNS = 3  # NaN columns past head_dim in the poisoned packed buffer: rows no longer adjacent


@dataclass(repr=False)
class GateCase(AttentionCase):
    """An AttentionCase that also says whether its inputs arrive inside NaN-filled buffers."""

    poisoned: bool = False
    transposed: bool = False  # head_dim not unit-stride (the "transposed" layout; poisoned takes precedence)

    def describe(self) -> str:
        return (super().describe() + (" poisoned (NaN around the inputs)" if self.poisoned else "")
                + (" transposed (head_dim not unit-stride)" if self.layout == "transposed" else ""))

    @property
    def layout(self) -> str:
        return layout_of(self)


def layout_of(case) -> str:
    """The layout a case (or a CaseRecipe) is handed over in: one of LAYOUTS."""
    base = "packed" if case.strided else "contiguous"
    if getattr(case, "poisoned", False):
        return f"poisoned {base}"
    return "transposed" if getattr(case, "transposed", False) else base


def margin_rows(window: int) -> int:
    """NaN rows before and after the views: more than any tile or window a kernel could overrun by."""
    return max(128, int(window))


@dataclass
class HandedInputs:
    """What the kernel receives (`tensors`, `token_kind`, `window`) and the buffers they live in.

    `leaves` are the tensors autograd differentiates through (the buffers, when the inputs are views);
    `margins` are views of the buffers' memory that belongs to no input (the NaN around them): with the six
    inputs they cover every buffer exactly once."""

    tensors: list
    token_kind: object
    window: int
    layout: str
    buffers: list
    margins: list

    def wrote_outside(self) -> bool:
        """True when the NaN around the views no longer is NaN: the kernel wrote outside its inputs."""
        import torch

        return not all(bool(torch.isnan(margin).all()) for margin in self.margins)

    def description(self) -> dict:
        """Shapes, strides, storage offsets and dtypes of the six tensors as handed (for case.json)."""
        return {
            "layout": self.layout,
            "strides": {n: list(t.stride()) for n, t in zip(ARRAYS, self.tensors, strict=True)},
            "storage_offsets": {n: int(t.storage_offset()) for n, t in zip(ARRAYS, self.tensors, strict=True)},
            "contiguous": {n: bool(t.is_contiguous()) for n, t in zip(ARRAYS, self.tensors, strict=True)},
            "buffer_shapes": [list(b.shape) for b in self.buffers],
            "torch_dtype": str(self.tensors[0].dtype).removeprefix("torch."),
        }


def as_torch(array):
    """A float array as a torch tensor on the CPU, sharing its memory when it can (a read-only array is copied:
    torch has no read-only tensors)."""
    import torch

    if isinstance(array, np.ndarray) and array.flags.writeable:
        return torch.from_numpy(array)
    return torch.tensor(np.asarray(array))


def empty_buffer(shape, dtype, device="cpu"):
    """torch.empty, but CPU memory comes from NumPy where it has the dtype: NumPy asks the kernel for huge pages
    for large arrays and torch does not, so first touching the gate's 10-100 MB inputs costs about a quarter."""
    import torch

    numpy_dtype = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16}.get(dtype)
    if numpy_dtype is None or torch.device(device).type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    return torch.from_numpy(np.empty(shape, numpy_dtype))


def hand_over(case: AttentionCase, dtype=None, device: str = "cpu", requires_grad: bool = False) -> HandedInputs:
    """The kernel's inputs for `case` in its layout; with `requires_grad` the buffers are autograd leaves and
    the six tensors views of them (so gradients reach a kernel's strided reads as they would in a model).
    Each array is copied once, straight into the memory the kernel gets."""
    import torch

    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype or torch.float64
    arrays = [as_torch(a) for a in case.arrays()]
    if any(a.shape != arrays[0].shape for a in arrays):  # copy_ would broadcast them
        raise ValueError(f"the six arrays must share one (batch, heads, seq, head_dim) shape, got "
                         f"{[tuple(a.shape) for a in arrays]}")
    batch, heads, seq, d = arrays[0].shape
    kinds = torch.tensor(case.token_kind, dtype=torch.long, device=device)
    layout = layout_of(case)
    if layout == "contiguous":
        tensors = [empty_buffer(a.shape, dtype, device).copy_(a).requires_grad_(requires_grad) for a in arrays]
        return HandedInputs(tensors, kinds, case.window, layout, list(tensors), [])
    if layout == "packed":  # (batch, seq, 6, heads, d) in C order
        buffer = empty_buffer((batch, seq, SLOTS, heads, d), dtype, device)
        for i, a in enumerate(arrays):
            buffer[:, :, i].transpose(1, 2).copy_(a)
        buffer.requires_grad_(requires_grad)
        tensors = [buffer[:, :, i].transpose(1, 2) for i in range(SLOTS)]
        return HandedInputs(tensors, kinds, case.window, layout, [buffer], [])
    if layout == "transposed":  # each a view of its own (batch, heads, d, seq) tensor
        buffers = [empty_buffer((batch, heads, d, seq), dtype, device) for _ in arrays]
        for buffer, a in zip(buffers, arrays, strict=True):
            buffer.transpose(-1, -2).copy_(a)
            buffer.requires_grad_(requires_grad)
        return HandedInputs([b.transpose(-1, -2) for b in buffers], kinds, case.window, layout, buffers, [])
    m = margin_rows(case.window)
    if layout == "poisoned packed":
        buffer = empty_buffer((batch, seq + 2 * m, SLOTS + 1, heads, d + GAP_COLUMNS), dtype, device)
        buffer.fill_(float("nan"))
        for i, a in enumerate(arrays):
            buffer[:, m:m + seq, i, :, :d].transpose(1, 2).copy_(a)
        buffer.requires_grad_(requires_grad)
        tensors = [buffer[:, m:m + seq, i, :, :d].transpose(1, 2) for i in range(SLOTS)]
        memory, inner = buffer.detach(), buffer.detach()[:, m:m + seq]
        # rows before and after the sequence, the seventh slot, the columns past head_dim
        margins = [memory[:, :m], memory[:, m + seq:], inner[:, :, SLOTS:], inner[:, :, :SLOTS, :, d:]]
        return HandedInputs(tensors, kinds, case.window, layout, [buffer], margins)
    # poisoned contiguous: [NaN gap][query][NaN gap][key] ... [global_value][NaN gap] in one flat buffer
    n, gap = batch * heads * seq * d, m * d
    buffer = empty_buffer((gap + SLOTS * (n + gap),), dtype, device)
    buffer.fill_(float("nan"))
    starts = [gap + i * (n + gap) for i in range(SLOTS)]
    for start, a in zip(starts, arrays, strict=True):
        buffer[start:start + n].view(batch, heads, seq, d).copy_(a)
    buffer.requires_grad_(requires_grad)
    tensors = [buffer[start:start + n].view(batch, heads, seq, d) for start in starts]
    memory = buffer.detach()
    margins = [memory[:gap]] + [memory[start + n:start + n + gap] for start in starts]
    return HandedInputs(tensors, kinds, case.window, layout, [buffer], margins)


def clean(case: AttentionCase) -> AttentionCase:
    """The same case handed over as contiguous tensors (no NaN around them, no strides)."""
    if isinstance(case, GateCase):
        return dataclasses.replace(case, poisoned=False, strided=False, transposed=False)
    return dataclasses.replace(case, strided=False)


def outside_read_cause(kernel, case: AttentionCase, dtype, device: str = "cpu") -> str | None:
    """Why a kernel gave non-finite output on a poisoned case, when the reason is that it reads outside its
    inputs: its output on the same values as contiguous tensors is finite on every valid token. None when
    the case is not poisoned, the clean run is not finite either, or it fails in another way."""
    import torch

    if not getattr(case, "poisoned", False):
        return None
    handed = hand_over(clean(case), dtype, device)
    try:
        with torch.no_grad():
            out = kernel(*handed.tensors, handed.token_kind, handed.window)
        got = out.detach().to("cpu", torch.float64).numpy()
    except Exception:  # noqa: BLE001 - a diagnosis that fails says nothing
        return None
    valid = (np.asarray(case.token_kind) != 0)[:, None, :, None]
    if got.shape != case.query.shape or not np.isfinite(np.where(valid, got, 0.0)).all():
        return None
    return ("likely cause: the kernel reads outside its inputs (its output is finite on the same values as "
            "contiguous tensors, NaN when the memory around the views holds NaN; a probability of 0 times NaN "
            f"is NaN; layout {layout_of(case)})")
