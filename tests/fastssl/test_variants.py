"""fastssl/variants.py: each variant renders every view it trains on exactly once, from the
fields its .beton must hold, and names the writer that makes such a file."""
import pytest

from fastssl.variants import VARIANTS
from fastssl_common.formats import IMAGES, VIDEO_FRAMES, VIDEO_PAIRS


def rendered_views(variant):
    """[(view number, kind, field)] of the loader's ``view_fields``, in order."""
    views, next_view = [], 0
    for field, spec in variant.view_fields:
        if isinstance(spec, int):
            for _ in range(spec):
                views.append((next_view, 'full', field))
                next_view += 1
        else:
            views += [(view, kind, field) for view, kind in spec]
    return views


@pytest.mark.parametrize('name', list(VARIANTS))
def test_every_view_is_rendered_once_from_a_required_field(name):
    variant = VARIANTS[name]
    views = rendered_views(variant)
    assert sorted(v for v, _, _ in views) == list(range(variant.n_views))
    assert {field for _, _, field in views} <= set(variant.required)
    used = sorted(v for _, q, k in variant.terms for v in (q, k))
    assert used == list(range(variant.n_views))         # every view is in exactly one term
    kinds = {view: kind for view, kind, _ in views}
    for term, q, k in variant.terms:
        assert kinds[q] == kinds[k] == ('region' if term == 'region' else 'full'), name


def test_views_terms_and_writers():
    summary = {name: (v.n_views, v.uses_regions, [t for t, _, _ in v.terms])
               for name, v in VARIANTS.items()}
    assert summary == {'mocov2': (2, False, ['image']), 'mocov2_frames': (2, False, ['frame']),
                       'fti': (2, False, ['frame']), 'rt': (2, True, ['region']),
                       'fti_rt': (4, True, ['frame', 'region'])}
    assert VARIANTS['mocov2'].writer == IMAGES.writer
    assert VARIANTS['mocov2_frames'].writer == VIDEO_FRAMES.writer
    assert VARIANTS['fti'].writer == VIDEO_PAIRS.writer
    assert VARIANTS['rt'].writer == VARIANTS['fti_rt'].writer == \
        f'{VIDEO_PAIRS.writer} --proposals N'
    # the pair variants view both frames; the region ones need the tracked proposals
    assert set(VIDEO_PAIRS.optional) <= set(VARIANTS['rt'].required)
    assert not set(VIDEO_PAIRS.optional) & set(VARIANTS['fti'].required)
