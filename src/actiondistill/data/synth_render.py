"""Rendering SynthActions clips with numpy and cv2: scene, landmarks, shapes, and camera nuisances.

Shapes are drawn anti-aliased at sub-pixel positions (cv2's fixed-point `shift`), so that slow
motion changes pixels smoothly instead of jumping a whole pixel now and then.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from actiondistill.data.synth_world import COLOURS, PRESETS, ClipSpec

_SHIFT = 4  # cv2 fixed-point bits: coordinates are given in 1/16 pixel
_HAND = (25, 25, 25)  # the dark stripe that makes the main object's orientation (and so spinning) visible


def _regular(n: int, start: float) -> np.ndarray:
    angles = start + 2.0 * math.pi * np.arange(n) / n
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star() -> np.ndarray:
    points = _regular(10, -math.pi / 2)
    points[1::2] *= 0.45
    return points


def _cross(w: float = 0.4) -> np.ndarray:
    quarter = [(w, 1.0), (w, w), (1.0, w)]
    points = []
    for k in range(4):  # the same quarter turned four times
        c, s = math.cos(k * math.pi / 2), math.sin(k * math.pi / 2)
        points += [(x * c - y * s, x * s + y * c) for x, y in quarter]
    return 0.92 * np.array(points)


# Unit-radius outlines at orientation 0.
_SHAPES: dict[str, np.ndarray] = {
    "circle": _regular(24, 0.0),
    "square": 0.95 * _regular(4, math.pi / 4),
    "triangle": _regular(3, -math.pi / 2),
    "star": _star(),
    "diamond": _regular(4, -math.pi / 2) * np.array([0.62, 1.0]),
    "hexagon": _regular(6, 0.0),
    "cross": _cross(),
}


def render_clip(spec: ClipSpec, size: int = 64, frames: int = 32) -> np.ndarray:
    """Render a clip as uint8 RGB frames (frames, size, size, 3); a pure function of its arguments."""
    plan = _plan(spec, size, frames)
    pad, track, rng = plan["pad"], plan["track"], plan["rng"]
    colour = COLOURS[spec.colour]
    rim = tuple(int(0.45 * c) for c in colour)
    hand = PRESETS[spec.world].hand
    video = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        canvas = plan["background"].copy()
        for d in plan["distractors"]:
            if not d["front"]:
                _draw(canvas, d["shape"], pad + d["x"][t] * size, pad + d["y"][t] * size, d["radius"] * size,
                      d["angle"][t], d["colour"], d["rim"])
        if track["visible"][t]:
            _draw(canvas, spec.shape, pad + track["x"][t] * size, pad + track["y"][t] * size,
                  track["radius"][t] * size, track["angle"][t], colour, rim, hand=hand)
        for d in plan["distractors"]:
            if d["front"]:
                _draw(canvas, d["shape"], pad + d["x"][t] * size, pad + d["y"][t] * size, d["radius"] * size,
                      d["angle"][t], d["colour"], d["rim"])
        if plan["occluder"] is not None:
            _draw_bar(canvas, plan["occluder"], t, size, pad, size + 2 * pad)
        dx, dy = pad + plan["jitter"][t]
        video[t] = canvas[dy:dy + size, dx:dx + size]

    out = video.astype(np.float32)
    out *= plan["gain"][:, None, None, :].astype(np.float32)
    if spec.noise > 0:  # noise is drawn last, so skipping it changes no other draw
        out += rng.standard_normal(out.shape, dtype=np.float32)[plan["order"]] * np.float32(spec.noise)
    out += 0.5
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


def frame_ground_truth(spec: ClipSpec, size: int = 64, frames: int = 32) -> dict[str, np.ndarray]:
    """Where things are in each rendered frame of `render_clip(spec, size, frames)`: oracle frame-level state.

    Everything is in frame units (0..1 across the frame) with the camera jitter included, so it matches the pixels.
    Returns (frames,) arrays for the main object: "x", "y" (centre), "angle" (radians, its dark stripe's
    direction), "radius" and "visible"; and "landmarks", (frames, 2, 2): the tree's and the house's (x, y).
    """
    plan = _plan(spec, size, frames)
    track, camera = plan["track"], plan["jitter"] / size
    landmarks = np.asarray(spec.landmarks, float)[None, :, :] - camera[:, None, :]
    return {"x": track["x"] - camera[:, 0], "y": track["y"] - camera[:, 1], "angle": track["angle"],
            "radius": track["radius"], "visible": track["visible"], "landmarks": landmarks}


def _plan(spec: ClipSpec, size: int, frames: int) -> dict:
    """Every random draw of a clip but the pixel noise, in a fixed order, so that the video and its track agree."""
    if size < 16 or size % 2:
        raise ValueError(f"size={size}; expected an even number of pixels >= 16 (H.264 needs even sizes)")
    if frames < 2:
        raise ValueError(f"frames={frames}; expected at least 2 (motion needs two frames)")
    rng = np.random.default_rng([spec.seed, 1])
    pad = int(round(spec.jitter * size))
    background = _background(rng, spec, size, pad)
    s = (2.0 * np.arange(frames) - (frames - 1)) / (frames - 1)  # exactly antisymmetric: s[T-1-t] == -s[t]
    s_nuisance = s[::-1] if spec.time_reversed else s
    order = slice(None, None, -1) if spec.time_reversed else slice(None)
    distractors = _distractors(rng, spec, s_nuisance)
    occluder = _occluder(rng, s_nuisance) if spec.occluded else None
    a, b = rng.uniform(-0.15, 0.15), rng.uniform(-0.25, 0.25)
    tint = rng.uniform(-0.06, 0.06, size=3)
    gain = 1.0 + spec.lighting * (a + b * s_nuisance[:, None] + tint[None, :])
    jitter = rng.integers(-pad, pad + 1, size=(frames, 2))[order]
    shake = rng.uniform(-1.0, 1.0, size=(frames, 2))[order] * spec.shake
    x, y, angle, radius, visible = _main_track(spec, s, shake)
    return {"rng": rng, "pad": pad, "background": background, "order": order, "distractors": distractors,
            "occluder": occluder, "gain": gain, "jitter": jitter,
            "track": {"x": x, "y": y, "angle": angle, "radius": radius, "visible": visible}}


def _main_track(spec: ClipSpec, s: np.ndarray, shake: np.ndarray):
    """Per-frame centre, orientation, radius and visibility; every rate multiplies s, so negating rates reverses."""
    x = spec.centre[0] + spec.velocity[0] * s
    y = spec.centre[1] + spec.velocity[1] * s
    if spec.orbit.amplitude:
        phase = spec.orbit.phase + spec.orbit.rate * s
        x = x + spec.orbit.amplitude * np.cos(phase)
        y = y + spec.orbit.amplitude * np.sin(phase)
    if spec.hop.amplitude:  # hops rise above the path (image y points down)
        y = y - spec.hop.amplitude * np.abs(np.sin(spec.hop.phase + spec.hop.rate * s))
    if spec.zigzag.amplitude:
        triangle = (2.0 / math.pi) * np.arcsin(np.sin(spec.zigzag.phase + spec.zigzag.rate * s))
        x = x + spec.zigzag.amplitude * triangle * spec.zigzag_axis[0]
        y = y + spec.zigzag.amplitude * triangle * spec.zigzag_axis[1]
    x, y = x + shake[:, 0], y + shake[:, 1]
    angle = spec.angle + spec.spin * s
    radius = spec.radius * np.exp(spec.scale + spec.growth * s)
    visible = np.ones(len(s), bool)
    if spec.blink.amplitude:
        visible = np.cos(spec.blink.phase + spec.blink.rate * s) <= 1.0 - 2.0 * spec.blink.amplitude
    return x, y, angle, radius, visible


def _draw(img, shape: str, cx: float, cy: float, radius: float, angle: float, colour, rim,
          hand: tuple[float, float] | None = None):
    """A shape with a dark rim around it (not over it, so that small shapes keep their colour); `hand` (length,
    width in radii) adds the dark stripe from the centre that shows which way the object is turned."""
    c, s = math.cos(angle), math.sin(angle)
    unit = _SHAPES[shape]
    rotated = np.stack([unit[:, 0] * c - unit[:, 1] * s, unit[:, 0] * s + unit[:, 1] * c], axis=1)
    for r, fill in ((radius + max(1.0, 0.12 * radius), rim), (radius, colour)):
        points = rotated * r + (cx, cy)
        cv2.fillPoly(img, [np.rint(points * (1 << _SHIFT)).astype(np.int32)], fill, cv2.LINE_AA, _SHIFT)
    if hand is not None:
        length, width = hand
        tip = (cx + length * radius * c, cy + length * radius * s)
        ends = [tuple(int(round(v * (1 << _SHIFT))) for v in p) for p in ((cx, cy), tip)]
        cv2.line(img, ends[0], ends[1], _HAND, max(1, int(round(radius * width))), cv2.LINE_AA, _SHIFT)


def _draw_bar(canvas, occluder: dict, t: int, size: int, pad: int, canvas_size: int) -> None:
    lo = pad + (occluder["pos"][t] - occluder["width"] / 2) * size
    hi = lo + occluder["width"] * size
    corners = np.array([(lo, 0.0), (hi, 0.0), (hi, canvas_size), (lo, canvas_size)])
    if not occluder["vertical"]:
        corners = corners[:, ::-1]
    cv2.fillPoly(canvas, [np.rint(corners * (1 << _SHIFT)).astype(np.int32)], occluder["colour"], cv2.LINE_AA, _SHIFT)


def _distractors(rng: np.random.Generator, spec: ClipSpec, s: np.ndarray) -> list[dict]:
    """Other shapes in other colours, still or drifting and turning; some pass in front of the main object."""
    preset = PRESETS[spec.world]
    colours = [c for c in COLOURS if c != spec.colour]
    shapes = list(_SHAPES)
    out = []
    for _ in range(spec.distractors):
        colour = COLOURS[colours[rng.integers(len(colours))]]
        pos = rng.uniform(0.1, 0.9, size=2)
        heading = rng.uniform(0.0, 2.0 * math.pi)
        speed = rng.uniform(*preset.distractor_speed) if rng.random() < preset.distractor_moving else 0.0
        velocity = speed * np.array([math.cos(heading), math.sin(heading)])
        room = np.minimum(pos - 0.06, 0.94 - pos)
        velocity *= min(1.0, float(np.min(room / np.maximum(np.abs(velocity), 1e-9))))
        angle, spin = rng.uniform(0.0, 2.0 * math.pi), rng.uniform(-1.5, 1.5)
        out.append({
            "shape": shapes[rng.integers(len(shapes))], "colour": colour,
            "rim": tuple(int(0.45 * c) for c in colour), "radius": float(rng.uniform(*preset.distractor_radius)),
            "x": pos[0] + velocity[0] * s, "y": pos[1] + velocity[1] * s, "angle": angle + spin * s,
            "front": bool(rng.random() < 0.3),
        })
    return out


def _occluder(rng: np.random.Generator, s: np.ndarray) -> dict:
    """A pole sweeping across part of the frame, in front of everything."""
    base = np.array([(70, 70, 75), (95, 70, 45), (60, 80, 70)][rng.integers(3)], float)
    return {
        "vertical": bool(rng.random() < 0.6), "width": float(rng.uniform(0.08, 0.16)),
        "colour": tuple(int(c) for c in np.clip(base + rng.uniform(-15, 15, size=3), 0, 255)),
        "pos": rng.uniform(0.2, 0.8) + rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.7) * s,
    }


def _background(rng: np.random.Generator, spec: ClipSpec, size: int, pad: int) -> np.ndarray:
    """The scene texture plus the tree and house landmarks, on a canvas `pad` wider than the frame each side."""
    coords = (np.arange(size + 2 * pad, dtype=np.float32) - pad + 0.5) / size
    u, v = coords[None, :], coords[:, None]
    image = _SCENES[spec.scene](rng, u, v)
    image += rng.uniform(-10.0, 10.0, size=3).astype(np.float32)  # each clip's own white balance
    canvas = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
    for name, (lx, ly) in zip(("tree", "house"), spec.landmarks, strict=True):
        _draw_landmark(canvas, name, pad + lx * size, pad + ly * size, size)
    return canvas


def _draw_landmark(canvas, name: str, x: float, y: float, size: int) -> None:
    def poly(points, colour):
        fixed = np.rint((np.array(points) * size + [x, y]) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(canvas, [fixed], colour, cv2.LINE_AA, _SHIFT)

    if name == "tree":
        poly([(-0.016, 0.03), (0.016, 0.03), (0.016, 0.1), (-0.016, 0.1)], (100, 62, 30))
        poly([(0.0, -0.1), (-0.065, 0.04), (0.065, 0.04)], (15, 125, 70))
    else:
        poly([(-0.06, -0.02), (0.06, -0.02), (0.06, 0.08), (-0.06, 0.08)], (215, 185, 140))
        poly([(-0.078, -0.02), (0.078, -0.02), (0.0, -0.09)], (150, 45, 35))
        poly([(-0.016, 0.03), (0.016, 0.03), (0.016, 0.08), (-0.016, 0.08)], (80, 50, 30))


def _paint(mask: np.ndarray, colour, image: np.ndarray) -> np.ndarray:
    return np.where(mask[..., None], np.asarray(colour, np.float32), image)


def _fill(u: np.ndarray, v: np.ndarray, colour) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (v.shape[0], u.shape[1], 3)).copy()


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _beach(rng, u, v):
    horizon = rng.uniform(0.22, 0.32)
    shore = horizon + rng.uniform(0.18, 0.26) + 0.02 * np.sin(u * 9.0 + rng.uniform(0, 6.3))
    image = _fill(u, v, (226, 204, 150))
    image = _paint(rng.random(image.shape[:2]) < 0.05, (196, 172, 120), image)  # pebbles
    image = _paint(v < shore, (40, 110, 175), image)
    image = _paint((v < shore) & (np.sin(u * 14.0 + v * 45.0 + rng.uniform(0, 6.3)) > 0.8), (110, 165, 210), image)
    return _paint(v < horizon, (140, 195, 235), image)


def _forest(rng, u, v):
    image = _fill(u, v, (32, 66, 36)) + (v * 25.0)[..., None]
    trunks = _frac(u * rng.uniform(4.0, 6.0) + rng.uniform(0, 1)) < rng.uniform(0.14, 0.22)
    image = _paint(trunks, (88, 58, 34), image)
    canopy = v < 0.24 + 0.05 * np.sin(u * 21.0 + rng.uniform(0, 6.3))
    return _paint(canopy, (50, 96, 46), image)


def _street(rng, u, v):
    image = _fill(u, v, (92, 92, 98))
    lane = (np.abs(v - rng.uniform(0.45, 0.55)) < 0.02) & (_frac(u * 3.0 + rng.uniform(0, 1)) < 0.5)
    image = _paint(lane, (235, 228, 130), image)
    walk = (v < 0.17) | (v > 0.83)
    image = _paint(walk, (168, 162, 150), image)
    return _paint(walk & (_frac(u * 8.0 + rng.uniform(0, 1)) < 0.07), (128, 124, 118), image)


def _kitchen(rng, u, v):
    tiles = rng.uniform(5.0, 8.0)
    tu, tv = u * tiles + rng.uniform(0, 1), v * tiles + rng.uniform(0, 1)
    image = _paint((np.floor(tu) + np.floor(tv)) % 2 == 0, (226, 220, 208), _fill(u, v, (172, 160, 146)))
    image = _paint((_frac(tu) < 0.06) | (_frac(tv) < 0.06), (118, 112, 106), image)
    counter = v < rng.uniform(0.16, 0.24)
    image = _paint(counter, (140, 96, 60), image)
    return _paint(counter & (np.sin(v * 90.0 + u * 4.0) > 0.7), (118, 78, 48), image)


def _space(rng, u, v):
    image = _fill(u, v, (10, 12, 34)) + v[..., None] * np.float32([22, 12, 28])
    stars = rng.random(image.shape[:2]) < 0.03
    image = _paint(stars, (235, 235, 225), image)
    px, py, pr = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.06, 0.1)
    return _paint((u - px) ** 2 + (v - py) ** 2 < pr**2, (118, 102, 150), image)


def _snow(rng, u, v):
    hills = rng.uniform(0.22, 0.32) + 0.05 * np.sin(u * rng.uniform(4.0, 7.0) + rng.uniform(0, 6.3))
    image = _fill(u, v, (232, 236, 244)) - (v * 18.0)[..., None]
    image = _paint(rng.random(image.shape[:2]) < 0.04, (200, 212, 230), image)
    return _paint(v < hills, (188, 204, 226), image)


_SCENES = {"beach": _beach, "forest": _forest, "street": _street, "kitchen": _kitchen, "space": _space,
           "snow": _snow}
