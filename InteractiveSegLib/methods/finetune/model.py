"""Bring your own segmentation model: load it, declare how its input is prepared, run it.

The scribble-aware fine-tuning engine (../shared/papers/scribble-aware-test-time-finetuning.txt)
works on *any* pre-trained segmentation network. A site gives one of:

- an InteractiveSeg checkpoint (``.pt``, ``checkpoints.save_checkpoint`` format) of a plain
  segmenter (the SIM "auto" network is one): architecture, labels and preprocessing are
  read from the checkpoint;
- a PyTorch ``nn.Module`` object (``SegmentationModel.from_module``), or a state dict
  plus a ``"network": "package.module:factory"`` entry in its spec;
- a TorchScript file (``torch.jit.save``);
- a MONAI bundle directory (``configs/inference.json|yaml``, ``configs/metadata.json``,
  ``models/model.pt`` or ``models/model.ts``): the network comes from the bundle's
  ``network_def``, the labels from its metadata's channel definition, spacing,
  intensity window and sliding-window size from its pre-processing and inferer.

A spec (``ModelSpec``) declares what the file does not say; it comes from the call, or
from a JSON file beside the model (``<model>.json``), and overrides what was read.
The source file is only ever read; nothing here writes to it.
"""

from __future__ import annotations

import copy
import json
import pkgutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from InteractiveSegLib.errors import ModelError, UntrustedCodeError

INTENSITY_MODES = ("percentile", "zscore", "range", "none")


@dataclass
class Preprocessing:
    """How a volume becomes the network's input.

    ``spacing``: the voxel size (mm) the model was trained at, IJK order (2 values for a
    2D model: in-plane); None keeps the image's own grid. ``intensity``: ``percentile``
    (robust 0.5-99.5 % of non-zero voxels to [0, 1], MRI), ``zscore`` (non-zero voxels),
    ``range`` (clip ``intensity_range`` to [0, 1], a CT window) or ``none``.
    ``patch_size``: sliding-window size of a 3D model (None: the whole ROI at once);
    ``divisor``: the input is zero-padded to a multiple of it (network down-sampling).
    """

    spacing: tuple[float, ...] | None = None
    intensity: str = "percentile"
    intensity_range: tuple[float, float] | None = None
    patch_size: tuple[int, ...] | None = None
    overlap: float = 0.25
    divisor: int = 16

    def __post_init__(self) -> None:
        if self.intensity not in INTENSITY_MODES:
            raise ModelError(f"intensity must be one of {INTENSITY_MODES}, got {self.intensity!r}")
        if self.intensity == "range" and (self.intensity_range is None or len(self.intensity_range) != 2):
            raise ModelError("intensity 'range' needs intensity_range = [min, max]")
        for name in ("spacing", "intensity_range", "patch_size"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, tuple(v))


