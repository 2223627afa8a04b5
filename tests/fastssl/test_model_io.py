"""Backbones in and out: every supported format gives the fastssl encoder's own features, and
the export drops into a plain torchvision ResNet; a file that would give wrong weights (damaged,
diverged, a pickled model) is one line naming it."""
import os

import pytest
import torch
import torchvision
from torch import nn

from fastssl.checkpoint import save_checkpoint
from fastssl.moco import MoCo
from fastssl.model_io import export_backbone, infer_arch, load_backbone
from fastssl_common.errors import UserError


@pytest.fixture(scope='module')
def ours(module_tmp):
    """A checkpoint written by the trainer's own saver, with every weight and BatchNorm
    statistic randomised (so a loader that skipped one would give different features)."""
    torch.manual_seed(0)
    model = MoCo('resnet18', proj_hidden=64, proj_dim=16, queue_size=8, bn_splits=2)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith('running_var'):
                tensor.uniform_(0.5, 1.5)
            elif tensor.is_floating_point():
                tensor.normal_(0, 0.1)
    run = module_tmp.mktemp('ckpt')
    optimizer = torch.optim.SGD(model.encoder_q.parameters(), lr=0.1)
    config = {'model': {'arch': 'resnet18', 'proj_hidden': 64, 'proj_dim': 16},
              'moco': {'bn_splits': 2}}
    path = save_checkpoint(str(run), 0, model, optimizer, None, config)
    encoder = model.encoder_q.eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = encoder.features(images)
    backbone = {k: v.clone() for k, v in encoder.backbone.state_dict().items()}
    return path, backbone, images, expected, run


def test_our_checkpoint_gives_the_encoders_features(ours):
    path, _, images, expected, _ = ours
    model = load_backbone(path)
    assert (model.arch, model.source_format, model.feature_dim) == \
        ('resnet18', 'fastssl checkpoint', 512)
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(images), expected, rtol=1e-5, atol=1e-5)


def official_moco_file(backbone, path):
    """The official MoCo v2 release layout: a torchvision ResNet whose fc became the MLP head
    (moco/builder.py), wrapped in DataParallel, saved by main_moco.py's save_checkpoint."""
    resnet = torchvision.models.resnet18(num_classes=128)
    resnet.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), resnet.fc)
    resnet.load_state_dict({**resnet.state_dict(), **backbone})
    weights = {}
    for encoder in ('encoder_q', 'encoder_k'):
        weights.update({f'module.{encoder}.{k}': v for k, v in resnet.state_dict().items()})
    weights.update({'module.queue': torch.randn(128, 16), 'module.queue_ptr': torch.zeros(1)})
    torch.save({'epoch': 200, 'arch': 'resnet18', 'state_dict': weights,
                'optimizer': {'state': {}, 'param_groups': []}}, path)
    assert 'module.encoder_q.fc.0.weight' in weights and 'module.encoder_q.fc.2.bias' in weights


def torchvision_file(backbone, path, wrap=False):
    resnet = torchvision.models.resnet18(num_classes=10)
    resnet.load_state_dict({**resnet.state_dict(), **backbone})
    state = resnet.state_dict()
    torch.save({'state_dict': {'module.' + k: v for k, v in state.items()}} if wrap else state,
               path)
    return resnet.eval()


def test_every_format_gives_the_same_features(ours, tmp_path):
    path, backbone, images, expected, _ = ours
    official_moco_file(backbone, tmp_path / 'moco_v2.pth.tar')
    torchvision_file(backbone, tmp_path / 'tv.pth')
    torchvision_file(backbone, tmp_path / 'tv_wrapped.pth', wrap=True)
    for name, fmt in (('moco_v2.pth.tar', 'official MoCo checkpoint'),
                      ('tv.pth', 'torchvision state dict'),
                      ('tv_wrapped.pth', 'torchvision state dict')):
        model = load_backbone(str(tmp_path / name))
        assert (model.source_format, model.arch) == (fmt, 'resnet18')
        with torch.no_grad():
            torch.testing.assert_close(model(images), expected, rtol=1e-5, atol=1e-5)


