"""PNG pictures (`led_ref.explore.pictures`), read back pixel by pixel: cell and strip colours, batch panels,
LED-base scale and pooled heat maps.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings

from led_ref.explore.batch_slots import batch_kinds
from led_ref.explore.cells import ATTENDED, attended_mask, pattern_cells
from led_ref.explore.compact import default_row, row_columns
from led_ref.explore.examples import example_kinds
from tests.explore_cases import PNG_MAGIC, brute_force_mask, layout_args, layout_cases, pixels_of, run_cli


def test_png_from_the_cli_has_the_pattern_colours(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from led_ref.explore.cells import Cell
    from led_ref.explore.pictures import CELL_COLORS

    path = tmp_path / "layout.png"
    status, out, err = run_cli(layout_args(12, 4, [0], 2, "--png", str(path)))
    assert status == 0, err
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    image = imread(str(path))
    counts = {cell: pixels_of(image, CELL_COLORS[cell]) for cell in Cell}
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
    from led_ref.explore.cells import Cell
    from led_ref.explore.pictures import CELL_COLORS, ROLE_COLORS, draw_layout, rgb

    seq_len, window, globals_, pad = case
    fig = draw_layout(seq_len, [window], globals_, pad)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    ax = fig.axes[0]
    cells = pattern_cells(example_kinds(seq_len, [window], globals_, pad), window, seq_len)
    mask = brute_force_mask(seq_len, window, globals_, pad)
    for i in range(seq_len):
        for j in range(seq_len):
            x, y = ax.transData.transform((j, i))
            pixel = image[int(round(image.shape[0] - y)), int(round(x))]
            np.testing.assert_allclose(pixel, rgb(CELL_COLORS[Cell(cells[i, j])]), atol=1.5 / 255, err_msg=str((i, j)))
            attended = Cell(cells[i, j]) in ATTENDED
            assert attended == mask[i, j]
    # the strip beside it: compact column c of the first local row, coloured by what it holds
    kinds = example_kinds(seq_len, [window], globals_, pad)
    row = default_row(kinds, seq_len)
    if kinds[row] == 1:
        strip = fig.axes[1]
        for col in row_columns(kinds, window, row):
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


def test_png_at_led_base_scale_keeps_globals_and_the_strip_visible():
    pytest.importorskip("matplotlib")
    from led_ref.explore.cells import Cell
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


def test_batch_png_draws_every_row_with_its_globals_padding_and_slots(tmp_path):
    """`--batch ... --png`: one panel per batch row, each with its own global column and padding, and a strip of
    the batch's x slots where the slots a row does not fill are drawn as unused (0)."""
    pytest.importorskip("matplotlib")
    from led_ref.explore.cells import Cell
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
        cells = pattern_cells(batch_kinds(12, [4], batch)[b], 4, 12)
        np.testing.assert_array_equal(attended_mask(cells), brute_force_mask(12, 4, globals_, pad))
        for i in range(12):
            for j in range(12):
                np.testing.assert_allclose(colour_at(ax, j, i), rgb(CELL_COLORS[Cell(cells[i, j])]), atol=1.5 / 255,
                                           err_msg=str((b, i, j)))
    # row 1's global column 3 is in row 1's panel, not in row 0's (there query 8, key 3 is outside the window)
    np.testing.assert_allclose(colour_at(grids[1], 3, 8), rgb(CELL_COLORS[Cell.GLOBAL_KEY]), atol=1.5 / 255)
    np.testing.assert_allclose(colour_at(grids[0], 3, 8), rgb(CELL_COLORS[Cell.OUTSIDE]), atol=1.5 / 255)
    np.testing.assert_allclose(colour_at(grids[2], 3, 8), rgb(CELL_COLORS[Cell.PAD_ROW]), atol=1.5 / 255)
    # x = 2 slots in every strip: row 0 fills both, row 1 slot 0 (key 3) only, row 2 none; unused slots read 0
    kinds = batch_kinds(12, [4], batch)
    for b, strip in enumerate(strips):
        row = default_row(kinds[b], 12)
        columns = row_columns(kinds[b], 4, row, 2)
        assert len(columns) == 7
        labels = {round(t.get_position()[0]): t.get_text() for t in strip.texts}
        for col in columns:
            np.testing.assert_allclose(colour_at(strip, col.column - 0.3, 0.3), rgb(ROLE_COLORS[col.role]),
                                       atol=1.5 / 255, err_msg=str((b, col)))
            assert labels[col.column] == ("0" if col.role == "unused" else str(col.key))
    assert [c.role for c in row_columns(kinds[1], 4, 0, 2)[:2]] == ["global", "unused"]
    assert [c.role for c in row_columns(kinds[2], 4, 0, 2)[:2]] == ["unused", "unused"]


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
