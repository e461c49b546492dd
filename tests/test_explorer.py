"""`python -m led_ref layout`, `led_ref.explore.explorer` and `.pictures` against independent derivations.

The printed 0/1 mask is compared with a brute-force mask written here from the rules of docs/contract.md; the
compact-layout explanation is compared with the columns HF's LED really fills; the PNG is read back pixel
by pixel.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from led_ref import layout
from led_ref.explore import explorer
from led_ref.explore.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------- helpers
def brute_force_mask(seq_len: int, window: int, global_positions, pad: int) -> np.ndarray:
    """bool (N, N) from docs/contract.md, one cell at a time: kinds = attention_mask * (global + 1); a local row sees
    non-padding keys within w/2 plus every global key; a global row every non-padding key; padding nothing."""
    kind = []
    for p in range(seq_len):
        attention = 0 if p >= seq_len - pad else 1
        kind.append(attention * ((1 if p in global_positions else 0) + 1))
    mask = np.zeros((seq_len, seq_len), dtype=bool)
    for i in range(seq_len):
        for j in range(seq_len):
            if kind[i] == 0 or kind[j] == 0:
                continue
            if kind[i] == 2:
                mask[i, j] = True
            else:
                mask[i, j] = abs(i - j) <= window // 2 or kind[j] == 2
    return mask


def run_cli(argv) -> tuple[int, str, str]:
    """main(argv) with stdout/stderr captured: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
    return status, out.getvalue(), err.getvalue()


def parse_mask(text: str, seq_len: int) -> np.ndarray:
    lines = text.split("\n")
    assert lines[-1] == "", "mask output must end with a newline"
    lines = lines[:-1]
    assert len(lines) == seq_len, f"expected exactly {seq_len} lines, got {len(lines)}"
    assert all(len(line) == seq_len and set(line) <= {"0", "1"} for line in lines), lines
    return np.array([[c == "1" for c in line] for line in lines])


def parse_grid(text: str, seq_len: int) -> dict[int, str]:
    """Row i of the first grid in `text` -> its N cell characters (blank-padded)."""
    digits = len(str(seq_len - 1))
    rows: dict[int, str] = {}
    lines = text.split("\n")
    start = next(k for k, line in enumerate(lines) if line.strip().startswith("key j:"))
    for line in lines[start + 1:start + 1 + seq_len]:
        i = int(line[:digits])
        body = line[digits + 1 + 6 + 1:]
        rows[i] = body[::2].ljust(seq_len)
    return rows


def layout_args(seq_len, window, global_positions, pad, *extra):
    argv = ["layout", "--seq-len", str(seq_len), "--window", str(window), "--pad", str(pad)]
    if global_positions:
        argv += ["--global", ",".join(map(str, global_positions))]
    return argv + list(extra)


@st.composite
def layout_cases(draw, max_len: int = 40, windows=tuple(range(2, 13, 2))):
    """(seq_len, window, global positions, pad) the CLI accepts: globals are distinct non-padding positions."""
    seq_len = draw(st.integers(1, max_len))
    window = draw(st.sampled_from(windows))
    pad = draw(st.integers(0, seq_len))
    valid = seq_len - pad
    globals_ = sorted(draw(st.sets(st.integers(0, valid - 1), max_size=min(valid, 4)))) if valid else []
    return seq_len, window, globals_, pad


# The CLI is cheap: check many more cases than the profile's default.
MANY = max(60, settings.default.max_examples)


# ---------------------------------------------------------------------------------------------- mask
@settings(max_examples=MANY)
@given(layout_cases())
def test_mask_output_equals_brute_force(case):
    seq_len, window, globals_, pad = case
    status, out, err = run_cli(layout_args(seq_len, window, globals_, pad, "--format", "mask"))
    assert status == 0, err
    np.testing.assert_array_equal(parse_mask(out, seq_len), brute_force_mask(seq_len, window, globals_, pad))


@given(layout_cases(max_len=24), st.lists(st.sampled_from([2, 4, 6, 8, 10]), min_size=2, max_size=3), st.data())
def test_mask_of_each_layer_uses_its_own_window(case, windows, data):
    seq_len, _, globals_, pad = case
    layer = data.draw(st.integers(0, len(windows) - 1))
    argv = ["layout", "--seq-len", str(seq_len), "--layer-windows", ",".join(map(str, windows)), "--pad", str(pad),
            "--global", ",".join(map(str, globals_)), "--format", "mask", "--layer", str(layer)]
    status, out, err = run_cli(argv)
    assert status == 0, err
    np.testing.assert_array_equal(parse_mask(out, seq_len), brute_force_mask(seq_len, windows[layer], globals_, pad))


