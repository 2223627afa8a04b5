"""scripts/gpu_check_bundle.py: an --out that is not an earlier bundle is refused with one
line before anything is built, and what it holds is left alone (the script emptied it)."""
import pytest


@pytest.mark.unit
def test_out_holding_other_files_is_refused_and_kept(tmp_path, run_script,
                                                     assert_one_line_error):
    out = tmp_path / 'results'
    out.mkdir()
    (out / 'thesis.tex').write_text('mine')
    result = run_script('scripts/gpu_check_bundle.py', '--out', out, timeout=120)
    assert_one_line_error(result, f'--out {out}', 'thesis.tex')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['results']
    assert [p.name for p in out.iterdir()] == ['thesis.tex']
    assert (out / 'thesis.tex').read_text() == 'mine'


@pytest.mark.unit
def test_out_that_is_a_file_is_one_line(tmp_path, run_script, assert_one_line_error):
    out = tmp_path / 'taken'
    out.write_text('mine')
    assert_one_line_error(run_script('scripts/gpu_check_bundle.py', '--out', out),
                          f'--out {out}', 'is a file')
    assert out.read_text() == 'mine'
