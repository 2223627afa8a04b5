"""Ray-cast one textured box or cylinder in perspective (NumPy): the invariance sets' renderer.

The camera looks at the object from ``CAMERA_ELEVATION`` degrees above; shading is Lambertian
with an ambient term under a light that can turn and warm; an optional textured board covers
an exact fraction of the object's pixels; the background is dark and every pixel is the mean
of ``SUPERSAMPLE`` x ``SUPERSAMPLE`` rays. A :class:`Scene` says what is seen.
"""
import dataclasses
import functools
import math

import numpy as np
from PIL import Image

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
