"""The README's usage example runs as written and its assertion (spec and torch generate the same ids) holds."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_usage_example_runs(capsys):
    blocks = [b for b in python_blocks(README.read_text()) if "default_checkpoint_dir" in b]
    assert len(blocks) == 1, "README should hold exactly one end-to-end usage example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # the block asserts token-identical generation
    assert namespace["ref_ids"].shape == tuple(namespace["out_ids"].shape)
    assert capsys.readouterr().out.startswith("[")
