"""Render controlled invariance sets (**rendered data**): objects textured with real photographs
under *known* transformations, written in the generic layout with the magnitudes recorded.

    python writers/render_invariance_sets.py OUT [--objects 6] [--instances 4] [--per-set 4]
        [--size 128] [--seed 0] [--transformations viewpoint,light_direction,...]

Scenes are ray-cast in NumPy: a textured box or cylinder (textures: random crops of the colour
photographs shipped with scikit-image and scikit-learn) seen in perspective from 20 degrees
above, Lambertian shading with an ambient term, a dark background, 2x2 supersampling.

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
import functools
import importlib.util
import math
import os
import shutil
import sys

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastssl_common.atomic import temporary_name, write_json  # noqa: E402
from fastssl_common.errors import UserError, run_cli  # noqa: E402
from writers.writer_common import ArgParser  # noqa: E402

FORMAT = 'fastssl-rendered-invariance/1'
LABEL = 'rendered data'
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
# Photographs shipped inside installed packages (package, file); read as files, since importing
# scikit-learn alone takes seconds.
COLOUR_PHOTOS = (('skimage', 'data/astronaut.png'), ('skimage', 'data/chelsea.png'),
                 ('skimage', 'data/coffee.png'), ('skimage', 'data/rocket.jpg'),
                 ('sklearn', 'datasets/images/china.jpg'),
                 ('sklearn', 'datasets/images/flower.jpg'), ('skimage', 'data/ihc.png'),
                 ('skimage', 'data/hubble_deep_field.jpg'))
OCCLUDER_PHOTO = ('skimage', 'data/brick.png')
SHAPES = ('box', 'cylinder')
BACKGROUND = 0.1
AMBIENT = 0.35
CAMERA_ELEVATION, CAMERA_DISTANCE, FIELD_OF_VIEW = 20.0, 4.2, 34.0
SUPERSAMPLE = 2
# Which part of the texture (x0, y0, x1, y1 as fractions) each part of a shape shows: a box's
# six faces show a 3 x 2 grid of tiles (turning it reveals new content), a cylinder's side
# the photo's upper half wrapped around, its cap the lower half.
TEXTURE_REGIONS = {
    'box': np.array([(c / 3, r / 2, (c + 1) / 3, (r + 1) / 2) for r in (0, 1) for c in (0, 1, 2)]),
    'cylinder': np.array([(0, 0, 1, 0.5), (0, 0.5, 1, 1)]),
}


@dataclasses.dataclass
class Scene:
    """One object and its lighting; angles in degrees, ``warmth`` and ``occlusion`` in [0, 1]."""
    shape: str
    extent: tuple           # box: half sizes (x, y, z); cylinder: (radius, half height)
    texture: np.ndarray     # float (H, W, 3) in [0, 1]
    yaw: float = 0.0
    light_azimuth: float = 35.0
    light_elevation: float = 35.0
    warmth: float = 0.0
    occlusion: float = 0.0
    occluder_side: str = 'left'
    occluder: np.ndarray = None   # float (H, W, 3) texture of the occluder

    def varied(self, transformation, value):
        """This scene with ``value`` (the curve's unit) added along ``transformation``."""
        if transformation == 'viewpoint':
            return dataclasses.replace(self, yaw=self.yaw + value)
        if transformation == 'light_direction':
            return dataclasses.replace(self, light_azimuth=self.light_azimuth + value)
        if transformation == 'light_colour':
            return dataclasses.replace(self, warmth=value / 100)
        return dataclasses.replace(self, occlusion=value / 100)


# ------------------------------------------------------------------------------- rendering

def render(scene, size):
    """-> uint8 (size, size, 3): the scene ray-cast at ``SUPERSAMPLE`` x and box-filtered."""
    s = size * SUPERSAMPLE
    origin, rays = _camera_rays(s)
    # Into object coordinates: undo the object's rotation about the vertical axis.
    inverse = _yaw_matrix(-scene.yaw)
    o, d = inverse @ origin, rays @ inverse.T
    hit, normal, part, uv = (_box if scene.shape == 'box' else _cylinder)(o, d, scene.extent)
    # Shade only the object's pixels (texture lookups are the expensive part).
    albedo = _sample(scene.texture, TEXTURE_REGIONS[scene.shape][part[hit]], uv[hit])
    normal = normal[hit] @ _yaw_matrix(scene.yaw).T
    az, el = math.radians(scene.light_azimuth), math.radians(scene.light_elevation)
    light = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    lambert = np.clip(normal @ light, 0, None)[:, None]
    gains = np.array([1 + 0.4 * scene.warmth, 1.0, 1 - 0.4 * scene.warmth])
    image = np.full((s, s, 3), BACKGROUND)
    image[hit] = albedo * (AMBIENT + (1 - AMBIENT) * lambert) * gains
    if scene.occlusion > 0:
        image = _occlude(image, hit, scene)
    image = image.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _yaw_matrix(degrees):
    a = math.radians(degrees)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


@functools.lru_cache(maxsize=4)
def _camera_rays(s):
    e = math.radians(CAMERA_ELEVATION)
    origin = CAMERA_DISTANCE * np.array([0.0, math.sin(e), math.cos(e)])
    forward = -origin / np.linalg.norm(origin)
    right = np.array([1.0, 0.0, 0.0])
    up = np.cross(right, forward)
    coords = (np.arange(s) + 0.5) / s * 2 - 1
    u, v = np.meshgrid(coords, -coords)
    half = math.tan(math.radians(FIELD_OF_VIEW) / 2)
    rays = forward + half * (u[..., None] * right + v[..., None] * up)
    return origin, rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def _box(o, d, extent):
    """Slab intersection. -> hit mask, object-space normals, face index (0-5), uv in [0, 1]."""
    ext = np.asarray(extent, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        t1, t2 = (-ext - o) / d, (ext - o) / d
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    enter, leave = near.max(axis=-1), far.min(axis=-1)
    hit = (leave >= enter) & (enter > 0)
    axis = near.argmax(axis=-1)
    sign = -np.sign(np.take_along_axis(d, axis[..., None], -1)[..., 0])
    normal = np.zeros_like(d)
    np.put_along_axis(normal, axis[..., None], sign[..., None], -1)
    p = (o + np.where(hit, enter, 0)[..., None] * d) / ext   # in [-1, 1] on the box
    # The two in-face coordinates of each face, oriented so the photo is upright.
    across = np.choose(axis, [-sign * p[..., 2], p[..., 0], sign * p[..., 0]])
    down = np.choose(axis, [-p[..., 1], sign * p[..., 2], -p[..., 1]])
    face = axis * 2 + (sign > 0)
    return hit, normal, face, np.stack([(across + 1) / 2, (down + 1) / 2], axis=-1)


def _cylinder(o, d, extent):
    """Vertical cylinder with caps. Part 0 = side (photo wrapped around), 1 = cap."""
    radius, half = extent
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = 2 * (o[0] * d[..., 0] + o[2] * d[..., 2])
    c = o[0] ** 2 + o[2] ** 2 - radius ** 2
    disc = b * b - 4 * a * c
    with np.errstate(invalid='ignore', divide='ignore'):
        t_side = (-b - np.sqrt(disc)) / (2 * a)
        cap_y = np.where(d[..., 1] < 0, half, -half)   # the cap facing the camera
        t_cap = (cap_y - o[1]) / d[..., 1]
    y_side = o[1] + t_side * d[..., 1]
    side = (disc >= 0) & (t_side > 0) & (np.abs(y_side) <= half)
    p_cap = o + np.nan_to_num(t_cap)[..., None] * d
    cap = (t_cap > 0) & (p_cap[..., 0] ** 2 + p_cap[..., 2] ** 2 <= radius ** 2) & ~side
    t = np.where(side, t_side, np.where(cap, t_cap, 0))
    p = o + np.nan_to_num(t)[..., None] * d
    normal = np.where(side[..., None], np.stack([p[..., 0] / radius, 0 * p[..., 1],
                                                 p[..., 2] / radius], -1),
                      np.stack([0 * cap_y, np.sign(cap_y), 0 * cap_y], -1))
    around = (np.arctan2(p[..., 0], p[..., 2]) / (2 * np.pi) + 0.5) % 1.0
    uv = np.where(side[..., None], np.stack([around, (half - p[..., 1]) / (2 * half)], -1),
                  np.stack([(p[..., 0] / radius + 1) / 2, (p[..., 2] / radius + 1) / 2], -1))
    return side | cap, normal, cap.astype(np.int64), uv


def _sample(texture, regions, uv):
    """Bilinear lookup of ``uv`` inside per-pixel texture ``regions`` (x0, y0, x1, y1)."""
    h, w = texture.shape[:2]
    uv = np.clip(np.nan_to_num(uv), 0, 1)   # pixels off the object hold arbitrary uv
    x = (regions[..., 0] + uv[..., 0] * (regions[..., 2] - regions[..., 0])) * (w - 1)
    y = (regions[..., 1] + uv[..., 1] * (regions[..., 3] - regions[..., 1])) * (h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _occlude(image, hit, scene):
    """Cover exactly ``scene.occlusion`` of the object's pixels with a full-height (or -width)
    textured board sliding in from ``scene.occluder_side``."""
    mask = hit
    if scene.occluder_side in ('right', 'bottom'):
        mask = mask[:, ::-1] if scene.occluder_side == 'right' else mask[::-1]
    vertical = scene.occluder_side in ('left', 'right')
    counts = np.cumsum(mask.sum(axis=0 if vertical else 1))
    cut = int(np.searchsorted(counts, scene.occlusion * counts[-1])) + 1
    board = np.zeros(hit.shape, dtype=bool)
    if vertical:
        board[:, :cut] = True
    else:
        board[:cut] = True
    if scene.occluder_side == 'right':
        board = board[:, ::-1]
    elif scene.occluder_side == 'bottom':
        board = board[::-1]
    s = hit.shape[0]
    occluder = np.asarray(Image.fromarray(np.uint8(scene.occluder * 255)).resize((s, s)))
    return np.where(board[..., None], occluder / 255.0, image)


# ----------------------------------------------------------------------------- the objects

def photo(package, relative):
    """An RGB uint8 photograph shipped inside ``package`` (found without importing it)."""
    spec = importlib.util.find_spec(package)
    path = os.path.join(spec.submodule_search_locations[0], relative) if spec else relative
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'))
    except OSError as err:
        raise UserError(f"cannot read the shipped photograph {path} ({err}); is "
                        f"{package} installed?") from None


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

def render_sets(out, objects=6, instances=4, per_set=4, size=128, seed=0,
                transformations=TRANSFORMATIONS, overwrite=False):
    """Render the sets into the folder ``out`` (see the module doc); returns the manifest."""
    unknown = [t for t in transformations if t not in TRANSFORMATIONS]
    if unknown:
        raise UserError(f"unknown transformation '{unknown[0]}' ({', '.join(TRANSFORMATIONS)})")
    for name, value, low in (('--objects', objects, 2), ('--instances', instances, 3),
                             ('--per-set', per_set, 3), ('--size', size, 16)):
        if value < low:
            raise UserError(f"{name} must be at least {low} (got {value})")
    if os.path.exists(out) and not overwrite:
        raise UserError(f"output folder {out} exists (choose a new one or --overwrite)")
    rng = np.random.default_rng(seed)
    photos = [photo(*source) for source in COLOUR_PHOTOS]
    occluder = _tinted_texture(rng, photo(*OCCLUDER_PHOTO), (0.8, 0.7, 0.6))
    tmp = temporary_name(out.rstrip(os.sep))
    manifest = {'format': FORMAT, 'label': LABEL, 'seed': seed, 'size': size,
                'per_set': per_set, 'transformations': {}}
    try:
        curve_objects = make_objects(rng, objects, photos, occluder)
        for transformation in transformations:
            if transformation == INSTANCE:
                entry = _render_instances(tmp, rng, photos, instances, size)
            else:
                entry = _render_curve(tmp, transformation, curve_objects, per_set, size)
            manifest['transformations'][transformation] = entry
        write_json(os.path.join(tmp, 'manifest.json'), manifest)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return manifest


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


def main(argv=None):
    parser = ArgParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', help='output folder (must not exist unless --overwrite)')
    parser.add_argument('--objects', type=int, default=6, help='objects for the curves')
    parser.add_argument('--instances', type=int, default=4, help='instances per category')
    parser.add_argument('--per-set', type=int, default=4, help='images per set and level')
    parser.add_argument('--size', type=int, default=128, help='image side, px')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--transformations', default=','.join(TRANSFORMATIONS),
                        help='comma-separated subset of ' + ', '.join(TRANSFORMATIONS))
    parser.add_argument('--overwrite', action='store_true', help='replace an existing OUT')
    args = parser.parse_args(argv)
    manifest = render_sets(args.out, args.objects, args.instances, args.per_set, args.size,
                           args.seed, [t for t in args.transformations.split(',') if t],
                           args.overwrite)
    count = sum(len(files) for _, _, files in os.walk(args.out)) - 1
    print(f"{count} images of {LABEL} ({', '.join(manifest['transformations'])}) in {args.out}")
    return 0


if __name__ == '__main__':
    run_cli(main)