def test_export_never_replaces_its_checkpoint_or_a_file_that_is_not_pytorch(ours, tmp_path):
    path = ours[0]
    before = open(path, 'rb').read()
    with pytest.raises(UserError, match='is the checkpoint it exports'):
        export_backbone(path, path)
    assert open(path, 'rb').read() == before
    data = tmp_path / 'data.beton'
    data.write_bytes(b'samples')
    with pytest.raises(UserError, match='data.beton exists and is not a PyTorch file'):
        export_backbone(path, str(data))
    assert data.read_bytes() == b'samples'
    export_backbone(path, str(tmp_path / 'backbone.pth'))
    export_backbone(path, str(tmp_path / 'backbone.pth'))     # an earlier export is replaced


def test_export_round_trip_into_plain_torchvision(ours, tmp_path):
    path, backbone, images, expected, _ = ours
    summary = export_backbone(path, str(tmp_path / 'backbone.pth'))
    assert (summary['arch'], summary['has_fc']) == ('resnet18', False)
    resnet = torchvision.models.resnet18()
    missing, unexpected = resnet.load_state_dict(torch.load(tmp_path / 'backbone.pth'),
                                                 strict=False)
    assert (sorted(missing), unexpected) == (['fc.bias', 'fc.weight'], [])
    resnet.fc = nn.Identity()
    with torch.no_grad():
        torch.testing.assert_close(resnet.eval()(images), expected, rtol=1e-5, atol=1e-5)
    # A torchvision classifier keeps its fc: the export loads strictly and classifies alike.
    reference = torchvision_file(backbone, tmp_path / 'tv.pth')
    export_backbone(str(tmp_path / 'tv.pth'), str(tmp_path / 'tv_out.pth'))
    plain = torchvision.models.resnet18(num_classes=10)
    plain.load_state_dict(torch.load(tmp_path / 'tv_out.pth'))
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(images), reference(images))


