"""`audit-onnx`: every LED ONNX file of an export folder run in ONNX Runtime against led_ref (float64).

An export can be right at the shape it was traced at and wrong at every other: HF's sliding-window code builds
its band with `as_strided`, and exporters record those strides as constants. So the audit runs the files on
shapes chosen to differ from the traced one, one factor at a time first, so that the first failing case says
what the export cannot take:

    traced shape   the shape the export recorded (parity.onnx.export writes it into the file's metadata)
    length         batch 1, one global token, no padding, at lengths around the windows and the traced length
    global count   0, 2, 3, 8 and every token global
    padding        right, left, a hole, all but one token, a global flag on a padding token (ignored, as in HF)
    batch          3 and 4 rows of different padding and global counts
    random         `examples` cases drawn from `seed`: any batch, length, padding and global layout

Each file is compared with led_ref on the same inputs: the encoder's last_hidden_state; the decoder's logits and
present keys/values given led_ref's encoder output (so a decoder is judged on its own); the decoder with past
given led_ref's cache of all but the last target token. Tolerances are the harness's (float32 vs float64:
1e-4 scaled error). With decoder files present, greedy generation runs through the ONNX Runtime sessions (the
search loop is led_ref's: the files give the logits) and is compared token by token with led_ref's, tie-aware
(parity.harness.generation). The text, if given, is one more case, tokenized with the checkpoint's tokenizer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from parity.harness.compare import Comparison, LocatedDiff, located_error
from parity.harness.tolerances import tolerance
from parity.onnx.generate import REFERENCE, generation_parity
from parity.onnx.sessions import (
    DECODER_FILE,
    DECODER_WITH_PAST_FILE,
    ENCODER_FILE,
    OnnxFile,
    OnnxLED,
    OnnxRunError,
)

MAX_TARGET = 6  # decoder tokens of a case (teacher-forced)
GENERATION_CASES = 2  # generated cases that also generate (besides the text)
SHORT_NAMES = {ENCODER_FILE: "encoder", DECODER_FILE: "decoder", DECODER_WITH_PAST_FILE: "with past"}


# ------------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    """One set of inputs: why it was chosen (`kind`), the encoder inputs (batch, seq) and teacher-forced decoder
    inputs (batch, target)."""

    kind: str
    input_ids: np.ndarray
    attention_mask: np.ndarray
    global_attention_mask: np.ndarray
    decoder_input_ids: np.ndarray
    beams: int = 1  # beams to generate with, where the case generates

    @property
    def batch(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def global_counts(self) -> list[int]:
        return [int(n) for n in ((self.global_attention_mask != 0) & (self.attention_mask != 0)).sum(axis=1)]

    @property
    def padding(self) -> list[int]:
        return [int(n) for n in (self.attention_mask == 0).sum(axis=1)]

    def shape(self) -> dict:
        return {"batch": self.batch, "length": self.length, "global_counts": self.global_counts,
                "padding": self.padding, "target": int(self.decoder_input_ids.shape[1])}

    def describe(self) -> str:
        flags = int(((self.global_attention_mask != 0) & (self.attention_mask == 0)).sum())
        flagged = f" (+{flags} on padding, ignored)" if flags else ""
        return (f"batch {self.batch}, length {self.length}, globals {self.global_counts}{flagged}, "
                f"padding [{', '.join(self.padding_layout())}]")

    def padding_layout(self) -> list[str]:
        """Per row the padding tokens and where they sit: '6' (on the right, the usual), '3 left', '3 inside'."""
        out = []
        for row, pad in zip(self.attention_mask, self.padding, strict=True):
            zeros = np.flatnonzero(row == 0)
            where = "" if not pad or zeros[0] == self.length - pad else (" left" if zeros[-1] == pad - 1
                                                                        else " inside")
            out.append(f"{pad}{where}")
        return out

    def encoder_inputs(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "global_attention_mask": self.global_attention_mask}


@dataclass(frozen=True)
class TracedShape:
    """The shape an export was traced at: batch, length, and per row the global tokens and padding."""

    batch: int
    length: int
    global_counts: tuple[int, ...] | None
    padding: tuple[int, ...] | None

    @classmethod
    def of(cls, f: OnnxFile) -> TracedShape | None:
        """From the file's metadata (parity.onnx.export records it), else from the axes it declares fixed."""
        recorded = f.traced or {}
        shape = (recorded.get("inputs") or {}).get("input_ids")
        if shape and len(shape) == 2:
            counts, padding = recorded.get("global_counts"), recorded.get("padding")
            return cls(int(shape[0]), int(shape[1]), tuple(counts) if counts else None,
                       tuple(padding) if padding else None)
        declared = f.inputs.get("input_ids", (None, []))[1]
        if len(declared) == 2 and all(isinstance(d, int) for d in declared):
            return cls(declared[0], declared[1], None, None)
        return None

    def describe(self) -> str:
        text = f"batch {self.batch}, length {self.length}"
        if self.global_counts is not None:
            text += f", globals {list(self.global_counts)}"
        if self.padding is not None:
            text += f", padding {list(self.padding)}"
        return text


