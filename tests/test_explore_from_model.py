"""`--from-model` (`led_ref.explore.from_model`): a real model's attentions, their dense views on exactly the
brute-force pattern, the exact round trip, long texts read from the compact arrays, and bad options.
"""

from __future__ import annotations

import numpy as np
import pytest

from led_ref.explore.from_model import (
    block_heat,
    dense_layer,
    dense_rows,
    model_attentions,
    model_pattern,
    roundtrip_error,
)
from tests.explore_cases import (
    PNG_MAGIC,
    brute_force_mask,
    pixels_of,
    run_cli,
    tiny_checkpoint,  # noqa: F401  (a fixture)
    tiny_led,
)


@pytest.fixture(scope="module")
def long_checkpoint(tmp_path_factory):
    """The tiny LED of `tiny_checkpoint` with 5,000 encoder positions (texts beyond --from-model's dense views
    and beyond its round trip)."""
    return tiny_led(tmp_path_factory, 5000)


def test_from_model_summary_and_exact_roundtrip(tiny_checkpoint):  # noqa: F811
    text = "a cat sat"  # 9 bytes + <s> </s> = 11 tokens: padded to 12 by the largest window 6
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, "--text", text,
                                "--global", "0,4", "--check-roundtrip"])
    assert status == 0, err
    assert "11 tokens, global: 0, 4, windows per layer: 4, 6" in out
    assert "pads the 11 tokens to 12" in out
    assert "layer 0 (window 4), mean over heads" in out and "layer 1 (window 6)" in out
    assert "row   0 '<s>' (global)" in out and "row   1 'a' (local)" in out
    assert "max abs diff 0 (exact)" in out


def test_from_model_heatmaps_grey_outside_the_pattern(tiny_checkpoint, tmp_path):  # noqa: F811
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from led_ref.explore.pictures import NOT_ATTENDED

    png = tmp_path / "heat.png"
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, "--text", "a cat sat",
                                "--global", "0,4", "--layer", "1", "--head", "0", "--png", str(png)])
    assert status == 0, err
    assert "layer 1 (window 6), head 0" in out and "layer 0" not in out
    assert png.read_bytes()[:8] == PNG_MAGIC
    image = imread(str(png))
    # one panel; (11 x 11) - attended cells are structurally 0 and drawn grey, not as "probability 0"
    outside = 121 - int(brute_force_mask(11, 6, [0, 4], 0).sum())
    assert outside > 0 and pixels_of(image, NOT_ATTENDED) > outside * 20


def test_from_model_dense_view_is_a_distribution_on_the_pattern(tiny_checkpoint):  # noqa: F811
    """The dense rows the heat maps show sum to 1 and vanish exactly outside the brute-force pattern."""
    from led_ref.io.tokenizer import LEDTokenizer
    from led_ref.model import LEDModel

    model, tokenizer = LEDModel.from_pretrained(tiny_checkpoint), LEDTokenizer.from_pretrained(tiny_checkpoint)
    found = model_attentions(model, tokenizer, "hello there", [0, 3])
    assert roundtrip_error(found) == 0.0
    seq_len = found.seq_len
    for layer, window in enumerate(found.windows):
        dense = dense_layer(found, layer)
        mask = brute_force_mask(seq_len, window, [0, 3], 0)
        assert np.all(dense[:, ~mask] == 0)
        assert np.all(dense[:, mask] > 0)
        np.testing.assert_allclose(dense.sum(axis=-1), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--text", "hi", "--global", "40"], "--global 40 is out of range 0..3 (the text's token count=4)"),
        (["--text", "hi", "--layer", "2"], "--layer 2"),
        (["--text", "hi", "--head", "5"], "--head 5"),
        (["--text", "hi", "--window", "4"], "--window"),
        (["--text-file", "/nonexistent/x.txt"], "/nonexistent/x.txt"),
        (["--text", "hi", "--text-file", "/nonexistent/x.txt"], "not both"),
        (["--text", "hi", "--pad", "3"], "--pad 3"),
        (["--text", "hi", "--format", "mask"], "--format mask"),
    ],
)
def test_from_model_bad_arguments(tiny_checkpoint, extra, needle):  # noqa: F811
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, *extra])
    assert status == 2 and needle in err, err


def test_from_model_text_file_not_utf8_names_the_file(tiny_checkpoint, tmp_path):  # noqa: F811
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    status, _, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, "--text-file", str(path)])
    assert status == 2 and str(path) in err and "not UTF-8 text (byte 3" in err, err
    assert "Traceback" not in err


def test_from_model_missing_checkpoint_is_exit_2(tmp_path):
    status, _, err = run_cli(["layout", "--from-model", "--checkpoint", str(tmp_path / "nothing")])
    assert status == 2 and "nothing" in err


