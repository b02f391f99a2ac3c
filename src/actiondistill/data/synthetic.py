"""SynthActions: the embedded world of short rendered clips, written as a real H.264 dataset.

The vocabulary and clip specs live in `synth_world`, the drawing in `synth_render`; this module
plans a dataset (labels balanced over classes, held-out compositions in a "zeroshot" split),
renders its clips in a process pool and writes `manifest.json` last, so that a folder with a
manifest is complete and an interrupted run resumes from the clips already written.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from actiondistill.data.synth_render import frame_ground_truth, render_clip
from actiondistill.data.synth_world import (
    ATTRIBUTES,
    COLOURS,
    DEFAULT_WORLD,
    PRESETS,
    ClipSpec,
    Wave,
    action_classes,
    action_parts,
    caption,
    reverse_action,
    reversed_spec,
    sample_spec,
    world_preset,
    zeroshot_classes,
)
from actiondistill.io import atomic_write_json, read_json
from actiondistill.parallel import map_jobs

__all__ = [
    "ATTRIBUTES", "COLOURS", "DEFAULT_WORLD", "ENCODER_OPTIONS", "PRESETS", "SPLITS", "ClipSpec", "Wave",
    "action_classes", "action_parts",
    "caption", "clip_path", "clip_seed", "clip_spec", "frame_ground_truth", "generate", "load_manifest", "render_clip",
    "manifest_revision", "manifest_world", "reverse_action", "reversed_spec", "sample_spec", "world_preset",
    "zeroshot_classes",
]  # fmt: skip

SPLITS = ("train", "val", "test", "zeroshot")
MANIFEST = "manifest.json"
PARAMS = "generation.json"  # the arguments the clips in a folder were rendered with; guards resuming
#: How clips are assigned to splits (`_plan`); recorded in the manifest so a cached world planned otherwise is
#: re-planned. 2: every class is in both val and test (plan 1 alternated the two over a class order of even length,
#: which gave val one half of the classes and test the other).
SPLIT_PLAN = 2
# x264's macroblock-tree rate control gives run-to-run different bytes (and decoded pixels) on AVX-512 CPUs even
# with one thread; without it, the same frames always encode to the same file.
ENCODER_OPTIONS = {"x264-params": "mbtree=0"}


def clip_path(index: int) -> str:
    """Where clip `index` lives, relative to the dataset folder."""
    return f"videos/{index:06d}.mp4"


def clip_seed(seed: int, index: int) -> int:
    """The seed of clip `index`: independent of every other clip, so workers may render in any order."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def generate(
    out_dir: str | os.PathLike,
    videos: int,
    size: int = 64,
    frames: int = 32,
    fps: int = 25,
    seed: int = 0,
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15),
    zeroshot_fraction: float = 0.15,
    workers: int | None = None,
    progress: bool = True,
    world: str = DEFAULT_WORLD,
) -> dict:
    """Render `videos` clips of the `world` preset into `out_dir/videos/*.mp4` and write `out_dir/manifest.json`.

    Returns the manifest, which records the preset, so every cache keyed by the manifest's bytes is keyed by it.
    Clip files already present are reused (they are deterministic); `generation.json` records the arguments so that
    a folder is never resumed with different ones.
    """
    _check_arguments(videos, size, frames, fps, seed, splits, zeroshot_fraction)
    out = Path(out_dir)
    revision = world_preset(world).revision
    params = {"videos": videos, "size": size, "frames": frames, "fps": fps, "seed": seed, "world": world,
              "world_revision": revision, "splits": list(splits), "zeroshot_fraction": zeroshot_fraction,
              "generator": "synthactions", "version": 1, "split_plan": SPLIT_PLAN}
    _claim_folder(out, params)
    classes = action_classes()
    plan = _plan(videos, seed, splits, zeroshot_fraction)
    specs = [sample_spec(clip_seed(seed, i), classes[label], world) for i, (label, _) in enumerate(plan)]
    paths = [clip_path(i) for i in range(videos)]
    todo = [(spec, size, frames, fps, str(out / path)) for spec, path in zip(specs, paths, strict=True)
            if not (out / path).is_file()]
    _render_all(todo, workers or os.cpu_count() or 1, progress)
    manifest = {
        "version": 1, "generator": "synthactions", "split_plan": SPLIT_PLAN, "world": world, "world_revision": revision,
        "seed": seed,
        "size": size, "frames": frames,
        "fps": fps,
        "classes": classes, "num_seen_classes": len(classes) - len(zeroshot_classes()),
        "zeroshot_classes": zeroshot_classes(), "attributes": {key: list(values) for key, values in ATTRIBUTES.items()},
        "clips": [
            {"path": path, "label": label, "label_text": spec.label, "caption": caption(spec),
             "attributes": spec.attributes(), "split": split, "seed": spec.seed}
            for path, spec, (label, split) in zip(paths, specs, plan, strict=True)
        ],
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def manifest_world(manifest: dict) -> str:
    """The preset a manifest's clips were drawn from; manifests older than presets hold the first world, `hard`."""
    return manifest.get("world", "hard")


def manifest_revision(manifest: dict) -> int:
    """The revision of its preset that rendered a manifest's clips; manifests older than revisions hold 1."""
    return manifest.get("world_revision", 1)


def clip_spec(manifest: dict, entry: dict) -> ClipSpec:
    """The spec of a manifest entry, rebuilt from its seed, label and the manifest's preset."""
    return sample_spec(entry["seed"], entry["label_text"], manifest_world(manifest))


def load_manifest(path_or_dir: str | os.PathLike) -> dict:
    """Read and check a SynthActions manifest (a file, or the folder holding `manifest.json`)."""
    path = Path(path_or_dir)
    path = path / MANIFEST if path.is_dir() else path
    manifest = read_json(path)

    def fail(message: str):
        raise ValueError(f"{path}: {message} (expected a SynthActions manifest written by `actiondistill synth`)")

    if not isinstance(manifest, dict):
        fail(f"top level is a {type(manifest).__name__}, not an object")
    required = {"version": int, "generator": str, "seed": int, "size": int, "frames": int, "fps": int,
                "classes": list, "num_seen_classes": int, "zeroshot_classes": list, "attributes": dict, "clips": list}
    for key, kind in required.items():
        if not isinstance(manifest.get(key), kind):
            fail(f"field {key!r} is missing or not a {kind.__name__}")
    if manifest["generator"] != "synthactions" or manifest["version"] != 1:
        fail(f"generator {manifest['generator']!r} version {manifest['version']!r} is not synthactions version 1")
    world = manifest_world(manifest)
    if world not in PRESETS:
        fail(f"world {manifest['world']!r} is not one of the presets {sorted(PRESETS)}")
    revision = manifest_revision(manifest)
    if revision != PRESETS[world].revision:
        fail(f"world {world!r} revision {revision}: its clips were rendered by another version of the generator, "
             f"which now renders revision {PRESETS[world].revision}; delete {path.parent} to generate it again")
    classes, seen = manifest["classes"], manifest["num_seen_classes"]
    if not 0 < seen <= len(classes) or manifest["zeroshot_classes"] != classes[seen:]:
        fail("zeroshot_classes must be the classes after the first num_seen_classes")
    for i, clip in enumerate(manifest["clips"]):
        missing = {"path", "label", "label_text", "caption", "attributes", "split", "seed"} - set(clip)
        if missing:
            fail(f"clip {i} lacks {sorted(missing)}")
        label = clip["label"]
        if not isinstance(label, int) or not 0 <= label < len(classes) or classes[label] != clip["label_text"]:
            fail(f"clip {i} ({clip['path']}): label {label!r} / {clip['label_text']!r} does not match the classes")
        if clip["split"] not in SPLITS or (clip["split"] == "zeroshot") != (label >= seen):
            fail(f"clip {i} ({clip['path']}): split {clip['split']!r} does not fit label {clip['label_text']!r}")
        for key, value in clip["attributes"].items():
            if value not in manifest["attributes"].get(key, ()):
                fail(f"clip {i} ({clip['path']}): attribute {key}={value!r} is not in the vocabulary")
    return manifest


def _check_arguments(videos, size, frames, fps, seed, splits, zeroshot_fraction) -> None:
    checks = [
        (videos >= 1, f"videos={videos}; expected at least 1"),
        (size >= 16 and size % 2 == 0, f"size={size}; expected an even number of pixels >= 16"),
        (frames >= 2, f"frames={frames}; expected at least 2"),
        (fps >= 1, f"fps={fps}; expected a positive integer"),
        (seed >= 0, f"seed={seed}; expected a non-negative integer"),
        (len(splits) == 3 and min(splits) >= 0 and abs(sum(splits) - 1.0) < 1e-6,
         f"splits={splits}; expected three non-negative train/val/test fractions summing to 1"),
        (0.0 <= zeroshot_fraction < 1.0, f"zeroshot_fraction={zeroshot_fraction}; expected a number in [0, 1)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _claim_folder(out: Path, params: dict) -> None:
    """Record the arguments, or refuse a folder whose clips were rendered with others (reusing them would mix)."""
    stamp = out / PARAMS
    if stamp.exists():
        previous = read_json(stamp)
        if previous != params:
            changed = {k: (previous.get(k), v) for k, v in params.items() if previous.get(k) != v}
            raise ValueError(f"{stamp}: {out} holds clips generated with other arguments (was, now: {changed}); "
                             "use another output folder or delete this one")
        return
    atomic_write_json(stamp, params)


def _plan(videos: int, seed: int, splits, zeroshot_fraction: float) -> list[tuple[int, str]]:
    """(label index, split) per clip, in shuffled order.

    Seen labels go round-robin over a shuffled class order, so class counts differ by at most one.
    In that order the first round (one clip of every class) comes first and val/test are taken
    from the end: every class is trained on as soon as there are enough clips, and val/test keep at
    least one clip each. The held-out clips are walked class by class while val and test take turns
    in proportion to their sizes, so each class lands in both as evenly as its count allows.
    """
    rng = np.random.default_rng([seed, 7])
    num_classes, num_zeroshot = len(action_classes()), len(zeroshot_classes())
    num_seen = num_classes - num_zeroshot
    zeroshot_videos = int(round(videos * zeroshot_fraction)) if num_zeroshot else 0
    seen_videos = videos - zeroshot_videos
    seen_order, zeroshot_order = rng.permutation(num_seen), num_seen + rng.permutation(num_zeroshot)
    train, val, test = _allocate(seen_videos, splits)
    while splits[0] > 0 and train < min(num_seen, seen_videos) and max(val, test) > 1:  # class coverage first,
        val, test = (val - 1, test) if val >= test else (val, test - 1)  # but never empty a val or test split
        train += 1
    held = sorted([((j + 0.5) / val, "val") for j in range(val)] + [((j + 0.5) / test, "test") for j in range(test)])
    split_of = ["train"] * seen_videos
    by_class = sorted(range(train, seen_videos), key=lambda i: (seen_order[i % num_seen], i))
    for i, (_, split) in zip(by_class, held, strict=True):
        split_of[i] = split
    plan = [(int(seen_order[i % num_seen]), split_of[i]) for i in range(seen_videos)]
    plan += [(int(zeroshot_order[i % num_zeroshot]), "zeroshot") for i in range(zeroshot_videos)]
    return [plan[i] for i in rng.permutation(len(plan))]


def _allocate(count: int, fractions) -> list[int]:
    """Split `count` by `fractions`, largest remainders first (ties to the earlier split)."""
    exact = [count * f for f in fractions]
    parts = [int(np.floor(x + 1e-9)) for x in exact]
    for k in sorted(range(len(parts)), key=lambda k: -(exact[k] - parts[k]))[: count - sum(parts)]:
        parts[k] += 1
    return parts


def _render_all(todo: list, workers: int, progress: bool) -> None:
    bar = tqdm(total=len(todo), desc="synth clips", unit="clip", disable=not progress)
    map_jobs(_render_one, todo, workers, bar, max_chunk=16, initializer=_init_worker)
    bar.close()


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # parallelism is over clips; nested thread pools only contend for the cores


def _render_one(job: tuple[ClipSpec, int, int, int, str]) -> None:
    from actiondistill.data.encode import write_video

    spec, size, frames, fps, path = job
    write_video(path, render_clip(spec, size, frames), fps=fps, options=ENCODER_OPTIONS)
