"""fastssl/invariance_report.py: the text tables (a column per measurement and K; rendered data
one table per transformation with magnitudes as columns), the TensorBoard scalars per
checkpoint, and the score-vs-magnitude figure saved as a PNG."""
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fastssl.invariance_report import curve_figure, log_tensorboard, save_figure, tables


def result(checkpoint, measurement, scores, transformation=None, magnitude=None, unit=''):
    return {'checkpoint': checkpoint, 'measurement': measurement,
            'transformation': transformation or measurement, 'magnitude': magnitude,
            'unit': unit, 'scores': scores}


DATASET = [result('fti', 'instance', {10: 12.345, 25: 8.0}),
           result('fti', 'viewpoint', {10: 3.5, 25: 2.25}),
           result('mocov2', 'instance', {10: 1.0, 25: 0.5}),
           result('mocov2', 'viewpoint', {10: 10.0, 25: 100.0})]
RENDERED = [result(name, f'viewpoint {m}', {10: score + m / 10}, 'viewpoint', m, 'degrees')
            for name, score in (('fti', 5.0), ('mocov2', 1.0)) for m in (15, 30)]


def test_dataset_table():
    text = tables(DATASET, ['fti', 'mocov2'], [10, 25], 'Pascal3D+', rendered=False)
    assert text.splitlines() == [
        'Pascal3D+',
        'checkpoint  instance @10  viewpoint @10  instance @25  viewpoint @25',
        'fti                12.35           3.50          8.00           2.25',
        'mocov2              1.00          10.00          0.50         100.00']


def test_rendered_tables_have_one_column_per_magnitude():
    text = tables(RENDERED, ['fti', 'mocov2'], [10], 'rendered data', rendered=True)
    assert text.splitlines() == ['rendered data: viewpoint (degrees)',
                                 'checkpoint  15 @10  30 @10',
                                 'fti           6.50    8.00',
                                 'mocov2        2.50    4.00']


def test_tensorboard_scalars_per_checkpoint(tmp_path):
    log_tensorboard(str(tmp_path), RENDERED, ['fti', 'mocov2'], True, 'rendered data')
    events = EventAccumulator(str(tmp_path / 'fti'))
    events.Reload()
    points = events.Scalars('invariance (rendered data)/viewpoint/top10')
    assert [(p.step, p.value) for p in points] == [(15, 6.5), (30, 8.0)]
    log_tensorboard(str(tmp_path / 'data'), DATASET, ['mocov2'], False, 'Pascal3D+')
    events = EventAccumulator(str(tmp_path / 'data' / 'mocov2'))
    events.Reload()
    assert [p.value for p in events.Scalars('invariance/viewpoint/top25')] == [100.0]


def test_curve_figure_only_for_magnitudes(tmp_path):
    pytest.importorskip('matplotlib')
    assert curve_figure(DATASET, ['fti', 'mocov2'], [10, 25], 'Pascal3D+') is None
    figure = curve_figure(RENDERED, ['fti', 'mocov2'], [10], 'rendered data')
    (axes,) = [ax for ax in figure.axes if ax.lines]
    assert [tuple(line.get_ydata()) for line in axes.lines] == [(6.5, 8.0), (2.5, 4.0)]
    assert axes.get_xlabel() == 'degrees'
    path = tmp_path / 'curves.png'
    save_figure(figure, str(path))
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
