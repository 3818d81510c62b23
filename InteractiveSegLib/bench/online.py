"""The stream experiment of the dynamic-learning paper on the shipped data
(``interactiveseg bench --engines online --stream``).

Data, as the paper prepares its volumes (3.1: crop to the target with a random margin of
0-10 voxels, resize to a fixed small grid): each sample is one Colin27/AAL structure,
cropped and resized to 32 x 48 x 48 (KJI). The stream (T_train) is the training split's
structures (odd AAL ids: the left hemisphere) in a seeded random order; the evaluation set
(D_eval) is held-out structures (even ids: the right hemisphere). The task the segmenter
learns is "the structure this crop is centred on".

Parts, each its own ``engine`` name in the results:

- Table 1 (dynamic learning with the reference labels): ``online-offline`` (shuffled
  batches over the whole stream, the same number of steps), ``online-dynamic``,
  ``online-dynamic-rp`` (replay), ``online-dynamic-ls`` (label smoothing),
  ``online-dynamic-rp-ls``; F's Dice on D_eval with no interaction (``dice_at["0"]``) and
  along the stream (``dice_vs_samples``).
- Algorithm 5 on the stream (``online-stream``: replay, label smoothing, weighted loss,
  model guidance): the robot draws the reference on the proposed slices; proxy Dice per
  step over the stream, F on D_eval after it. Its F is the warm start below.
- Tables 3/4 (each D_eval volume on its own, Algorithm 3): ``online-cold`` (random
  slices), ``online-cold-mg``, ``online-cold-mg-wl``, ``online-warm`` and
  ``online-warm-mg``. ``dice_at`` is the proxy mask's Dice keyed by step, ``model_dice_at``
  F's; ``slices_at`` the slices drawn (coronal + sagittal). Random slices (the baseline,
  and step 1 until F has learnt) are drawn among the slices that hold the structure (a
  user picking at random still picks where it is); guided ones come from Algorithm 4
  alone, which may propose a slice without it (the robot then draws it empty).
- Speed: a proxy update after one new slice and one training round on a 128 x 128 x 100
  volume (``speed`` keys of the first result).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import torch

from InteractiveSegLib.bench.harness import log, peak_rss_mb
from InteractiveSegLib.bench.options import BenchOptions
from InteractiveSegLib.bench.result import BenchResult
from InteractiveSegLib.errors import InteractiveSegError
from InteractiveSegLib.methods.online.learner import DynamicLearner, OnlineSettings, TrainSample, normalize
from InteractiveSegLib.metrics import dice
from InteractiveSegLib.preprocessing import resample

SHAPE = (32, 48, 48)  # KJI; the paper's 55 x 55 x 30
STEPS = 6  # interactive steps per volume (Tables 3/4: 1+1 ... 6+6 slices)

# Tables 3/4: settings of each stand-alone variant (replay needs a stream: off)
INTERACTIVE: dict[str, dict[str, Any]] = {
    "online-cold": dict(guidance=False, weights="none"),
    "online-cold-mg": dict(guidance=True, weights="none"),
    "online-cold-mg-wl": dict(guidance=True, weights="indicator"),
    "online-warm": dict(guidance=False, weights="none"),
    "online-warm-mg": dict(guidance=True, weights="none"),
}
# Table 1: dynamic learning with reference labels
DYNAMIC: dict[str, dict[str, Any]] = {
    "online-dynamic": dict(replay=False, label_smoothing=False),
    "online-dynamic-rp": dict(replay=True, label_smoothing=False),
    "online-dynamic-ls": dict(replay=False, label_smoothing=True),
    "online-dynamic-rp-ls": dict(replay=True, label_smoothing=True),
}
ENGINES = ("online", "online-offline", "online-stream", *INTERACTIVE, *DYNAMIC)
BASELINES: tuple[str, ...] = ()  # every system of this suite is one it owns


def owns(name: str) -> bool:
    """The suite's systems: ``online`` (all of them) or one experiment of the stream."""
    return name in ENGINES


@dataclass
class Sample:
    name: str
    image: np.ndarray  # raw intensities, SHAPE
    mask: np.ndarray  # bool, SHAPE


