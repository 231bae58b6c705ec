"""`make demo` tells its story to the end: one member per person, one welcome each, the segment finds one."""
import subprocess
import sys
from pathlib import Path


def test_siyu_demo_runs_to_its_last_line(tmp_path):
    siyu = Path(sys.executable).with_name("siyu")
    done = subprocess.run([str(siyu), "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PATH": str(siyu.parent), "HOME": str(tmp_path), "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo finished: one profile per person, nothing lost, nothing doubled" in done.stdout
    assert "welcome messages sent through WeCom: 3" in done.stdout
