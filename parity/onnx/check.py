"""An ONNX export folder as one more implementation of `led-parity check` (`--impls onnx:DIR`).

An export holds one set of weights, so its cases are check's inputs drawn for the export's own config (batch 1-3,
any length up to `max_length`, any padding layout and global tokens: parity.harness.strategies.token_kinds;
teacher-forced decoder ids: parity.harness.strategies.decoder_inputs) instead of random models. Each case runs
every file of the folder against led_ref (float64) on the checkpoint the files were exported from, as
`audit-onnx` compares them (parity.onnx.audit.compare_case):

    encoder_model.onnx              last_hidden_state
    decoder_model.onnx              logits, present.N.{decoder,encoder}.{key,value} (given led_ref's encoder output)
    decoder_with_past_model.onnx    logits, present.N.decoder.{key,value} (given led_ref's cache of the prefix)

then, with the decoder files present, generation through ONNX Runtime (greedy or 2 beams, drawn per case) is
compared with led_ref's tokens, tie-aware. The first failing case is shrunk by hypothesis (same seed, same
case) and reported with its shape and the command that repeats it.

    result = check_export("exported/", examples=5, seed=0)    # parity.harness.check.CheckResult
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random

import numpy as np
from hypothesis import strategies as st

from parity.harness.check import CheckResult, Progress
from parity.harness.hypothesis_runs import ShrinkBudget, run_seeded
from parity.harness.report import text_table
from parity.harness.strategies import decoder_inputs, token_kinds
from parity.onnx.audit import Case, TracedShape, compare_case, default_max_length
from parity.onnx.generate import generation_parity
from parity.onnx.sessions import CHECKPOINT_KEY, OnnxFolderError, OnnxLED

MAX_BATCH = 3
MAX_TARGET = 8  # teacher-forced decoder tokens of a case


def source_checkpoint(onnx: OnnxLED, checkpoint: str | None = None) -> str:
    """The checkpoint an export's files are compared against: `checkpoint` when given, else the folder itself when
    it holds the weights, else the folder export-onnx recorded in the encoder's metadata; otherwise an
    OnnxFolderError (exit 2) saying how to name it."""
    from led_ref.io.checkpoint import WEIGHTS_INDEX_NAME, WEIGHTS_NAME, resolve_checkpoint

    if checkpoint is not None:
        return resolve_checkpoint(checkpoint)
    if any(os.path.isfile(os.path.join(onnx.directory, n)) for n in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)):
        return onnx.directory
    recorded = onnx.encoder.session.get_modelmeta().custom_metadata_map.get(CHECKPOINT_KEY)
    if recorded and os.path.isdir(recorded):
        return recorded
    where = f"the recorded checkpoint {recorded!r} is not a folder here" if recorded else \
        f"{onnx.encoder.name} records no checkpoint ({CHECKPOINT_KEY})"
    raise OnnxFolderError(f"no weights to compare {onnx.directory!r} against: the folder holds no {WEIGHTS_NAME} and "
                          f"{where}; copy the checkpoint's {WEIGHTS_NAME} into it, or pass checkpoint=")


@st.composite
def export_cases(draw, config, max_length: int, takes_padding: bool = True, takes_globals: bool = True) -> Case:
    """One check case for an export of `config`: encoder inputs (batch 1-3, length 1..max_length, check's token
    kinds) and teacher-forced decoder ids (1..MAX_TARGET tokens), plus the number of beams to generate with."""
    batch = draw(st.integers(1, MAX_BATCH))
    length = draw(st.integers(1, max_length))
    kinds = draw(token_kinds(batch, length))
    if not takes_padding:
        kinds = np.where(kinds == 0, 1, kinds)
    if not takes_globals:
        kinds = np.minimum(kinds, 1)
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    attention_mask = (kinds > 0).astype(np.int64)
    ids = rng.integers(0, config.vocab_size, (batch, length))
    ids = np.where(ids == config.pad_token_id, (config.pad_token_id + 1) % config.vocab_size, ids)
    input_ids = np.where(attention_mask > 0, ids, config.pad_token_id).astype(np.int64)
    short = dataclasses.replace(config, max_decoder_position_embeddings=min(MAX_TARGET,
                                                                          config.max_decoder_position_embeddings))
    decoder = draw(decoder_inputs(short, batch, with_labels=False))["decoder_input_ids"]
    return Case("check", input_ids, attention_mask, (kinds == 2).astype(np.int64), decoder,
                beams=draw(st.sampled_from((1, 2))))


class ExportDiverged(AssertionError):
    def __init__(self, case: Case, rows: list, generations: list):
        bad = [c for _, c in rows if not c.passed]
        if bad:
            what = f"{bad[0].actual} diverged from {bad[0].expected} at {bad[0].first_divergence.name}"
        else:
            what = next(g for g in generations if not g.passed).describe().splitlines()[0]
        super().__init__(what)
        self.case, self.rows, self.generations = case, rows, generations


def case_key(case: Case) -> str:
    digest = hashlib.sha256(f"{case.beams}".encode())
    for array in (*case.encoder_inputs().values(), case.decoder_input_ids):
        digest.update(np.ascontiguousarray(array).tobytes() + str(array.shape).encode())
    return digest.hexdigest()


def check_export(onnx_dir: str, examples: int = 5, seed: int | None = None, checkpoint: str | None = None,
                 max_length: int | None = None, max_new_tokens: int = 3, progress: bool = True,
                 shrink_seconds: float = 60.0) -> CheckResult:
    """Every file of the export in `onnx_dir` against led_ref on `examples` cases drawn with `seed` (see the module
    docstring) -> parity.harness.check.CheckResult (rows of (case, Comparison), generations, the shrunk failure).
    `max_length`: the longest encoder input (default: audit-onnx's, twice the traced length or the largest window,
    at least 64). A folder that is not an LED export, or whose weights cannot be found, is an OnnxFolderError."""
    import led_ref
    from led_ref.io.generation_settings import model_generation_config, resolve
    from parity.harness.checkpoints import load_for_generation

    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples must be a positive int, got {examples!r}")
    onnx = OnnxLED.open(onnx_dir)
    directory = source_checkpoint(onnx, checkpoint)
    config, weights = load_for_generation(directory)
    onnx.check_config(config)
    limit = config.max_encoder_position_embeddings
    if max_length is not None and not 1 <= max_length <= limit:
        raise ValueError(f"max_length must be in [1, {limit}] (max_encoder_position_embeddings), got {max_length}")
    max_length = max_length or default_max_length(config, TracedShape.of(onnx.encoder))
    ref_model = led_ref.LEDForConditionalGeneration(config, weights=weights)
    generation_config = model_generation_config(config, directory)
    seed = random.SystemRandom().randrange(2**32) if seed is None else int(seed)
    result = CheckResult(seed, examples)
    bar = Progress(examples, "onnx", progress)
    budget = ShrinkBudget(shrink_seconds)
    label = f"onnx:{onnx_dir}"

    def run(case: Case) -> None:
        rows = [(f"onnx #{bar.done + 1}", comparison) for _, comparison in compare_case(case, onnx, ref_model)]
        generations = []
        if onnx.decoder is not None and config.decoder_layers and all(c.passed for _, c in rows):
            settings = resolve(config, generation_config, max_new_tokens=max_new_tokens, num_beams=case.beams)
            generations.append(generation_parity(onnx, ref_model, case.encoder_inputs(), settings,
                                                 f"{label} ({'greedy' if case.beams == 1 else '2 beams'})"))
        if not budget.shrinking:
            bar.step(case.describe())
        if all(c.passed for _, c in rows) and all(g.passed for g in generations):
            result.rows += rows
            result.generations += [(rows[0][0], g) for g in generations]
            return
        raise ExportDiverged(case, rows, generations)

    found = run_seeded(run, export_cases(config, max_length, "attention_mask" in onnx.encoder.inputs,
                                         "global_attention_mask" in onnx.encoder.inputs),
                       examples, seed, budget, key=case_key, failure=ExportDiverged)
    bar.close()
    if found is not None:
        diverged = found[0]
        result.passed = False
        result.rows += [("shrunk counterexample", c) for _, c in diverged.rows]
        result.generations += [("shrunk counterexample", g) for g in diverged.generations]
        details = [text_table(c, only_failures=True) for _, c in diverged.rows if not c.passed]
        details += [g.describe() for g in diverged.generations if not g.passed]
        case = diverged.case
        result.failure = "\n".join([
            f"mismatch: {diverged} (seed {seed})",
            f"  case: {case.describe()}, {case.decoder_input_ids.shape[1]} decoder tokens, {case.beams} beam(s)",
            *details,
            f"  repeat: led-parity check --impls onnx:{onnx_dir} --seed {seed} --examples {examples}",
        ])
    return result