def factors(case: Case) -> dict[str, object]:
    """What a case is made of, as the audit varies it: length, global counts, batch, padding (per-row counts
    sorted, so rows in another order are the same)."""
    return {"length": case.length, "global counts": tuple(sorted(case.global_counts)), "batch": case.batch,
            "padding": tuple(sorted(case.padding))}


def _traced_factors(traced: TracedShape) -> dict[str, object]:
    return {"length": traced.length,
            "global counts": None if traced.global_counts is None else tuple(sorted(traced.global_counts)),
            "batch": traced.batch, "padding": None if traced.padding is None else tuple(sorted(traced.padding))}


def differing(case: Case, traced: TracedShape | None) -> list[str]:
    """The factors in which `case` differs from the traced shape (every factor when none was recorded)."""
    mine = factors(case)
    if traced is None:
        return list(mine)
    theirs = _traced_factors(traced)
    return [name for name in mine if theirs[name] is not None and theirs[name] != mine[name]]


def differences(case: Case, traced: TracedShape | None, passing: list[Case] = ()) -> str:
    """What about `case` differs from the traced shape, in words; with the cases that passed, which of those
    differences none of them shares (what the export cannot take)."""
    if traced is None:
        text = "the file records no traced shape to compare with"
    else:
        shown = {"length": (case.length, traced.length), "batch": (case.batch, traced.batch),
                 "global counts": (case.global_counts, list(traced.global_counts or ())),
                 "padding": (case.padding, list(traced.padding or ()))}
        parts = [f"{name} {shown[name][0]} (traced {shown[name][1]})" for name in differing(case, traced)]
        if not parts:
            return "it is the traced shape itself"
        text = "it differs from the traced shape in " + "; ".join(parts)
    left = suspects(case, traced, passing)
    cleared = [name for name in differing(case, traced) if name not in left]
    if cleared and left:
        text += f"; cases that pass share its {', '.join(cleared)}, which leaves its {', '.join(left)}"
    elif cleared:
        text += "; each of these also occurs in a case that passes: a combination breaks it"
    return text


def suspects(case: Case, traced: TracedShape | None, passing: list[Case]) -> list[str]:
    """The factors in which `case` differs from the traced shape and that no passing case shares."""
    mine = factors(case)
    shared = {name for other in passing for name, value in factors(other).items() if value == mine[name]}
    return [name for name in differing(case, traced) if name not in shared]


