"""writers/sidecar_combine.py: one sidecar entry of several files as the merged file's
(counts add up, shares and means recomputed over their counts, settings kept, the rest per
input). The merge's own use of it: test_merge_betons.py."""
import pytest

from writers.sidecar_combine import combine


def test_summary_entries_are_combined_counts_shares_settings_and_the_rest_per_input():
    first = {'counts': {'videos': 2, 'cuts': 3}, 'frames_read': 40,
             'tracks': {'pairs': 3, 'proposals': 12, 'tracks_kept': 9, 'kept_fraction': 0.75,
                        'mean_track_frames': 2.5, 'lost': {'unreliable': 3},
                        'quality': {'share': None, 'tracks_judged': 0, 'tracks_moving': 0,
                                    'warmup_frames': 10, 'min_cover': 0.1}},
             'cut_detection': {'threshold': 0.3}, 'method': 'a', 'score': 0.37}
    second = {'counts': {'videos': 2, 'cuts': 1}, 'frames_read': 40,
              'tracks': {'pairs': 4, 'proposals': 16, 'tracks_kept': 8, 'kept_fraction': 0.5,
                         'mean_track_frames': 3.0, 'lost': {'scale_jump': 1, 'unreliable': 3},
                         'quality': {'share': 0.25, 'tracks_judged': 8, 'tracks_moving': 2,
                                     'warmup_frames': 10, 'min_cover': 0.1}},
              'cut_detection': {'threshold': 0.3}, 'method': 'b', 'score': 0.71}
    merged = combine([first, second])
    # counts add up even where the inputs agree; settings the same everywhere are kept
    assert merged['counts'] == {'videos': 4, 'cuts': 4} and merged['frames_read'] == 80
    assert merged['cut_detection'] == {'threshold': 0.3}
    tracks = merged['tracks']
    assert (tracks['pairs'], tracks['proposals'], tracks['tracks_kept']) == (7, 28, 17)
    assert tracks['lost'] == {'unreliable': 6, 'scale_jump': 1}
    assert tracks['kept_fraction'] == pytest.approx(17 / 28)
    assert tracks['mean_track_frames'] == pytest.approx((12 * 2.5 + 16 * 3.0) / 28)
    # an unknown share is recomputed over the count it was taken over (None: nothing judged)
    assert tracks['quality'] == {'share': pytest.approx(2 / 8), 'tracks_judged': 8,
                                 'tracks_moving': 2, 'warmup_frames': 10, 'min_cover': 0.1}
    assert merged['method'] == {'per_input': ['a', 'b']}
    assert merged['score'] == {'per_input': [0.37, 0.71]}    # over no count: kept per input
    assert combine([{'new_count': 2}, {}]) == {'new_count': 2}


def test_small_boxes_skipped_add_up_even_where_the_inputs_agree():
    """An image file's count of boxes left out: two shards with 3 each left out 6."""
    assert combine([{'small_boxes_skipped': 3, 'classes': ['a']},
                    {'small_boxes_skipped': 3, 'classes': ['a']}]) == \
        {'small_boxes_skipped': 6, 'classes': ['a']}
