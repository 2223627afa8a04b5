"""scripts/build_wheelhouse.py: an --out or --build-dir that is a file is one ``error:`` line
naming the option, before anything is built (it was a FileExistsError traceback)."""
import pytest


@pytest.mark.unit
@pytest.mark.parametrize('option', ['--out', '--build-dir'])
def test_folder_option_that_is_a_file_is_one_line(tmp_path, option, run_script,
                                                  assert_one_line_error):
    taken = tmp_path / 'taken'
    taken.write_text('mine')
    other = '--build-dir' if option == '--out' else '--out'
    result = run_script('scripts/build_wheelhouse.py', '--ffcv-only', option, taken,
                        other, tmp_path / 'new', timeout=60)
    assert_one_line_error(result, f'{option} {taken}', 'is a file')
    assert taken.read_text() == 'mine'
    assert not (tmp_path / 'new').exists()
