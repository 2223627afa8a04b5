"""benchmarks.gpu_node: the install plan takes what this Python lacks, with the requirements
of those it lacks in turn, and names a wheel the wheelhouse does not have."""
import zipfile
from pathlib import Path

import pytest

from benchmarks.gpu_node import CheckError, plan_install


def fake_wheel(folder, name, requires=()):
    """A minimal real wheel: just the METADATA pip and the planner read."""
    path = Path(folder) / f'{name}-1.0-py3-none-any.whl'
    metadata = f'Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n' + ''.join(
        f'Requires-Dist: {req}\n' for req in requires)
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr(f'{name}-1.0.dist-info/METADATA', metadata)
    return path


def test_install_plan_takes_what_this_python_lacks_and_nothing_it_has(tmp_path):
    alpha = fake_wheel(tmp_path, 'alpha_pkg', ['beta-pkg>=1', 'numpy', 'torch',
                                               'gamma_pkg; extra == "docs"'])
    beta = fake_wheel(tmp_path, 'beta_pkg', ['numpy'])
    fake_wheel(tmp_path, 'numpy')  # present here: must not be planned
    assert sorted(plan_install(['alpha-pkg'], tmp_path)) == sorted([alpha, beta])


def test_install_plan_names_the_missing_wheel(tmp_path):
    fake_wheel(tmp_path, 'alpha_pkg', ['delta-pkg'])
    with pytest.raises(CheckError, match=r'has no wheel for delta_pkg'):
        plan_install(['alpha_pkg'], tmp_path)