def test_mask_through_a_subprocess():
    argv = layout_args(13, 6, [0, 7], 3, "--format", "mask")
    done = subprocess.run([sys.executable, "-m", "led_ref", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": REPO})
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(parse_mask(done.stdout, 13), brute_force_mask(13, 6, [0, 7], 3))


# ---------------------------------------------------------------------------------------------- grid
def test_grid_marks_and_legend_of_the_worked_example():
    status, out, err = run_cli(layout_args(12, 4, [0], 2))
    assert status == 0, err
    rows = parse_grid(out, 12)
    assert rows[0] == "g" * 10 + "pp"  # global row: every non-padding key
    assert rows[1] == "G\\WW......pp"  # local row 1: global key 0, self, window 2..3
    assert rows[4] == "G.WW\\WW...pp"  # window 2..6 around 4, global 0 far away
    assert rows[9] == "G......WW\\pp"  # window 7..11 cut by padding 10, 11
    assert rows[10] == " " * 12 and rows[11] == " " * 12  # padding rows are blank
    for char, meaning in (("W", "window key"), ("G", "global key"), ("g", "global row"), (".", "outside"),
                          ("p", "padding key"), ("\\", "self")):
        assert f"'{char}'  " in out and meaning in out
    # the compact row of the first local row (1): x = 1, window slots hold keys -1..3, self at column 3
    assert "Row 1 is local" in out and "width x + w + 1 = 6" in out
    for line in ("     0     0  global key 0", "     1    -1  window slot -2: before position 0",
                 "     2     0  window slot -1: key 0 is global", "     3     1  window slot +0: self"):
        assert line in out


@given(layout_cases(max_len=30))
def test_grid_cells_agree_with_brute_force(case):
    seq_len, window, globals_, pad = case
    status, out, err = run_cli(layout_args(seq_len, window, globals_, pad))
    assert status == 0, err
    rows = parse_grid(out, seq_len)
    mask = brute_force_mask(seq_len, window, globals_, pad)
    for i in range(seq_len):
        for j in range(seq_len):
            c = rows[i][j]
            if i >= seq_len - pad:
                expected = " "
            elif not mask[i, j]:
                expected = "p" if j >= seq_len - pad else "."
            elif i in globals_:
                expected = "g"
            elif j in globals_:
                expected = "G"
            else:
                expected = "\\" if i == j else "W"
            assert c == expected, (i, j, c, expected)


def test_layer_windows_grid_per_layer_and_padding_note():
    status, out, err = run_cli(["layout", "--seq-len", "12", "--layer-windows", "4,6", "--global", "0"])
    assert status == 0, err
    assert "== layer 0: window 4" in out and "== layer 1: window 6" in out
    # 12 -> padded to 12 (a multiple of 6) but per-layer 4 does not divide 6: the project allows it
    assert "already a multiple of the largest window 6" in out
    status, out, _ = run_cli(["layout", "--seq-len", "10", "--layer-windows", "4,8"])
    assert "pads the 10 tokens to 16, a multiple of the largest window 8: positions 10..15" in out


@given(layout_cases(max_len=24), st.data())
def test_row_columns_follow_the_compact_rule(case, data):
    """Local row i: columns 0..x-1 are the globals in order, then slot k holds key i - w/2 + k (brute force)."""
    seq_len, window, globals_, pad = case
    kinds = explorer.example_kinds(seq_len, [window], globals_, pad)
    local = [i for i in range(seq_len) if kinds[i] == 1]
    if not local:
        return
    i = data.draw(st.sampled_from(local))
    columns = explorer.row_columns(kinds, window, i)
    padded = len(kinds)
    assert [c.column for c in columns] == list(range(len(globals_) + window + 1))
    assert [c.key for c in columns[:len(globals_)]] == globals_
    for k, col in enumerate(columns[len(globals_):]):
        key = i - window // 2 + k
        assert col.key == key
        expected = ("outside" if not 0 <= key < padded else "padding" if key >= seq_len - pad
                    else "global-in-window" if key in globals_ else "self" if key == i else "window")
        assert col.role == expected
    # and the same cells the layout module's own index map marks as holding a key
    keys, valid = layout.compact_columns(kinds[None], window)
    holds = [c.holds_probability for c in columns]
    key_is_pad = [c.role == "padding" for c in columns]
    np.testing.assert_array_equal(np.array(holds) | np.array(key_is_pad), valid[0, i])


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["layout", "--seq-len", "12", "--window", "5"], "5"),
        (["layout", "--seq-len", "12", "--window", "0"], "0"),
        (["layout", "--seq-len", "12", "--window", "four"], "'four'"),
        (["layout", "--seq-len", "12", "--layer-windows", "4,7"], "7"),
        (["layout", "--seq-len", "12", "--window", "4", "--global", "12"], "--global 12 is out of range 0..11"),
        (["layout", "--seq-len", "12", "--window", "4", "--global", "0,0"], "[0, 0]"),
        (["layout", "--seq-len", "12", "--window", "4", "--pad", "13"], "--pad must be in 0..12 (--seq-len), got 13"),
        (["layout", "--seq-len", "0", "--window", "4"], "--seq-len must be in 1..16384, got 0"),
        (["layout", "--seq-len", "16385", "--window", "4"], "--seq-len must be in 1..16384, got 16385"),
        (["layout", "--seq-len", "4097", "--window", "4", "--format", "mask"], "--seq-len must be <= 4096, got 4097"),
        (["layout", "--seq-len", "300", "--window", "4", "--block", "1"], "--block 1 (one column per key) needs"),
        (["layout", "--seq-len", "12", "--window", "4", "--rows", "3,12"], "--rows 12 is out of range 0..11"),
        (["layout", "--seq-len", "99", "--window", "4", "--rows", "0..40"], "at most 32 rows"),
        (["layout", "--seq-len", "12", "--window", "4", "--row", "1", "--rows", "2"], "not both"),
        (["layout", "--seq-len", "12", "--window", "4", "--batch", "0", "--global", "1"], "drop --global/--pad"),
        (["layout", "--seq-len", "12", "--window", "4", "--batch", "0", "x/1"], "'x/1'"),
        (["layout", "--seq-len", "12", "--window", "4", "--batch", "12"], "--batch row 0: global 12 is out of range"),
        (["layout", "--seq-len", "12", "--window", "4", "--reach", "12"], "--reach 12 is out of range 0..11"),
        (["layout", "--seq-len", "99999", "--window", "4"], "99999"),
        (["layout", "--seq-len", "12", "--window", "4", "--row", "12"], "--row 12"),
        (["layout", "--seq-len", "12", "--layer-windows", "4,8", "--layer", "2"], "--layer 2"),
        (["layout", "--seq-len", "12"], "--window"),
        (["layout", "--window", "4"], "--seq-len"),
        (["layout", "--seq-len", "12", "--window", "4", "--layer-windows", "4,8"], "not both"),
        (["layout", "--seq-len", "12", "--window", "4", "--pad", "-1"], "-1"),
        (["layout", "--seq-len", "12", "--window", "4", "--format", "svg"], "'svg'"),
    ],
)
def test_bad_arguments_exit_2_naming_the_value(argv, needle):
    status, out, err = run_cli(argv)
    assert status == 2
    assert needle in err, err
    assert out == ""


