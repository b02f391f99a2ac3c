"""The vocabulary and clip specifications of SynthActions, the embedded procedurally rendered world.

A clip is fully described by a `ClipSpec`. Its main-object motion is written as functions of a
centred time s in [-1, 1] (s = -1 at the first frame, +1 at the last), with every parameter
either a constant or a *rate* multiplying s. Negating all rates therefore gives, bit for bit,
the time reversal of the motion, because s at frame t is exactly -s at frame T-1-t. That is how
`reversed_spec` is constructive: "moving left" reversed is a genuine "moving right" spec, and a
model cannot tell direction-dependent pairs apart from a single frame or from reversed time.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

# Names only here; the renderer owns the geometry and RGB values of scenes and landmarks.
SHAPES = ["circle", "square", "triangle", "star", "diamond", "hexagon", "cross"]
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 200, 60),
    "blue": (40, 80, 235),
    "yellow": (250, 220, 20),
    "purple": (150, 50, 210),
    "orange": (255, 140, 0),
    "cyan": (20, 215, 225),
    "pink": (255, 110, 190),
}
SCENES: dict[str, str] = {  # scene -> how a caption places it
    "beach": "on the beach",
    "forest": "in the forest",
    "street": "on the street",
    "kitchen": "in the kitchen",
    "space": "in space",
    "snow": "in the snow",
}
LANDMARKS = ["tree", "house"]
MAX_DISTRACTORS = 3  # the most any preset draws; the manifest's vocabulary covers them all


@dataclass(frozen=True)
class WorldPreset:
    """How hard a world is: how salient its actor is and how strong the nuisances around it are.

    Lengths are in frame units. `scene_prior` is the probability that a clip is set in its action's preferred scene
    (`preferred_scene`), so that a single frame carries partial evidence of the action, as scenes do in real
    datasets; a reversal pair shares its preferred scene, so no frame tells the two directions apart.
    """

    radius: dict[str, float]  # main-object radius per size name
    max_distractors: int
    distractor_radius: tuple[float, float]
    distractor_moving: float  # probability that a distractor drifts rather than stays still
    distractor_speed: tuple[float, float]  # half the distance a moving distractor travels over the clip
    occlusion: float  # probability of an occluding pole
    noise: tuple[float, float]  # range of the pixel noise's std, in 0..255 levels
    max_jitter: int  # largest camera translation, in 1/100 of the frame
    lighting: float  # largest strength of brightness and tint changes
    scene_prior: float
    hops: tuple[int, int]  # bounces per clip, drawn from range(*hops)
    swings: tuple[int, int]  # zigzag periods per clip, drawn from range(*swings)
    zigzag_amplitude: tuple[float, float]
    hand: tuple[float, float]  # length and width of the main object's dark stripe, in object radii
    spin: tuple[float, float]  # half-turns a spinning object makes over the clip
    revision: int  # bumped whenever the preset's clips change for the same seeds; recorded in every manifest


#: `standard`, the embedded profile's world, calibrated so that the book's models learn it on a 2-core CPU: the actor
#: is by far the largest thing in the frame (radius 0.12-0.18 against 0.03-0.045), with at most one small, mostly
#: still distractor and mild nuisances; bounces and zigzags are slow enough (two hops, one zigzag period) that the
#: book's 8 sampled frames resolve them instead of aliasing one into the other. A spinning object turns 50-75 degrees
#: between two sampled frames: large against what a frozen frame embedding knows of its stripe's angle, and below half
#: a turn, so the direction never aliases (revision 3; revision 2 turned half as fast). `hard` is the first world
#: (2026-11), where every action model stayed at chance: a 4-8 px actor among up to three moving distractors of
#: nearly its size.
PRESETS: dict[str, WorldPreset] = {
    "standard": WorldPreset(
        radius={"small": 0.12, "medium": 0.15, "large": 0.18}, max_distractors=1,
        distractor_radius=(0.03, 0.045), distractor_moving=0.3, distractor_speed=(0.02, 0.06), occlusion=0.1,
        noise=(0.5, 2.0), max_jitter=1, lighting=0.4, scene_prior=0.5, hops=(2, 3), swings=(1, 2),
        zigzag_amplitude=(0.08, 0.12), hand=(0.9, 0.5), spin=(2.0, 3.0), revision=3),
    "hard": WorldPreset(
        radius={"small": 0.07, "medium": 0.095, "large": 0.125}, max_distractors=3,
        distractor_radius=(0.04, 0.065), distractor_moving=0.6, distractor_speed=(0.05, 0.2), occlusion=0.25,
        noise=(1.0, 6.0), max_jitter=3, lighting=1.0, scene_prior=0.0, hops=(2, 4), swings=(2, 4),
        zigzag_amplitude=(0.05, 0.08), hand=(0.8, 0.25), spin=(1.0, 2.0), revision=2),
}
DEFAULT_WORLD = "standard"


def world_preset(name: str) -> WorldPreset:
    """The preset called `name`, or an error naming the presets there are."""
    if name not in PRESETS:
        raise ValueError(f"world {name!r}: expected one of {sorted(PRESETS)}")
    return PRESETS[name]

ATTRIBUTES: dict[str, list[str]] = {
    "shape": SHAPES,
    "colour": list(COLOURS),
    "scene": list(SCENES),
    "size": ["small", "medium", "large"],
    "distractors": [str(k) for k in range(MAX_DISTRACTORS + 1)],
    "occluded": ["no", "yes"],
}

# Actions are (verb, direction-or-manner) compositions. The held-out ones reuse a seen verb and a
# seen direction, so their label text is new while its words are not.
_OPPOSITE = {"left": "right", "up": "down", "clockwise": "counterclockwise", "growing": "shrinking"}
_OPPOSITE |= {f"towards the {lm}": f"away from the {lm}" for lm in LANDMARKS}
_OPPOSITE |= {b: a for a, b in _OPPOSITE.items()}
_SEEN: list[tuple[str, str | None]] = [
    ("moving", "left"), ("moving", "right"), ("moving", "up"), ("moving", "down"),
    ("bouncing", "left"), ("bouncing", "right"),
    ("zigzagging", "left"), ("zigzagging", "right"),
    ("rolling", "left"), ("rolling", "right"),
    ("moving", "towards the tree"), ("moving", "away from the tree"),
    ("moving", "towards the house"), ("moving", "away from the house"),
    ("spinning", "clockwise"), ("spinning", "counterclockwise"),
    ("circling", "clockwise"), ("circling", "counterclockwise"),
    ("growing", None), ("shrinking", None),
    ("blinking", None), ("shaking", None),
]  # fmt: skip
_HELD_OUT: list[tuple[str, str | None]] = [
    ("zigzagging", "up"), ("zigzagging", "down"),
    ("bouncing", "towards the house"), ("bouncing", "away from the house"),
    ("zigzagging", "towards the tree"), ("zigzagging", "away from the tree"),
]  # fmt: skip
_PARTS = {(f"{verb} {direction}" if direction else verb): (verb, direction) for verb, direction in _SEEN + _HELD_OUT}
_AXES = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
_MARGIN = 0.03  # keeps the whole object this far (in frame units) inside the frame


def action_classes() -> list[str]:
    """All label texts: the seen classes first, then the held-out (zero-shot) ones."""
    return list(_PARTS)


def zeroshot_classes() -> list[str]:
    """The held-out label texts, a suffix of `action_classes()`."""
    return action_classes()[len(_SEEN):]


def action_parts(label: str) -> tuple[str, str | None]:
    """(verb, direction or None) of a label: the composition zero-shot evaluation relies on."""
    return _PARTS[_check_label(label)]


def reverse_action(label: str) -> str | None:
    """The label of this action played backwards; None when the action is its own reversal."""
    verb, direction = action_parts(label)
    if direction is None:
        return _OPPOSITE.get(verb)
    return f"{verb} {_OPPOSITE[direction]}"


def preferred_scene(label: str) -> str:
    """The scene an action favours under a preset's `scene_prior`: one per reversal pair, round-robin over scenes."""
    return _preferred_scenes()[_check_label(label)]


