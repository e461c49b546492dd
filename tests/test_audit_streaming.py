"""The streamed forward comparison of `audit` (parity.harness.streams, parity.harness.stream_compare): the reference
stepped layer by layer is the spec's own forward; streamed errors are the whole-output comparison's errors; the
worst element is located; a crashing or abandoned side unwinds; and what is alive at once does not grow with
the model's depth."""

from __future__ import annotations

import threading
import tracemalloc
import weakref

import numpy as np
import pytest

from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir
from led_ref.io.tokenizer import LEDTokenizer
from parity.harness.check import run_case
from parity.harness.checkpoints import GENERATION, EncodedReference, default_inputs, encoded_scorer, load_for_generation
from parity.harness.compare import flatten_outputs, located_error
from parity.harness.implementations import Side
from parity.harness.stream_compare import compare_streams
from parity.harness.streams import OutputStream, ReferenceSteps, reference_stream, torch_stream
from parity.harness.tolerances import scaled_error

REF = Side("ref")
GROUPS = ("hidden", "attentions", "logits")
BANDED = Side.parse("torch:banded:float32")


@pytest.fixture(scope="module")
def default_case():
    """The embedded default model on its text, three global tokens, teacher-forced decoder and labels."""
    folder = default_checkpoint_dir()
    config, weights = load_for_generation(folder)
    inputs, _ = default_inputs(LEDTokenizer.from_pretrained(folder), config, DEFAULT_TEXT, (0, 5, 40))
    return config, weights, inputs


def sides_here() -> list[Side]:
    sides = [BANDED]
    try:
        import transformers  # noqa: F401
    except ImportError:
        return sides
    return [*sides, Side.parse("hf:float32")]


@pytest.mark.parametrize("rows", [1, 5, 256])
def test_reference_steps_are_the_spec_forward(default_case, rows):
    """Every output the stepped reference yields equals the model's own forward (blocks of decoder rows
    included), in the same model order, and none is left out."""
    config, weights, inputs = default_case
    model = REF.build(config, weights, GENERATION)
    whole = flatten_outputs(model(**inputs, output_attentions=True, output_hidden_states=True))
    streamed = [(name, np.asarray(value, dtype=np.float64)) for name, value in ReferenceSteps(model, inputs, GROUPS,
                                                                                              rows)]
    assert [name for name, _ in streamed] == list(whole)
    for name, value in streamed:
        assert value.shape == whole[name].shape, name
        assert np.max(np.abs(value - whole[name]), initial=0.0) <= 1e-12, name


def test_streamed_errors_are_the_whole_output_errors(default_case):
    """compare_streams gives every side the rows compare_outputs gives it (run_case), error for error."""
    config, weights, inputs = default_case
    sides = sides_here()
    whole = run_case(config, GENERATION, weights, inputs, sides)
    streams = [(side, torch_stream(side, side.build(config, weights, GENERATION), inputs, GROUPS)) for side in sides]
    model = REF.build(config, weights, GENERATION)
    streamed = compare_streams(reference_stream(model, inputs, GROUPS, decoder_rows=7), REF, streams, inputs)
    for old, new in zip(whole, streamed, strict=True):
        assert new.actual == old.actual and new.passed and old.passed
        assert [d.name for d in new.diffs] == [d.name for d in old.diffs]
        for a, b in zip(old.diffs, new.diffs, strict=True):
            assert tuple(b.shape) == tuple(a.shape) and b.tolerance == a.tolerance, a.name
            assert abs(b.error - a.error) <= 1e-12, (a.name, a.error, b.error)
            assert 0 < b.error < 1e-5 and b.worst is not None, a.name


def test_a_side_read_ahead_computes_each_output_before_the_reference(default_case):
    """With `ahead`, a side produces every output before the reference produces its own (HF does, so that its
    large attention work never overlaps the reference's float64 output), and the errors are the same."""
    config, weights, inputs = default_case
    order = []

    def logged(stream):
        def items():
            while (item := stream.take()) is not None:
                order.append((stream.label, item[0]))
                yield item
        return OutputStream(stream.label, items(), stream.close)

    rows = {}
    for ahead in (False, True):
        order.clear()
        ref = logged(reference_stream(REF.build(config, weights, GENERATION), inputs, GROUPS))
        side = logged(torch_stream(BANDED, BANDED.build(config, weights, GENERATION), inputs, GROUPS))
        [rows[ahead]] = compare_streams(ref, REF, [(BANDED, side)], inputs, ahead=lambda s, a=ahead: a)
        first = order[0::2]
        assert {label for label, _ in first} == {BANDED.label if ahead else REF.label}
        assert order[1::2] == [("torch:banded:float32" if not ahead else "ref:float64", n) for _, n in first]
    assert [(d.name, d.error) for d in rows[True].diffs] == [(d.name, d.error) for d in rows[False].diffs]