def test_explorer_functions_raise_value_errors_naming_the_limit():
    with pytest.raises(ValueError, match=r"pad must be in 0..4 \(seq_len\), got 5"):
        explorer.example_masks(4, [], 5)
    with pytest.raises(ValueError, match="window of layer 1 must be an even int >= 2, got 3"):
        explorer.example_kinds(4, [2, 3])
    with pytest.raises(ValueError, match="row must be in 0..3"):
        explorer.layout_report(4, [2], row=4)


# ---------------------------------------------------------------------------------------------- vs the HF oracle
@functools.lru_cache(maxsize=4)
def _hf_encoder(window: int):
    """A 1-layer, 1-head HF LED (float32) with window `window` and fixed random weights."""
    torch = pytest.importorskip("torch")
    from led_ref.init import random_weights
    from led_ref.io.config import LEDConfig
    from tests.hf_oracle import hf_model

    config = LEDConfig(vocab_size=20, d_model=4, encoder_layers=1, decoder_layers=1, encoder_attention_heads=1,
                       decoder_attention_heads=1, encoder_ffn_dim=4, decoder_ffn_dim=4, attention_window=window,
                       max_encoder_position_embeddings=64, max_decoder_position_embeddings=8)
    return hf_model(config, random_weights(config, "LEDModel", seed=window, std=0.3), "LEDModel",
                    torch.float32).get_encoder()


@pytest.mark.hf
@given(layout_cases(max_len=14, windows=(4, 8)), st.integers(0, 2**16))
def test_explained_columns_are_the_ones_hf_fills(case, seed):
    """Every compact cell the explorer says holds a probability is > 0 in HF's output, every other one is 0,
    and the explorer's global-row story (attentions row 0, global_attentions slot s) holds too."""
    seq_len, window, globals_, pad = case
    if pad == seq_len:
        return  # HF cannot run an all-padding row
    torch = pytest.importorskip("torch")
    from tests.hf_oracle import to_numpy

    attention_mask, global_attention_mask = explorer.example_masks(seq_len, globals_, pad)
    ids = torch.from_numpy(np.random.default_rng(seed).integers(3, 20, (1, seq_len)))
    with torch.no_grad():
        out = _hf_encoder(window)(input_ids=ids, attention_mask=torch.from_numpy(attention_mask),
                                  global_attention_mask=torch.from_numpy(global_attention_mask),
                                  output_attentions=True)
    attentions = to_numpy(out.attentions[0])[0, 0]  # (seq, x + w + 1)
    kinds = explorer.example_kinds(seq_len, [window], globals_, pad)
    for i in range(seq_len):
        if kinds[i] == 1:
            holds = np.array([c.holds_probability for c in explorer.row_columns(kinds, window, i)])
            assert np.all(attentions[i][holds] > 0) and np.all(attentions[i][~holds] == 0), (i, attentions[i])
        else:
            assert np.all(attentions[i] == 0)
    if globals_:
        global_attentions = to_numpy(out.global_attentions[0])[0, 0]  # (padded seq, x)
        for s, g in enumerate(globals_):
            np.testing.assert_array_equal(global_attentions[:seq_len, s] > 0, brute_force_mask(
                seq_len, window, globals_, pad)[g])


# ---------------------------------------------------------------------------------------------- pictures
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pixels_of(image: np.ndarray, hex_color: str) -> int:
    from led_ref.explore.pictures import rgb

    return int(np.sum(np.all(np.abs(image[..., :3] - rgb(hex_color)) < 1.5 / 255, axis=-1)))