def test_from_model_on_the_embedded_default_model():
    """No --checkpoint, no --text: the embedded default model on DEFAULT_TEXT; the round trip is exact and the
    dense view is a distribution on exactly the brute-force pattern of each layer."""
    from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir
    from led_ref.io.tokenizer import LEDTokenizer
    from led_ref.model import LEDModel

    status, out, err = run_cli(["layout", "--from-model", "--check-roundtrip"])
    assert status == 0, err
    assert "max abs diff 0 (exact)" in out
    checkpoint = default_checkpoint_dir()
    model, tokenizer = LEDModel.from_pretrained(checkpoint), LEDTokenizer.from_pretrained(checkpoint)
    found = model_attentions(model, tokenizer, DEFAULT_TEXT, [0])
    assert f"{found.seq_len} tokens, global: 0, windows per layer: {', '.join(map(str, found.windows))}" in out
    for layer, window in enumerate(found.windows):
        dense = dense_layer(found, layer)
        mask = brute_force_mask(found.seq_len, window, [0], 0)
        assert np.all(dense[:, ~mask] == 0) and np.all(dense[:, mask] > 0)
        np.testing.assert_allclose(dense.sum(axis=-1), 1.0, atol=1e-12)


def test_from_model_cuts_long_texts_and_says_so(tiny_checkpoint, tmp_path):  # noqa: F811
    path = tmp_path / "long.txt"
    path.write_text("x" * 100, encoding="utf-8")  # 102 tokens with <s> </s>; the tiny model has 64 positions
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, "--text-file", str(path),
                                "--check-roundtrip"])
    assert status == 0, err
    assert "64 tokens, global: 0" in out and "the text has 102 tokens; showing the first 64 (the model's limit" in out
    assert "max abs diff 0 (exact)" in out


def test_from_model_takes_texts_up_to_the_models_limit_with_block_views(long_checkpoint, tmp_path):
    """Beyond 1,024 tokens: the whole text up to max_encoder_position_embeddings, rows read from the compact
    arrays, heat maps of blocks; a longer text is cut to the limit with a one-line note."""
    pytest.importorskip("matplotlib")
    from led_ref.explore import pictures
    from led_ref.io.tokenizer import LEDTokenizer
    from led_ref.model import LEDModel

    text = "the quick brown fox jumps over the lazy dog. " * 27  # 1,215 bytes: 1,217 tokens
    path, png = tmp_path / "long.txt", tmp_path / "heat.png"
    path.write_text(text, encoding="utf-8")
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", long_checkpoint, "--text-file", str(path),
                                "--global", "0,600", "--rows", "0,700,1216", "--check-roundtrip", "--png", str(png)])
    assert status == 0, err
    assert "1217 tokens, global: 0, 600, windows per layer: 4, 6" in out and "the text has" not in out
    assert "max abs diff 0 (exact)" in out and png.read_bytes()[:8] == PNG_MAGIC
    model, tokenizer = LEDModel.from_pretrained(long_checkpoint), LEDTokenizer.from_pretrained(long_checkpoint)
    found = model_attentions(model, tokenizer, text, [0, 600])
    assert found.seq_len == 1217
    for layer in (0, 1):
        dense = dense_layer(found, layer)  # (heads, seq, seq): small enough for this tiny model
        rows = [0, 1, 600, 700, 1216]
        np.testing.assert_array_equal(dense_rows(found, layer, rows, [1]), dense[[1]][:, rows])
        np.testing.assert_array_equal(dense_rows(found, layer, rows), dense[:, rows])
        block = -(-1217 // pictures.HEAT_CELLS)
        heat, pattern = block_heat(found, layer, [0, 1], block)
        np.testing.assert_array_equal(heat, pictures._max_pool(dense, block))
        np.testing.assert_array_equal(pattern, pictures._max_pool(model_pattern(found, layer), block))
        mean = dense.mean(axis=0)
        top = int(np.argmax(mean[700]))
        assert f"row 700 {found.tokens[700]!r} (local): {top} {found.tokens[top]!r} {mean[700, top]:.3f}" in out
    # longer than the model: cut to its 5,000 positions, and said in one line; the round trip is not built there
    path.write_text("x" * 5100, encoding="utf-8")
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", long_checkpoint, "--text-file", str(path),
                                "--layer", "1", "--head", "0", "--png", str(png)])
    assert status == 0, err
    assert "5000 tokens, global: 0" in out
    assert ("the text has 5102 tokens; showing the first 5000 (the model's limit, max_encoder_position_embeddings="
            "5000)") in out
    assert "round trip not checked: 5000 tokens > 4096" in out and "max abs diff" not in out
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", long_checkpoint, "--text-file", str(path),
                                "--check-roundtrip"])
    assert status == 2 and "--check-roundtrip" in err and "5000 tokens must be <= 4096" in err


def test_from_model_rows_pick_the_described_rows(tiny_checkpoint):  # noqa: F811
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, "--text", "a cat sat",
                                "--rows", "3,7", "--reach", "3"])
    assert status == 0, err
    assert "row   3 'c' (local)" in out and "row   7 's' (local)" in out and "row   1 " not in out
    assert "How far token 3 (local)'s information reaches" in out
    status, _, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, "--text", "a cat sat",
                              "--row", "11"])
    assert status == 2 and "--row 11 is out of range 0..10" in err