@functools.cache
def _preferred_scenes() -> dict[str, str]:
    pairs = list(dict.fromkeys(min(name, reverse_action(name) or name) for name in action_classes()))
    scenes = list(SCENES)
    return {name: scenes[pairs.index(min(name, reverse_action(name) or name)) % len(scenes)]
            for name in action_classes()}


@dataclass(frozen=True)
class Wave:
    """A periodic term with phase `phase + rate * s`; amplitude 0 switches it off."""

    amplitude: float = 0.0
    phase: float = 0.0
    rate: float = 0.0

    def reversed(self) -> Wave:
        return dataclasses.replace(self, rate=-self.rate)


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip; positions and lengths are in frame units (0..1).

    Main-object centre at time s: `centre + velocity*s + orbit + hop + zigzag*axis + shake`,
    orientation `angle + spin*s`, radius `RADIUS[size] * exp(scale + growth*s)`, hidden while
    `cos(blink phase) > 1 - 2*blink.amplitude`. Distractors, occluder, lighting, camera jitter,
    shake offsets and pixel noise are drawn by the renderer from `seed`; `time_reversed` plays
    those per-frame sequences backwards.
    """

    seed: int
    label: str
    shape: str
    colour: str
    scene: str
    size: str
    distractors: int
    occluded: bool
    noise: float  # std of gaussian pixel noise, in 0..255 levels
    jitter: float  # largest camera translation, in frame units
    lighting: float  # strength (0..1) of brightness/tint changes
    landmarks: tuple[tuple[float, float], tuple[float, float]]  # centres of the tree and the house
    centre: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    spin: float = 0.0
    scale: float = 0.0
    growth: float = 0.0
    orbit: Wave = Wave()
    hop: Wave = Wave()
    zigzag: Wave = Wave()
    zigzag_axis: tuple[float, float] = (0.0, 0.0)
    blink: Wave = Wave()
    shake: float = 0.0
    time_reversed: bool = False
    world: str = DEFAULT_WORLD  # the `PRESETS` entry whose radii and nuisances the renderer uses

    @property
    def radius(self) -> float:
        """The main object's radius at scale 0, in frame units."""
        return PRESETS[self.world].radius[self.size]

    def attributes(self) -> dict[str, str]:
        """The spatial ground truth, one value of `ATTRIBUTES[key]` per key."""
        return {
            "shape": self.shape,
            "colour": self.colour,
            "scene": self.scene,
            "size": self.size,
            "distractors": str(self.distractors),
            "occluded": "yes" if self.occluded else "no",
        }


