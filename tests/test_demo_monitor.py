"""scripts/demo_monitor.py: the monitor's queries are augmented as the demo's training recipe
augments, the recipe's values read through the trainer's own config loader."""
import sys

import numpy as np
import pytest
import torch


@pytest.fixture(scope='module')
def demo_monitor(repo):
    sys.path.insert(0, f'{repo}/scripts')
    import demo_monitor
    yield demo_monitor
    sys.path.remove(f'{repo}/scripts')


@pytest.fixture(scope='module')
def summary(demo_monitor):
    """scripts/demo_summary.py, found on the path the ``demo_monitor`` fixture adds."""
    import demo_summary
    return demo_summary


def recipe(tmp_path, augment):
    path = tmp_path / 'recipe.yaml'
    path.write_text('augment:\n' + ''.join(f'  {k}: {v}\n' for k, v in augment.items()))
    return path


def stripes():
    """A saturated image: red, green and blue columns."""
    image = np.zeros((96, 96, 3), np.uint8)
    for channel in range(3):
        image[:, channel * 32:(channel + 1) * 32, channel] = 255
    return image


def test_the_recipe_gives_the_strengths_and_the_defaults_fill_the_rest(demo_monitor, repo):
    augment = demo_monitor.recipe_augment(f'{repo}/configs/demo_video.yaml')
    assert (augment.crop_scale_min, augment.brightness, augment.hue) == (0.5, 0.2, 0.05)
    assert (augment.p_gray, augment.p_blur) == (0.1, 0.2)
    # not in the recipe: MoCo v2's defaults
    assert (augment.p_jitter, augment.sigma_max, augment.flip_prob) == (0.8, 2.0, 0.5)


def test_views_follow_the_recipe(demo_monitor, tmp_path):
    torch.manual_seed(0)
    gray = demo_monitor.query_views(stripes(), demo_monitor.recipe_augment(
        recipe(tmp_path, {'p_gray': 1.0})))
    assert len(gray) == demo_monitor.VIEWS
    for view in gray:
        assert view.shape == (demo_monitor.SIDE, demo_monitor.SIDE, 3)
        assert (view[..., 0] == view[..., 1]).all() and (view[..., 1] == view[..., 2]).all()
    # no jitter, no grayscale, no blur and the whole image: every view is the image resized,
    # its three colours kept
    plain = demo_monitor.recipe_augment(recipe(tmp_path, {
        'p_gray': 0, 'p_jitter': 0, 'p_blur': 0, 'crop_scale_min': 1.0, 'crop_ratio_min': 1.0,
        'crop_ratio_max': 1.0, 'flip_prob': 0}))
    for view in demo_monitor.query_views(stripes(), plain):
        third = demo_monitor.SIDE // 3
        assert [int(view[:, c * third + third // 2].argmax(axis=1).mean()) for c in range(3)] \
            == [0, 1, 2]


@pytest.mark.e2e   # four runs of each demo builder, 16-17 s: make test-e2e
@pytest.mark.parametrize('script', ['scripts/demo_images.py', 'scripts/demo_videos.py'])
def test_the_demo_builders_check_recipe_and_output_first(script, tmp_path, run_script,
                                                         assert_one_line_error):
    out = tmp_path / 'out'
    result = run_script(script, out, tmp_path / 'bogus.yaml')
    assert_one_line_error(result, 'bogus.yaml')
    assert not out.exists()
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    for bad in (a_file, a_file / 'sub', '/proc/x'):
        assert_one_line_error(run_script(script, bad), str(bad))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a_file']


def test_a_failed_demo_build_leaves_nothing_behind(repo, tmp_path):
    sys.path.insert(0, f'{repo}/scripts')
    try:
        import demo_images
    finally:
        sys.path.remove(f'{repo}/scripts')
    from fastssl_common.errors import UserError
    with pytest.raises(UserError, match='cannot write into output folder'):
        with demo_images.demo_output(tmp_path / 'new' / 'out') as out:
            (out / 'train').mkdir()
            raise OSError(28, 'No space left on device')
    assert not (tmp_path / 'new').exists()
    (tmp_path / 'old' / 'train').mkdir(parents=True)
    with pytest.raises(UserError):
        with demo_images.demo_output(tmp_path / 'old') as out:
            (out / 'queries').mkdir()
            raise OSError(28, 'No space left on device')
    assert sorted(p.name for p in (tmp_path / 'old').iterdir()) == ['train']


def test_the_summary_refuses_a_folder_without_a_run(tmp_path, run_script, assert_one_line_error,
                                                    assert_main_one_line_error, summary):
    result = run_script('scripts/demo_summary.py', tmp_path)
    assert_one_line_error(result, str(tmp_path), 'config.yaml')
    (tmp_path / 'config.yaml').write_text('train: {epochs: 1}\n')
    assert_main_one_line_error(summary.main, [tmp_path], str(tmp_path), 'checkpoint_last.pt')
    assert_main_one_line_error(summary.main, [tmp_path / 'none'], 'none')
    # it printed "chance -100.0 %"
    assert_main_one_line_error(summary.main, [tmp_path, '--classes', '-1'],
                               '--classes must be at least 1, or 0')