@dataclass
class ModelSpec:
    """What a model segments and how it is fed. ``labels[0]`` is the background."""

    labels: list[str]
    spatial_dims: int = 2
    in_channels: int = 1
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    network: str | None = None  # "package.module:factory" for a plain state dict
    network_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.preprocessing, dict):
            self.preprocessing = Preprocessing(**self.preprocessing)
        if self.spatial_dims not in (2, 3):
            raise ModelError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if len(self.labels) < 2:
            raise ModelError(f"a segmentation model needs a background and at least one label, got {self.labels}")
        if self.in_channels != 1:
            raise ModelError(
                f"only single-channel (one image) models are supported, got in_channels={self.in_channels}"
            )

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ModelError(f"unknown model spec keys {sorted(unknown)}; expected {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def normalize(array: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """The spec's intensity normalisation of a whole volume (float32)."""
    a = np.asarray(array, np.float32)
    if prep.intensity == "none":
        return a.copy()
    if prep.intensity == "range":
        lo, hi = prep.intensity_range  # type: ignore[misc]
        return np.clip((a - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)
    if prep.intensity == "zscore":
        fg = a[a != 0] if np.count_nonzero(a) >= 16 else a.ravel()
        return ((a - fg.mean()) / max(float(fg.std()), 1e-6)).astype(np.float32)
    from InteractiveSegLib.preprocessing import normalize_intensity

    return normalize_intensity(a)


class SegmentationModel:
    """A loaded network and its spec: ``logits(x)`` for a (B, 1, *spatial) input."""

    def __init__(self, module: nn.Module, spec: ModelSpec, source: str = "<module>") -> None:
        self.module = module.eval()
        self.spec = spec
        self.source = source

    @classmethod
    def from_module(cls, module: nn.Module, spec: ModelSpec | dict) -> SegmentationModel:
        return cls(module, spec if isinstance(spec, ModelSpec) else ModelSpec.from_dict(spec))

    @property
    def num_classes(self) -> int:
        return len(self.spec.labels)

    @property
    def scripted(self) -> bool:
        return isinstance(self.module, torch.jit.ScriptModule)

    def copy(self) -> SegmentationModel:
        """A working copy whose weights can change; this one stays as loaded."""
        if self.scripted:  # deepcopy of a ScriptModule shares autograd history: re-load it
            import io

            buf = io.BytesIO()
            torch.jit.save(self.module, buf)
            buf.seek(0)
            return SegmentationModel(torch.jit.load(buf, map_location="cpu"), self.spec, self.source)
        return SegmentationModel(copy.deepcopy(self.module), self.spec, self.source)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        if isinstance(out, (list, tuple)):  # deep supervision heads: the first is the prediction
            out = out[0]
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return out

    def check(self) -> None:
        """Run a small input once: the output must have one channel per label and the
        input's size (a network that shrinks or grows it cannot label the input's voxels)."""
        size = (max(32, self.spec.preprocessing.divisor),) * self.spec.spatial_dims
        try:
            with torch.no_grad():
                out = self.logits(torch.zeros(1, self.spec.in_channels, *size))
        except Exception as e:
            raise ModelError(f"model {self.source} does not run on a {self.spec.spatial_dims}D input: {e}") from None
        if out.ndim != 2 + self.spec.spatial_dims or out.shape[1] != self.num_classes:
            raise ModelError(
                f"model {self.source} gives output {tuple(out.shape)}; its spec names {self.num_classes} labels "
                f"({', '.join(self.spec.labels)}) for a {self.spec.spatial_dims}D input"
            )
        if tuple(out.shape[2:]) != size:
            raise ModelError(
                f"model {self.source} gives an output of size {tuple(out.shape[2:])} for an input of size {size}: "
                "a segmentation network must give one label per input voxel"
            )


# -- loading ---------------------------------------------------------------------------------
def load_model(path: str | Path, spec: ModelSpec | dict | None = None, trust_code: bool = False) -> SegmentationModel:
    """Load a checkpoint, TorchScript file or MONAI bundle directory (see the module doc).

    ``spec`` (or ``<path>.json`` beside the file) declares labels and preprocessing; its
    keys override what the file itself says. ModelError with the reason if it cannot load.
    A model folder can name code to run (a spec's ``network`` outside MONAI's networks, a
    bundle's ``$`` expressions or ``_target_`` outside MONAI): that is refused unless
    ``trust_code`` says the user asked for it.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model {path} does not exist")
    given = _spec_dict(path, spec)
    if path.is_dir():
        model = _load_bundle(path, given, trust_code)
    else:
        model = _load_file(path, given, trust_code)
    model.check()
    return model


def _spec_dict(path: Path, spec: ModelSpec | dict | None) -> dict:
    if isinstance(spec, ModelSpec):
        return spec.to_dict()
    if spec is not None:
        return dict(spec)
    side = path.with_name(path.name + ".json") if not path.is_dir() else path / "interactiveseg.json"
    if side.exists():
        try:
            return json.loads(side.read_text())
        except json.JSONDecodeError as e:
            raise ModelError(f"model spec {side} is not valid JSON: {e}") from None
    return {}


def _merge(base: dict, given: dict) -> ModelSpec:
    merged = {**base, **{k: v for k, v in given.items() if k != "preprocessing"}}
    prep = {**base.get("preprocessing", {}), **given.get("preprocessing", {})}
    merged["preprocessing"] = prep
    if "labels" not in merged:
        raise ModelError("the model's labels are unknown: give a spec with 'labels' (background first)")
    return ModelSpec.from_dict(merged)


#: Modules whose network constructors a spec may name without ``trust_code``: they build a
#: torch module from keyword arguments and run nothing else.
SAFE_FACTORY_MODULES = ("monai.networks.nets", "InteractiveSegLib.methods")


def _trusted(target: str, trust_code: bool, what: str) -> None:
    """Refuse code a model folder names unless the user trusts it."""
    module = target.split(":")[0]
    if trust_code or any(module == m or module.startswith(m + ".") for m in SAFE_FACTORY_MODULES):
        return
    raise UntrustedCodeError(
        f"{what} names code outside MONAI's networks ({target!r}); loading it would run that code. "
        "Give --trust-code (trust_code=True) if you trust this model's author"
    )


def _factory(target: str, trust_code: bool = False):
    _trusted(target, trust_code, "the model spec's 'network'")
    try:
        return pkgutil.resolve_name(target)
    except (ImportError, AttributeError, ValueError) as e:
        raise ModelError(f"network factory {target!r} cannot be imported: {e}") from None


def _load_file(path: Path, given: dict, trust_code: bool = False) -> SegmentationModel:
    try:  # TorchScript first: a scripted archive is a zip that torch.load would reject anyway
        module = torch.jit.load(str(path), map_location="cpu")
        return SegmentationModel(module, _merge({}, given), str(path))
    except RuntimeError:
        pass
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"model file {path} does not load: {e}") from None
    if isinstance(ckpt, dict) and "arch" in ckpt and "state_dict" in ckpt:
        return _load_checkpoint(path, ckpt, given)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"model file {path} is neither TorchScript, an InteractiveSeg checkpoint nor a state dict")
    spec = _merge({}, given)
    if not spec.network:
        raise ModelError(
            f"{path} is a plain state dict: its spec must name the network ('network': 'package.module:factory')"
        )
    module = _factory(spec.network, trust_code)(**spec.network_kwargs)
    _load_state(module, state, path)
    return SegmentationModel(module, spec, str(path))


def _load_state(module: nn.Module, state: dict, path: Path) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"weights {path} do not match the network: {str(e).splitlines()[0]}") from None


def _load_checkpoint(path: Path, ckpt: dict, given: dict) -> SegmentationModel:
    """An InteractiveSeg checkpoint of a plain segmenter (image in, class logits out)."""
    from InteractiveSegLib.checkpoints import load_checkpoint

    arch = ckpt["arch"]
    net = ckpt.get("config", {}).get("net", {})
    if arch != "sim_net" or net.get("memory") != "auto":
        raise ModelError(
            f"{path} holds a {arch!r} network with interaction inputs; "
            "fine-tuning needs a plain segmentation network (e.g. sim_auto.pt)"
        )
    module, config, meta = load_checkpoint(path, arch)
    task = config.get("task", "")
    spacing = None
    if task:
        from InteractiveSegLib.data.multiclass_tasks import get_task

        dataset = get_task(task).dataset
        spacing = {"colin27": (1.0, 1.0), "mni152": (1.0, 1.0), "inia19": (0.5, 0.5)}.get(dataset)
    base = {
        "labels": list(config["classes"]),
        "spatial_dims": 2,
        "preprocessing": {"spacing": spacing, "intensity": "percentile", "divisor": 16},
    }
    return SegmentationModel(module, _merge(base, given), str(path))


def _read_config(files: Sequence[Path]):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    return parser


def _bundle_code(parser, key: str = "network_def") -> list[str]:
    """What building ``key`` of a bundle would run beyond MONAI's own classes: ``$``
    expressions (Python evaluated by MONAI's parser) and ``_target_`` paths outside MONAI,
    following ``@`` references."""
    found: list[str] = []
    seen: set[str] = set()
    todo = [key]
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        try:
            raw = parser.get(ref)
        except Exception:  # an unknown reference: MONAI's own parse reports it
            continue
        stack = [raw]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                target = item.get("_target_")
                if isinstance(target, str) and "." in target and not target.startswith("monai."):
                    found.append(target)
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str) and item.startswith("$"):
                found.append(item)
            elif isinstance(item, str) and item.startswith("@"):
                todo.append(item[1:])
    return found


def _load_bundle(path: Path, given: dict, trust_code: bool = False) -> SegmentationModel:
    """A MONAI bundle: network from ``network_def``, hints for the spec from its configs."""
    configs = path / "configs"
    infer = next(
        (configs / f"inference.{e}" for e in ("json", "yaml", "yml") if (configs / f"inference.{e}").exists()), None
    )
    if infer is None:
        raise ModelError(f"{path} is not a MONAI bundle (no configs/inference.json or .yaml)")
    try:
        parser = _read_config([infer])
        parser["bundle_root"] = str(path)
    except Exception as e:
        raise ModelError(f"bundle config {infer} does not parse: {e}") from None
    base = _bundle_spec(parser, configs / "metadata.json")
    ts = path / "models" / "model.ts"
    pt = path / "models" / "model.pt"
    if pt.exists():
        code = _bundle_code(parser)
        if code and not trust_code:
            raise UntrustedCodeError(
                f"bundle {path}: its network_def runs code ({', '.join(map(repr, code[:3]))}); "
                "give --trust-code (trust_code=True) if you trust this bundle's author"
            )
        try:
            module = parser.get_parsed_content("network_def")
        except Exception as e:
            raise ModelError(f"bundle {path}: network_def cannot be built: {e}") from None
        try:
            state = torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ModelError(f"bundle weights {pt} do not load: {e}") from None
        _load_state(
            module,
            state.get("state_dict", state)
            if "state_dict" in state and isinstance(state["state_dict"], dict)
            else state,
            pt,
        )
    elif ts.exists():
        module = torch.jit.load(str(ts), map_location="cpu")
    else:
        raise ModelError(f"bundle {path} has neither models/model.pt nor models/model.ts")
    return SegmentationModel(module, _merge(base, given), str(path))


def _walk(obj: Any):
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def _bundle_spec(parser, metadata: Path) -> dict:
    """Labels, dimensionality, spacing, intensity window and patch size a bundle declares."""
    spec: dict = {"preprocessing": {}}
    if metadata.exists():
        try:
            meta = json.loads(metadata.read_text())
            pred = meta.get("network_data_format", {}).get("outputs", {}).get("pred", {})
            chans = pred.get("channel_def", {})
            if chans:
                spec["labels"] = [chans[k] for k in sorted(chans, key=int)]
            dims = pred.get("spatial_shape") or meta.get("network_data_format", {}).get("inputs", {}).get(
                "image", {}
            ).get("spatial_shape")
            if dims:
                spec["spatial_dims"] = len(dims)
        except (json.JSONDecodeError, AttributeError, ValueError) as e:
            raise ModelError(f"bundle metadata {metadata} is unreadable: {e}") from None
    config = parser.get()
    for node in _walk(config):
        target = str(node.get("_target_", ""))
        if target.endswith("Spacingd") or target.endswith("Spacing"):
            spec["preprocessing"]["spacing"] = tuple(float(v) for v in node.get("pixdim", []))
        elif target.endswith("ScaleIntensityRanged") or target.endswith("ScaleIntensityRange"):
            spec["preprocessing"]["intensity"] = "range"
            spec["preprocessing"]["intensity_range"] = (float(node["a_min"]), float(node["a_max"]))
        elif target.endswith("NormalizeIntensityd") or target.endswith("NormalizeIntensity"):
            spec["preprocessing"]["intensity"] = "zscore"
        elif target.endswith("SlidingWindowInferer"):
            roi = node.get("roi_size")
            if isinstance(roi, list):
                spec["preprocessing"]["patch_size"] = tuple(int(v) for v in roi)
                spec.setdefault("spatial_dims", len(roi))
            if "overlap" in node:
                spec["preprocessing"]["overlap"] = float(node["overlap"])
    return spec


def model_labels(path: str | Path, spec: ModelSpec | dict | None = None) -> list[str]:
    """The labels (background first) of the model ``load_model(path, spec)`` would give, read
    from the spec, the file beside the model or an InteractiveSeg checkpoint's config; only a
    TorchScript file or bundle without a spec is loaded to find them."""
    path = Path(path)
    given = _spec_dict(path, spec) if path.exists() else {}
    if "labels" in given:
        return list(given["labels"])
    if path.is_file() and path.suffix == ".pt":
        from InteractiveSegLib.checkpoints import read_config

        try:
            config = read_config(path)
        except ModelError:
            config = {}
        if "classes" in config:
            return list(config["classes"])
    return list(load_model(path, spec).spec.labels)
