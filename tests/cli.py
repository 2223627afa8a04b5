"""Running the project's command-line scripts in tests, and checking their error contract."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(script, *args, timeout=300):
    """Run ``script`` (a path relative to the repository) with the test's Python."""
    return subprocess.run([sys.executable, os.path.join(REPO, script), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def assert_one_line_error(result, *needles):
    """A user error: exit status 2, one ``error: ...`` line naming every needle, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert str(needle) in lines[0]
