"""The CLI contract of fastssl_common.errors.run_cli, through a real script."""


def test_a_file_name_with_a_line_break_keeps_the_error_on_one_line(tmp_path, run_script,
                                                                   assert_one_line_error):
    src = tmp_path / 'two\nlines'
    result = run_script('writers/write_images.py', src, tmp_path / 'out.beton')
    assert_one_line_error(result, f'{tmp_path}/two\\nlines does not exist')