def test_png_from_the_cli_has_the_pattern_colours(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from led_ref.explore.explorer import Cell
    from led_ref.explore.pictures import CELL_COLORS

    path = tmp_path / "layout.png"
    status, out, err = run_cli(layout_args(12, 4, [0], 2, "--png", str(path)))
    assert status == 0, err
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    image = imread(str(path))
    counts = {cell: _pixels_of(image, CELL_COLORS[cell]) for cell in Cell}
    # Cell areas are equal, so pixel counts follow cell counts: the grid has 9 self cells and (brute force)
    # window_cells window cells; the strip and the legend add a few of each colour.
    mask = brute_force_mask(12, 4, [0], 2)
    window_cells = int(mask[1:10, 1:10].sum()) - 9
    assert counts[Cell.WINDOW] > 0 and counts[Cell.SELF] > 0
    ratio = counts[Cell.WINDOW] / counts[Cell.SELF]
    assert 0.6 * window_cells / 9 < ratio < 1.2 * window_cells / 9, (ratio, counts)
    assert counts[Cell.WINDOW] > max(counts[c] for c in (Cell.GLOBAL_KEY, Cell.GLOBAL_ROW, Cell.SELF))


@settings(max_examples=max(4, settings.default.max_examples // 3))  # ~0.3 s a figure
@given(layout_cases(max_len=16))
def test_drawn_cells_have_their_kind_colour(case):
    """Render the figure and read the colour at the centre of every cell of the pattern axes."""
    pytest.importorskip("matplotlib")
    from led_ref.explore.explorer import Cell
    from led_ref.explore.pictures import CELL_COLORS, ROLE_COLORS, draw_layout, rgb

    seq_len, window, globals_, pad = case
    fig = draw_layout(seq_len, [window], globals_, pad)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    ax = fig.axes[0]
    cells = explorer.pattern_cells(explorer.example_kinds(seq_len, [window], globals_, pad), window, seq_len)
    mask = brute_force_mask(seq_len, window, globals_, pad)
    for i in range(seq_len):
        for j in range(seq_len):
            x, y = ax.transData.transform((j, i))
            pixel = image[int(round(image.shape[0] - y)), int(round(x))]
            np.testing.assert_allclose(pixel, rgb(CELL_COLORS[Cell(cells[i, j])]), atol=1.5 / 255, err_msg=str((i, j)))
            attended = Cell(cells[i, j]) in explorer.ATTENDED
            assert attended == mask[i, j]
    # the strip beside it: compact column c of the first local row, coloured by what it holds
    kinds = explorer.example_kinds(seq_len, [window], globals_, pad)
    row = explorer.default_row(kinds, seq_len)
    if kinds[row] == 1:
        strip = fig.axes[1]
        for col in explorer.row_columns(kinds, window, row):
            x, y = strip.transData.transform((col.column - 0.3, 0.3))  # off-centre: the centre holds the label
            pixel = image[int(round(image.shape[0] - y)), int(round(x))]
            np.testing.assert_allclose(pixel, rgb(ROLE_COLORS[col.role]), atol=1.5 / 255, err_msg=str(col))


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    from led_ref.explore import pictures

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes `from matplotlib.figure import` fail
    with pytest.raises(pictures.PicturesUnavailable, match=r"pip install 'led-parity\[pictures\]'"):
        pictures.draw_layout(4, [2])
    status, _, err = run_cli(layout_args(4, 2, [], 0, "--png", str(tmp_path / "x.png")))
    assert status == 1 and "led-parity[pictures]" in err
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------------------------- --from-model
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return tiny_led(tmp_path_factory, 64)


def tiny_led(tmp_path_factory, max_positions: int) -> str:
    """A 2-layer LED with per-layer windows 4 and 6 (4 does not divide 6: beyond HF) and a byte-level tokenizer
    with no merges (one token per byte), saved in HF format."""
    from tokenizers import pre_tokenizers

    from led_ref.io.config import LEDConfig
    from led_ref.io.tokenizer import LEDTokenizer
    from led_ref.model import LEDForConditionalGeneration

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(specials + alphabet + ["<mask>"])}
    directory = tmp_path_factory.mktemp("tiny_led")
    config = LEDConfig(vocab_size=len(vocab), d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[4, 6],
                       max_encoder_position_embeddings=max_positions, max_decoder_position_embeddings=16)
    LEDForConditionalGeneration(config, seed=3).save_pretrained(directory)
    LEDTokenizer(vocab, []).save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def long_checkpoint(tmp_path_factory):
    """The tiny LED of `tiny_checkpoint` with 5,000 encoder positions (texts beyond --from-model's dense views
    and beyond its round trip)."""
    return tiny_led(tmp_path_factory, 5000)


def test_from_model_summary_and_exact_roundtrip(tiny_checkpoint):
    text = "a cat sat"  # 9 bytes + <s> </s> = 11 tokens: padded to 12 by the largest window 6
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, "--text", text,
                                "--global", "0,4", "--check-roundtrip"])
    assert status == 0, err
    assert "11 tokens, global: 0, 4, windows per layer: 4, 6" in out
    assert "pads the 11 tokens to 12" in out
    assert "layer 0 (window 4), mean over heads" in out and "layer 1 (window 6)" in out
    assert "row   0 '<s>' (global)" in out and "row   1 'a' (local)" in out
    assert "max abs diff 0 (exact)" in out


def test_from_model_heatmaps_grey_outside_the_pattern(tiny_checkpoint, tmp_path):
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
    assert outside > 0 and _pixels_of(image, NOT_ATTENDED) > outside * 20


def test_from_model_dense_view_is_a_distribution_on_the_pattern(tiny_checkpoint):
    """The dense rows the heat maps show sum to 1 and vanish exactly outside the brute-force pattern."""
    from led_ref.io.tokenizer import LEDTokenizer
    from led_ref.model import LEDModel

    model, tokenizer = LEDModel.from_pretrained(tiny_checkpoint), LEDTokenizer.from_pretrained(tiny_checkpoint)
    found = explorer.model_attentions(model, tokenizer, "hello there", [0, 3])
    assert explorer.roundtrip_error(found) == 0.0
    seq_len = found.seq_len
    for layer, window in enumerate(found.windows):
        dense = explorer.dense_layer(found, layer)
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
def test_from_model_bad_arguments(tiny_checkpoint, extra, needle):
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, *extra])
    assert status == 2 and needle in err, err


