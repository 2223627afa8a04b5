"""Render controlled invariance sets (**rendered data**): objects textured with real photographs
under *known* transformations, written in the generic layout with the magnitudes recorded.

    python writers/render_invariance_sets.py OUT [--objects 24] [--instances 4] [--per-set 4]
        [--size 128] [--seed 0] [--transformations viewpoint,light_direction,...]

Scenes are ray-cast in NumPy (:mod:`writers.raycast`): a textured box or cylinder
(textures: random crops of the colour photographs shipped with scikit-image and
scikit-learn) seen in perspective from 20 degrees above, Lambertian shading with an ambient
term, a dark background, 2x2 supersampling.

Transformations (each object is one set and its own target, as in ALOI):

* ``viewpoint``: rotation of the object about the vertical axis, degrees;
* ``light_direction``: azimuth of the light around the object, degrees;
* ``light_colour``: warm shift of the light, percent (red gain up, blue gain down by 0.4 x);
* ``occlusion``: percent of the object's visible pixels hidden by a textured occluder that
  slides in from one side (exact at render resolution);
* ``instance``: several instances (textures, proportions) of one category (box or cylinder)
  at one viewpoint form a set; target = category. One measurement, no magnitude.

A curve level of magnitude m has ``--per-set`` images per object spread evenly over [0, m]
from the object's base pose; images shared by levels are rendered once. Output::

    OUT/manifest.json                       format, label "rendered data", seed, levels
    OUT/<transformation>/<target>/<set>/<value>.png

Every ``OUT/<transformation>`` is itself a generic-layout root (all magnitudes of an object in
one set). Deterministic given the seed. OUT is written under a temporary name and renamed
when complete. (It lives in writers/: it writes image folders and imports no fastssl code.)
"""
import dataclasses
import importlib.util
import json
import os
import shutil
from collections.abc import Iterable

import numpy as np
from PIL import Image

from fastssl_common.atomic import (
    output_folder,
    remove_stale,
    stop_signals_held,
    temporary_name,
    write_errors,
    write_json,
)
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, path_argument, run_cli
from fastssl_common.formats import (
    RENDERED_FORMAT,
    RENDERED_LABEL,
    RENDERED_MANIFEST,
    RENDERED_SIZE_MAX,
)
from fastssl_common.numbers import check_flag, check_number
from writers.raycast import SHAPES, Scene, render

# transformation -> (unit, curve levels)
CURVES = {
    'viewpoint': ('degrees of rotation about the vertical axis', (15, 30, 60, 90)),
    'light_direction': ('degrees of light azimuth', (30, 60, 120, 180)),
    'light_colour': ('percent warm shift of the light colour', (10, 25, 50, 100)),
    'occlusion': ('percent of the object hidden by an occluder', (10, 25, 50, 75)),
}
INSTANCE = 'instance'
TRANSFORMATIONS = (*CURVES, INSTANCE)
INSTANCE_VIEWS = (0, 45, 90, 135)
# Smallest --size: fastssl.config.RESOLUTION_MIN (imported by no writer; a test keeps the two
# equal), below which eval.py invariance refuses a resolution: a ResNet downsamples by 32.
MIN_SIZE = 32
MAX_SIZE = RENDERED_SIZE_MAX
# Fewest --objects (the targets C of a curve, fastssl/invariance.py). Its firing percentile
# p = min(100 (1 - 1/C), 95) leaves one object's worth of images at or above a neuron's
# threshold up to C = 20, of which its strict '>' counts per-set - 1: a neuron that singles out
# an object reaches the ceiling 100 (per-set - 1) / per-set whether or not the set's last image
# fires, and on a few distinct objects every top-K neuron of any network does (2 objects:
# 75.0 [75.0, 75.0] for every checkpoint; 4: 66.7 throughout; 8: at the small magnitudes).
# From C = 21, p = 95 and the 5 % firing images outnumber a set: it counts whole only if every
# one of its images fires, beside distractors from other objects.
MIN_OBJECTS = 21
DEFAULT_OBJECTS = 24   # the demo's and the training monitor's
# Photographs shipped inside installed packages (package, file); read as files, since importing
# scikit-learn alone takes seconds.
COLOUR_PHOTOS = (('skimage', 'data/astronaut.png'), ('skimage', 'data/chelsea.png'),
                 ('skimage', 'data/coffee.png'), ('skimage', 'data/rocket.jpg'),
                 ('sklearn', 'datasets/images/china.jpg'),
                 ('sklearn', 'datasets/images/flower.jpg'), ('skimage', 'data/ihc.png'),
                 ('skimage', 'data/hubble_deep_field.jpg'))
OCCLUDER_PHOTO = ('skimage', 'data/brick.png')


# ----------------------------------------------------------------------------- the objects