def test_a_divergence_is_found_and_located(default_case):
    """A side whose encoder layer 1 is perturbed fails first at that layer's output, and the worst element points
    at the perturbed position."""
    config, weights, inputs = default_case
    model = BANDED.build(config, weights, GENERATION)

    def perturb(module, args, output):
        hidden = output[0].clone()
        hidden[0, 17, 3] += 0.5
        return (hidden, *output[1:])

    model.get_encoder().layers[1].register_forward_hook(perturb)
    [comparison] = compare_streams(reference_stream(REF.build(config, weights, GENERATION), inputs, GROUPS), REF,
                                   [(BANDED, torch_stream(BANDED, model, inputs, GROUPS))], inputs)
    first = comparison.first_divergence
    assert first.name == "encoder_hidden_states[2]" and first.error > 0.05
    assert first.worst.index == (0, 17, 3)
    assert abs(first.worst.actual - first.worst.expected) == pytest.approx(0.5, abs=1e-5)
    assert all(d.passed for d in comparison.diffs[: comparison.diffs.index(first)])


def test_located_error_is_scaled_error_block_by_block():
    """The same number as scaled_error (NaN on both sides agreeing, non-finite disagreements infinite) whatever
    the blocks, and the worst element is where |a - b| is largest."""
    rng = np.random.default_rng(0)
    for shape in [(), (7,), (2, 3, 11, 5), (1, 1, 9)]:
        for trial in range(12):
            expected = rng.standard_normal(shape) * (10.0 if trial % 2 else 0.1)
            actual = expected + rng.standard_normal(shape) * 1e-3
            if expected.size > 1 and trial % 3 == 0:
                expected.flat[0] = actual.flat[0] = np.nan
                expected.flat[-1] = actual.flat[-1] = -np.inf
            for limit in (1, 13, 1 << 22):
                error, worst = located_error(actual, expected, limit)
                assert error == pytest.approx(scaled_error(actual, expected), rel=1e-14, abs=0.0)
                with np.errstate(invalid="ignore"):  # -inf - -inf
                    gaps = np.where(np.isfinite(actual - expected), np.abs(actual - expected), -1.0)
                where = np.unravel_index(int(np.argmax(gaps)), shape)
                assert worst.index == tuple(int(i) for i in where)
                assert (worst.actual, worst.expected) == (actual[where], expected[where])
    actual, expected = np.zeros((3, 4)), np.zeros((3, 4))
    actual[2, 1] = np.inf
    assert located_error(actual, expected, 4) == (float("inf"), located_error(actual, expected)[1])
    assert located_error(actual, expected, 4)[1].index == (2, 1)
    assert located_error(np.zeros(3), np.zeros(4))[0] == float("inf")


def test_a_side_that_crashes_keeps_its_rows_and_its_thread_ends(default_case):
    config, weights, inputs = default_case
    model = BANDED.build(config, weights, GENERATION)

    def boom(module, args):
        raise RuntimeError("layer 1 exploded")

    model.get_encoder().layers[1].register_forward_pre_hook(boom)
    threads = threading.active_count()
    [comparison] = compare_streams(reference_stream(REF.build(config, weights, GENERATION), inputs, GROUPS), REF,
                                   [(BANDED, torch_stream(BANDED, model, inputs, GROUPS))], inputs)
    names = [d.name for d in comparison.diffs]
    assert names[:3] == ["encoder_hidden_states[0]", "encoder_attentions[0]", "encoder_global_attentions[0]"]
    assert names[-1] == "<forward>" and "layer 1 exploded" in comparison.diffs[-1].note
    assert not comparison.passed and threading.active_count() == threads


def test_a_reader_that_stops_unwinds_the_paused_forward(default_case):
    config, weights, inputs = default_case
    threads = threading.active_count()
    stream = torch_stream(BANDED, BANDED.build(config, weights, GENERATION), inputs, GROUPS)
    assert stream.take()[0] == "encoder_hidden_states[0]"
    stream.close()
    assert threading.active_count() == threads


def test_the_reference_generates_from_the_audited_encoder_output_as_it_would_alone(default_case):
    """EncodedReference decodes from the streamed encoder output: the same tokens and beam scores as the model's
    own generate, and encoded_scorer gives the logits of the model's own forward."""
    config, weights, inputs = default_case
    model = REF.build(config, weights, GENERATION)
    steps = ReferenceSteps(model, inputs, GROUPS)
    for _ in steps:
        pass
    settings = dict(num_beams=2, max_length=6, return_dict_in_generate=True, output_scores=True)
    alone, alone_scores = REF.generate(model, inputs, **settings)
    tokens, scores = REF.generate(EncodedReference(model, steps.encoder_hidden), inputs, **settings)
    assert np.array_equal(tokens, alone) and np.allclose(scores, alone_scores, rtol=1e-12, atol=0.0)
    prefix = alone[0, :4]
    whole = model(**{k: inputs[k] for k in ("input_ids", "attention_mask", "global_attention_mask")},
                  decoder_input_ids=prefix[None, :]).logits[0, -1]
    score = encoded_scorer(model, inputs, steps.encoder_hidden)(0, prefix)
    assert np.max(np.abs(score - whole)) <= 1e-12
    with pytest.raises(ValueError, match="not the encoded input"):
        REF.generate(EncodedReference(model, steps.encoder_hidden[:, :7]), inputs, max_length=3)