def crop_sample(
    image: np.ndarray, mask: np.ndarray, name: str, rng: np.random.Generator, shape: tuple[int, ...] = SHAPE
) -> Sample:
    """The structure's bounding box plus a random 0-10 voxel margin per side, resized."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    m_lo, m_hi = rng.integers(0, 11, 3), rng.integers(0, 11, 3)
    lo = np.maximum(lo - m_lo, 0)
    hi = np.minimum(hi + m_hi, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=False))
    img = resample(image[box], shape, "trilinear")
    ref = resample(mask[box].astype(np.float32), shape, "trilinear") > 0.5
    return Sample(name, img, ref)


def stream_samples(split: str, count: int, seed: int, min_voxels: int = 1000) -> list[Sample]:
    """``count`` structures of a split of Colin27/AAL (0: all), in a seeded random order."""
    from InteractiveSegLib.data import datasets

    vol = datasets.load("colin27")
    ids = [v for v in vol.structures(split) if int(vol.mask(v).sum()) >= min_voxels]
    rng = np.random.default_rng(seed)
    ids = [ids[i] for i in rng.permutation(len(ids))]
    if count:
        ids = ids[:count]
    image = vol.image.array.astype(np.float32)
    return [crop_sample(image, vol.mask(v), vol.labels.labels[v].name, rng) for v in ids]


def draw(learner: DynamicLearner, sample: Sample, slices: dict[int, list[int]]) -> tuple[int, float]:
    """The robot draws the reference on each proposed slice; returns (slices, seconds of
    proxy update)."""
    n, t0 = 0, time.perf_counter()
    for axis, idx in slices.items():
        for i in idx:
            learner.add_slice(axis, i, np.take(sample.mask, i, axis=axis))
            n += 1
    return n, time.perf_counter() - t0


def interactive_volume(learner: DynamicLearner, sample: Sample, steps: int, key: str) -> dict[str, list[float]]:
    """Algorithm 3 on one volume: per step the proposed slices (τ per plane) are drawn, the
    proxy updated, F trained one round. Dice of Υ and of F after each step."""
    learner.start_volume(sample.image, key)
    out: dict[str, list[float]] = {"proxy": [], "model": [], "slices": [], "proxy_s": [], "train_s": []}
    total = 0
    # random slices (the baseline, and step 1 before F has learnt) are slices of the
    # structure: a user picking at random still picks where the structure is
    present = {
        a: cast(np.ndarray, sample.mask.any(axis=tuple(b for b in range(3) if b != a))) for a in learner.settings.planes
    }
    for _ in range(steps):
        n, sec = draw(learner, sample, learner.propose(within=present))
        total += n
        report = learner.train_round()
        out["proxy"].append(dice(sample.mask, learner.proxy()))
        out["model"].append(dice(sample.mask, learner.prediction() > 0.5))
        out["slices"].append(sum(len(v) for v in learner.drawn().values()))
        out["proxy_s"].append(sec)
        out["train_s"].append(report.train_seconds)
    learner.finish_volume()
    return out


def model_dice(learner: DynamicLearner, samples: list[Sample]) -> list[float]:
    return [dice(s.mask, learner.segmenter.predict(normalize(s.image)) > 0.5) for s in samples]


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max())}


def _result(
    engine: str,
    per_structure: dict[str, dict[str, Any]],
    dice_at: dict[str, Any],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """One report row; ``per_structure`` holds each volume's own figures, keyed by its structure."""
    return {
        "engine": engine,
        "mode": "3d",
        "hint": "slice",
        "data": "colin27-aal-stream",
        "structures": list(per_structure),
        "dice_at": {k: float(v) for k, v in dice_at.items()},
        "noc85": None,
        "noc90": None,
        "ms_per_interaction": {"median": None, "p95": None},
        "s_per_propagation": extra.pop("s_per_propagation", None),
        "peak_rss_mb": peak_rss_mb(),
        "per_structure": per_structure,
        **extra,
    }


