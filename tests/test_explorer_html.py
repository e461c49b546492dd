"""The HTML explorer (`python -m led_ref layout --html`) in a real headless Chromium, driven by playwright.

The page's own layout rules (a few lines of JavaScript) are run in the browser and compared with
`led_ref.layout` on many configurations, so the page cannot drift from the specification; clicks on known
cells must outline their counterparts; and the page must load and work with no request leaving the file.

Needs Debian's Chromium (`apt-get install chromium`) and the `playwright` package (the `browser` extra);
playwright's own browser downloads are never used. Outside CI a missing browser skips these tests; in CI
(`CI=true`) it fails them.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from led_ref.explore import explorer
from led_ref.explore import page as explorer_html
from tests.explore_cases import run_cli, tiny_checkpoint  # noqa: F401  (tiny_checkpoint is a fixture)

CHROMIUM = os.environ.get("LED_PARITY_CHROMIUM", "/usr/bin/chromium")


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install 'led-parity[browser]'"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (or set LED_PARITY_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser tests: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Opened:
    """A page opened from a file, with every request that is not the file recorded and aborted."""

    def __init__(self, browser, path):
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(f"file://{path}")

    def _route(self, route):
        url = route.request.url
        if url.startswith("file://"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def js(self, expression, arg=None):
        return self.page.evaluate(expression, arg)

    def click(self, panel, a, b):
        box = self.js("([p, a, b]) => explorer.cellBox(p, a, b)", [panel, a, b])
        self.page.mouse.click(box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
        return self.js("() => explorer.selection")

    def pixel(self, panel, a, b):
        """RGB of the left edge of cell (a, b) of a panel's canvas, where a highlight outline is drawn."""
        return self.js("""([p, a, b]) => {
            const box = explorer.cellBox(p, a, b), cv = document.getElementById(p), r = cv.getBoundingClientRect();
            const data = cv.getContext('2d').getImageData(box.x - r.left + 1, box.y - r.top + box.h / 2, 1, 1).data;
            return Array.from(data).slice(0, 3); }""", [panel, a, b])

    def close(self):
        self.context.close()


def rgb_of(hex_color: str) -> list[int]:
    return [int(hex_color[k:k + 2], 16) for k in (1, 3, 5)]


@pytest.fixture
def open_page(browser, tmp_path):
    opened = []

    def make(state=None, path=None):
        if path is None:
            path = tmp_path / f"page{len(opened)}.html"
            explorer_html.write_html(path, state)
        page = Opened(browser, path)
        opened.append(page)
        return page

    yield make
    for page in opened:
        assert page.outside == [], f"requests left the file: {page.outside}"
        assert page.errors == [], page.errors
        page.close()


def _configs():
    """(seq_len, windows, batch rows, layer): fixed corner cases plus seeded random ones."""
    fixed = [
        (1, [2], [([], 0)], 0),
        (12, [4], [([0], 2)], 0),
        (12, [4], [([0, 5], 0), ([3], 2), ([], 4)], 0),  # different global counts: unused slots
        (10, [4, 6], [([0, 9], 0), ([7], 3)], 1),  # 4 does not divide 6; a global flag on padding (7)
        (13, [2, 8], [([12], 1)], 0),  # only global is on padding
        (9, [6], [([0, 1, 2, 3, 4, 5, 6, 7, 8], 0)], 0),  # all global
    ]
    rng = np.random.default_rng(17)
    for _ in range(14):
        seq_len = int(rng.integers(1, 30))
        windows = [int(w) for w in rng.choice([2, 4, 6, 8, 10], size=int(rng.integers(1, 3)))]
        batch = []
        for _ in range(int(rng.integers(1, 4))):
            pad = int(rng.integers(0, seq_len + 1))
            count = int(rng.integers(0, min(seq_len, 4) + 1))
            batch.append(([int(g) for g in rng.choice(seq_len, size=count, replace=False)], pad))
        fixed.append((seq_len, windows, batch, int(rng.integers(0, len(windows)))))
    return fixed


