"""A real checkpoint + text through every side against led_ref: `audit`, and the default-model case of `check`.

    result = run_audit("path/to/led", text, [Side.parse("torch:banded:float32")])      # `led-parity audit`
    rows, generations = checkpoint_parity("path/to/led", text, sides)                  # whole outputs (`check`)

The text is tokenized up to the model's limit (a cut is reported), the chosen positions get global
attention, the decoder is teacher-forced on the input; then every side generates with the checkpoint's own
settings (parity.harness.generation: tie-aware, beam scores compared).

`audit` streams: every side's outputs are compared layer by layer as they are produced and only the errors
(with the worst element) are kept (parity.harness.streams, parity.harness.stream_compare), so a 16,384-token
LED-base audit holds a few tensors of one layer per side. The reference encodes the text once: its generation
decodes from the encoder output the forward comparison audited. Every other side generates from scratch
(its encoder's fast path, without attention probabilities, is audited there, by the tokens it leads to).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from parity.harness.check import REFERENCE, Progress
from parity.harness.compare import Comparison
from parity.harness.generation import TeacherForcedScorer, reference_scorer
from parity.harness.stream_compare import compare_streams, crash_row
from parity.harness.streams import DECODER_ROWS, reference_stream, torch_stream

GENERATION = "LEDForConditionalGeneration"


def token_limit(config) -> int:
    """The longest input the model takes: its encoder positions, rounded down to a multiple of the largest
    window (the input is padded to one)."""
    return max(2, (config.max_encoder_position_embeddings // config.max_window) * config.max_window)


def default_inputs(tokenizer, config, text: str, global_positions=(0,), max_tokens: int | None = None) -> dict:
    """Tokenized `text` up to the model's limit (or `max_tokens`), `global_positions` global, teacher-forced
    decoder inputs. Also returns what was cut: (inputs, {"text_tokens", "used_tokens", "limit": the model's,
    "max_tokens": as given}); inputs are (1, used_tokens) int64, the decoder's (1, min(used_tokens,
    max_decoder_position_embeddings))."""
    model_limit = token_limit(config)
    limit = model_limit if max_tokens is None else min(model_limit, max_tokens)
    whole = len(tokenizer(text)["input_ids"])
    enc = tokenizer(text, truncation=True, max_length=limit, return_tensors="np")
    input_ids = np.asarray(enc["input_ids"], dtype=np.int64)
    used = input_ids.shape[1]
    global_mask = np.zeros_like(input_ids)
    for position in global_positions:
        if not 0 <= position < used:
            raise ValueError(f"--global position {position} is outside the {used} input tokens [0, {used})")
        global_mask[:, position] = 1
    target = input_ids[:, : min(input_ids.shape[1], config.max_decoder_position_embeddings)]
    decoder = np.concatenate([[[config.decoder_start_token_id]], target[:, :-1]], axis=1).astype(np.int64)
    inputs = {"input_ids": input_ids, "attention_mask": np.asarray(enc["attention_mask"], dtype=np.int64),
              "global_attention_mask": global_mask, "decoder_input_ids": decoder, "labels": target}
    return inputs, {"text_tokens": whole, "used_tokens": used, "limit": model_limit, "max_tokens": max_tokens}


def note_cut(counts: dict) -> None:
    """Say on stderr when the text was cut, and where the cut comes from."""
    if counts["used_tokens"] >= counts["text_tokens"]:
        return
    cut_by = (f"--max-tokens {counts['max_tokens']}" if counts["max_tokens"] is not None
              and counts["max_tokens"] < counts["limit"] else f"the model's limit {counts['limit']}")
    print(f"note: the text has {counts['text_tokens']} tokens; using the first {counts['used_tokens']} ({cut_by})",
          file=sys.stderr)


def load_for_generation(directory: str):
    """(config, weights) of a checkpoint as the generation model: the file is first checked as the class
    that wrote it; a base model or another head's file then loads with the generation head HF would give it."""
    from led_ref.io.checkpoint import infer_architecture, load_checkpoint

    config, weights = load_checkpoint(directory)
    if infer_architecture(weights) != GENERATION:
        config, weights = load_checkpoint(directory, GENERATION, allow_missing_head=True)
    return config, weights


