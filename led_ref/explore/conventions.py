"""The contract's window in other libraries' parameters, and where a library cannot say it.

The contract (docs/contract.md) has one even window `w`: a local query `i` sees the keys `j` with
`|i - j| <= w/2` (its reach `r = w/2` on each side, the query itself included), clipped at the sequence
edges. Each library names that band its own way:

    convention        parameters for w = 4 (r = 2)                         the band they give
    led (contract)    window=4                                              |i - j| <= 2
    hf                attention_window=4 (two-sided, even)                  |i - j| <= 2
    longformer        attention_window=2 (one-sided, the original code)     |i - j| <= 2
    flash             window_size=(2, 2) (inclusive left, right reach)      i - 2 <= j <= i + 2
    flashinfer        window_left=3 (counts the query itself), no right     i - 2 <= j  (every key to the right)
    local-attention   window_size=2, look_backward=1, look_forward=1,       |i - j| <= 2 (exact_windowsize=True;
                      exact_windowsize=True (bucket size = reach)           without it whole buckets)
    natten            kernel_size=5 (odd, w + 1 keys)                       5 keys centred on i, but shifted
                                                                            (not clipped) at the edges

Seq 6, window 4: the contract's band and neighbourhood attention's (kernel_size 5) differ on the first and
last two rows, where NATTEN slides the window back inside the sequence instead of clipping it:

    contract            natten kernel_size=5
    i=0  X X X . . .    X X X X X .
    i=1  X X X X . .    X X X X X .
    i=2  X X X X X .    X X X X X .
    i=3  . X X X X X    . X X X X X
    i=4  . . X X X X    . X X X X X
    i=5  . . . X X X    . X X X X X

`parameters(w, name)` gives a library's parameters, `contract_window(name, **params)` reads them back,
`band(name, params, seq)` is the (seq, seq) boolean band they give, `differing_rows` and `limits` say where
the library cannot express the contract. No torch here: the gate's adapters and the explorer CLI both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.validation import check_window


@dataclass(frozen=True)
class Convention:
    """One library's way of naming the window: its parameters' names, and what it cannot express."""

    name: str
    library: str
    parameters: str  # how the contract's window maps, in words
    limits: tuple[str, ...] = ()  # parts of the contract the library has no parameter for


CONVENTIONS = {
    "led": Convention("led", "this project (led_ref, led_torch, the gate's contract)",
                      "window w: even, reach w/2 on each side, the query included"),
    "hf": Convention("hf", "HF transformers (LEDConfig / LongformerConfig.attention_window)",
                     "attention_window = w (two-sided, even)"),
    "longformer": Convention("longformer", "the original Longformer code (allenai/longformer)",
                             "attention_window = w/2 (one-sided)"),
    "flash": Convention("flash", "FlashAttention (flash_attn_func, flash_attn_varlen_func)",
                        "window_size = (w/2, w/2): inclusive reach to the left and to the right",
                        ("global tokens: no parameter (run them as a separate dense pass)",
                         "padding inside a row: varlen cu_seqlens packs one contiguous span per row, so only "
                         "left/right padding is expressible")),
    "flashinfer": Convention("flashinfer", "FlashInfer (window_left of its prefill/decode wrappers)",
                             "window_left = w/2 + 1: the left window counts the query itself",
                             ("the right reach: window_left bounds the left side only; without causal every key "
                              "to the right is visible, with causal none is",
                              "global tokens: no parameter (a custom mask or a separate pass)")),
    "local-attention": Convention("local-attention", "lucidrains' local-attention (LocalAttention)",
                                  "window_size = w/2 (the bucket), look_backward = 1, look_forward = 1, "
                                  "exact_windowsize = True; seq a multiple of w/2 (autopad pads otherwise)",
                                  ("global tokens: no parameter",
                                   "without exact_windowsize a query sees its whole bucket and both neighbours "
                                   "(up to 2 x (w/2) - 1 keys further)")),
    "natten": Convention("natten", "neighbourhood attention (NATTEN na1d, kernel_size)",
                         "kernel_size = w + 1 (odd), dilation 1",
                         ("the sequence edges: the first and last w/2 queries get a window shifted back inside "
                          "the sequence (always w + 1 keys), the contract clips it (fewer keys)",
                          "global tokens and padding: no parameter")),
}
NAMES = tuple(CONVENTIONS)


def _convention(name: str) -> Convention:
    if name not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(NAMES)}; got {name!r}")
    return CONVENTIONS[name]


def parameters(window: int, name: str) -> dict:
    """The library parameters that give the contract's window `window` (as close as the library can).

    >>> parameters(4, "flash")
    {'window_size': (2, 2)}
    >>> parameters(4, "natten")
    {'kernel_size': 5}
    """
    _convention(name)
    w = check_window(window)
    r = w // 2
    return {
        "led": {"window": w},
        "hf": {"attention_window": w},
        "longformer": {"attention_window": r},
        "flash": {"window_size": (r, r)},
        "flashinfer": {"window_left": r + 1},
        "local-attention": {"window_size": r, "look_backward": 1, "look_forward": 1, "exact_windowsize": True},
        "natten": {"kernel_size": w + 1},
    }[name]


def _int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def contract_window(name: str, **params) -> int:
    """The contract's window for a library's parameters; ValueError naming the parameter when the band they
    give is not a contract window (asymmetric, odd, inexact buckets).

    >>> contract_window("longformer", attention_window=2)
    4
    >>> contract_window("flash", window_size=(3, 3))
    6
    """
    _convention(name)
    if name == "led":
        return check_window(params.get("window"))
    if name == "hf":
        return check_window(params.get("attention_window"))
    if name == "longformer":
        return 2 * _int("attention_window", params.get("attention_window"), 1)
    if name == "flash":
        left, right = params.get("window_size", (None, None))
        left, right = _int("window_size[0]", left, 1), _int("window_size[1]", right, 1)
        if left != right:
            raise ValueError(f"window_size {(left, right)} is asymmetric: the contract's window reaches as far left "
                             "as right")
        return 2 * left
    if name == "flashinfer":
        return 2 * (_int("window_left", params.get("window_left"), 2) - 1)
    if name == "local-attention":
        size = _int("window_size", params.get("window_size"), 1)
        back, forward = params.get("look_backward", 1), params.get("look_forward", 1)
        if back != 1 or forward != 1:
            raise ValueError(f"look_backward {back} / look_forward {forward}: the contract needs 1 and 1 (reach = "
                             "window_size on each side)")
        if not params.get("exact_windowsize", False):
            raise ValueError("exact_windowsize=False: a query sees whole buckets, not a band of fixed reach")
        return 2 * size
    size = _int("kernel_size", params.get("kernel_size"), 3)
    if size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (a centred window), got {size}")
    return size - 1


def contract_band(window: int, seq: int) -> np.ndarray:
    """(seq, seq) bool: key j is in local query i's window, |i - j| <= w/2 (no padding, no globals)."""
    w = check_window(window)
    i = np.arange(seq)
    return np.abs(i[:, None] - i[None, :]) <= w // 2