RULES_IN_THE_PAGE = """([seqLen, windows, rows, layer]) => {
  const R = explorer.rules, padded = R.paddedLength(seqLen, windows), w = windows[layer];
  const kinds = rows.map(([g, pad]) => R.tokenKinds(seqLen, padded, g, pad));
  const slots = kinds.map(R.globalSlots), x = Math.max(0, ...slots.map((s) => s.length));
  const range = (n) => [...Array(n).keys()];
  return {
    kinds: kinds.map((k) => Array.from(k)),
    dense: kinds.map((k) => range(padded).map((i) => range(padded).map((j) => R.attends(k, w, i, j) ? 1 : 0))),
    compact: kinds.map((k, b) => range(padded).map((i) => range(x + w + 1).map((c) =>
      R.compactKey(k, slots[b], x, w, i, c)))),
    slots: slots.map((s) => range(x).map((q) => q < s.length ? s[q] : -1)),
    inverse: kinds.map((k, b) => range(padded).map((i) => range(padded).map((j) => R.attends(k, w, i, j) && k[i] === 1
      ? R.compactKey(k, slots[b], x, w, i, R.compactColumn(k, slots[b], x, w, i, j)) : -2))),
  };
}"""


def test_page_rules_equal_led_ref_layout(open_page):
    """kinds, dense mask, compact key map and global slots computed by the page's JS == led_ref.layout's."""
    page = open_page(explorer_html.synthetic_state(12, [4], [([0], 2)]))
    for seq_len, windows, batch, layer in _configs():
        got = page.js(RULES_IN_THE_PAGE, [seq_len, windows, batch, layer])
        want = explorer_html.python_rules(seq_len, windows, batch, layer)
        case = (seq_len, windows, batch, layer)
        for key in ("kinds", "dense", "compact", "slots"):
            assert got[key] == want[key], (key, case)
        # compactColumn inverts compactKey on every attended cell of a local row
        dense = np.array(want["dense"])
        kinds = np.array(want["kinds"])
        inverse = np.array(got["inverse"])
        b, i, j = np.nonzero(dense.astype(bool) & (kinds == 1)[:, :, None])
        np.testing.assert_array_equal(inverse[b, i, j], j, err_msg=str(case))


