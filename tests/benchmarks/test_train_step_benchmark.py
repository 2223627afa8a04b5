"""Smoke test of benchmarks/train_step.py: ``--quick`` runs every CPU section and prints every
row; the GPU-only sections say n/a. No timing is asserted (a 2-step run means nothing), but
the FLOP count is checked against a hand count and the loader run against its step count.
Runs ``main`` in-process: a new interpreter would spend ~20 s importing torch and FFCV again.
"""
import json
import re

from benchmarks.train_step import main

NUMBER = r'\d+(?:\.\d+)?'


def resnet18_forward_gflop(side):
    """Conv + linear FLOPs (2 per multiply-add) of torchvision's ResNet-18 trunk at
    ``side`` px, counted by hand from its layer shapes (no head, no fc)."""
    flops, s = 0, side // 2                            # conv1: 7x7 stride 2, 3 -> 64
    flops += 2 * 7 * 7 * 3 * 64 * s * s
    s = s // 2                                         # max pool
    channels = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            step = stride if block == 0 else 1
            out = s // step
            flops += 2 * 3 * 3 * channels * width * out * out      # conv a
            flops += 2 * 3 * 3 * width * width * out * out         # conv b
            if block == 0 and (step != 1 or channels != width):
                flops += 2 * channels * width * out * out          # 1x1 downsample
            channels, s = width, out
    return flops / 1e9


def test_quick_run_prints_every_section(tmp_path, capsys):
    out = tmp_path / 'result.json'
    profile = tmp_path / 'profile.txt'
    assert main(['--quick', '--json', str(out), '--profile', str(profile)]) == 0
    stdout = capsys.readouterr().out
    lines = stdout.splitlines()
    assert any(line.startswith('machine: ') for line in lines)
    for label in ('fp32 NCHW', 'channels-last + bf16'):
        rows = [line for line in lines if line.startswith(f'resnet18  {label} ')]
        assert len(rows) == 1, (label, stdout)
        assert re.search(rf'\s{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+n/a\s+n/a$',
                         rows[0]), rows[0]
    assert any(re.match(rf'resnet18: channels-last \+ bf16 / fp32 NCHW\s+{NUMBER}x\s+'
                        r'\(target applies to a GPU\)$', line) for line in lines)
    assert any(line.startswith('(g) GPU-side preprocessing') for line in lines)
    assert any(line.startswith('(l) real FFCV loader') for line in lines)
    assert any(re.match(rf'mocov2\s+data\.beton\s+4\s+{NUMBER}\s+{NUMBER}%', line)
               for line in lines), stdout
    assert any(re.match(rf'resnet18: MoCo pairs/s / \(0\.75 x supervised images/s\), fp32 NCHW'
                        rf'\s+{NUMBER}x\s+\(target applies to a GPU\)$', line)
               for line in lines), stdout
    assert '(m) largest batch that fits (resnet18, channels-last + bf16): n/a (no GPU)' in lines

    result = json.loads(out.read_text())
    assert [(r['arch'], r['mode']) for r in result['synthetic']] == [
        ('resnet18', 'fp32'), ('resnet18', 'bf16_cl')]
    # per pair: query forward + backward (~2 forwards) + key forward = ~4 forwards of the
    # trunk (the MLP head and InfoNCE add well under 1 % at this size)
    gflop = result['synthetic'][0]['gflops_per_pair']
    trunk = resnet18_forward_gflop(32)
    assert 3.9 * trunk < gflop < 4.2 * trunk, (gflop, trunk)
    assert result['synthetic'][0]['peak_fraction'] is None        # CPU: no peak table
    assert [(r['arch'], r['mode']) for r in result['supervised']] == [
        ('resnet18', 'fp32'), ('resnet18', 'bf16_cl')]
    assert all(r['images_per_s'] > 0 for r in result['supervised'])
    # 32 samples / batch 8 = 4 steps an epoch; 2 timed steps -> 1 compiling + 1 timed epoch
    loader, = result['loaders']
    assert loader['variant'] == 'mocov2' and loader['steps_per_epoch'] == 4
    assert loader['steps'] == 4 and loader['loader_only_pairs_per_s'] > 0
    assert 0 <= loader['data_wait_fraction'] < 1 and loader['pairs_per_s'] > 0
    assert 0 < result['preprocess']['fraction'] < 1
    assert result['largest_batch'] is None and result['preprocess']['sync'] is None
    # the profile: its table and the steps' wall time; kernel time only with a GPU
    assert result['complete'] is True
    assert result['profile']['wall_ms'] > 0 and result['profile']['kernel_ms'] is None
    assert profile.read_text().startswith('resnet18 fp32 NCHW, batch 8, 32 px: 3 steps in ')
    assert any(line.startswith('(p) profile, 3 steps of resnet18: ') for line in lines)
