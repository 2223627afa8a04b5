"""writers/pairs_sidecar.py: the pairs sidecar says which fields the file holds and what each
means, whether the proposal rows are absent, reserved or tracked (and how they were made),
and records the options with SRC made absolute."""
import os

from fastssl_common.formats import PROPOSAL_COLUMNS, REGION_FIELDS, VIDEO_PAIRS
from writers.pairs_sidecar import pairs_metadata
from writers.shot_cuts import cut_detection_doc

OPTIONS = dict(gap=4, cut_threshold=0.3, max_proposals=0, proposals=0)
TRACKS = {'proposals': 12, 'tracks_kept': 9}


def sidecar(options, names, tracks=None, src='clips'):
    return pairs_metadata(src, options, names, 7, [{'source': 'a.mp4'}], [], ['w'],
                          {'pairs_written': 7}, tracks)


def test_frames_only_pairs_say_the_proposals_are_absent():
    doc = sidecar(OPTIONS, VIDEO_PAIRS.required)
    assert doc['format'] == VIDEO_PAIRS.sidecar and doc['num_samples'] == 7
    assert list(doc['fields']) == list(VIDEO_PAIRS.required)
    assert doc['proposals']['status'] == 'absent' and doc['proposals']['fields'] == []
    assert doc['cut_detection'] == cut_detection_doc(0.3)
    assert doc['options'] == dict(OPTIONS, src=os.path.abspath('clips'))
    assert (doc['videos'], doc['skipped'], doc['warnings'], doc['counts']) == \
        ([{'source': 'a.mp4'}], [], ['w'], {'pairs_written': 7})


def test_reserved_rows_say_how_to_fill_them():
    doc = sidecar(dict(OPTIONS, max_proposals=8), VIDEO_PAIRS.names)['proposals']
    assert doc['status'] == 'reserved' and doc['fields'] == list(REGION_FIELDS)
    assert doc['max_proposals'] == 8 and doc['columns'] == list(PROPOSAL_COLUMNS)
    assert 'writers.proposal_slots' in doc['filled_by']
    assert 'method' not in doc


def test_tracked_rows_name_their_method_settings_and_tracks():
    options = dict(OPTIONS, max_proposals=8, proposals=4, track_resolution=320, detector=None,
                   detector_arch=None, detector_min_score=None)
    doc = sidecar(options, VIDEO_PAIRS.names, TRACKS)['proposals']
    assert doc['status'] == 'tracked' and doc['tracks'] == TRACKS
    assert doc['method'].startswith('selective search') and 'filled_by' not in doc
    assert doc['proposal_settings']['count'] == 4 and doc['track_resolution'] == 320
    assert 'median flow' in doc['tracker'] and doc['tracker_settings']
    detected = dict(options, detector='/models/ssd.pth',
                    detector_arch='ssdlite320_mobilenet_v3_large', detector_min_score=0.5)
    doc = sidecar(detected, VIDEO_PAIRS.names, TRACKS)['proposals']
    assert doc['method'] == 'detector ssdlite320_mobilenet_v3_large'
    assert doc['ranking'] == 'contrast'        # options recorded before the motion ranking


def test_motion_ranking_is_named():
    options = dict(OPTIONS, max_proposals=8, proposals=4, track_resolution=320, detector=None,
                   detector_arch=None, detector_min_score=None, proposal_ranking='motion')
    doc = sidecar(options, VIDEO_PAIRS.names, TRACKS)['proposals']
    assert doc['ranking'] == 'motion' and doc['proposal_settings']['ranking'] == 'motion'
    assert 'single strategy' in doc['method'] and 'motion blobs' in doc['method']
    assert 'ranked by motion contrast' in doc['method']
    detected = dict(options, detector='/models/ssd.pth',
                    detector_arch='ssdlite320_mobilenet_v3_large', detector_min_score=0.5)
    method = sidecar(detected, VIDEO_PAIRS.names, TRACKS)['proposals']['method']
    assert method.startswith('detector ssdlite320_mobilenet_v3_large, ranked by motion')
