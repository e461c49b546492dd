"""Compare every side's forward outputs with the reference's while they are produced (parity.harness.streams):
each output is compared the moment the reference and a side both have it, then dropped; only its error and its
worst element are kept (parity.harness.compare.LocatedDiff). The result is the Comparison per side that
`compare_outputs` gives for whole outputs.

What is alive at once is what bounds the memory, so the order is chosen: a side that `reads_ahead` (HF)
computes each output before the reference computes its own, and is compared and dropped before the other sides
compute theirs; before anyone computes, memory freed so far is handed back to the system.

    comparisons = compare_streams(reference_stream(ref, inputs, groups), ref_side,
                                  [(side, torch_stream(side, model, inputs, groups))], inputs)
"""

from __future__ import annotations

from parity.harness.compare import (
    Comparison,
    LocatedDiff,
    compare_tensor,
    global_counts,
    missing_output,
    output_group,
    output_kind,
)
from parity.harness.tolerances import tolerance


def release_freed_memory() -> None:
    """Hand memory freed since the last call back to the system (glibc's malloc_trim; nothing elsewhere).

    glibc keeps what a thread frees in that thread's arena; each side runs in its own thread, so without this
    one side's freed work space (hundreds of MB at 16,384 tokens) would add to the next side's peak."""
    import ctypes

    try:
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # the process's own symbols: libc's on Linux
    except (OSError, TypeError):  # no C library to ask (Windows)
        return
    if trim is not None:
        trim(0)


class _SideFailed(Exception):
    """A side raised while producing its next output."""


def crash_row(what: str, err: BaseException) -> LocatedDiff:
    """The row standing for a side (or the reference) that raised: `<what>` with the exception."""
    return LocatedDiff(f"<{what}>", "hidden", (), float("inf"), 0.0, f"{type(err).__name__}: {err}")


def _skips(side, name: str) -> bool:
    """A side that cannot return attention probabilities is run without them and compared on the rest."""
    return output_group(name) == "attentions" and not side.returns_probabilities


def _next_row(side, stream, name: str, expected, reference, counts) -> LocatedDiff:
    """The side's output `name` compared with the reference's `expected`, or a `missing` row when the side's next
    output is another one (it stays unread, for a later name)."""
    try:
        release_freed_memory()
        item = stream.peek()
    except Exception as err:  # noqa: BLE001 - a crash of the side is a divergence, reported by the caller
        raise _SideFailed() from err
    if item is None or item[0] != name:
        budget = tolerance(side.dtype, reference.dtype, output_kind(name), hf=side.family == "hf")
        return missing_output(name, getattr(expected, "shape", ()), budget, side.label)
    _, actual = stream.take()
    return compare_tensor(name, actual, expected, side.dtype, reference.dtype, hf=side.family == "hf", counts=counts)


def reads_ahead(side) -> bool:
    """Whether a side computes its next output before the reference computes its own. HF's Longformer
    attention multiplies whole 2w x 2w chunks (at 16,384 tokens its layer needs ~5 GB, several times the
    probabilities it returns); run first, it never peaks while the reference's float64 output is alive."""
    return side.family == "hf"


def compare_streams(ref_stream, reference, side_streams: list, inputs: dict, on_output=None,
                    ahead=reads_ahead) -> list:
    """[Comparison per side], in model order. `ref_stream` (an OutputStream) holds the outputs of the Side
    `reference`; `side_streams`: [(Side, OutputStream)]; `inputs` (their masks) let global attentions be compared
    on valid slots; `on_output(name)` is called after each reference output; sides for which `ahead(side)` is
    true produce each output before the reference does.

    A side that raises gets a `<forward>` row after the rows it had earned and is not read again; a reference
    that raises gets a `<ref:... raised>` row on every side. Outputs only a side produces are `missing in` the
    reference. Every stream is closed on return."""
    counts = global_counts(inputs)
    comparisons = [Comparison(side.label, reference.label) for side, _ in side_streams]
    live = list(range(len(side_streams)))
    try:
        while True:
            live = [i for i in live if not ahead(side_streams[i][0]) or _read_ahead(side_streams[i], comparisons[i])]
            try:
                release_freed_memory()
                item = ref_stream.take()
            except Exception as err:  # noqa: BLE001 - the reference crashing on a real input is a finding too
                for c in comparisons:
                    c.diffs.append(crash_row(f"{reference.label} raised", err))
                return comparisons
            if item is None:
                break
            name, expected = item
            # sides that read ahead hold an output already: compared (and dropped) before the others compute
            order = sorted(live, key=lambda i: not ahead(side_streams[i][0]))
            live = [i for i in order if _compare_one(i, side_streams, comparisons, name, expected, reference,
                                                     counts)]
            live.sort()
            del item, expected  # before the reference computes its next output
            if on_output is not None:
                on_output(name)
        for i in live:
            _drain(side_streams[i], comparisons[i], reference)
        return comparisons
    finally:
        for _, stream in side_streams:
            stream.close()


def _read_ahead(side_stream, comparison: Comparison) -> bool:
    """Let the side compute its next output now; False when it crashed (it is then closed)."""
    _, stream = side_stream
    try:
        release_freed_memory()
        stream.peek()
    except Exception as err:  # noqa: BLE001 - a crash of the side is a divergence
        comparison.diffs.append(crash_row("forward", err))
        stream.close()
        return False
    return True


def _compare_one(i: int, side_streams: list, comparisons: list, name: str, expected, reference, counts) -> bool:
    """Compare side i's `name` (unless it skips it); False when the side crashed (it is then closed)."""
    side, stream = side_streams[i]
    if _skips(side, name):
        return True
    try:
        comparisons[i].diffs.append(_next_row(side, stream, name, expected, reference, counts))
    except _SideFailed as failed:
        comparisons[i].diffs.append(crash_row("forward", failed.__cause__))
        stream.close()
        return False
    return True


def _drain(side_stream, comparison: Comparison, reference) -> None:
    """Outputs a side produced after the reference ran out: each is `missing in` the reference."""
    side, stream = side_stream
    try:
        while (item := stream.take()) is not None:
            name, actual = item
            budget = tolerance(side.dtype, reference.dtype, output_kind(name), hf=side.family == "hf")
            comparison.diffs.append(missing_output(name, getattr(actual, "shape", ()), budget, reference.label))
    except Exception as err:  # noqa: BLE001 - a crash after its last compared output is still a crash
        comparison.diffs.append(crash_row("forward", err))