def test_from_model_text_file_not_utf8_names_the_file(tiny_checkpoint, tmp_path):
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
    found = explorer.model_attentions(model, tokenizer, DEFAULT_TEXT, [0])
    assert f"{found.seq_len} tokens, global: 0, windows per layer: {', '.join(map(str, found.windows))}" in out
    for layer, window in enumerate(found.windows):
        dense = explorer.dense_layer(found, layer)
        mask = brute_force_mask(found.seq_len, window, [0], 0)
        assert np.all(dense[:, ~mask] == 0) and np.all(dense[:, mask] > 0)
        np.testing.assert_allclose(dense.sum(axis=-1), 1.0, atol=1e-12)


def test_tour_shows_what_the_cli_prints():
    """Every synthetic `$ python -m led_ref layout ...` block of docs/tour.md and README.md (not --from-model,
    whose numbers belong to the embedded model's recipe) prints what the page says; `...` stands for skipped
    lines."""
    import re
    import shlex

    tour = ""
    for page in (os.path.join(REPO, "docs", "tour.md"), os.path.join(REPO, "README.md")):
        with open(page, encoding="utf-8") as fh:
            tour += fh.read()
    checked = 0
    for block in re.findall(r"```console\n(.*?)```", tour, re.S):
        for command in re.split(r"^\$ ", block, flags=re.M)[1:]:
            line, _, expected = command.partition("\n")
            argv = shlex.split(line)
            if argv[:3] != ["python", "-m", "led_ref"] or "--from-model" in argv:
                continue
            argv = argv[3:]
            for option in ("--png", "--html"):  # do not rewrite the committed pictures, nor write pages here
                if option in argv:
                    k = argv.index(option)
                    del argv[k:k + 2]
            _, out, err = run_cli(argv)
            got = (out + err).splitlines()
            position = 0
            for wanted in (w for w in expected.splitlines() if w != "..." and not w.startswith("wrote ")):
                assert wanted in got[position:], f"{line}: {wanted!r} not printed (in order)"
                position = got.index(wanted, position) + 1
            checked += 1
    assert checked >= 5