def _model_rows(names: list[str], dice_per_volume: list[float]) -> dict[str, dict[str, Any]]:
    """Per volume: the model's Dice with no interaction (step "0")."""
    return {n: {"dice_at": {"0": float(d)}} for n, d in zip(names, dice_per_volume, strict=True)}


def offline(settings: OnlineSettings, stream: list[Sample], evaluation: list[Sample], steps: int) -> list[float]:
    """The offline benchmark: batches drawn at random from the whole labelled stream, as
    many steps as the dynamic runs take."""
    batch_size = 1 + settings.replay_m  # one batch: a sample and m replayed, drawn without replacement
    if len(stream) < batch_size:
        raise InteractiveSegError(
            f"the offline baseline draws batches of {batch_size} volumes: give --stream-length "
            f"{batch_size} or more (this stream has {len(stream)})"
        )
    learner = DynamicLearner(replace(settings, replay=False, label_smoothing=False))
    rng = np.random.default_rng(settings.seed)
    items = [TrainSample(normalize(s.image), s.mask.astype(np.float32), np.ones(SHAPE, np.float32)) for s in stream]
    for _ in range(steps):
        batch = [items[i] for i in rng.choice(len(items), size=batch_size, replace=False)]
        learner.segmenter.train_steps(batch[0], batch[1:], 1, None)
    return model_dice(learner, evaluation)


def dynamic(
    settings: OnlineSettings, stream: list[Sample], evaluation: list[Sample], checkpoints: set[int]
) -> tuple[list[float], dict[str, float]]:
    """Dynamic learning with the reference labels: each volume once, in order."""
    learner = DynamicLearner(settings)
    along: dict[str, float] = {}
    for t, s in enumerate(stream, 1):
        learner.learn_volume(s.image, s.mask, key=f"t{t:04d}")
        if t in checkpoints:
            along[str(t)] = float(np.mean(model_dice(learner, evaluation)))
    return model_dice(learner, evaluation), along


def stream_run(
    settings: OnlineSettings, stream: list[Sample], steps: int
) -> tuple[DynamicLearner, list[dict[str, list[float]]]]:
    """Algorithm 5: the stream of volumes, each annotated interactively, F learning throughout."""
    learner = DynamicLearner(settings)
    runs: list[dict[str, list[float]]] = []
    for t, s in enumerate(stream, 1):
        runs.append(interactive_volume(learner, s, steps, f"t{t:04d}"))
        if t % 10 == 0:
            log(
                f"online-stream: {t}/{len(stream)} volumes, "
                f"proxy Dice@{steps} so far {np.mean([r['proxy'][-1] for r in runs]):.3f}"
            )
    return learner, runs


def _per_step(runs: list[dict[str, list[float]]], key: str) -> dict[str, float]:
    return {str(i + 1): float(np.mean([r[key][i] for r in runs])) for i in range(len(runs[0][key]))}


def _per_step_range(runs: list[dict[str, list[float]]], key: str) -> dict[str, list[float]]:
    return {
        str(i + 1): [float(np.min([r[key][i] for r in runs])), float(np.max([r[key][i] for r in runs]))]
        for i in range(len(runs[0][key]))
    }


