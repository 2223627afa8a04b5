"""The benchmarks' end-to-end smoke runs are `e2e` tests: `make test-e2e` runs them, `make test`
the rest, so that each target stays well inside its time budget on two cores."""
import pytest

# Unit tests of the benchmark code itself (option checks included), not whole-program runs;
# in the other files, the tests marked `unit` (fast checks next to a file's smoke run).
UNIT_FILES = {'test_gpu_node.py', 'test_loader_profile.py', 'test_options.py'}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if (item.path.parent.name == 'benchmarks' and item.path.name not in UNIT_FILES
                and item.get_closest_marker('unit') is None):
            item.add_marker(pytest.mark.e2e)
