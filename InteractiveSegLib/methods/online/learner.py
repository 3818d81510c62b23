"""A segmenter that learns while the user annotates (../shared/papers/dynamic-interactive-learning.txt,
2.2-2.6: eqs. 2 and 9, Algorithms 1, 3 and 5).

For each incoming volume the user draws the structure on a few slices; ``ProxyMask``
(Algorithm 2) turns them into a 3D proxy mask Υ; the segmenter F trains on Υ for n_F
steps, together with m samples replayed from a buffer of past volumes (Algorithm 1); the
next slices to draw are proposed from the disagreement of Υ and F (Algorithm 4). Every
piece is a switch of ``OnlineSettings`` so the benchmark can run the paper's ablation:

- replay on/off; loss weight λ_L between the new and the replayed samples (eq. 2);
- label smoothing: the target is (1 − λ_Y)·F_prev(X) + λ_Y·Υ, with F_prev the segmenter as
  it was when this volume arrived (Algorithm 5, step 17);
- spatial confidence W (eq. 11 ``exp`` or eq. 12 ``indicator``, ``none`` for off; eq. 9);
- n_F steps per round; model guidance or random slices.

The state (weights, optimizer, buffer, samples, volumes seen) lives in a ``TaskFolder``
directory when one is given, so a site's task survives restarts; without one it is kept
in memory (benchmarks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from InteractiveSegLib.errors import InteractionError, ModelError
from InteractiveSegLib.methods.online.proposals import confidence_weights, propose_slices, random_slices, residual_map
from InteractiveSegLib.methods.online.proxy_mask import ProxyMask, RegistrationSettings
from InteractiveSegLib.methods.online.replay import ReplayBuffer
from InteractiveSegLib.methods.online.task_folder import TaskFolder


@dataclass
class OnlineSettings:
    """Defaults are the configuration the figures of Resources/Models/online.md come from."""

    channels: tuple[int, ...] = (8, 16, 32, 64)  # MONAI 3D UNet, strides 2
    patch: tuple[int, int, int] = (32, 48, 48)  # training patch (KJI); the whole volume when it is smaller
    lr: float = 1e-3  # Adam
    n_f: int = 20  # optimisation steps per round (Algorithm 3, step 10)
    replay: bool = True
    buffer_size: int = 8  # b
    aux_size: int = 16  # b* (> b)
    replay_m: int = 2  # m samples of B retrieved per step
    loss_weight: float | None = 0.5  # λ_L of eq. 2; None: eq. 1 (every sample alike)
    label_smoothing: bool = True
    lambda_y: float = 0.8  # λ_Y: weight of the new proxy in the smoothed target
    weights: str = "indicator"  # W of eq. 9: "exp" (eq. 11), "indicator" (eq. 12), "none"
    omega: float = 4.0  # ω of eq. 12: drawn slices count 1 + ω
    weight_scale: float = 4.0  # eq. 11 decay length in voxels (the paper's is 1)
    guidance: bool = True  # Algorithm 4; False: random slices (the baseline)
    omega1: float = 0.5  # ω1 of eq. 17
    guidance_saturation: float | None = None  # d2 = 1 − e^(−d/s) instead of d / max d (None: the latter)
    # r of eq. 17 only within this many voxels of Υ (of F > 0.5 before any drawing; -1: everywhere, as the paper)
    guidance_support: int = 2
    planes: tuple[int, ...] = (1, 2)  # KJI axes the user draws on (coronal, sagittal)
    tau: int = 1  # slices proposed per plane and round
    flips: tuple[int, ...] = (0, 1, 2)  # random flips (augmentation, paper 3.1)
    seed: int = 0

    def state(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_state(cls, d: dict) -> OnlineSettings:
        known: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls.__dataclass_fields__
        }
        return cls(**known)


def build_network(channels: tuple[int, ...]) -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=1,
        channels=tuple(channels),
        strides=(2,) * (len(channels) - 1),
        num_res_units=1,
    )


def normalize(image: np.ndarray) -> np.ndarray:
    """Z-score over the volume (the paper normalises by the data set's mean and std)."""
    image = np.asarray(image, np.float32)
    return (image - image.mean()) / max(float(image.std()), 1e-6)


@dataclass
class TrainSample:
    """One training item: normalised image, soft target in [0, 1], voxel weights W."""

    image: np.ndarray
    target: np.ndarray
    weight: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "image": self.image.astype(np.float16),
            "target": self.target.astype(np.float16),
            "weight": self.weight.astype(np.float16),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> TrainSample:
        return cls(d["image"].astype(np.float32), d["target"].astype(np.float32), d["weight"].astype(np.float32))


def weighted_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """⟨W, I⟩ of eq. 9 with I the voxel-wise binary cross-entropy (soft targets allowed),
    divided by the voxel count so n_F and the learning rate do not depend on the volume size."""
    return (weight * F.binary_cross_entropy_with_logits(logits, target, reduction="none")).flatten(1).mean(1)


def combined_loss(per_sample: torch.Tensor, lambda_l: float | None) -> torch.Tensor:
    """Eq. 2: λ_L·l(new) + (1 − λ_L)/(m + 1)·Σ l(replayed); the new sample is first.
    ``lambda_l`` None, or no replayed sample: eq. 1's plain mean."""
    m = per_sample.shape[0] - 1
    if lambda_l is None or m == 0:
        return per_sample.mean()
    return lambda_l * per_sample[0] + (1 - lambda_l) / (m + 1) * per_sample[1:].sum()


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    shape = x.shape[-3:]
    pad = [(-s) % multiple for s in shape]
    if any(pad):
        x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
    return x, cast(tuple[int, int, int], tuple(shape))


class OnlineSegmenter:
    """F: a small MONAI 3D UNet with its Adam optimizer, trained a few steps at a time."""

    def __init__(self, settings: OnlineSettings, device: str = "cpu") -> None:
        self.settings = settings
        self.device = torch.device(device)
        torch.manual_seed(settings.seed)
        self.net = build_network(settings.channels).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=settings.lr)
        self.steps = 0
        self._rng = np.random.default_rng(settings.seed)
        self._multiple = 2 ** (len(settings.channels) - 1)

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> np.ndarray:
        """F(X): foreground probability of a normalised volume (sliding window when it is
        larger than the training patch)."""
        self.net.eval()
        x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None].to(self.device)
        xp, shape = _pad_to(x, self._multiple)
        if all(s <= p for s, p in zip(shape, self.settings.patch, strict=False)):
            logits = self.net(xp)
        else:
            from monai.inferers import sliding_window_inference

            logits = sliding_window_inference(xp, self.settings.patch, 4, self.net, overlap=0.25, mode="gaussian")
        return torch.sigmoid(logits[..., : shape[0], : shape[1], : shape[2]])[0, 0].cpu().numpy()

    def _patch(self, sample: TrainSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole volume, or a training patch centred (2 times in 3) on a confidently
        labelled foreground voxel, else anywhere; then random flips."""
        arrays = [sample.image, sample.target, sample.weight]
        shape = sample.image.shape
        patch = [min(p, s) for p, s in zip(self.settings.patch, shape, strict=False)]
        if list(patch) != list(shape):
            fg = np.argwhere(
                (sample.target > 0.5) & (sample.weight > sample.weight.min())
                if sample.weight.max() > sample.weight.min()
                else sample.target > 0.5
            )
            if len(fg) and self._rng.random() < 2 / 3:
                centre = fg[self._rng.integers(len(fg))]
            else:
                centre = [self._rng.integers(s) for s in shape]
            lo = [int(np.clip(c - p // 2, 0, s - p)) for c, p, s in zip(centre, patch, shape, strict=False)]
            box = tuple(slice(a, a + p) for a, p in zip(lo, patch, strict=False))
            arrays = [a[box] for a in arrays]
        for axis in self.settings.flips:
            if self._rng.random() < 0.5:
                arrays = [np.flip(a, axis) for a in arrays]
        return tuple(np.ascontiguousarray(a, np.float32) for a in arrays)  # type: ignore[return-value]

    def train_steps(
        self,
        new: TrainSample,
        replayed: list[TrainSample],
        n: int,
        lambda_l: float | None,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[float]:
        """n steps of eq. 2/9 on the new sample (first) and the replayed ones; returns the
        losses. ``should_stop`` is asked between steps (a background job's Cancel)."""
        losses = []
        for i in range(n):
            if should_stop is not None and should_stop():
                break
            items = [self._patch(s) for s in [new, *replayed]]
            shape = np.min([it[0].shape for it in items], axis=0)
            # volumes of one batch may differ by a voxel
            crop = lambda a, shape=shape: a[: shape[0], : shape[1], : shape[2]]  # noqa: E731
            x, y, w = (
                torch.from_numpy(np.stack([crop(it[k]) for it in items]))[:, None].to(self.device) for k in range(3)
            )
            x, _ = _pad_to(x, self._multiple)
            y, _ = _pad_to(y, self._multiple)
            w, full = _pad_to(w, self._multiple)
            if any(p != s for p, s in zip(x.shape[-3:], full, strict=False)):  # padded voxels do not count
                w = w.clone()
                w[..., full[0] :, :, :] = 0
                w[..., :, full[1] :, :] = 0
                w[..., :, :, full[2] :] = 0
            self.net.train()
            loss = combined_loss(weighted_loss(self.net(x), y, w), lambda_l)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.steps += 1
            losses.append(float(loss.item()))
            if progress is not None:
                progress(i + 1, n)
        return losses

    def load_state(self, checkpoint: dict) -> None:
        """Weights, optimizer and step count from a task checkpoint (``TaskFolder`` layout)."""
        try:
            self.net.load_state_dict(checkpoint["model"])
            if checkpoint.get("optimizer"):
                self.opt.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise ModelError(f"the task's checkpoint does not fit this segmenter ({e})") from None
        self.steps = int(checkpoint.get("meta", {}).get("steps", 0))


@dataclass
class RoundReport:
    """What one round did (Algorithm 3's loop body), for the UI and the benchmark."""

    round: int
    drawn: dict[int, list[int]]
    train_seconds: float
    losses: list[float] = field(default_factory=list)
    stopped: bool = False


class DynamicLearner:
    """Algorithm 5 over a stream of volumes; Algorithm 3 within one.

    Per volume: ``start_volume`` → repeat (``propose`` → the user draws → ``add_slice``
    per slice → ``train_round``) → ``finish_volume``. ``proxy()`` is Υ, ``prediction()``
    F(X). With a ``store`` every finished round is saved (atomically) to the task directory.
    """

    def __init__(
        self,
        settings: OnlineSettings | None = None,
        store: TaskFolder | None = None,
        device: str = "cpu",
        registration: RegistrationSettings | None = None,
        workers: int = 2,
    ) -> None:
        self.store = store
        saved = store.load_checkpoint() if store is not None else None
        if saved is not None and settings is None:
            try:
                settings = OnlineSettings.from_state(saved["meta"]["settings"])
            except (KeyError, TypeError, ValueError) as e:
                assert store is not None
                raise store.corrupt("checkpoint.pt", e) from None
        self.settings = settings or OnlineSettings()
        self.segmenter = OnlineSegmenter(self.settings, device)
        self.buffer = ReplayBuffer(self.settings.buffer_size, self.settings.aux_size, seed=self.settings.seed)
        self.volumes_done = 0  # t
        self.rounds_trained = 0  # over the whole task: 0 means F has never learnt (isFirst)
        self.registration = registration
        self.workers = workers
        self._samples: dict[str, TrainSample] = {}  # in-memory buffer items when there is no store
        self._rng = np.random.default_rng(self.settings.seed + 1)
        if saved is not None:
            assert store is not None
            try:
                self.segmenter.load_state(saved)
                meta = saved["meta"]
                self.volumes_done = int(meta.get("volumes_done", 0))
                self.rounds_trained = int(meta.get("rounds_trained", 0))
            except (KeyError, TypeError, ValueError, RuntimeError) as e:  # wrong weights or fields
                raise store.corrupt("checkpoint.pt", e) from None
            buf = store.load_buffer()
            if buf:
                try:
                    self.buffer = ReplayBuffer.from_state(buf)
                except (KeyError, TypeError, ValueError) as e:
                    raise store.corrupt("buffer.json", e) from None
        self.key: str | None = None

    # -- one volume --------------------------------------------------------------------------
    def start_volume(self, image: np.ndarray, key: str | None = None) -> None:
        """A new volume arrives (KJI array). F_prev(X) is computed now, before any training
        on it (Algorithm 5, step 17: the previous segmenter stays fixed for this volume)."""
        image = np.asarray(image)
        if image.ndim != 3:
            raise InteractionError(f"online learning needs a 3D volume, got shape {image.shape}")
        if not np.isfinite(image).all():
            raise InteractionError("the volume has NaN or infinite voxels")
        self.key = key or f"volume-{self.volumes_done:05d}"
        self.image = normalize(image)
        self.proxy_mask = ProxyMask(image, self.registration, workers=self.workers)
        self.round = 0
        # Algorithm 5 line 3: F_prev = x -> 0 until a segmenter has been trained
        self.f_prev = (
            self.segmenter.predict(self.image) if self.rounds_trained > 0 else np.zeros(image.shape, np.float32)
        )
        self._prediction: np.ndarray | None = None

    def _need_volume(self) -> None:
        if self.key is None:
            raise InteractionError("no volume: call start_volume first")

    def drawn(self) -> dict[int, list[int]]:
        self._need_volume()
        return {a: self.proxy_mask.drawn(a) for a in self.proxy_mask.planes}

    def prediction(self) -> np.ndarray:
        """F(X) for the current volume with the current weights (cached until the next round)."""
        self._need_volume()
        if self._prediction is None:
            self._prediction = self.segmenter.predict(self.image)
        return self._prediction

    def proxy(self) -> np.ndarray:
        """Υ: the proxy mask (binary) from the slices drawn so far."""
        self._need_volume()
        return self.proxy_mask.mask()

    def guided(self) -> bool:
        """True when ``propose`` uses Algorithm 4: guidance on and F trained at least once."""
        return self.settings.guidance and self.rounds_trained > 0

    def propose(self, guided: bool | None = None, within: dict[int, np.ndarray] | None = None) -> dict[int, list[int]]:
        """Slices to draw next, τ per plane: Algorithm 4 once F has trained at least one
        round (and guidance is on), random otherwise (Algorithm 5, steps 8-12). ``within``
        limits the random choice per plane (a boolean per slice: where the structure is)."""
        self._need_volume()
        guided = self.guided() if guided is None else guided and self.rounds_trained > 0
        drawn = self.drawn()
        out: dict[int, list[int]] = {}
        if guided:
            proxy = self.proxy_mask.mask() if drawn else np.zeros(self.image.shape, bool)
            f = self.prediction()
            support = None
            if self.settings.guidance_support >= 0:
                seen = proxy if proxy.any() else f > 0.5  # the drawn structure; F's guess before any drawing
                if seen.any():
                    support = (
                        ndimage.binary_dilation(seen, iterations=self.settings.guidance_support)
                        if self.settings.guidance_support
                        else seen
                    )
            r = residual_map(proxy, f, drawn, self.settings.omega1, support, self.settings.guidance_saturation)
            for axis in self.settings.planes:
                out[axis] = propose_slices(r, axis, self.settings.tau, drawn.get(axis, []), self._rng)
        else:
            for axis in self.settings.planes:
                out[axis] = random_slices(
                    self.image.shape, axis, self.settings.tau, drawn.get(axis, []), self._rng, (within or {}).get(axis)
                )
        return out

    def add_slice(self, axis: int, index: int, mask: np.ndarray) -> list[int]:
        """The user's drawing of one slice; updates the proxy (incremental Algorithm 2)."""
        self._need_volume()
        return self.proxy_mask.add(axis, index, mask)

    def target(self) -> TrainSample:
        """(X, Ỹ, W) of this round: Ỹ = (1 − λ_Y)·F_prev(X) + λ_Y·Υ (step 17), W from the
        drawn slices (eqs. 11/12)."""
        s = self.settings
        weight = confidence_weights(self.image.shape, self.drawn(), s.weights, s.omega, s.weight_scale)
        return TrainSample(self.image, self._smoothed(self.proxy_mask.mask().astype(np.float32)), weight)

    def _smoothed(self, y: np.ndarray) -> np.ndarray:
        s = self.settings
        return ((1 - s.lambda_y) * self.f_prev + s.lambda_y * y if s.label_smoothing else y).astype(np.float32)

    def train_round(
        self,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        steps: int | None = None,
    ) -> RoundReport:
        """Algorithm 3 steps 9-13: n_F steps on (X, Ỹ) ∪ S, then the buffer update with (X, Ỹ)."""
        self._need_volume()
        if not any(self.drawn().values()):
            raise InteractionError("draw at least one slice before training")
        t0 = time.perf_counter()
        losses, stopped = self._train(self.target(), steps, progress, should_stop)
        report = RoundReport(self.round, self.drawn(), time.perf_counter() - t0, losses, stopped)
        self.round += 1
        self.save()
        return report

    def finish_volume(self) -> None:
        """Algorithm 5 steps 27-28: F_prev ← F for the next volume; t ← t + 1."""
        self._need_volume()
        self.volumes_done += 1
        self.key = None
        self.save()

    def learn_volume(
        self, image: np.ndarray, reference: np.ndarray, key: str | None = None, steps: int | None = None
    ) -> RoundReport:
        """A fully labelled volume joins the stream (the paper's dynamic learning with ground
        truth, 2.2): one round on (X, Ỹ) with Ỹ the smoothed reference and W = 1, with replay."""
        reference = np.asarray(reference)
        if reference.shape != np.shape(image):
            raise InteractionError(f"reference shape {reference.shape} differs from the volume's {np.shape(image)}")
        self.start_volume(image, key)
        y = reference.astype(np.float32)
        t0 = time.perf_counter()
        losses, _ = self._train(TrainSample(self.image, self._smoothed(y), np.ones(y.shape, np.float32)), steps)
        report = RoundReport(0, {}, time.perf_counter() - t0, losses)
        self.finish_volume()
        return report

    def _train(
        self, sample: TrainSample, steps: int | None, progress=None, should_stop=None
    ) -> tuple[list[float], bool]:
        """n_F steps on ``sample`` plus m replayed past volumes (eq. 2/9), then Algorithm 1
        with it. Algorithm 5 enqueues (X, Ỹ) every round; here a volume holds at most one
        slot of B*, whose stored target is replaced by each round's newer one, so the buffer
        never carries several noisy early versions of one volume."""
        s = self.settings
        n = s.n_f if steps is None else steps
        past = [k for k in self.buffer.buffer if k != self.key] if s.replay else []
        picked = [past[i] for i in self._rng.permutation(len(past))[: s.replay_m]] if past else []
        losses = self.segmenter.train_steps(
            sample, [self._load_sample(k) for k in picked], n, s.loss_weight, progress, should_stop
        )
        if losses:
            self.rounds_trained += 1
            if s.replay:
                key = cast(str, self.key)  # start_volume set it
                self._save_sample(key, sample)
                if key not in self.buffer.aux:  # a later round refreshes the volume's target, not its odds
                    self.buffer.update(key)
        self._prediction = None
        return losses, len(losses) < n

    # -- persistence -----------------------------------------------------------------------
    def _save_sample(self, key: str, sample: TrainSample) -> None:
        if self.store is not None:
            self.store.save_sample(key, **sample.arrays())
        else:
            self._samples[key] = TrainSample.from_arrays(sample.arrays())

    def _load_sample(self, key: str) -> TrainSample:
        if self.store is not None:
            return TrainSample.from_arrays(self.store.load_sample(key))
        return self._samples[key]

    def save(self) -> None:
        """Checkpoint + buffer to the task directory (atomic writes; nothing without a store).
        The buffer is written after the checkpoint: a crash between the two leaves a
        buffer that only lacks the newest sample."""
        if self.store is None:
            return
        meta = {
            "settings": self.settings.state(),
            "volumes_done": self.volumes_done,
            "rounds_trained": self.rounds_trained,
            "kind": "interactiveseg-online",
        }
        self.store.save_checkpoint(self.segmenter.net, self.segmenter.opt, meta | {"steps": self.segmenter.steps})
        self.store.save_buffer(self.buffer.state())

    def copy_weights_from(self, other: DynamicLearner) -> None:
        """Warm start: F (not the optimizer, buffer or counters) from another learner."""
        self.segmenter.net.load_state_dict(other.segmenter.net.state_dict())
        self.rounds_trained = max(self.rounds_trained, 1)
