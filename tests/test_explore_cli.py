"""`python -m led_ref layout` (`led_ref.explore.cli`): bad arguments exit 2 naming the value, the module runs as
a subprocess, and every synthetic command of docs/tour.md and README.md prints what the page says.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.explore_cases import REPO, brute_force_mask, layout_args, parse_mask, run_cli


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


def test_mask_through_a_subprocess():
    argv = layout_args(13, 6, [0, 7], 3, "--format", "mask")
    done = subprocess.run([sys.executable, "-m", "led_ref", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": REPO})
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(parse_mask(done.stdout, 13), brute_force_mask(13, 6, [0, 7], 3))


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
