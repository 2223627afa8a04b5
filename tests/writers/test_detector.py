"""writers/detector.py: a real torchvision detection architecture (random weights) loaded from
a reference-script checkpoint gives scored proposals consistent with its raw detections and
its score floor; bad checkpoints are one line naming the file; the pairs writer tracks its
proposals end to end."""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest

from fastssl_common.errors import UserError
from writers.boxes import box_iou
from writers.proposals import ProposalSettings, propose


@pytest.fixture(scope='module')
def detector_files(module_tmp):
    """A small real torchvision detection architecture (random weights, 3 classes), a
    classification model saved under a detector's name, and a text file."""
    import torch
    import torchvision

    root = module_tmp.mktemp('detectors')
    model = torchvision.models.get_model('ssdlite320_mobilenet_v3_large', weights=None,
                                         weights_backbone=None, num_classes=3)
    ssdlite = root / 'ssdlite320_mobilenet_v3_large_mine.pth'
    # reference-script style, with the script's argparse.Namespace under "args"
    torch.save({'model': model.state_dict(), 'epoch': 3,
                'args': argparse.Namespace(lr=0.02)}, ssdlite)
    resnet = root / 'fasterrcnn_resnet50_fpn_fake.pth'
    torch.save(torchvision.models.resnet18().state_dict(), resnet)
    text = root / 'retinanet_resnet50_fpn_text.pth'
    text.write_text('not a checkpoint')
    return {'ssdlite': str(ssdlite), 'resnet': str(resnet), 'text': str(text),
            'unnamed': str(root / 'weights.pth'), 'root': root}


def test_detector_proposals(detector_files, planted_objects_frame):
    from writers.region_pairs import RegionSettings, detector_for

    # built as the writer builds it (and cached for test_writer_with_detector)
    detector = detector_for(RegionSettings(detector=detector_files['ssdlite'],
                                           detector_min_score=0.0))
    assert detector.architecture == 'ssdlite320_mobilenet_v3_large'
    frame, _ = planted_objects_frame('plain')
    raw_boxes, raw_scores = detector(frame)
    assert len(raw_boxes) and np.all((raw_scores >= 0) & (raw_scores <= 1))
    settings = ProposalSettings(count=5)
    boxes, scores = propose(frame, settings, detector=detector)
    assert 0 < len(boxes) <= 5 and np.all(np.diff(scores) <= 0)
    # against the raw detections: each kept box is one of them with its score, and no two
    # kept boxes overlap above the NMS threshold
    match = box_iou(boxes, raw_boxes) > 1 - 1e-6
    assert match.any(axis=1).all()
    assert all(np.isclose(raw_scores[row], score).any() for row, score in zip(match, scores))
    overlap = box_iou(boxes, boxes)[np.triu_indices(len(boxes), 1)]
    assert np.all(overlap <= settings.nms_iou)
    # a higher min_score keeps exactly the raw detections scoring at least it
    from writers.detector import Detector

    threshold = float(np.median(raw_scores))
    strict_boxes, strict_scores = Detector(detector.model, threshold, detector.architecture)(frame)
    expected = raw_scores >= threshold
    assert len(strict_scores) == expected.sum() and np.all(strict_scores >= threshold)
    np.testing.assert_allclose(strict_boxes, raw_boxes[expected], atol=1e-4)


def test_detector_bad_inputs(detector_files):
    from writers.detector import load_detector

    cases = [(detector_files['root'] / 'missing.pth', 'does not exist'),
             (detector_files['resnet'], 'is not a fasterrcnn_resnet50_fpn detection model'),
             (detector_files['text'], 'is not a torch state dict file')]
    for path, message in cases:
        with pytest.raises(UserError, match=message) as raised:
            load_detector(str(path))
        assert str(path) in str(raised.value) and '\n' not in str(raised.value)
    open(detector_files['unnamed'], 'wb').close()
    with pytest.raises(UserError, match='pass --detector-arch'):
        load_detector(detector_files['unnamed'])
    with pytest.raises(UserError, match='--detector-arch yolo is not one of'):
        load_detector(detector_files['unnamed'], architecture='yolo')


def test_writer_with_detector(detector_files, tmp_path, load_all):
    from benchmarks.synthetic_video import moving_patch_sequence, write_sequence
    from writers.write_video_pairs import write_video_pairs

    folder = write_sequence(tmp_path / 'seq', moving_patch_sequence(7)[0], boxes=False)
    out = str(tmp_path / 'd.beton')
    summary = write_video_pairs(folder, out, gap=3, proposals=3, workers=1, progress=False,
                                detector=detector_files['ssdlite'], detector_min_score=0.0)
    got = load_all(out, {'num_proposals': 'int', 'proposals': 'array'})
    counts = got['num_proposals'].ravel()
    assert len(counts) == 2 and counts.sum() == summary['tracks']['tracks_kept'] > 0
    options = summary['options']
    assert options['detector_arch'] == 'ssdlite320_mobilenet_v3_large'
    assert options['detector'] == os.path.abspath(detector_files['ssdlite'])
    assert json.loads(Path(out + '.json').read_text())['proposals']['method'].startswith(
        'detector ssdlite320_mobilenet_v3_large, ranked by ')


def test_shards_merge_by_the_detector_bytes_not_its_path(detector_files, tmp_path):
    """Array jobs that copy the checkpoint to their own scratch use one detector: the merge
    compares its SHA-256, not its path (it refused them); another checkpoint under the first
    one's path is refused (it was merged, mixing two detectors' proposals)."""
    import shutil

    import torch

    from benchmarks.synthetic_video import moving_patch_sequence, write_sequence
    from writers.merge_betons import merge_betons
    from writers.write_video_pairs import write_video_pairs

    frames = moving_patch_sequence(7)[0]
    for name in ('a', 'b'):
        write_sequence(tmp_path / 'src' / name, frames, boxes=False)
    own_copy = tmp_path / 'job1' / 'ssdlite320_mobilenet_v3_large_mine.pth'
    own_copy.parent.mkdir()
    shutil.copy(detector_files['ssdlite'], own_copy)

    def shard(k, detector):
        out = str(tmp_path / f'shard{k}_{os.path.basename(os.path.dirname(detector))}.beton')
        write_video_pairs(str(tmp_path / 'src'), out, gap=3, proposals=2, workers=1,
                          progress=False, detector=str(detector), detector_min_score=0.0,
                          shard=f'{k}/2')
        return out
    second = shard(1, own_copy)
    merged = merge_betons(str(tmp_path / 'merged.beton'),
                          [shard(0, detector_files['ssdlite']), second], progress=False)
    assert merged['num_samples'] == 4
    state = torch.load(own_copy, weights_only=False)
    for tensor in state['model'].values():
        tensor.add_(1)
    torch.save(state, own_copy)                     # retrained, same path
    with pytest.raises(UserError, match='writer option --detector differs: .* other '
                                        'checkpoints'):
        merge_betons(str(tmp_path / 'mixed.beton'), [shard(0, own_copy), second],
                     progress=False)
