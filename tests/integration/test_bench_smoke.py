"""Each benchmark once, at a tiny size, against both daemons: the code paths stay alive."""

import subprocess
import sys

from dockyard.testing.daemons import REPO_ROOT


def test_benchmarks_run_at_tiny_size():
    result = subprocess.run([sys.executable, "-m", "bench", "--tiny"], cwd=REPO_ROOT,
                            capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    lines = result.stdout.decode().splitlines()
    assert any(line.startswith("docker load") and "ratio" in line for line in lines), lines
    assert any("docker version" in line and "ratio" in line for line in lines), lines
    assert any(line.startswith("docker run --rm true") for line in lines), lines
    assert any(line.startswith("docker run output") for line in lines), lines
    assert any(line.startswith("docker run --rm true, bridge") for line in lines), lines
    assert any(line.startswith("TCP host→container via -p") for line in lines), lines
    assert any(line.startswith("docker push") for line in lines), lines
    assert any(line.startswith("docker pull") for line in lines), lines