def checkpoint_parity(directory: str, text: str, sides, progress: bool = True, max_new_tokens: int | None = 8,
                      num_beams: int | None = None, global_positions=(0,), max_tokens: int | None = None,
                      details: dict | None = None):
    """Every side vs led_ref on a checkpoint + text: forward outputs, then generation (tie-aware, beam scores
    compared). Generation uses the checkpoint's settings (generation_config.json, else config.json) with
    `max_new_tokens` / `num_beams` overriding them; every side gets them explicitly. `details`, if given, is
    filled with the token counts, global positions and generation settings used.
    -> ([(checkpoint name, Comparison)], [GenerationResult])"""
    from led_ref.io.checkpoint import resolve_checkpoint
    from led_ref.io.generation_settings import explicit_arguments, model_generation_config, resolve
    from led_ref.io.tokenizer import LEDTokenizer
    from parity.harness.check import REFERENCE, Progress, run_case
    from parity.harness.generation import generation_parity

    directory = resolve_checkpoint(directory)
    config, weights = load_for_generation(directory)
    inputs, counts = default_inputs(LEDTokenizer.from_pretrained(directory), config, text, global_positions,
                                    max_tokens)
    note_cut(counts)
    settings = resolve(config, model_generation_config(config, directory), max_new_tokens=max_new_tokens,
                       num_beams=num_beams)
    generate_kwargs = explicit_arguments(settings)
    if details is not None:
        details.update(counts, global_positions=list(global_positions), generation_settings=generate_kwargs)
    bar = Progress(2, "checkpoint", progress)
    comparisons = run_case(config, GENERATION, weights, inputs, sides)
    bar.step("forward")
    _, generations = generation_parity(config, weights, inputs, sides, REFERENCE, **generate_kwargs)
    bar.step("generate")
    bar.close()
    return [(os.path.basename(os.path.normpath(directory)) or directory, c) for c in comparisons], generations


def default_model_check(sides, progress: bool = True):
    """checkpoint_parity on the embedded default model and its DEFAULT_TEXT (None if it is not there)."""
    try:
        from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir
    except ImportError:
        print("note: led_ref.io.default_model is not available; skipping the embedded default model", file=sys.stderr)
        return None
    return checkpoint_parity(default_checkpoint_dir(), DEFAULT_TEXT, sides, progress, max_new_tokens=8,
                             num_beams=1)




# ---------------------------------------------------------------------------------- audit
ALL_OUTPUTS = ("hidden", "attentions", "logits", "generation")


@dataclass
class AuditResult:
    """What `run_audit` found: `meta` (the header's and the JSON report's fields), one Comparison per side (as
    (checkpoint name, Comparison) rows), the generation comparisons, each side's generated tokens and text,
    and the seconds each side spent."""

    meta: dict
    rows: list = field(default_factory=list)
    generations: list = field(default_factory=list)
    generated: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    peaks: dict = field(default_factory=dict)  # phase -> the process's peak resident bytes during it

    @property
    def passed(self) -> bool:
        return all(c.passed for _, c in self.rows) and all(g.passed for g in self.generations)


class EncodedReference:
    """A led_ref generation model whose encoder returns an output already computed (`hidden`, the one the
    forward comparison audited), so that generating does not encode a long text a second time; everything
    else (weights, config, generation settings, the decoding loop) is the model's own."""

    def __init__(self, model, hidden: np.ndarray):
        self._model, self._hidden = model, hidden

    def __getattr__(self, name):
        return getattr(self._model, name)

    def get_encoder(self):
        from led_ref.io.outputs import LEDEncoderBaseModelOutput

        def encode(input_ids, attention_mask=None, global_attention_mask=None):
            if tuple(np.shape(input_ids)) != self._hidden.shape[:2]:
                raise ValueError(f"input_ids {np.shape(input_ids)} are not the encoded input "
                                 f"{self._hidden.shape[:2]}")
            return LEDEncoderBaseModelOutput(self._hidden)
        return encode

    def generate(self, input_ids=None, attention_mask=None, global_attention_mask=None, **options):
        from led_ref.generation import generate

        return generate(self, input_ids, attention_mask=attention_mask,
                        global_attention_mask=global_attention_mask, **options)