class CaseMaker:
    """Builds cases for one model: random token ids, rows padded as asked, global tokens placed among the real
    tokens (the first real token first), teacher-forced decoder inputs."""

    def __init__(self, config, rng: np.random.Generator, takes_padding: bool, takes_globals: bool):
        self.config = config
        self.rng = rng
        self.takes_padding = takes_padding
        self.takes_globals = takes_globals

    def case(self, kind: str, length: int, rows: list[tuple[int, str, int]], flag_padding: bool = False) -> Case:
        """`rows`: per row (padding tokens, where: right / left / hole, global tokens)."""
        config, rng = self.config, self.rng
        batch = len(rows)
        input_ids = rng.integers(0, config.vocab_size, (batch, length)).astype(np.int64)
        attention_mask = np.ones((batch, length), dtype=np.int64)
        global_mask = np.zeros((batch, length), dtype=np.int64)
        for r, (pad, where, globals_) in enumerate(rows):
            pad = min(pad, length - 1) if self.takes_padding else 0
            start = {"right": length - pad, "left": 0, "hole": (length - pad) // 2}[where]
            attention_mask[r, start:start + pad] = 0
            input_ids[r, start:start + pad] = config.pad_token_id
            real = np.flatnonzero(attention_mask[r])
            count = min(globals_, real.size) if self.takes_globals else 0
            if count:
                chosen = rng.choice(real[1:], size=count - 1, replace=False) if count > 1 else []
                global_mask[r, [real[0], *chosen]] = 1
            if flag_padding and self.takes_globals and pad:
                global_mask[r, start] = 1  # a global flag on a padding token: ignored, as in HF
        target = int(rng.integers(2, max(2, min(MAX_TARGET, config.max_decoder_position_embeddings)) + 1))
        target = min(target, config.max_decoder_position_embeddings)
        decoder = rng.integers(0, config.vocab_size, (batch, target)).astype(np.int64)
        decoder[:, 0] = config.decoder_start_token_id
        return Case(kind, input_ids, attention_mask, global_mask, decoder)


def default_max_length(config, traced: TracedShape | None) -> int:
    """The longest case: twice the traced length or the largest window (a little over), at least 64, within the
    model's positions. (A dense export's memory grows with the square of the length: docs/onnx.md.)"""
    traced_length = traced.length if traced else 0
    return min(config.max_encoder_position_embeddings, max(2 * traced_length, 2 * config.max_window + 3, 64))


def audit_cases(config, traced: TracedShape | None, examples: int, seed: int, max_length: int,
                takes_padding: bool = True, takes_globals: bool = True) -> list[Case]:
    """The traced shape, then one factor at a time (length, global count, padding, batch), then `examples`
    random cases; see the module docstring."""
    make = CaseMaker(config, np.random.default_rng(seed), takes_padding, takes_globals)
    windows = sorted(set(config.layer_windows))
    small, big = windows[0], windows[-1]
    base = min(max_length, traced.length if traced else 2 * big + 3)
    cases = []
    if traced is not None and traced.length <= max_length:
        counts = traced.global_counts or (1,) * traced.batch
        padding = traced.padding or (0,) * traced.batch
        cases.append(make.case("traced shape", traced.length,
                               [(p, "right", g) for p, g in zip(padding, counts, strict=False)]))
    lengths = {1, 2, 3, small - 1, small, small + 1, big - 1, big, big + 1, base - 1, base + 1, 2 * big + 1,
               2 * base + 1, 4 * big + 3, max_length}
    for n in sorted(n for n in lengths if 1 <= n <= max_length and n != base):
        cases.append(make.case("length", n, [(0, "right", 1)]))
    if takes_globals:
        for count in (0, 2, 3, 8, base):
            if count <= base:
                cases.append(make.case("global count", base, [(0, "right", count)]))
    if takes_padding and base > 1:
        for pad, where, flag in ((1, "right", False), (base // 2, "right", False), (3, "left", False),
                                 (3, "hole", False), (base - 1, "right", False), (2, "right", True)):
            if pad < base:
                cases.append(make.case("padding", base, [(pad, where, 1)], flag_padding=flag))
    for rows in ([(0, "right", 1), (base // 3, "right", 0), (base // 2, "left", 3)],
                 [(1, "right", 2), (0, "right", 1), (base - 1, "right", 1), (2, "hole", 0)]):
        cases.append(make.case("batch", base, rows))
    for _ in range(examples):
        rng = make.rng
        longest = min(max_length, 4 * big + 3) if rng.random() < 0.6 else max_length  # mostly a few windows long
        length = int(rng.integers(1, longest + 1))
        rows = []
        for _ in range(int(rng.integers(1, 5))):
            pad = int(rng.integers(0, length)) if rng.random() < 0.6 else 0
            rows.append((pad, str(rng.choice(["right", "left", "hole"])), int(rng.integers(0, min(6, length) + 1))))
        cases.append(make.case("random", length, rows, flag_padding=bool(rng.random() < 0.2)))
    return cases


# ------------------------------------------------------------------------------------------- one case
def _diff(name: str, kind: str, actual, expected, dtype: str) -> LocatedDiff:
    budget = tolerance(dtype, "float64", kind)
    actual = np.asarray(actual)
    note = "" if actual.shape == np.shape(expected) else f"shape {actual.shape} vs {np.shape(expected)}"
    error, worst = located_error(actual, np.asarray(expected, dtype=np.float64))
    return LocatedDiff(name, kind, tuple(np.shape(expected)), error, budget, note, worst)


def _crash(f: OnnxFile, err: Exception, fed: dict[str, np.ndarray]) -> LocatedDiff:
    """An ONNX Runtime failure as an infinitely wrong output, naming the axes the file fixes that the inputs
    `fed` to it break."""
    note = str(err)
    for name, axes in f.fixed_axes().items():
        for axis, size in axes.items():
            if name in fed and np.ndim(fed[name]) > axis and np.shape(fed[name])[axis] != size:
                note += f" (the file fixes {name} axis {axis} at {size}; the case has {np.shape(fed[name])[axis]})"
    budget = tolerance(f.output_dtype(next(iter(f.outputs))), "float64")
    return LocatedDiff("<onnxruntime>", "hidden", (), float("inf"), budget, note, None)


def _as_input(f: OnnxFile, name: str, value: np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=f.inputs[name][0]) if name in f.inputs else value


def _cache_feed(f: OnnxFile, past) -> dict[int, dict[str, np.ndarray]]:
    """led_ref's past_key_values ((self_k, self_v, cross_k, cross_v) per layer) as the file's past inputs."""
    names = ("decoder.key", "decoder.value", "encoder.key", "encoder.value")
    return {layer: {part: _as_input(f, f"past_key_values.{layer}.{part}", value)
                    for part, value in zip(names, parts, strict=True)} for layer, parts in enumerate(past)}


def compare_case(case: Case, onnx: OnnxLED, ref_model) -> list[tuple[OnnxFile, Comparison]]:
    """Every file of `onnx` on `case` against led_ref: one Comparison per file."""
    inputs = {**case.encoder_inputs(), "decoder_input_ids": case.decoder_input_ids}
    expected = ref_model(**inputs, use_cache=True)
    hidden = np.asarray(expected.encoder_last_hidden_state)
    results = []

    f = onnx.encoder
    comparison = Comparison(f"onnx:{f.name}", REFERENCE)
    try:
        actual = onnx.encode(*case.encoder_inputs().values())
        comparison.diffs.append(_diff("last_hidden_state", "hidden", actual, hidden,
                                      f.output_dtype("last_hidden_state")))
    except OnnxRunError as err:
        comparison.diffs.append(_crash(f, err, case.encoder_inputs()))
    results.append((f, comparison))

    if onnx.decoder is not None:
        f = onnx.decoder
        comparison = Comparison(f"onnx:{f.name}", REFERENCE)
        fed = {"input_ids": case.decoder_input_ids, "encoder_attention_mask": case.attention_mask,
               "encoder_hidden_states": _as_input(f, "encoder_hidden_states", hidden)}
        try:
            logits, presents = onnx.decode(*fed.values())
            comparison.diffs.append(_diff("logits", "logits", logits, expected.logits, f.output_dtype("logits")))
            comparison.diffs += _cache_diffs(f, presents, expected.past_key_values, self_only=False)
        except OnnxRunError as err:
            comparison.diffs.append(_crash(f, err, fed))
        results.append((f, comparison))

    if onnx.decoder_with_past is not None and case.decoder_input_ids.shape[1] >= 2:
        f = onnx.decoder_with_past
        comparison = Comparison(f"onnx:{f.name}", REFERENCE)
        prefix = ref_model(attention_mask=case.attention_mask, decoder_input_ids=case.decoder_input_ids[:, :-1],
                           encoder_outputs=(hidden,), use_cache=True)
        fed = {"input_ids": case.decoder_input_ids[:, -1:], "encoder_attention_mask": case.attention_mask}
        try:
            logits, presents = onnx.decode_with_past(*fed.values(), _cache_feed(f, prefix.past_key_values),
                                                     _as_input(f, "encoder_hidden_states", hidden))
            comparison.diffs.append(_diff("logits", "logits", logits, expected.logits[:, -1:],
                                          f.output_dtype("logits")))
            comparison.diffs += _cache_diffs(f, presents, expected.past_key_values, self_only=True)
        except OnnxRunError as err:
            comparison.diffs.append(_crash(f, err, fed))
        results.append((f, comparison))
    return results


def _cache_diffs(f: OnnxFile, presents: dict, past, self_only: bool) -> list[LocatedDiff]:
    names = ("decoder.key", "decoder.value") if self_only else ("decoder.key", "decoder.value", "encoder.key",
                                                                  "encoder.value")
    diffs = []
    for layer, parts in enumerate(past):
        for part, expected in zip(names, parts, strict=False):
            name = f"present.{layer}.{part}"
            if layer in presents and part in presents[layer]:
                diffs.append(_diff(name, "cache", presents[layer][part], expected, f.output_dtype(name)))
    return diffs


# ------------------------------------------------------------------------------------------- the audit
@dataclass
class AuditResult:
    """What `audit_onnx` found: every (case, file) comparison, the generations, the traced shape; `passed` when
    every one agreed, `first_failures()` per failing file."""

    rows: list  # (case index, Case, OnnxFile, Comparison)
    generations: list  # (case name, GenerationComparison)
    traced: TracedShape | None

    @property
    def passed(self) -> bool:
        return all(c.passed for *_, c in self.rows) and all(g.passed for _, g in self.generations)

    def first_failures(self) -> dict[str, dict]:
        """Per file, the first case it failed: the case, its shape, what differs from the traced shape, the output."""
        out: dict[str, dict] = {}
        for index, case, f, comparison in self.rows:
            if comparison.passed or f.name in out:
                continue
            first = comparison.first_divergence
            traced = self.traced if f.name == ENCODER_FILE else _traced_of(f)
            passing = [c for _, c, g, other in self.rows if g.name == f.name and other.passed]
            out[f.name] = {"case": index, "kind": case.kind, "shape": case.shape(), "describe": case.describe(),
                           "differs": differences(case, traced, passing),
                           "suspects": suspects(case, traced, passing), "output": first.to_dict()}
        return out


def _traced_description(f: OnnxFile) -> str:
    if f.name == ENCODER_FILE:
        shape = TracedShape.of(f)
        return shape.describe() if shape else "an unrecorded shape"
    recorded = (f.traced or {}).get("inputs") or {}
    mask, ids = recorded.get("encoder_attention_mask"), recorded.get("input_ids")
    if not mask or not ids:
        return "an unrecorded shape"
    return f"batch {ids[0]}, source length {mask[1]}, {ids[1]} target tokens"


def _traced_of(f: OnnxFile) -> TracedShape | None:
    recorded = (f.traced or {}).get("inputs") or {}
    mask = recorded.get("encoder_attention_mask")
    return TracedShape(int(mask[0]), int(mask[1]), None, None) if mask and len(mask) == 2 else None


def audit_onnx(onnx_dir: str, checkpoint: str, text: str | None = None, examples: int = 10, seed: int = 0,
               max_length: int | None = None, max_new_tokens: int = 8, json_path: str | None = None,
               out=None) -> AuditResult:
    """The `audit-onnx` command: open the files in `onnx_dir`, build the cases, compare each file on each with
    led_ref on `checkpoint` (a folder or a hub id in the local HF cache), generate, print the table and the first
    failure of each file to `out` (default stdout), write the JSON report -> AuditResult (`.passed`).

    `text`: the contents of a document, one more case; `examples` random cases from `seed`; `max_length`: the
    longest case (default: twice the traced length or the largest window, at least 64). A folder that is not
    an LED export of this checkpoint is an OnnxFolderError (a ValueError); ONNX Runtime failing on a case is a
    failed comparison, never an exception."""
    import led_ref
    from led_ref.io.checkpoint import resolve_checkpoint
    from led_ref.io.generation_settings import model_generation_config, resolve
    from parity.harness.checkpoints import load_for_generation

    out = out or sys.stdout
    onnx = OnnxLED.open(onnx_dir)
    directory = resolve_checkpoint(checkpoint)
    config, weights = load_for_generation(directory)
    onnx.check_config(config)
    traced = TracedShape.of(onnx.encoder)
    if max_length is not None and not 1 <= max_length <= config.max_encoder_position_embeddings:
        raise ValueError(f"--max-length must be in [1, {config.max_encoder_position_embeddings}] "
                         f"(max_encoder_position_embeddings), got {max_length}")
    max_length = max_length or default_max_length(config, traced)
    ref_model = led_ref.LEDForConditionalGeneration(config, weights=weights)
    cases = audit_cases(config, traced, examples, seed, max_length,
                        takes_padding="attention_mask" in onnx.encoder.inputs,
                        takes_globals="global_attention_mask" in onnx.encoder.inputs)
    text_case = _text_case(directory, config, text, onnx) if text is not None else None
    if text_case is not None:
        cases.append(text_case)

    print(f"audit-onnx {onnx_dir} against {directory} (seed {seed}; {len(cases)} cases, lengths up to "
          f"{max(c.length for c in cases)})", file=out)
    for f in onnx.files:
        exporter = (f.traced or {}).get("exporter")
        print(f"  {f.name:<30} traced at {_traced_description(f)}" + (f" ({exporter} exporter)" if exporter else ""),
              file=out)
    for name in onnx.not_audited:
        print(f"  {name:<30} not audited (optimum's merged decoder is not supported yet)", file=out)
    print(f"  {'case':<64}" + "".join(f"{SHORT_NAMES[f.name]:>10}" for f in onnx.files) + "  result", file=out)
    rows = []
    for index, case in enumerate(cases):
        errors, failed = {}, None
        for f, comparison in compare_case(case, onnx, ref_model):
            rows.append((index, case, f, comparison))
            errors[f.name] = comparison.max_error
            first = comparison.first_divergence
            if first is not None and failed is None:
                failed = f"FAIL {f.name} {first.name} {first.error:.2e} > {first.tolerance:.0e}"
        label = f"{index:>2} {case.kind}: {case.describe()}"
        cells = "".join(f"{errors[f.name]:>10.2e}" if f.name in errors else f"{'-':>10}" for f in onnx.files)
        print(f"  {label:<64}{cells}  {failed or 'ok'}", file=out)

    generations = []
    if onnx.decoder is not None and config.decoder_layers:
        settings = resolve(config, model_generation_config(config, directory), max_new_tokens=max_new_tokens,
                           num_beams=1)
        chosen = [c for c in cases if c.kind in ("traced shape", "batch")][:GENERATION_CASES]
        chosen += [text_case] if text_case is not None else []
        files = " + ".join(f.name for f in onnx.files)
        for case in chosen:
            result = generation_parity(onnx, ref_model, case.encoder_inputs(), settings, f"onnx greedy ({files})")
            generations.append((f"{case.kind}: {case.describe()}", result))
            print(f"generation on {case.kind} ({case.describe()}): {result.status}", file=out)
            if not result.identical:
                print("\n".join("  " + line for line in result.describe().splitlines()[1:]), file=out)
    elif onnx.decoder_with_past is not None:
        print(f"generation not run: {DECODER_WITH_PAST_FILE} needs {DECODER_FILE} for the first step", file=out)

    result = AuditResult(rows, generations, traced)
    failures = result.first_failures()
    for name, failure in failures.items():
        output = failure["output"]
        where = f" {output['worst']['index']}" if output.get("worst") else ""
        note = f" ({output['note']})" if output.get("note") else ""
        print(f"{name} first fails at case {failure['case']} ({failure['kind']}: {failure['describe']}); "
              f"{failure['differs']}: {output['name']} error {output['error']} > {output['tolerance']}"
              f"{where}{note}", file=out)
    if json_path:
        _write_json(json_path, result, onnx, onnx_dir, directory, seed, cases)
    print("all agree" if result.passed else "mismatch", file=out)
    return result


def _text_case(directory: str, config, text: str, onnx: OnnxLED) -> Case:
    """The text tokenized with the checkpoint's tokenizer (up to the model's limit, a cut reported on stderr),
    first token global, teacher-forced decoder inputs (at most MAX_TARGET tokens)."""
    from led_ref.io.tokenizer import LEDTokenizer
    from parity.harness.checkpoints import default_inputs

    inputs, counts = default_inputs(LEDTokenizer.from_pretrained(directory), config, text)
    if counts["used_tokens"] < counts["text_tokens"]:
        print(f"note: the text has {counts['text_tokens']} tokens; using the first {counts['used_tokens']} "
              f"(the model's limit)", file=sys.stderr)
    glob = inputs["global_attention_mask"] if "global_attention_mask" in onnx.encoder.inputs else \
        np.zeros_like(inputs["input_ids"])
    return Case("text", inputs["input_ids"], inputs["attention_mask"], glob,
                inputs["decoder_input_ids"][:, :MAX_TARGET])


def _write_json(path: str, result: AuditResult, onnx: OnnxLED, onnx_dir: str, checkpoint: str, seed: int,
                cases: list[Case]) -> None:
    from led_ref.io.files import write_text_atomic
    from parity.harness.report import to_json, versions

    found = versions()
    for name in ("onnxruntime", "onnx"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    files = {f.name: {"inputs": {n: v[1] for n, v in f.inputs.items()},
                      "outputs": {n: v[1] for n, v in f.outputs.items()}, "traced": f.traced} for f in onnx.files}
    rows = [(f"case {index} ({case.kind}: {case.describe()})", comparison)
            for index, case, _, comparison in result.rows]
    text = to_json(rows, onnx_dir=onnx_dir, checkpoint=checkpoint, seed=seed, versions=found, files=files,
                   not_audited=onnx.not_audited,
                   cases=[{"case": i, "kind": c.kind, **c.shape(), "differs": differences(c, result.traced)}
                          for i, c in enumerate(cases)],
                   first_failures=result.first_failures(),
                   generation=[{"case": name, **g.to_dict()} for name, g in result.generations])
    write_text_atomic(path, text)