def photo(package, relative):
    """An RGB uint8 photograph shipped inside ``package`` (found without importing it)."""
    spec = importlib.util.find_spec(package)
    path = os.path.join(spec.submodule_search_locations[0], relative) if spec else relative
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'))
    except OSError as err:
        raise UserError(f'cannot read the shipped photograph {path} ({err}); is '
                        f'{package} installed?') from None


def _texture(rng, pixels, side=192):
    """A random crop (60-100 % of each side) of ``pixels``, resized to side x side, float."""
    h, w = pixels.shape[:2]
    ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = Image.fromarray(pixels[top:top + ch, left:left + cw])
    return np.asarray(crop.resize((side, side), Image.BILINEAR), dtype=np.float64) / 255


def _extent(rng, shape):
    if shape == 'box':
        return (rng.uniform(0.5, 0.8), rng.uniform(0.6, 0.9), rng.uniform(0.4, 0.7))
    return (rng.uniform(0.45, 0.65), rng.uniform(0.6, 0.9))


def make_objects(rng, count, photos, occluder):
    """``count`` objects: alternating shapes, cycling photos, random crops/proportions/pose."""
    objects = []
    for i in range(count):
        shape = SHAPES[i % len(SHAPES)]
        scene = Scene(shape, _extent(rng, shape), _texture(rng, photos[i % len(photos)]),
                      yaw=float(rng.uniform(0, 360)),
                      occluder_side=str(rng.choice(['left', 'right', 'top', 'bottom'])),
                      occluder=occluder)
        objects.append((f'object{i:02d}', scene))
    return objects


def _tinted_texture(rng, pixels, tint):
    return _texture(rng, pixels) * np.array(tint)


def level_values(magnitude, per_set):
    """The ``per_set`` magnitudes of one level's set: evenly spread over [0, magnitude]."""
    return [round(magnitude * i / (per_set - 1), 6) for i in range(per_set)]


def value_name(value):
    return f'{value:g}'.replace('.', 'p').replace('-', 'm') + '.png'


# ------------------------------------------------------------------------------- writing

def render_sets(out, objects=DEFAULT_OBJECTS, instances=4, per_set=4, size=128, seed=0,
                transformations=TRANSFORMATIONS, overwrite=False):
    """Render the sets into the folder ``out`` (a str or ``pathlib.Path``; see the module
    doc); returns the manifest."""
    out = path_argument(out, 'out')
    # one name given alone would be read as its letters, each a transformation
    if isinstance(transformations, str) or not isinstance(transformations, Iterable):
        raise UserError(f'transformations must be a list of names, got {transformations!r}')
    transformations = list(transformations)     # a generator is read once
    if not transformations:
        raise UserError(f"--transformations names no transformation (choose from "
                        f"{', '.join(TRANSFORMATIONS)})")
    unknown = [t for t in transformations if t not in TRANSFORMATIONS]
    if unknown:
        raise UserError(f"--transformations: unknown transformation '{unknown[0]}' (choose "
                        f"from {', '.join(TRANSFORMATIONS)})")
    twice = next((t for k, t in enumerate(transformations) if t in transformations[:k]), None)
    if twice is not None:      # its set would be rendered twice, the first then thrown away
        raise UserError(f"--transformations: '{twice}' is given twice")
    objects = check_number(objects, '--objects', MIN_OBJECTS,
                           what=f'a whole number >= {MIN_OBJECTS} (with fewer, the invariance '
                                f'score ignores one image of each set and saturates on a few '
                                f'distinct objects)')
    # the checked values: NumPy's integers would fail in the manifest's JSON
    instances, per_set, size, seed = (
        check_number(value, f'--{flag}', low, high)
        for flag, value, low, high in (('instances', instances, 3, None),
                                       ('per-set', per_set, 3, None),
                                       ('size', size, MIN_SIZE, MAX_SIZE),
                                       ('seed', seed, 0, None)))
    out = out.rstrip(os.sep)   # 'file/' would not be seen to exist
    check_out(out, check_flag(overwrite, '--overwrite'))
    rng = np.random.default_rng(seed)
    photos = [photo(*source) for source in COLOUR_PHOTOS]
    occluder = _tinted_texture(rng, photo(*OCCLUDER_PHOTO), (0.8, 0.7, 0.6))
    manifest = {'format': RENDERED_FORMAT, 'label': RENDERED_LABEL, 'seed': seed,
                'size': size, 'per_set': per_set, 'transformations': {}}
    # the folders made for OUT go again if rendering fails or is stopped
    with output_folder(os.path.dirname(os.path.abspath(out))) as parent:
        remove_stale(parent, 'tmp')
        tmp = temporary_name(out)
        try:
            with write_errors(out, parent, (tmp,)):
                curve_objects = make_objects(rng, objects, photos, occluder)
                for transformation in transformations:
                    if transformation == INSTANCE:
                        entry = _render_instances(tmp, rng, photos, instances, size)
                    else:
                        entry = _render_curve(tmp, transformation, curve_objects, per_set,
                                              size)
                    manifest['transformations'][transformation] = entry
                write_json(os.path.join(tmp, RENDERED_MANIFEST), manifest)
                # a stop between the two would leave neither the earlier render nor this one
                with stop_signals_held():
                    if os.path.exists(out):
                        shutil.rmtree(out)
                    os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp)
    return manifest


