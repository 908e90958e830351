"""The Python examples the README and docs show, run as a user runs them (bounded)."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(args, cwd):
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_hello_example_runs(tmp_path):
    out = run([sys.executable, str(REPO / "examples" / "python" / "hello.py")], tmp_path)
    assert "sum: 4950" in out and "bash_app exit code: 0" in out
    assert list((tmp_path / "runs").iterdir()), "its run directory, under the current directory"


def test_readme_and_docs_python_blocks_run(tmp_path):
    for doc, expect in [("README.md", "4950"), ("docs/python.md", "")]:
        blocks = re.findall(r"```python\n(.*?)```", (REPO / doc).read_text(), re.S)
        assert blocks, f"{doc} shows Python"
        for block in blocks:
            script = tmp_path / "block.py"
            script.write_text(block)
            out = run([sys.executable, str(script)], tmp_path)
            assert expect in out, (doc, out)