def test_from_model_cuts_long_texts_and_says_so(tiny_checkpoint, tmp_path):
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
    found = explorer.model_attentions(model, tokenizer, text, [0, 600])
    assert found.seq_len == 1217
    for layer in (0, 1):
        dense = explorer.dense_layer(found, layer)  # (heads, seq, seq): small enough for this tiny model
        rows = [0, 1, 600, 700, 1216]
        np.testing.assert_array_equal(explorer.dense_rows(found, layer, rows, [1]), dense[[1]][:, rows])
        np.testing.assert_array_equal(explorer.dense_rows(found, layer, rows), dense[:, rows])
        block = -(-1217 // pictures.HEAT_CELLS)
        heat, pattern = explorer.block_heat(found, layer, [0, 1], block)
        np.testing.assert_array_equal(heat, pictures._max_pool(dense, block))
        np.testing.assert_array_equal(pattern, pictures._max_pool(explorer.model_pattern(found, layer), block))
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


# ---------------------------------------------------------------------------------------------- real scale
def brute_force_block_kind(mask: np.ndarray, kinds, i0: int, i1: int, j0: int, j1: int) -> str:
    """The block character class of queries i0..i1-1 x keys j0..j1-1, cell by cell from the brute-force mask."""
    kinds = np.asarray(kinds)
    if all(kinds[i] == 0 for i in range(i0, i1)):
        return "pad"
    cells = [(i, j) for i in range(i0, i1) for j in range(j0, j1)]
    attended = [(i, j) for i, j in cells if mask[i, j]]
    if len(attended) == len(cells):
        return "full"
    if any(kinds[i] == 1 and kinds[j] == 1 for i, j in attended):
        return "window"
    if any(kinds[i] == 2 for i, _ in attended):
        return "global_row"
    return "global_key" if attended else "none"


@given(layout_cases(max_len=40), st.integers(1, 9))
def test_block_grid_classifies_blocks_like_brute_force(case, block):
    seq_len, window, globals_, pad = case
    status, out, err = run_cli(layout_args(seq_len, window, globals_, pad, "--block", str(block)))
    assert status == 0, err
    if block == 1:
        return  # the token grid is checked by test_grid_cells_agree_with_brute_force
    mask = brute_force_mask(seq_len, window, globals_, pad)
    kinds = explorer.example_kinds(seq_len, [window], globals_, pad)
    lines = out.split("\n")
    start = next(k for k, line in enumerate(lines) if "key blocks of" in line) + 1
    blocks = -(-seq_len // block)
    chars = {v: k for k, v in explorer.BLOCK_CHARS.items()}
    for r in range(blocks):
        label = f"{r * block}..{min(seq_len, (r + 1) * block) - 1}"
        line = lines[start + r]
        assert line.strip().startswith(label), (line, label)
        width = line.index(label) + len(label)
        line = line.ljust(width + 3 + blocks)
        tag, body = line[width + 1], line[width + 3:]
        assert tag == ("g" if any(kinds[i] == 2 for i in range(r * block, min(seq_len, (r + 1) * block))) else " ")
        for c in range(blocks):
            want = brute_force_block_kind(mask, kinds, r * block, min(seq_len, (r + 1) * block), c * block,
                                          min(seq_len, (c + 1) * block))
            assert chars[body[c]] == want, (r, c, body, want)


def test_led_base_scale_in_the_terminal_is_bounded():
    """16,384 tokens, window 1024 (LED-base): a block grid and collapsed column runs, a few kB of output."""
    status, out, err = run_cli(["layout", "--seq-len", "16384", "--window", "1024", "--global", "0,5000",
                                "--pad", "2", "--rows", "1,5000,9000,16383"])
    assert status == 0, err
    assert len(out) < 12_000 and out.count("\n") < 150, (len(out), out.count("\n"))
    assert "rows: blocks of 256 queries; columns: blocks of 256 keys" in out
    assert "token kinds: 0 global, 1..4999 local, 5000 global, 5001..16381 local, 16382..16383 pad" in out
    # row 9000: x = 2 global columns, then 512 window keys on each side of self (column x + w/2 = 514)
    assert "     2..513 (512 columns)  window slots -512..-1: keys 8488..8999, window keys" in out
    assert "   514  9000  window slot +0: self (column x + w/2 = 514)" in out
    assert "   515..1026 (512 columns)  window slots +1..+512: keys 9001..9512, window keys" in out
    assert "Row 5000 is global (slot 1 of x = 2)" in out and "Row 16383 is padding" in out
    assert "     2..512 (511 columns)  window slots -512..-2: keys -511..-1 are before position 0, always 0" in out


@given(layout_cases(max_len=30, windows=(8, 10, 12)), st.data())
def test_collapsed_column_runs_cover_every_column_once(case, data):
    """Every line of a local row's table (single or collapsed) adds up to the columns of `row_columns`."""
    import re

    seq_len, window, globals_, pad = case
    kinds = explorer.example_kinds(seq_len, [window], globals_, pad)
    local = [i for i in range(seq_len) if kinds[i] == 1]
    if not local:
        return
    row = data.draw(st.sampled_from(local))
    text = explorer.compact_text(kinds, window, row, seq_len)
    columns = explorer.row_columns(kinds, window, row)
    covered = []
    for line in text.splitlines()[3:]:
        run = re.match(r"\s+(\d+)\.\.(\d+) \((\d+) columns\)  (.*)", line)
        if run:
            first, last = int(run[1]), int(run[2])
            assert int(run[3]) == last - first + 1 >= explorer.RUN_MIN
            group = columns[first:last + 1]
            assert len({c.role for c in group}) == 1
            if group[0].role != "global":
                assert f"keys {group[0].key}..{group[-1].key}" in run[4]
            covered.extend(range(first, last + 1))
        else:
            c, key = map(int, line.split()[:2])
            assert columns[c].key == key and columns[c].note in line
            covered.append(c)
    assert covered == list(range(len(columns)))


def test_png_at_led_base_scale_keeps_globals_and_the_strip_visible():
    pytest.importorskip("matplotlib")
    from led_ref.explore.explorer import Cell
    from led_ref.explore.pictures import CELL_COLORS, MIN_LINE_PIXELS, ROLE_COLORS, draw_layout, rgb

    fig = draw_layout(16384, [1024], [0, 5000], 2, 9000)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    height = image.shape[0]

    def colour_at(ax, x, y):
        px, py = ax.transData.transform((x, y))
        return image[int(round(height - py)), int(round(px))]

    def run_length(ax, x, y, color, axis):
        """How many pixels of `color` in a row (axis 0: vertical) through data point (x, y)."""
        px, py = ax.transData.transform((x, y))
        px, py = int(round(px)), int(round(height - py))
        line = image[py - 10:py + 11, px] if axis == 0 else image[py, px - 10:px + 11]
        return int(np.sum(np.all(np.abs(line - rgb(color)) < 1.5 / 255, axis=-1)))

    grid, strip = fig.axes[0], fig.axes[1]
    np.testing.assert_allclose(colour_at(grid, 12000, 5000), rgb(CELL_COLORS[Cell.GLOBAL_ROW]), atol=1.5 / 255)
    np.testing.assert_allclose(colour_at(grid, 5000, 12000), rgb(CELL_COLORS[Cell.GLOBAL_KEY]), atol=1.5 / 255)
    assert run_length(grid, 12000, 5000, CELL_COLORS[Cell.GLOBAL_ROW], 0) >= MIN_LINE_PIXELS
    assert run_length(grid, 5000, 12000, CELL_COLORS[Cell.GLOBAL_KEY], 1) >= MIN_LINE_PIXELS
    np.testing.assert_allclose(colour_at(grid, 8000, 8000), rgb(CELL_COLORS[Cell.WINDOW]), atol=1.5 / 255)
    np.testing.assert_allclose(colour_at(grid, 14000, 2000), rgb(CELL_COLORS[Cell.OUTSIDE]), atol=1.5 / 255)
    # the strip: a band, not a hairline; self (column 514) and the global columns at least 2 px wide
    assert strip.get_window_extent().height >= 30
    np.testing.assert_allclose(colour_at(strip, 800, 0), rgb(ROLE_COLORS["window"]), atol=1.5 / 255)
    assert run_length(strip, 514, 0, ROLE_COLORS["self"], 1) >= MIN_LINE_PIXELS
    assert run_length(strip, 1, 0, ROLE_COLORS["global"], 1) >= MIN_LINE_PIXELS


# ---------------------------------------------------------------------------------------------- show, don't refuse
def test_global_flag_on_padding_is_drawn_as_padding_with_a_note():
    status, out, err = run_cli(layout_args(12, 4, [0, 11], 2, "--format", "mask"))
    assert status == 0, err
    np.testing.assert_array_equal(parse_mask(out, 12), brute_force_mask(12, 4, [0], 2))  # 11 stays padding
    status, out, err = run_cli(layout_args(12, 4, [0, 11], 2))
    assert status == 0, err
    assert ("note: global position 11 is padding (pad=2): drawn as padding, because the model's token kind is "
            "attention_mask * (global_attention_mask + 1) = 0 there (HF does the same).") in out
    assert "token kinds: 2 1 1 1 1 1 1 1 1 1 0 0" in out and parse_grid(out, 12)[11] == " " * 12


def test_batch_shows_x_and_the_unused_slots():
    status, out, err = run_cli(["layout", "--seq-len", "12", "--window", "4", "--batch", "0,5", "3/2", "/4"])
    assert status == 0, err
    assert "A batch of 3 rows, 12 tokens, window 4: x = 2" in out
    assert "(batch=3, heads, 12, x + w + 1 = 7)" in out
    assert "  1      3              10..11        key 3          unused: 0" in out
    assert "  2      none           8..11         unused: 0      unused: 0" in out
    # batch row 1's table: its one global key in slot 0, slot 1 unused, the window from column x = 2
    kinds = explorer.batch_kinds(12, [4], [([0, 5], 0), ([3], 2), ([], 4)])
    keys, _ = layout.compact_columns(kinds, 4)
    section = out.split("-- batch row 1")[1].split("-- batch row 2")[0]
    assert "     1    -1  global slot 1: unused in this batch row, always 0" in section
    for c in range(7):
        key = keys[1, 0, c]
        line = next(line for line in section.splitlines() if line.startswith(f"  {c:4d} "))
        if key != layout.UNUSED:
            assert int(line.split()[1]) == key, line
        else:
            assert "always 0" in line or "is global" in line, line


def test_batch_png_draws_every_row_with_its_globals_padding_and_slots(tmp_path):
    """`--batch ... --png`: one panel per batch row, each with its own global column and padding, and a strip of
    the batch's x slots where the slots a row does not fill are drawn as unused (0)."""
    pytest.importorskip("matplotlib")
    from led_ref.explore.explorer import Cell
    from led_ref.explore.pictures import CELL_COLORS, ROLE_COLORS, draw_batch_layout, rgb

    batch = [([0, 5], 0), ([3], 2), ([], 4)]
    path = tmp_path / "batch.png"
    status, out, err = run_cli(["layout", "--seq-len", "12", "--window", "4", "--batch", "0,5", "3/2", "/4",
                                "--png", str(path)])
    assert status == 0, err
    assert path.read_bytes()[:8] == PNG_MAGIC and f"wrote {path}" in out
    fig = draw_batch_layout(12, [4], batch)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    grids, strips = fig.axes[0:6:2], fig.axes[1:6:2]
    assert len(fig.axes) == 6

    def colour_at(ax, x, y):
        px, py = ax.transData.transform((x, y))
        return image[int(round(image.shape[0] - py)), int(round(px))]

    for b, (ax, (globals_, pad)) in enumerate(zip(grids, batch, strict=True)):
        assert f"batch row {b}: global {', '.join(map(str, globals_)) or 'none'}" in ax.get_title()
        assert ("padding none" if not pad else f"padding {12 - pad}..11") in ax.get_title()
        cells = explorer.pattern_cells(explorer.batch_kinds(12, [4], batch)[b], 4, 12)
        np.testing.assert_array_equal(explorer.attended_mask(cells), brute_force_mask(12, 4, globals_, pad))
        for i in range(12):
            for j in range(12):
                np.testing.assert_allclose(colour_at(ax, j, i), rgb(CELL_COLORS[Cell(cells[i, j])]), atol=1.5 / 255,
                                           err_msg=str((b, i, j)))
    # row 1's global column 3 is in row 1's panel, not in row 0's (there query 8, key 3 is outside the window)
    np.testing.assert_allclose(colour_at(grids[1], 3, 8), rgb(CELL_COLORS[Cell.GLOBAL_KEY]), atol=1.5 / 255)
    np.testing.assert_allclose(colour_at(grids[0], 3, 8), rgb(CELL_COLORS[Cell.OUTSIDE]), atol=1.5 / 255)
    np.testing.assert_allclose(colour_at(grids[2], 3, 8), rgb(CELL_COLORS[Cell.PAD_ROW]), atol=1.5 / 255)
    # x = 2 slots in every strip: row 0 fills both, row 1 slot 0 (key 3) only, row 2 none; unused slots read 0
    kinds = explorer.batch_kinds(12, [4], batch)
    for b, strip in enumerate(strips):
        row = explorer.default_row(kinds[b], 12)
        columns = explorer.row_columns(kinds[b], 4, row, 2)
        assert len(columns) == 7
        labels = {round(t.get_position()[0]): t.get_text() for t in strip.texts}
        for col in columns:
            np.testing.assert_allclose(colour_at(strip, col.column - 0.3, 0.3), rgb(ROLE_COLORS[col.role]),
                                       atol=1.5 / 255, err_msg=str((b, col)))
            assert labels[col.column] == ("0" if col.role == "unused" else str(col.key))
    assert [c.role for c in explorer.row_columns(kinds[1], 4, 0, 2)[:2]] == ["global", "unused"]
    assert [c.role for c in explorer.row_columns(kinds[2], 4, 0, 2)[:2]] == ["unused", "unused"]


def reach_by_brute_force(seq_len, windows, globals_, pad, token):
    """Positions whose output after layer l depends on token's input: closure of (mask_l or identity)."""
    reached = np.zeros(seq_len, dtype=bool)
    reached[token] = True
    out = []
    for w in windows:
        mask = brute_force_mask(seq_len, w, globals_, pad) | np.eye(seq_len, dtype=bool)
        reached = (mask & reached[None, :]).any(axis=1)
        out.append(reached.copy())
    return out


@given(layout_cases(max_len=40), st.lists(st.sampled_from([2, 4, 6, 8]), min_size=1, max_size=4), st.data())
def test_reach_per_layer_equals_brute_force(case, windows, data):
    seq_len, _, globals_, pad = case
    token = data.draw(st.integers(0, seq_len - 1))
    kinds = explorer.example_kinds(seq_len, windows, globals_, pad)
    got = explorer.reach_per_layer(kinds, windows, token, seq_len)
    want = reach_by_brute_force(seq_len, windows, globals_, pad, token)
    np.testing.assert_array_equal(np.array(got), np.array(want))


def test_reach_text_and_png_show_the_global_hop(tmp_path):
    path = tmp_path / "reach.png"
    status, out, err = run_cli(["layout", "--seq-len", "64", "--layer-windows", "4,4,8", "--global", "40",
                                "--reach", "5", "--png", str(path)])
    assert status == 0, err
    assert "How far token 5 (local)'s information reaches" in out
    assert "  after layer 0 (window 4): 3..7, 40  [6 of 64 tokens; windows alone: 3..7]" in out
    assert "  after layer 1 (window 4): 0..63  [64 of 64 tokens; windows alone: 1..9]" in out
    pytest.importorskip("matplotlib")
    from led_ref.explore.explorer import Cell
    from led_ref.explore.pictures import CELL_COLORS, draw_reach, rgb

    assert path.read_bytes()[:8] == PNG_MAGIC
    fig = draw_reach(64, [4, 4, 8], [40], 0, 5)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    ax = fig.axes[0]

    def colour_at(x, y):
        px, py = ax.transData.transform((x, y))
        return image[int(round(image.shape[0] - py)), int(round(px))]

    blue, white = rgb(CELL_COLORS[Cell.WINDOW]), rgb(CELL_COLORS[Cell.OUTSIDE])
    np.testing.assert_allclose(colour_at(5, 0), rgb(CELL_COLORS[Cell.SELF]), atol=1.5 / 255)  # the input row
    np.testing.assert_allclose(colour_at(20, 0), white, atol=1.5 / 255)
    np.testing.assert_allclose(colour_at(7, 1), blue, atol=1.5 / 255)  # layer 0: the window ...
    np.testing.assert_allclose(colour_at(40, 1), blue, atol=1.5 / 255)  # ... and the global token 40 reading all
    np.testing.assert_allclose(colour_at(20, 1), white, atol=1.5 / 255)
    np.testing.assert_allclose(colour_at(60, 2), blue, atol=1.5 / 255)  # layer 1: everyone reads token 40


def test_from_model_rows_pick_the_described_rows(tiny_checkpoint):
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, "--text", "a cat sat",
                                "--rows", "3,7", "--reach", "3"])
    assert status == 0, err
    assert "row   3 'c' (local)" in out and "row   7 's' (local)" in out and "row   1 " not in out
    assert "How far token 3 (local)'s information reaches" in out
    status, _, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, "--text", "a cat sat",
                              "--row", "11"])
    assert status == 2 and "--row 11 is out of range 0..10" in err


