"""The README's Python example runs as it is written (from the repository root)."""

from __future__ import annotations

import re
import shutil

from conftest import ROOT


def test_readme_python_example(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no Python example"
    code = blocks[0]
    # The example installs the demo model into the user cache: here, into a temporary one.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if (ROOT / ".venv-model" / "bin" / "python").exists():  # made by scripts/setup_models.sh
        monkeypatch.setenv("SKYSIFT_BUILD_VENV", str(ROOT / ".venv-model"))
    shutil.rmtree(ROOT / "target" / "readme-example.db", ignore_errors=True)
    exec(compile(code, "README.md", "exec"), {})