# ------------------------------------------------------------------------------------------ memory held
def layered_case(layers: int):
    """A random model of `layers` + `layers` layers (d_model 32, 4 heads, window 16), 160 input tokens (two of
    them global) and 64 decoder tokens: its outputs, not per-output bookkeeping, dominate what keeping them
    would take."""
    config = LEDConfig(vocab_size=64, d_model=32, encoder_attention_heads=4, decoder_attention_heads=4,
                       encoder_layers=layers, decoder_layers=layers, encoder_ffn_dim=64, decoder_ffn_dim=64,
                       attention_window=16, max_encoder_position_embeddings=256, max_decoder_position_embeddings=64,
                       dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    ids = np.random.default_rng(layers).integers(4, 64, size=(1, 160))
    glob = np.zeros_like(ids)
    glob[0, [0, 9]] = 1
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids), "global_attention_mask": glob,
              "decoder_input_ids": ids[:, :64], "labels": ids[:, 1:65]}
    return config, random_weights(config, GENERATION, seed=layers, std=0.1), inputs


def tracked(stream: OutputStream, alive: list, produced: list) -> OutputStream:
    """`stream` whose every tensor is watched through a weak reference; at each new one, how many are alive
    (held by anyone: the reader, a queue, the side) is appended to `produced`."""
    def items():
        while True:
            box = [stream.take()]  # the generator keeps nothing of an item it has handed over
            if box[0] is None:
                return
            try:
                alive.append(weakref.ref(box[0][1]))
            except TypeError:  # a Python float (the reference's loss)
                pass
            produced.append(sum(ref() is not None for ref in alive))
            yield box.pop()

    return OutputStream(stream.label, items(), stream.close)


def most_alive(layers: int) -> tuple[int, int]:
    """(most tensors alive at once, tensors produced) while comparing banded float32 with the reference."""
    config, weights, inputs = layered_case(layers)
    alive, produced = [], []
    ref = tracked(reference_stream(REF.build(config, weights, GENERATION), inputs, GROUPS), alive, produced)
    side = tracked(torch_stream(BANDED, BANDED.build(config, weights, GENERATION), inputs, GROUPS), alive, produced)
    [comparison] = compare_streams(ref, REF, [(BANDED, side)], inputs)
    assert comparison.passed and len(comparison.diffs) == 6 * layers + 5
    return max(produced), len(produced)


def test_the_comparison_holds_a_few_tensors_whatever_the_depth():
    """Holding the outputs would keep all 2 x (6L + 5) tensors; streaming keeps the encoder output (the decoder
    reads it), the current output of each side and the few a side emits after one layer: as many for 2 layers
    as for 6."""
    shallow, deep = most_alive(2), most_alive(6)
    assert deep[1] == 2 * (6 * 6 + 5)  # every output on both sides
    assert shallow[0] == deep[0] <= 5, (shallow, deep)


def reference_peak(layers: int) -> int:
    """Peak bytes numpy allocates while the float64 reference is compared with led_ref in float32."""
    config, weights, inputs = layered_case(layers)
    low = Side("ref", None, "float32")
    ref, side = REF.build(config, weights, GENERATION), low.build(config, weights, GENERATION)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        comparisons = compare_streams(reference_stream(ref, inputs, GROUPS), REF,
                                      [(low, reference_stream(side, inputs, GROUPS, label=low.label))], inputs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert comparisons[0].passed
    return peak


def outputs_bytes(layers: int) -> int:
    """What keeping every output of the float64 reference and a float32 side would take."""
    config, weights, inputs = layered_case(layers)
    whole = flatten_outputs(REF.build(config, weights, GENERATION)(**inputs, output_attentions=True,
                                                                   output_hidden_states=True))
    return int(1.5 * sum(v.nbytes for v in whole.values()))


def test_peak_memory_does_not_grow_with_depth():
    """Four more layers add their outputs to what keeping them would take; streamed, they add only their small
    records (errors, worst elements) to the peak."""
    shallow, deep = reference_peak(2), reference_peak(6)
    assert deep - shallow < (outputs_bytes(6) - outputs_bytes(2)) / 4, (shallow, deep)