def test_long_heat_maps_pool_blocks_so_the_band_stays_visible():
    """600 tokens, window 2: pooled to 120 x 120 blocks of 5, the band covers 3 blocks of a row block (not 3 keys
    of 600, a hairline)."""
    pytest.importorskip("matplotlib")
    from led_ref.explore.pictures import NOT_ATTENDED, draw_heatmaps, rgb

    seq, window = 600, 2
    mask = brute_force_mask(seq, window, [], 0)
    dense = np.where(mask, 1.0 / mask.sum(axis=1, keepdims=True), 0.0)[None]
    fig = draw_heatmaps([dense], [0], [0], None, "", [mask])
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    ax = fig.axes[0]
    x0, y0 = ax.transData.transform((-0.5, 297))  # the middle of row block 59 (queries 295..299)
    x1, _ = ax.transData.transform((seq - 0.5, 297))
    row = image[int(round(image.shape[0] - y0)), int(round(x0)) + 1:int(round(x1)) - 1]
    grey = np.all(np.abs(row - rgb(NOT_ATTENDED)) < 1.5 / 255, axis=-1)
    band = (~grey).sum() / len(row)
    assert 2.5 / 120 <= band <= 4 / 120, band  # their keys 294..300: key blocks 58, 59, 60 of 120
    assert "max over blocks of 5 x 5" in fig._suptitle.get_text()