def check_out(out, overwrite):
    """Refuse, before anything is rendered, an OUT that exists without ``overwrite``, and one
    that ``overwrite`` must not replace: only an empty folder or an earlier render is removed
    (not a file, a link, or a folder of something else given by mistake)."""
    if not os.path.lexists(out):
        return
    kind = 'a symbolic link' if os.path.islink(out) else \
        None if os.path.isdir(out) else 'not a folder'
    if not overwrite:
        raise UserError(f'output folder {out} exists (choose a new one or --overwrite)'
                        if kind is None else
                        f'OUT {out} exists and is {kind}: choose a new folder')
    if kind:
        raise UserError(f'OUT {out} is {kind}: --overwrite replaces only a folder (remove it '
                        f'or choose another OUT)')
    if os.listdir(out) and not _is_render(out):
        raise UserError(f'OUT {out} holds no rendered data (no {RENDERED_MANIFEST} of this '
                        f'writer): --overwrite replaces only an earlier render (remove it or '
                        f'choose another OUT)')


def _is_render(folder):
    try:
        with open(os.path.join(folder, RENDERED_MANIFEST), encoding='utf-8') as handle:
            return json.load(handle).get('format') == RENDERED_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _save(root, relative, pixels):
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path)


def _render_curve(root, transformation, objects, per_set, size):
    unit, magnitudes = CURVES[transformation]
    levels = [{'magnitude': m, 'sets': []} for m in magnitudes]
    for name, scene in objects:
        rendered = {}
        for level in levels:
            images = []
            for value in level_values(level['magnitude'], per_set):
                relative = f'{transformation}/{name}/{name}/{value_name(value)}'
                if relative not in rendered:
                    _save(root, relative, render(scene.varied(transformation, value), size))
                    rendered[relative] = value
                images.append(relative)
            level['sets'].append({'set': name, 'target': name, 'images': images})
    return {'unit': unit, 'levels': levels}


def _render_instances(root, rng, photos, instances, size):
    sets = []
    for c, shape in enumerate(SHAPES):
        members = [Scene(shape, _extent(rng, shape),
                         _texture(rng, photos[(c * instances + i) % len(photos)]))
                   for i in range(instances)]
        for view in INSTANCE_VIEWS:
            images = []
            for i, scene in enumerate(members):
                relative = f'{INSTANCE}/{shape}/view{view}/instance{i}.png'
                _save(root, relative, render(dataclasses.replace(scene, yaw=view), size))
                images.append(relative)
            sets.append({'set': f'{shape}/view{view}', 'target': shape, 'images': images})
    return {'unit': 'instances of a category (box, cylinder) at one viewpoint',
            'levels': [{'magnitude': None, 'sets': sets}]}


def build_parser():
    parser = ArgParser(prog='render_invariance_sets.py', description=__doc__.split('\n\n')[0])
    parser.add_argument('out', help='output folder (must not exist unless --overwrite)')
    parser.add_argument('--objects', type=int, default=DEFAULT_OBJECTS,
                        help=f'objects for the curves (at least {MIN_OBJECTS}; default '
                             f'{DEFAULT_OBJECTS})')
    parser.add_argument('--instances', type=int, default=4,
                        help='instances per category (default 4)')
    parser.add_argument('--per-set', type=int, default=4,
                        help='images per set and level (default 4)')
    parser.add_argument('--size', type=int, default=128,
                        help=f'image side, px ({MIN_SIZE} to {MAX_SIZE}; default 128)')
    parser.add_argument('--seed', type=int, default=0, help='rendering seed (default 0)')
    parser.add_argument('--transformations', default=','.join(TRANSFORMATIONS),
                        help='comma-separated subset of ' + ', '.join(TRANSFORMATIONS)
                             + ' (default: all)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing OUT')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    names = [t.strip() for t in args.transformations.split(',') if t.strip()]
    manifest = render_sets(args.out, args.objects, args.instances, args.per_set, args.size,
                           args.seed, names, args.overwrite)
    count = sum(len(files) for _, _, files in os.walk(args.out)) - 1
    print(f"{count} images of {RENDERED_LABEL} ({', '.join(manifest['transformations'])}) "
          f"in {args.out}")
    return 0


def cli():
    """The console entry point: ``main`` on the command line's arguments, a user error as one
    line and exit status 2 (:func:`fastssl_common.errors.run_cli`)."""
    run_cli(main, stop_on_sigterm=True)


if __name__ == '__main__':
    cli()