_ATTRIBUTE_FIELDS = ("shape", "colour", "scene", "size", "distractors", "occluded", "noise", "jitter", "lighting")


def sample_spec(seed: int, label: str | None = None, world: str = DEFAULT_WORLD, **overrides) -> ClipSpec:
    """Draw a clip spec of the `world` preset from `seed` (label drawn too unless given); `overrides` replace any field.

    The `hard` preset draws exactly the first world's clips, seed for seed. Attribute overrides (shape, size,
    noise, ...) are applied before the motion is drawn, so that the motion fits the overridden size, and leave the
    other attributes as drawn; motion fields (centre, velocity, landmarks, ...) replace the drawn ones at the end.
    """
    preset = world_preset(world)
    allowed = {f.name for f in dataclasses.fields(ClipSpec)} - {"seed", "label", "world"}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(f"sample_spec: unknown fields {sorted(unknown)}; expected some of {sorted(allowed)}")
    rng = np.random.default_rng([int(seed), 0])
    classes = action_classes()
    drawn_label = classes[rng.integers(len(classes))]
    label = _check_label(drawn_label if label is None else label)
    attrs = {
        "shape": SHAPES[rng.integers(len(SHAPES))],
        "colour": ATTRIBUTES["colour"][rng.integers(len(COLOURS))],
        "scene": ATTRIBUTES["scene"][rng.integers(len(SCENES))],
        "size": ATTRIBUTES["size"][rng.integers(len(ATTRIBUTES["size"]))],
        "distractors": int(rng.integers(preset.max_distractors + 1)),
        "occluded": bool(rng.random() < preset.occlusion),
        "noise": float(rng.uniform(*preset.noise)),
        "jitter": float(rng.integers(0, preset.max_jitter + 1)) / 100.0,
        "lighting": float(rng.uniform(0.0, preset.lighting)),
    }
    attrs.update({k: v for k, v in overrides.items() if k in _ATTRIBUTE_FIELDS})
    _check_attributes(attrs)
    landmarks = _sample_landmarks(rng)
    fixed = "landmarks" in overrides
    motion = _sample_motion(rng, label, preset, attrs["size"], overrides["landmarks"] if fixed else landmarks, fixed)
    if preset.scene_prior and "scene" not in overrides and rng.random() < preset.scene_prior:
        attrs["scene"] = preferred_scene(label)  # drawn last, so the motion is the same either way
    spec = ClipSpec(seed=int(seed), label=label, world=world, **attrs, **{"landmarks": landmarks} | motion)
    return dataclasses.replace(spec, **{k: v for k, v in overrides.items() if k not in _ATTRIBUTE_FIELDS})


