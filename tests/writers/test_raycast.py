"""The ray caster of the invariance sets: the occluder hides the recorded fraction of the
object (measured on the images), and a viewpoint change is a rotation."""
import dataclasses

import numpy as np
import pytest

from writers.raycast import BACKGROUND, Scene, render
from writers.render_invariance_sets import photo


def scene():
    rng = np.random.default_rng(0)
    texture = photo('skimage', 'data/coffee.png')[::4, ::4] / 255.0
    occluder = np.full((32, 32, 3), 0.9)
    return Scene('box', (0.7, 0.8, 0.6), texture, yaw=20.0, occluder=occluder,
                 occluder_side=str(rng.choice(['left', 'top'])))


@pytest.mark.parametrize('coverage', [0.25, 0.6])
def test_occluder_hides_the_recorded_fraction_of_the_object(coverage):
    plain = render(scene(), 64).astype(int)
    covered = render(dataclasses.replace(scene(), occlusion=coverage), 64).astype(int)
    background = round(BACKGROUND * 255)
    obj = (np.abs(plain - background).sum(-1) > 0)
    hidden = obj & (np.abs(covered - plain).sum(-1) > 0)
    assert hidden.sum() / obj.sum() == pytest.approx(coverage, abs=0.06)


def test_viewpoint_is_a_rotation():
    base = scene()
    turned = [render(dataclasses.replace(base, yaw=base.yaw + a), 32).astype(int)
              for a in (0, 360, 40)]
    assert np.abs(turned[0] - turned[1]).max() <= 1     # a full turn: the same image
    assert np.abs(turned[0] - turned[2]).mean() > 5