def encoded_scorer(model, inputs: dict, hidden: np.ndarray, rows_per_input: int = 1):
    """reference_scorer reading the encoder output `hidden` instead of encoding again: next-token logits of row
    `row` given its decoder prefix (and, through `positions`, every position's logits of a sequence)."""
    mask = inputs.get("attention_mask")

    def logits(row: int, tokens: np.ndarray) -> np.ndarray:
        source = row // rows_per_input
        out = model(attention_mask=None if mask is None else np.asarray(mask)[source:source + 1],
                    decoder_input_ids=np.asarray(tokens, dtype=np.int64)[None, :],
                    encoder_outputs=(hidden[source:source + 1],))
        return np.asarray(out.logits, dtype=np.float64)[0]

    return TeacherForcedScorer(logits)


class Clock:
    """Wall and process CPU seconds since it was made (`elapsed()` -> (wall, cpu))."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _generated_record(side, tokenizer, tokens, seconds=(0.0, 0.0), error: BaseException | None = None) -> dict:
    """A side's generated token ids and decoded text (the report's `generated` entry); `seconds`: (wall, cpu)."""
    record = {"side": side.label, "seconds": seconds[0], "cpu_seconds": seconds[1]}
    if error is not None:
        return {**record, "tokens": None, "text": None, "error": f"{type(error).__name__}: {error}"}
    return {**record, "tokens": tokens.tolist(), "error": None,
            "text": [tokenizer.decode(row, skip_special_tokens=True) for row in tokens]}


def _generate(side, model, inputs: dict, generate_kwargs: dict):
    """side.generate, timed -> (token ids, beam scores or None, (wall, cpu) seconds); raises what the side (or
    its build, given as `model`) raised."""
    if isinstance(model, BaseException):
        raise model
    clock = Clock()
    out = side.generate(model, inputs, **generate_kwargs)
    tokens, scores = out if isinstance(out, tuple) else (out, None)
    return tokens, scores, clock.elapsed()


def audit_generation(models: dict, reference, sides, inputs: dict, tokenizer, pad: int, encoder_hidden=None,
                     **generate_kwargs):
    """Every side generates with the same explicit settings and is compared with the reference (tie-aware, beam
    scores too: parity.harness.generation). The reference decodes from `encoder_hidden` when given.
    `models`: Side -> built model, or the exception its build raised. -> ([GenerationComparison], [generated
    record per side, the reference first])"""
    from parity.harness.generation import beam_rule, compare_generation, crashed, tie_budget

    if (generate_kwargs.get("num_beams") or 1) > 1:
        generate_kwargs = dict(generate_kwargs, return_dict_in_generate=True, output_scores=True)
    ref_model = models[reference]
    runner = ref_model
    if encoder_hidden is not None and not isinstance(ref_model, BaseException):
        runner = EncodedReference(ref_model, encoder_hidden)
    try:
        expected, expected_scores, seconds = _generate(reference, runner, inputs, generate_kwargs)
    except Exception as err:  # noqa: BLE001 - the reference crashing on a real input is a finding too
        return ([crashed(side, reference, f"{reference.label} raised", err) for side in sides],
                [_generated_record(reference, tokenizer, None, error=err)])
    records = [_generated_record(reference, tokenizer, expected, seconds)]
    rows = generate_kwargs.get("num_return_sequences", 1)
    scorer = (encoded_scorer(ref_model, inputs, encoder_hidden, rows) if encoder_hidden is not None
              else reference_scorer(reference, ref_model, inputs, rows))
    beam = beam_rule(ref_model.config, ref_model, **generate_kwargs)
    results = []
    for side in sides:
        try:
            actual, actual_scores, seconds = _generate(side, models[side], inputs, generate_kwargs)
        except Exception as err:  # noqa: BLE001 - a crash is reported as a mismatch
            results.append(crashed(side, reference, side.label, err))
            records.append(_generated_record(side, tokenizer, None, error=err))
            continue
        results.append(compare_generation(actual, expected, scorer, tie_budget(side.dtype, reference.dtype), pad,
                                          side.label, reference.label, beam, actual_scores, expected_scores))
        records.append(_generated_record(side, tokenizer, actual, seconds))
    return results, records


def build_models(config, weights: dict, sides) -> dict:
    """Side -> its model with `weights`, or the exception its build raised (reported as a divergence)."""
    models = {}
    for side in sides:
        try:
            models[side] = side.build(config, weights, GENERATION)
        except Exception as err:  # noqa: BLE001 - reported, never swallowed
            models[side] = err
    return models


def output_count(config, groups, any_global: bool, labels: bool = True) -> int:
    """How many outputs the reference streams for `groups` (the progress bar's length)."""
    hidden, probs = "hidden" in groups, "attentions" in groups
    encoder = config.encoder_layers * (hidden + probs * (1 + any_global)) + 2 * hidden
    decoder = config.decoder_layers * (hidden + 2 * probs) + hidden
    return encoder + decoder + ("logits" in groups) * (1 + labels)


def compare_forward(models: dict, reference, sides, inputs: dict, groups, progress: bool,
                    decoder_rows: int = DECODER_ROWS):
    """The streamed forward comparison (see module docstring) -> ([Comparison per side], {label: (wall, cpu)
    seconds}, the reference's encoder output or None); the label "comparisons" holds the time spent outside
    the sides (comparing). A side whose build failed gets a `<build>` row."""
    ref_model = models[reference]
    if isinstance(ref_model, BaseException):
        failed = crash_row(f"{reference.label} raised", ref_model)
        return [Comparison(s.label, reference.label, [failed]) for s in sides], {}, None
    built = [s for s in sides if not isinstance(models[s], BaseException)]
    ref_stream = reference_stream(ref_model, inputs, groups, decoder_rows, reference.label)
    side_streams = [(s, torch_stream(s, models[s], inputs, groups)) for s in built]
    bar = Progress(output_count(ref_model.config, groups, bool(np.any(inputs["global_attention_mask"])),
                                inputs.get("labels") is not None), "audit forward", progress)
    clock = Clock()
    try:
        streamed = compare_streams(ref_stream, reference, side_streams, inputs, on_output=bar.step)
    finally:
        bar.close()
    total = clock.elapsed()
    by_label = {c.actual: c for c in streamed}
    comparisons = [by_label.get(s.label) or Comparison(s.label, reference.label, [crash_row("build", models[s])])
                   for s in sides]
    streams = [ref_stream, *(stream for _, stream in side_streams)]
    seconds = {stream.label: (stream.seconds, stream.cpu_seconds) for stream in streams}
    seconds["comparisons"] = tuple(t - sum(s[i] for s in seconds.values()) for i, t in enumerate(total))
    return comparisons, seconds, ref_stream.steps.encoder_hidden


def run_audit(checkpoint: str, text: str, sides, outputs=ALL_OUTPUTS, progress: bool = True,
              max_new_tokens: int | None = None, num_beams: int | None = None, global_positions=(0,),
              max_tokens: int | None = None, decoder_rows: int = DECODER_ROWS, on_start=None) -> AuditResult:
    """`led-parity audit`: the checkpoint and text through the reference and every side, the forward outputs
    of `outputs` (hidden, attentions, logits) compared as they are produced, then generation. `on_start(meta)`
    is called once the inputs are known, before any model runs (the command prints the header there)."""
    from led_ref.io.checkpoint import resolve_checkpoint
    from led_ref.io.generation_settings import explicit_arguments, model_generation_config, resolve
    from led_ref.io.tokenizer import LEDTokenizer

    directory = resolve_checkpoint(checkpoint)
    config, weights = load_for_generation(directory)
    tokenizer = LEDTokenizer.from_pretrained(directory)
    inputs, counts = default_inputs(tokenizer, config, text, global_positions, max_tokens)
    note_cut(counts)
    settings = resolve(config, model_generation_config(config, directory), max_new_tokens=max_new_tokens,
                       num_beams=num_beams)
    generate_kwargs = explicit_arguments(settings)
    meta = audit_meta(checkpoint, directory, config, inputs, counts, global_positions, outputs, generate_kwargs,
                      [REFERENCE, *sides])
    if on_start is not None:
        on_start(meta)
    models = build_models(config, weights, [REFERENCE, *sides])
    del weights  # every side holds its own copy now
    result = AuditResult(meta)
    groups = [g for g in outputs if g != "generation"]
    encoder_hidden, forward_s = None, {}
    from parity.perf.peak_memory import high_water_bytes, reset_high_water

    result.peaks["load"] = high_water_bytes()  # since the process started: reading, converting, building
    reset_high_water()
    if groups:
        comparisons, forward_s, encoder_hidden = compare_forward(models, REFERENCE, sides, inputs, groups, progress,
                                                                 decoder_rows)
        name = os.path.basename(os.path.normpath(directory)) or directory
        result.rows = [(name, c) for c in comparisons]
        result.peaks["forward"] = high_water_bytes()
    if "generation" in outputs:
        reset_high_water()
        result.generations, result.generated = audit_generation(
            models, REFERENCE, sides, inputs, tokenizer, config.pad_token_id, encoder_hidden, **generate_kwargs)
        result.peaks["generation"] = high_water_bytes()
    result.timings = timings(forward_s, result.generated)
    return result


def timings(forward: dict, generated: list) -> dict:
    """{label: {forward_s, forward_cpu_s, generate_s, generate_cpu_s}} (None where a side did not run that)."""
    generate = {g["side"]: (g["seconds"], g["cpu_seconds"]) for g in generated}
    labels = [*forward, *(label for label in generate if label not in forward)]
    return {label: {"forward_s": forward.get(label, (None,))[0], "forward_cpu_s": forward.get(label, (0, None))[1],
                    "generate_s": generate.get(label, (None,))[0],
                    "generate_cpu_s": generate.get(label, (0, None))[1]} for label in labels}


def audit_meta(checkpoint: str, directory: str, config, inputs: dict, counts: dict, global_positions, outputs,
               generate_kwargs: dict, sides) -> dict:
    """The fields that say what an audit ran (parity.harness.report.audit_header, and the JSON report)."""
    from parity.harness.report import side_meaning

    return {"checkpoint": checkpoint, "checkpoint_path": directory,
            "checkpoint_name": os.path.basename(os.path.normpath(directory)) or directory,
            **counts, "window": config.max_window,
            "decoder_tokens": int(inputs["decoder_input_ids"].shape[1]),
            "decoder_limit": config.max_decoder_position_embeddings,
            "global_positions": list(global_positions), "outputs": list(outputs),
            "generation_settings": generate_kwargs,
            "sides": [{"label": s.label, "meaning": side_meaning(s)} for s in sides]}


def audit(checkpoint: str, text: str, sides, device: str, dtype: str, json_path: str | None = None,
          progress: bool = True, **options) -> bool:
    """The `audit` command: run_audit (`options`: outputs, max_new_tokens, num_beams, global_positions,
    max_tokens, decoder_rows), printing the header first, then one table per side, the generation summary with
    every side's tokens and text, the timings; the JSON report. True when everything agreed."""
    from led_ref.io.files import write_text_atomic
    from parity.harness.report import (
        audit_header,
        device_description,
        generated_table,
        generation_summary,
        located_table,
        timings_table,
        to_json,
        versions,
    )

    result = run_audit(checkpoint, text, sides, progress=progress,
                       on_start=lambda meta: print(audit_header(meta), flush=True), **options)
    for _, c in result.rows:
        print(located_table(c))
    if result.generated:
        print(generation_summary(result.generations))
        print(generated_table(result.generated))
    peak = max(result.peaks.values())
    print(timings_table(result.timings, peak, result.peaks))
    if json_path:
        write_text_atomic(json_path, to_json(
            result.rows, **result.meta, versions=versions(), device=device_description(device), dtype=dtype,
            seed=None,  # an audit draws nothing at random
            generation=[g.to_dict() for g in result.generations], generated=result.generated,
            timings=result.timings, peak_rss_bytes=peak,
            peak_rss_bytes_by_phase=result.peaks))
    print("all agree" if result.passed else "mismatch")
    return result.passed
