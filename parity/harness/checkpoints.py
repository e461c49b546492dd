"""A real checkpoint + text through every side against led_ref: `audit`, and the default-model case of `check`.

    rows, generations = checkpoint_parity("path/to/led", text, [Side.parse("torch:banded:float32")])

The text is tokenized up to the model's limit (a cut is reported), the chosen positions get global
attention, the decoder is teacher-forced on the input; then every side generates with the checkpoint's own
settings (parity.harness.generation: tie-aware, beam scores compared).
"""

from __future__ import annotations

import os
import sys

import numpy as np

GENERATION = "LEDForConditionalGeneration"


def token_limit(config) -> int:
    """The longest input the model takes: its encoder positions, rounded down to a multiple of the largest
    window (the input is padded to one)."""
    return max(2, (config.max_encoder_position_embeddings // config.max_window) * config.max_window)


def default_inputs(tokenizer, config, text: str, global_positions=(0,), max_tokens: int | None = None) -> dict:
    """Tokenized `text` up to the model's limit (or `max_tokens`), `global_positions` global, teacher-forced
    decoder inputs. Also returns what was cut: (inputs, {"text_tokens", "used_tokens", "limit"}); inputs are
    (1, used_tokens) int64, the decoder's (1, min(used_tokens, max_decoder_position_embeddings))."""
    limit = token_limit(config) if max_tokens is None else min(token_limit(config), max_tokens)
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
    return inputs, {"text_tokens": whole, "used_tokens": used, "limit": limit}


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
    if counts["used_tokens"] < counts["text_tokens"]:
        print(f"note: the text has {counts['text_tokens']} tokens; using the first {counts['used_tokens']} "
              f"(limit {counts['limit']}: the model's encoder positions, or --max-tokens)", file=sys.stderr)
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


def audit(checkpoint: str, text: str, sides, device: str, dtype: str, json_path: str | None = None,
          progress: bool = True, **options) -> bool:
    """The `audit` command: checkpoint_parity (`options`: max_new_tokens, num_beams, global_positions,
    max_tokens), one table per side, the generation summary, the JSON report (with versions, device, the
    positions and settings used); True when everything agreed."""
    from parity.harness.report import device_description, generation_summary, text_table, to_json, versions

    details: dict = {}
    rows, generations = checkpoint_parity(checkpoint, text, sides, progress=progress, details=details, **options)
    for _, c in rows:
        print(text_table(c))
    print(generation_summary(generations))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            fh.write(to_json(rows, checkpoint=checkpoint, versions=versions(), device=device_description(device),
                             dtype=dtype, seed=None,  # an audit draws nothing at random
                             **details, generation=[g.to_dict() for g in generations]))
    ok = all(c.passed for _, c in rows) and all(g.passed for g in generations)
    print("all agree" if ok else "mismatch")
    return ok