@pytest.mark.parametrize('arch', ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152'])
def test_architecture_is_read_off_the_keys(arch):
    with torch.device('meta'):  # keys and shapes only: no memory, no init time
        weights = getattr(torchvision.models, arch)().state_dict()
    assert infer_arch(weights) == arch


def test_bad_files_are_named_with_what_was_found(ours, tmp_path):
    path, *_ = ours
    torch.save({'generator': {'conv.weight': torch.zeros(1)}, 'step': 3}, tmp_path / 'gan.pt')
    with pytest.raises(UserError, match=r'gan\.pt matches no known .*found keys '
                                        r'generator, step'):
        load_backbone(str(tmp_path / 'gan.pt'))
    with pytest.raises(UserError, match='checkpoint not found: .*none.pt'):
        load_backbone(str(tmp_path / 'none.pt'))
    (tmp_path / 'notes.txt').write_text('not a checkpoint')
    with pytest.raises(UserError, match=r'notes\.txt is not a PyTorch checkpoint \(a text file\)'):
        load_backbone(str(tmp_path / 'notes.txt'))
    # PyTorch's list of missing and unexpected keys, cut to one line, hid what was wrong
    with pytest.raises(UserError, match=r'^.*\.pt holds a resnet18 backbone, not a resnet50: '
                                        r'set eval.arch to resnet18 or auto$'):
        load_backbone(path, arch='resnet50')
    weights = load_backbone(path).state_dict()
    weights['conv1.weight'] = weights['conv1.weight'][:, :2]     # a 2-channel stem
    torch.save(weights, tmp_path / 'two_channels.pth')
    with pytest.raises(UserError, match=r'two_channels\.pth: weights do not fit resnet18 \(.*'
                                        r'size mismatch for conv1\.weight'):
        load_backbone(str(tmp_path / 'two_channels.pth'), arch='resnet18')
    with pytest.raises(UserError, match='matches no known'):
        export_backbone(str(tmp_path / 'gan.pt'), str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()


def test_non_finite_weights_are_refused_naming_the_first_key(ours, tmp_path):
    """A diverged run's checkpoint evaluated as chance accuracy and exported NaN weights."""
    path, backbone, *_ = ours
    state = torch.load(path, weights_only=False)
    state['model']['encoder_q.backbone.layer4.1.bn2.weight'][3] = float('nan')
    torch.save(state, tmp_path / 'diverged.pt')
    with pytest.raises(UserError, match=r'checkpoint .*diverged\.pt has non-finite weights '
                                        r'\(encoder_q\.backbone\.layer4\.1\.bn2\.weight holds '
                                        r'NaN; a diverged run\?\): evaluate an earlier '
                                        r'checkpoint_eNNNN\.pt of its run$'):
        load_backbone(str(tmp_path / 'diverged.pt'))
    torchvision_file({**backbone, 'conv1.weight': backbone['conv1.weight'] * float('inf')},
                     tmp_path / 'tv_inf.pth')
    with pytest.raises(UserError, match=r'tv_inf\.pth has non-finite weights \(conv1\.weight '
                                        r'holds inf; a diverged run\?\)$'):
        export_backbone(str(tmp_path / 'tv_inf.pth'), str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()


def zero_storage_bytes(path, tensor, count=64 << 10):
    """Zero ``count`` bytes inside ``tensor``'s storage in the file, in place, as a disk or a
    size-keeping copy damages a file; torch.load verifies no checksum and reads the zeros."""
    raw = bytearray(path.read_bytes())
    start = raw.find(tensor.numpy().tobytes()) + 1024
    raw[start:start + count] = bytes(count)
    path.write_bytes(bytes(raw))


def test_a_damaged_checkpoint_is_refused_not_exported_as_zeros(ours, tmp_path):
    path, backbone, *_ = ours
    damaged = tmp_path / 'damaged.pt'
    damaged.write_bytes(open(path, 'rb').read())
    zero_storage_bytes(damaged, backbone['layer4.1.conv2.weight'])
    with pytest.raises(UserError, match=r'damaged\.pt is damaged \(member \S+/data/\d+ fails '
                                        r'its checksum\)$'):
        export_backbone(str(damaged), str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()


def test_a_whole_pickled_model_is_named_as_such(tmp_path):
    torch.save(torchvision.models.resnet18(), tmp_path / 'model.pt')
    with pytest.raises(UserError) as refused:
        load_backbone(str(tmp_path / 'model.pt'))
    assert str(refused.value) == (
        f"{tmp_path / 'model.pt'} holds pickled Python objects (torchvision.models.resnet.ResNet: "
        f"a whole model saved with torch.save(model)?), not a state dict: save "
        f"model.state_dict()")


def test_export_out_ending_in_a_separator_is_refused_before_the_work(tmp_path):
    out = f'{tmp_path}/new/'
    # named before the checkpoint is even looked for (it does not exist)
    with pytest.raises(UserError, match=f'export.out {out} ends in /'):
        export_backbone(str(tmp_path / 'none.pt'), out)
    assert not (tmp_path / 'new').exists()


@pytest.mark.parametrize('name', ['train.beton', 'features.JSON', 'run.yaml'])
def test_export_out_named_as_data_is_refused(ours, tmp_path, name):
    """A new file so named got a ResNet state dict, exit status 0."""
    with pytest.raises(UserError, match=rf'^export.out .*{name} is named as a '
                                        rf'{name[name.index("."):]} file: give the path of a '
                                        rf'\.pth$'):
        export_backbone(ours[0], str(tmp_path / name))
    assert os.listdir(tmp_path) == []


def test_a_damaged_earlier_export_is_named_as_export_out(ours, tmp_path):
    out = tmp_path / 'backbone.pth'
    export_backbone(ours[0], str(out))
    cut = out.read_bytes()[:-100]
    out.write_bytes(cut)
    with pytest.raises(UserError, match=rf'^export\.out: {out} is truncated or damaged .*; '
                                        r'remove it or give another path$'):
        export_backbone(ours[0], str(out))
    assert out.read_bytes() == cut