def test_page_block_overview_and_reach_equal_python(open_page):
    page = open_page(explorer_html.synthetic_state(12, [4], [([0], 2)]))
    for seq_len, windows, globals_, pad, block in ((3000, [256], [0, 1500], 10, 64), (517, [4, 34], [3], 40, 16),
                                                   (100, [2], [], 0, 7)):
        kinds = explorer.example_kinds(seq_len, windows, globals_, pad)
        got = page.js("""([kinds, seqLen, w, B]) => {
            const s = explorer.rules.blockStats(Int8Array.from(kinds), seqLen, w, B);
            return {window: Array.from(s.window), globalKey: Array.from(s.globalKey),
                    globalRow: Array.from(s.globalRow),
                    kinds: [...Array(s.nb * s.nb).keys()].map((k) => explorer.rules.blockKind(s, k))}; }""",
                      [kinds.tolist(), seq_len, windows[-1], block])
        stats = explorer.block_stats(kinds, windows[-1], block, seq_len)
        for name, key in (("window", "window"), ("global_key", "globalKey"), ("global_row", "globalRow")):
            np.testing.assert_array_equal(np.array(got[key]).reshape(stats.cells.shape), getattr(stats, name))
        python_kinds = {"global_row": "globalRow", "global_key": "globalKey"}
        want_kinds = [python_kinds.get(k, k) for k in explorer.block_kinds(stats).ravel()]
        assert got["kinds"] == want_kinds
        for token in (0, seq_len // 2, seq_len - 1):
            got_reach = page.js("([k, n, w, t]) => explorer.rules.reachPerLayer(Int8Array.from(k), n, w, t)",
                                [kinds.tolist(), seq_len, windows, token])
            want_reach = explorer.reach_per_layer(kinds, windows, token, seq_len)
            np.testing.assert_array_equal(np.array(got_reach, dtype=bool), np.array(want_reach))


def test_reach_strip_labels_each_layer_with_its_window_and_count(open_page):
    """Every band of the reach canvas has a label beside it (input token, then layer index, window and how many
    positions are reached, as `explorer.reach_per_layer`), level with the band, and the labels follow the
    controls."""

    def labels_and_bands(page, layers):
        return page.js("""(bands) => {
            const cv = document.getElementById('reachCanvas').getBoundingClientRect();
            const band = cv.height / bands;
            return Array.from(document.querySelectorAll('#reachLabels div')).map((d) => {
                const r = d.getBoundingClientRect();
                return [d.textContent, Math.floor((r.top + r.height / 2 - cv.top) / band), r.right <= cv.left + 1]; });
        }""", layers + 1)

    def wanted(seq_len, windows, globals_, token):
        kinds = explorer.example_kinds(seq_len, windows, globals_, 0)
        counts = [int(r.sum()) for r in explorer.reach_per_layer(kinds, windows, token, seq_len)]
        return [[f"input: token {token}", 0, True]] + [
            [f"layer {k} (window {w}): {counts[k]} reached", k + 1, True] for k, w in enumerate(windows)]

    page = open_page(explorer_html.synthetic_state(64, [4, 4, 8], [([40], 0)], reach=5))
    want = wanted(64, [4, 4, 8], [40], 5)
    assert labels_and_bands(page, 3) == want
    assert [c for _, c, _ in want] == [0, 1, 2, 3] and want[3][0] == "layer 2 (window 8): 64 reached"  # the hop via 40
    page.page.fill("#windows", "2,6")
    page.page.fill("#reach", "20")
    page.page.dispatch_event("#reach", "change")
    assert page.page.inner_text("#error") == ""
    assert labels_and_bands(page, 2) == wanted(64, [2, 6], [40], 20)


def test_clicking_a_cell_outlines_its_counterparts(open_page):
    # 12 tokens, window 4, globals 0 and 5, padding 10..11: x = 2, width 7, self at column 4.
    page = open_page(explorer_html.synthetic_state(12, [4], [([0, 5], 2), ([3], 0)]))
    green = rgb_of(explorer_html.COLORS["highlight"])

    sel = page.click("dense", 6, 8)  # local row 6, window key 8 (slot +2): column x + w/2 + 2 = 6
    assert sel["dense"] == [6, 8] and sel["compact"] == [6, 6] and sel["global"] is None
    assert "attentions[0, h, 6, 6] (window slot +2)" in page.page.inner_text("#info")
    assert page.pixel("compact", 6, 6) == green and page.pixel("dense", 6, 8) == green
    assert page.pixel("compact", 6, 5) != green

    sel = page.click("dense", 7, 5)  # local row 7 seeing global key 5: its global column 1, not the window
    assert sel["compact"] == [7, 1]

    sel = page.click("dense", 5, 3)  # global row 5: a column of global_attentions, slot 1, row = key 3
    assert sel["global"] == [3, 1] and sel["compact"] is None
    assert "global_attentions[0, h, 3, 1]" in page.page.inner_text("#info")
    assert page.pixel("global", 3, 1) == green

    sel = page.click("compact", 9, 0)  # compact -> dense: row 9's column 0 holds global key 0
    assert sel["dense"] == [9, 0]
    sel = page.click("global", 4, 0)  # global slot 0 = token 0, key 4 -> dense (0, 4)
    assert sel["dense"] == [0, 4]
    assert page.pixel("dense", 0, 4) == green

    page.page.select_option("#b", "1")  # batch row 1 has one global token: slot 1 is unused
    sel = page.click("global", 4, 1)
    assert sel["dense"] is None and "slot 1 is unused in batch row 1" in page.page.inner_text("#info")
    assert page.pixel("compact", 1, 1) == rgb_of(explorer_html.COLORS["unused"])
    assert "unused: 0" in page.page.inner_text("#batchTable")


def test_controls_recompute_at_led_base_scale(open_page):
    """16,384 tokens, window 1024: the overview shows blocks, with the global row and column visible."""
    page = open_page(explorer_html.synthetic_state(12, [4], [([0], 2)]))
    page.page.fill("#seqLen", "16384")
    page.page.fill("#windows", "1024")
    page.page.fill("#batch", "0,5000 / 2")
    page.page.dispatch_event("#batch", "change")
    assert page.page.inner_text("#error") == ""
    assert page.js("() => [explorer.layout.padded, explorer.layout.width, explorer.layout.n]") == [16384, 1027, 128]
    assert page.page.is_visible("#overview")
    assert "128 x 128 blocks of 128 tokens" in page.page.inner_text("#overviewTitle")
    red, orange = rgb_of(explorer_html.COLORS["globalRow"]), rgb_of(explorer_html.COLORS["globalKey"])
    row, column = page.js("""() => { const cv = document.getElementById('overview'), ctx = cv.getContext('2d');
        const y = Math.floor(5000 * 4 / 128), x = Math.floor(5000 * 4 / 128);
        return [Array.from(ctx.getImageData(300, y, 1, 1).data).slice(0, 3),
                Array.from(ctx.getImageData(x, 400, 1, 1).data).slice(0, 3)]; }""")
    assert row == red and column == orange
    # zoom: click the overview block of (query 8000, key 8000): the token views move there
    box = page.js("() => explorer.cellBox('overview', 62, 62)")
    page.page.mouse.click(box["x"] + 1, box["y"] + 1)
    r0, c0 = page.js("() => [explorer.state.r0, explorer.state.c0]")
    assert 62 * 128 <= r0 + 64 < 63 * 128 and r0 == c0
    sel = page.click("dense", r0 + 10, r0 + 10)
    assert sel["compact"] == [r0 + 10, 2 + 512]  # self at x + w/2


def test_bad_controls_say_why_and_keep_the_page(open_page):
    page = open_page(explorer_html.synthetic_state(12, [4], [([0], 2)]))
    page.page.fill("#windows", "4,5")
    page.page.dispatch_event("#windows", "change")
    assert "windows must be even ints >= 2, got 4,5" in page.page.inner_text("#error")
    page.page.fill("#windows", "4")
    page.page.fill("#batch", "11 / 2")  # a global flag on padding: drawn as padding, with the reason
    page.page.dispatch_event("#batch", "change")
    assert page.page.inner_text("#error") == ""
    assert "global 11 on padding is drawn as padding" in page.page.inner_text("#note")
    assert page.js("() => explorer.layout.x") == 0


def test_cli_html_is_self_contained(tmp_path, open_page):
    path = tmp_path / "explorer.html"
    status, out, err = run_cli(["layout", "--seq-len", "40", "--layer-windows", "4,8", "--global", "0,20",
                                "--pad", "3", "--rows", "7", "--html", str(path)])
    assert status == 0, err
    assert f"wrote {path}" in out
    text = path.read_text(encoding="utf-8")
    for needle in ("http://", "https://", "src=", "href=", "<link", "@import"):
        assert needle not in text, needle
    page = open_page(path=path)
    assert page.js("() => [explorer.state.seqLen, explorer.state.windows, explorer.state.rows]") == [
        40, [4, 8], [{"globals": [0, 20], "pad": 3}]]
    assert page.js("() => explorer.selection.dense") == [7, 7]  # --rows 7 is selected at load


def test_from_model_page_shows_the_model_probabilities(tiny_checkpoint, tmp_path, open_page):  # noqa: F811
    from led_ref.io.tokenizer import LEDTokenizer
    from led_ref.model import LEDModel

    path = tmp_path / "model.html"
    status, out, err = run_cli(["layout", "--from-model", "--checkpoint", tiny_checkpoint, "--text", "a cat sat",
                                "--global", "0,4", "--row", "6", "--html", str(path)])
    assert status == 0, err
    found = explorer.model_attentions(LEDModel.from_pretrained(tiny_checkpoint),
                                      LEDTokenizer.from_pretrained(tiny_checkpoint), "a cat sat", [0, 4])
    page = open_page(path=path)
    page.page.select_option("#layer", "1")
    dense = explorer.dense_layer(found, 1)  # (heads, seq, seq)
    for (i, j), head in (((6, 8), 0), ((6, 4), 1), ((4, 9), 0), ((4, 9), -1)):
        page.page.select_option("#head", str(head))
        page.click("dense", i, j)
        value = dense[:, i, j].mean() if head < 0 else dense[head, i, j]
        assert f"p = {value:.4f}" in page.page.inner_text("#info"), (i, j, head, value)
    assert "'<s>'" not in page.page.inner_text("#info")  # tokens are quoted as JSON strings
    page.click("dense", 0, 3)
    assert '"<s>"' in page.page.inner_text("#info")