def reversed_spec(spec: ClipSpec) -> ClipSpec:
    """The spec whose rendering is exactly `render_clip(spec)[::-1]` (rates negated, sequences reversed)."""
    return dataclasses.replace(
        spec,
        label=reverse_action(spec.label) or spec.label,
        velocity=(-spec.velocity[0], -spec.velocity[1]),
        spin=-spec.spin,
        growth=-spec.growth,
        orbit=spec.orbit.reversed(),
        hop=spec.hop.reversed(),
        zigzag=spec.zigzag.reversed(),
        blink=spec.blink.reversed(),
        time_reversed=not spec.time_reversed,
    )


def caption(spec: ClipSpec) -> str:
    """A natural sentence naming every visible attribute of the main object and the action."""
    return f"a {spec.size} {spec.colour} {spec.shape} {spec.label} {SCENES[spec.scene]}"


def _check_label(label: str) -> str:
    if label not in _PARTS:
        raise ValueError(f"unknown action label {label!r}; expected one of {list(_PARTS)}")
    return label


def _check_attributes(attrs: dict) -> None:
    for key in ("shape", "colour", "scene", "size"):
        if attrs[key] not in ATTRIBUTES[key]:
            raise ValueError(f"unknown {key} {attrs[key]!r}; expected one of {ATTRIBUTES[key]}")
    if not 0 <= attrs["distractors"] <= MAX_DISTRACTORS:
        raise ValueError(f"distractors={attrs['distractors']!r}; expected 0..{MAX_DISTRACTORS}")
    for key, hi in (("noise", 64.0), ("jitter", 0.1), ("lighting", 1.0)):
        if not 0.0 <= attrs[key] <= hi:
            raise ValueError(f"{key}={attrs[key]!r}; expected a number in [0, {hi}]")


def _sample_landmarks(rng: np.random.Generator) -> tuple[tuple[float, float], tuple[float, float]]:
    """Tree and house far enough apart that "towards the tree" and "towards the house" differ."""
    while True:
        points = rng.uniform(0.14, 0.86, size=(2, 2))
        if np.hypot(*(points[0] - points[1])) >= 0.45:
            return (tuple(map(float, points[0])), tuple(map(float, points[1])))


def _uniform_centre(rng: np.random.Generator, extent_x: float, extent_y: float) -> tuple[float, float]:
    """A centre whose motion, extending `extent` either side, stays inside the frame."""
    def axis(extent: float) -> float:
        lo = min(extent + _MARGIN, 0.5)
        return float(rng.uniform(lo, 1.0 - lo))
    return (axis(extent_x), axis(extent_y))


def _sample_motion(rng: np.random.Generator, label: str, preset: WorldPreset, size: str, landmarks,
                   fixed: bool) -> dict:
    """Motion parameters of one label: the direction sets the sign of a rate, the rest is random.

    Paths to a landmark may need other landmark positions (one hugging the frame's edge leaves no
    room to bounce there); those are redrawn unless `fixed`, and returned with the motion.
    """
    verb, direction = _PARTS[label]
    radius = preset.radius[size]
    sign = 1.0 if direction in ("right", "down", "clockwise") or (direction or "").startswith("towards") else -1.0
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    drift = rng.uniform(-0.04, 0.04, size=2)  # slow wander of in-place actions, symmetric in time
    if verb in ("moving", "bouncing", "zigzagging", "rolling"):
        return _sample_travel(rng, verb, direction, preset, radius, landmarks, fixed, angle)
    if verb == "spinning":
        return {"centre": _uniform_centre(rng, radius + 0.04, radius + 0.04), "velocity": tuple(map(float, drift)),
                "angle": angle, "spin": sign * float(rng.uniform(*preset.spin)) * math.pi}
    if verb == "circling":
        r_orbit = float(rng.uniform(0.14, 0.22))
        return {"centre": _uniform_centre(rng, r_orbit + radius, r_orbit + radius), "angle": angle,
                "orbit": Wave(r_orbit, float(rng.uniform(0.0, 2.0 * math.pi)), sign * float(rng.uniform(0.75, 1.25)) *
                              math.pi)}
    if verb in ("growing", "shrinking"):
        # from 0.8x (smaller and the object is all outline) to 1.8x..2.4x its size, or back
        growth = math.log(float(rng.uniform(1.8, 2.4))) / 2.0
        scale = math.log(0.8) + growth
        extent = radius * math.exp(scale + growth) + 0.04
        return {"centre": _uniform_centre(rng, extent, extent), "velocity": tuple(map(float, drift)),
                "angle": angle, "scale": scale, "growth": growth if verb == "growing" else -growth}
    if verb == "blinking":
        blink = Wave(float(rng.uniform(0.3, 0.5)), float(rng.uniform(0.0, 2.0 * math.pi)),
                     float(rng.integers(3, 6)) * math.pi)
        return {"centre": _uniform_centre(rng, radius + 0.04, radius + 0.04), "velocity": tuple(map(float, drift)),
                "angle": angle, "blink": blink}
    shake = float(rng.uniform(0.02, 0.035))  # shaking
    return {"centre": _uniform_centre(rng, radius + shake, radius + shake), "angle": angle, "shake": shake}