def band(name: str, params: dict, seq: int) -> np.ndarray:
    """(seq, seq) bool: the keys each query sees under a library's parameters (full rows, no global tokens).

    >>> band("natten", {"kernel_size": 3}, 4).astype(int)[0].tolist()   # shifted at the edge: keys 0..2
    [1, 1, 1, 0]
    """
    _convention(name)
    seq = _int("seq", seq, 1)
    i = np.arange(seq)[:, None]
    j = np.arange(seq)[None, :]
    if name in ("led", "hf", "longformer"):
        return contract_band(contract_window(name, **params), seq)
    if name == "flash":
        left, right = params["window_size"]
        left = seq if left < 0 else left  # FlashAttention's -1: unbounded
        right = seq if right < 0 else right
        return (j >= i - left) & (j <= i + right)
    if name == "flashinfer":
        left = params["window_left"]
        seen = np.ones((seq, seq), bool) if left < 0 else j > i - left
        return seen & (j <= i) if params.get("causal", False) else seen
    if name == "local-attention":
        size, back = params["window_size"], params.get("look_backward", 1)
        forward = params.get("look_forward", 1)
        bucket_i, bucket_j = i // size, j // size
        seen = (bucket_j >= bucket_i - back) & (bucket_j <= bucket_i + forward)
        if params.get("exact_windowsize", False):
            seen &= (j >= i - size * back) & (j <= i + size * forward)
        return seen
    size = params["kernel_size"]
    start = np.clip(i - size // 2, 0, max(0, seq - size))  # NATTEN slides the window back inside
    return (j >= start) & (j < start + size)


def differing_rows(window: int, name: str, seq: int) -> list[int]:
    """The queries whose keys under `name`'s parameters for `window` differ from the contract's."""
    got = band(name, parameters(window, name), seq)
    return [int(r) for r in np.flatnonzero((got != contract_band(window, seq)).any(axis=1))]


def limits(name: str) -> tuple[str, ...]:
    """What of the contract the library has no parameter for (empty: it expresses all of it)."""
    return _convention(name).limits


def identify(seen: np.ndarray, window: int) -> str | None:
    """Name the layout of a (seq, seq) bool band of visible keys (full rows, no globals) relative to the
    contract's `window`: None when it is the contract's band, else a sentence saying which known mistake
    gives exactly this band (or that it is some other band)."""
    seen = np.asarray(seen, bool)
    seq = seen.shape[0]
    if seen.shape != (seq, seq):
        raise ValueError(f"seen must be a square (seq, seq) array, got shape {seen.shape}")
    w = check_window(window)
    r = w // 2
    if np.array_equal(seen, contract_band(w, seq)):
        return None
    if np.array_equal(seen, band("natten", {"kernel_size": w + 1}, seq)):
        return (f"the window is shifted, not clipped, at the sequence edges (neighbourhood attention's "
                f"kernel_size={w + 1}); the contract clips it: query 0 sees keys 0..{r}")
    i, j = np.nonzero(seen)
    if i.size:  # a band of fixed reach is read off its widest row, then checked whole
        left, right = int(np.max(i - j)), int(np.max(j - i))
        if np.array_equal(seen, band("flash", {"window_size": (max(left, 0), max(right, 0))}, seq)):
            return (f"the window reaches {left} keys left and {right} right, inclusive (FlashAttention's "
                    f"window_size=({left}, {right})); the contract's window {w} reaches {r} on each side")
    for size in range(1, min(seq, 2 * w) + 1):
        if np.array_equal(seen, band("local-attention", {"window_size": size}, seq)):
            return (f"queries see whole buckets of {size} keys and both neighbouring buckets (local-attention "
                    f"without exact_windowsize); the contract's band reaches exactly {r} on each side")
    return "the visible keys form neither the contract's band nor any known window convention"


def describe(window: int, name: str, seq: int) -> str:
    """Lines for the explorer: the library's parameters for `window`, and where it cannot express the contract
    on a sequence of `seq` tokens."""
    convention = _convention(name)
    params = parameters(window, name)
    text = ", ".join(f"{k}={v}" for k, v in params.items())
    lines = [f"convention {name}: {convention.library}",
             f"  window {window} (reach {window // 2} each side) is {text}: {convention.parameters}"]
    rows = differing_rows(window, name, seq) if seq else []
    if rows:
        shown = ", ".join(map(str, rows[:12])) + (" ..." if len(rows) > 12 else "")
        lines.append(f"  cannot express: {len(rows)} of {seq} query rows see other keys than the contract's: {shown}")
    if not convention.limits and not rows:
        lines.append("  expresses the whole contract (window, global tokens, padding)")
    lines += [f"  cannot express: {limit}" for limit in convention.limits]
    return "\n".join(lines) + "\n"