def _interactive_result(
    engine: str, runs: list[dict[str, list[float]]], names: list[str], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    rows = {
        n: {
            "dice_at": {str(i + 1): float(v) for i, v in enumerate(r["proxy"])},
            "model_dice_at": {str(i + 1): float(v) for i, v in enumerate(r["model"])},
        }
        for n, r in zip(names, runs, strict=True)
    }
    return _result(
        engine,
        rows,
        _per_step(runs, "proxy"),
        {
            "model_dice_at": _per_step(runs, "model"),
            "proxy_dice_range": _per_step_range(runs, "proxy"),
            "model_dice_range": _per_step_range(runs, "model"),
            "slices_at": {
                str(i + 1): f"{i + 1}+{i + 1}" for i in range(len(runs[0]["proxy"]))
            },  # coronal + sagittal, τ = 1
            "s_per_propagation": float(np.median([x for r in runs for x in r["proxy_s"]])),
            "s_per_training_round": float(np.median([x for r in runs for x in r["train_s"]])),
            **(extra or {}),
        },
    )


def speed(settings: OnlineSettings, seed: int) -> dict[str, Any]:
    """The issue's speed figures on a 128 x 128 x 100 volume (Colin27 resampled, a real
    structure): proxy update after each of 12 drawn slices (6 coronal, 6 sagittal; the
    first of a plane re-registers every slice of it), and one training round."""
    from InteractiveSegLib.data import datasets

    vol = datasets.load("colin27")
    ids = [v for v in vol.structures("train") if int(vol.mask(v).sum()) >= 20000]
    v = ids[0]
    shape = (100, 128, 128)
    image = resample(vol.image.array.astype(np.float32), shape, "trilinear")
    mask = resample(vol.mask(v).astype(np.float32), shape, "trilinear") > 0.5
    learner = DynamicLearner(settings)
    learner.start_volume(image, "speed")
    rng = np.random.default_rng(seed)
    updates: list[dict[str, Any]] = []
    for axis in (1, 2):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        for i in sorted(rng.choice(present, size=6, replace=False)):
            t0 = time.perf_counter()
            changed = learner.add_slice(axis, int(i), np.take(mask, int(i), axis=axis))
            updates.append(
                {"axis": axis, "slice": int(i), "seconds": time.perf_counter() - t0, "slices_registered": len(changed)}
            )
    rounds = [learner.train_round().train_seconds for _ in range(3)]
    later = [u["seconds"] for u in updates if u["slices_registered"] < shape[u["axis"]] - 1]
    return {
        "shape_kji": list(shape),
        "structure": vol.labels.labels[v].name,
        "proxy_update_s": {
            "median_after_first": float(np.median(later)) if later else None,
            "max_after_first": float(max(later)) if later else None,
            "first_slice_of_plane": [u["seconds"] for u in updates if u["slices_registered"] >= shape[u["axis"]] - 1],
        },
        "proxy_updates": updates,
        "training_round_s": {
            "median": float(np.median(rounds)),
            "max": float(max(rounds)),
            "n_f": settings.n_f,
            "patch": list(settings.patch),
        },
        "task_shape_kji": list(SHAPE),
    }


def run(args: BenchOptions) -> list[BenchResult]:
    torch.manual_seed(args.seed)
    names = args.engines.split(",")
    want = set(ENGINES[1:]) if "online" in names else set(names)
    unknown = want - set(ENGINES)
    if unknown:
        raise InteractiveSegError(f"unknown online engines {sorted(unknown)}; known: {list(ENGINES)}")
    base = OnlineSettings(seed=args.seed)
    steps = args.rounds or STEPS
    stream = stream_samples("train", args.stream_length, args.seed)
    evaluation = stream_samples("test", args.eval_volumes, args.seed + 1)
    log(f"stream: {len(stream)} training-split volumes, {len(evaluation)} held-out volumes, {SHAPE} each")
    eval_names = [s.name for s in evaluation]
    stream_names = [s.name for s in stream]
    checkpoints = {max(1, round(len(stream) * f)) for f in (0.25, 0.5, 0.75, 1.0)}
    results: list[dict[str, Any]] = []
    if not args.no_speed:
        t0 = time.time()
        sp = speed(base, args.seed)
        log(
            f"speed: proxy update {sp['proxy_update_s']['median_after_first']:.2f} s, "
            f"training round {sp['training_round_s']['median']:.2f} s ({time.time() - t0:.0f} s)"
        )
    else:
        sp = None
    if "online-offline" in want:
        t0 = time.time()
        d = offline(base, stream, evaluation, len(stream) * base.n_f)
        results.append(
            _result(
                "online-offline",
                _model_rows(eval_names, d),
                {"0": np.mean(d)},
                {"model_dice": _stats(d), "training_steps": len(stream) * base.n_f, "stream": stream_names},
            )
        )
        log(f"online-offline: F Dice {np.mean(d):.3f} ({time.time() - t0:.0f} s)")
    for engine, change in DYNAMIC.items():
        if engine in want:
            t0 = time.time()
            d, along = dynamic(replace(base, **change), stream, evaluation, checkpoints)
            results.append(
                _result(
                    engine,
                    _model_rows(eval_names, d),
                    {"0": np.mean(d)},
                    {"model_dice": _stats(d), "dice_vs_samples": along, "training_steps": len(stream) * base.n_f},
                )
            )
            log(f"{engine}: F Dice {np.mean(d):.3f} ({time.time() - t0:.0f} s)")
    warm = None
    if want & {"online-stream", "online-warm", "online-warm-mg"}:
        t0 = time.time()
        warm, runs = stream_run(replace(base, weights="indicator", guidance=True), stream, steps)
        d = model_dice(warm, evaluation)
        results.append(
            _interactive_result(
                "online-stream", runs, stream_names, {"model_dice": _stats(d), "model_dice_on_eval": float(np.mean(d))}
            )
        )
        log(
            f"online-stream: proxy Dice@{steps} {np.mean([r['proxy'][-1] for r in runs]):.3f} over the stream, "
            f"F on held-out {np.mean(d):.3f} ({time.time() - t0:.0f} s)"
        )
    for engine, change in INTERACTIVE.items():
        if engine not in want:
            continue
        t0 = time.time()
        runs = []
        for j, s in enumerate(evaluation):
            learner = DynamicLearner(replace(base, replay=False, label_smoothing=False, seed=args.seed + j, **change))
            if engine.startswith("online-warm"):
                assert warm is not None  # the stream run above gives the warm start
                learner.copy_weights_from(warm)
            runs.append(interactive_volume(learner, s, steps, f"eval{j:03d}"))
        results.append(_interactive_result(engine, runs, eval_names))
        r = results[-1]
        log(
            f"{engine}: proxy Dice@1..{steps} "
            + " ".join(f"{v:.3f}" for v in r["dice_at"].values())
            + f" ({time.time() - t0:.0f} s)"
        )
    if sp is not None and results:
        results[0]["speed"] = sp
    return [BenchResult.from_figures(r) for r in results]


def markdown(results: list[dict[str, Any]]) -> str:
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        "Dynamic learning (F on held-out volumes, no interaction):",
        "",
        "| engine | Dice mean | std | min | max | along the stream |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if "model_dice" in r and "model_dice_at" not in r:
            m = r["model_dice"]
            along = ", ".join(f"{k}: {v:.3f}" for k, v in r.get("dice_vs_samples", {}).items())
            lines.append(
                f"| {r['engine']} | {m['mean']:.3f} | {m['std']:.3f} | {m['min']:.3f} | {m['max']:.3f} | {along} |"
            )
    steps = max((len(r.get("model_dice_at", {})) for r in results), default=0)
    if steps:
        lines += [
            "",
            "Interactive steps (proxy Υ / model F Dice; slices coronal+sagittal):",
            "",
            "| engine | "
            + " | ".join(f"step {i} ({i}+{i})" for i in range(1, steps + 1))
            + " | s/proxy update | s/training round |",
            "|---|" + "---|" * (steps + 2),
        ]
        for r in results:
            if "model_dice_at" in r:
                cells = [f"{r['dice_at'][str(i)]:.3f} / {r['model_dice_at'][str(i)]:.3f}" for i in range(1, steps + 1)]
                lines.append(
                    f"| {r['engine']} | "
                    + " | ".join(cells)
                    + f" | {f(r['s_per_propagation'])} | {f(r['s_per_training_round'])} |"
                )
    sp = next((r["speed"] for r in results if "speed" in r), None)
    if sp:
        p = sp["proxy_update_s"]
        lines += [
            "",
            f"Speed on {'x'.join(map(str, sp['shape_kji']))} (KJI, {sp['structure']}): "
            "proxy update after one new slice "
            f"median {f(p['median_after_first'])} s, max {f(p['max_after_first'])} s; first slice of a plane "
            + ", ".join(f"{x:.2f}" for x in p["first_slice_of_plane"])
            + " s; training round "
            f"median {sp['training_round_s']['median']:.2f} s, max {sp['training_round_s']['max']:.2f} s "
            f"(n_F {sp['training_round_s']['n_f']}, patch {sp['training_round_s']['patch']}).",
        ]
    return "\n".join(lines)