def _sample_travel(rng, verb: str, direction: str, preset: WorldPreset, radius: float, landmarks, fixed: bool,
                   angle: float) -> dict:
    """Translation verbs: a straight path (to a landmark or along an axis) with the verb's manner on top."""
    hops, swings = float(rng.integers(*preset.hops)), float(rng.integers(*preset.swings))  # per clip
    hop = Wave(float(rng.uniform(0.1, 0.17)), float(rng.uniform(0.0, math.pi)), hops * math.pi / 2)
    zig = Wave(float(rng.uniform(*preset.zigzag_amplitude)), float(rng.uniform(0.0, 2.0 * math.pi)), swings * math.pi)
    hop = hop if verb == "bouncing" else Wave()
    zig = zig if verb == "zigzagging" else Wave()
    if direction in _AXES:
        unit = np.array(_AXES[direction])
        half = float(rng.uniform(0.35, 0.55)) / 2.0
        axis = np.abs(unit[::-1])  # the zigzag swings across the path
        extent = np.abs(unit) * half + radius + zig.amplitude * axis + np.array([0.0, hop.amplitude])
        centre = _uniform_centre(rng, *extent)
        velocity = unit * half
    else:
        path = None
        while path is None:
            path = _landmark_path(rng, direction, radius, landmarks, hop.amplitude, zig.amplitude, verb)
            if path is None and fixed:
                raise ValueError(f"landmarks {landmarks} leave no room for {verb} {direction!r}; move them apart or "
                                 "away from the frame's edges")
            landmarks = landmarks if path is not None else _sample_landmarks(rng)
        centre, half = path
        velocity = half if direction.startswith("towards") else -half
        axis = np.array([-half[1], half[0]]) / np.hypot(*half)
    motion = {"centre": tuple(map(float, centre)), "velocity": tuple(map(float, velocity)), "angle": angle,
              "hop": hop, "zigzag": zig, "landmarks": landmarks}
    if verb == "zigzagging":
        motion["zigzag_axis"] = tuple(map(float, axis))
    if verb == "rolling":  # rolling without slipping: turned angle = travelled distance / radius
        motion["spin"] = float(velocity[0]) / radius
    return motion


def _landmark_path(rng, direction: str, radius: float, landmarks, hop: float, zig: float, verb: str):
    """Centre and half-length vector of a path ending near the named landmark ("towards" orientation), or None.

    The distance to the other landmark may change by at most half as much, either way: otherwise "towards the tree"
    could equally be "away from the house", an ambiguity that capped even the oracle state at 56-83% on these four
    classes (world revision 2). Bouncing keeps a mostly horizontal path so its hops read as bouncing.
    """
    target_index = LANDMARKS.index(direction.split()[-1])
    target, other = np.array(landmarks[target_index]), np.array(landmarks[1 - target_index])
    reach = radius + zig + _MARGIN
    lo, hi = np.array([reach, reach + hop]), np.array([1.0 - reach, 1.0 - reach])  # hops rise above the path
    for _ in range(200):
        start = rng.uniform(lo, hi)
        end = target + (start - target) * rng.uniform(0.25, 0.4)
        gain_target = np.hypot(*(start - target)) - np.hypot(*(end - target))
        gain_other = np.hypot(*(start - other)) - np.hypot(*(end - other))
        path = end - start
        if (gain_target >= 0.25 and abs(gain_other) <= 0.5 * gain_target
                and np.hypot(*(end - other)) >= np.hypot(*(end - target)) + 0.15
                and (verb != "bouncing" or abs(path[0]) >= 0.7 * np.hypot(*path))
                and np.all(end >= lo) and np.all(end <= hi)):
            return (start + end) / 2.0, path / 2.0
    return None
