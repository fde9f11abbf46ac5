"""CDPQ settings: loss weights and the search/training configuration (plain dataclasses, JSON round trip)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ConfigError
from ..numerics import STORAGE_MODES, check_group_size
from ..seeds import SEED_FIX, seed_problem

#: config key -> the ``sam2-quant cdpq`` flag that sets it (other keys: ``--set``)
FLAGS = {
    "lr": "--lr",
    "impact_threshold": "--impact-threshold",
    "rounds": "--rounds",
    "epochs_per_round": "--epochs",
    "bit_lambda": "--bit-lambda",
    "bit_lr": "--bit-lr",
    "max_attempts": "--max-attempts",
    "target_avg_bits": "--target-bits",
    "target_bytes": "--target-mb",
}
#: candidate orders per pass: the confidence heuristic, or probes (measured loss rise per byte saved)
ORDERS = ("confidence", "probe")


@dataclass
class LossWeights:
    """Weight of each distillation term; 0 switches a term off.

    ``stats``: per-layer channel mean/variance MSE; ``feature``: per-layer normalised feature MSE;
    ``affinity``: per-layer token-affinity (Gram) MSE; ``embed``: stage-level encoder outputs
    (image embedding + high-res features); ``mask``: soft-target BCE on mask logits (zero at a match);
    ``iou``: MSE on IoU predictions; ``output``: normalised MSE on a generic model's ``output`` (the
    generic adapter's task). Layer terms need identical teacher/student configs.
    """

    stats: float = 1.0
    feature: float = 1.0
    affinity: float = 0.0
    embed: float = 1.0
    mask: float = 1.0
    iou: float = 1.0
    output: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):  # a weight may be 0 (term off), a temperature not
            check_number(f"weights.{f.name}", getattr(self, f.name), low=0.0, strict=f.name == "temperature")


def check_number(
    key: str, value: Any, *, low: float | None = None, strict: bool = False, whole: bool = False
) -> None:
    """``value`` is a finite number (a whole one when ``whole``), at least ``low`` (above it when ``strict``);
    else :class:`ConfigError` naming the key, the value and the fix."""
    kind = "a whole number" if whole else "a finite number"
    ok = not isinstance(value, bool) and isinstance(value, int if whole else (int, float))
    ok = ok and math.isfinite(value) and (low is None or value > low or (value == low and not strict))
    if not ok:
        bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
        raise ConfigError(
            f"{key}={value!r:.40} must be {kind}{bound}; NaN, infinity or a value out of range make the "
            f"run meaningless. Fix: pass {kind}{bound} ({FLAGS.get(key, 'in --set')})."
        )


@dataclass
class CDPQConfig:
    """Everything a CDPQ run needs; saved as ``config.json`` and read back on resume."""

    name: str = "cdpq"
    model: str = "sam2"  # the model family (adapter) that builds the models and their batches and task
    device: str = (
        "auto"  # cpu | cuda | cuda:N | auto (CUDA when present); torchrun: each rank its LOCAL_RANK GPU
    )
    autocast: str | None = None  # "bf16" | "fp16": the frozen teacher's forward under CUDA autocast
    teacher_config: str = "sam2.1_hiera_t"
    student_config: str = "sam2.1_hiera_t"
    teacher_checkpoint: str | None = None
    student_checkpoint: str | None = None
    image_size: int = 256
    seed: int = 0
    # data
    train_images: str | None = None  # folder, SA-V root, or None for the bundled photos
    val_images: str | None = None
    # a frame folder whose propagation feeds memory-path targets (memory_attention / memory_encoder): the
    # teacher's calls into them are recorded and replayed; None: the bundled clip
    video: str | None = None
    video_frames: int | None = 8  # first N frames of it (None: all)
    points_per_image: int = 4
    boxes_per_image: int = 2
    batch_size: int = 1
    # quantization
    target_roots: tuple[str, ...] = ("image_encoder",)
    ladder: tuple[int, ...] = (8, 4, 2)
    observer: str = "minmax"
    # None: one scale per output channel; N: one per N consecutive inputs of a channel (Linear layers;
    # convolutions stay per-channel), the block layout of MatMulNBits, so it costs no bytes there
    group_size: int | None = None
    refit_scale: bool = True  # MSE clip search for the new range after each bit drop
    # "gptq": each attempt and probe scores the layer GPTQ-rounded at the new width (Hessians of its inputs
    # from the training batches, Linear layers; convolutions keep the refit), and a kept drop keeps it
    rounding: str = "rtn"
    # KD training
    rounds: int = 2
    epochs_per_round: int = 1
    lr: float = 1e-5
    scale_lr: float = 1e-6  # Adam: about 0.1% of a typical weight step size per step
    grad_clip: float = 1.0
    weights: LossWeights = field(default_factory=LossWeights)
    # search
    confidence: str = "mean"
    # "confidence": order each pass by the heuristic (+ sensitivity); "probe": drop each candidate alone
    # first and order by measured validation-loss rise per byte saved (one extra forward per candidate)
    order_by: str = "confidence"
    sensitivity: str | None = None  # grad_norm | fisher | hutchinson | None
    sensitivity_weight: float = 1.0
    impact_threshold: float = 0.01
    threshold_growth: float = 2.0  # when a pass accepts nothing but the budget is not met
    max_passes: int = 8
    target_avg_bits: float | None = None
    target_bytes: float | None = None
    # How target_bytes counts a weight code: "onnx" = as the int4 export stores it (INT4 for <= 4 bits,
    # int8 above, so a 6-bit layer costs a byte per weight), "packed" = at its exact width.
    storage: str = "onnx"
    max_attempts: int | None = None  # stop early (simulates an interruption; resume continues)
    # differentiable mode
    mode: str = "search"  # search | differentiable
    bit_lambda: float = 0.05
    bit_lr: float | None = None  # None: 2 x (max - min bits) / planned steps, so bits can move in any run
    diff_epochs: int = 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CDPQConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown CDPQ config key(s) {unknown}; known: {sorted(known)}")
        d = dict(d)
        try:
            if isinstance(d.get("weights"), dict):
                d["weights"] = LossWeights(**d["weights"])
            for key in ("target_roots", "ladder"):
                if key in d and d[key] is not None:
                    d[key] = tuple(d[key])
            return cls(**d)
        except TypeError as e:  # unknown loss-weight keys, a ladder that is not a list
            raise ConfigError(
                f"CDPQ config: {e}. Fix: check the keys and values against CDPQConfig."
            ) from None

    def _check_numbers(self) -> None:
        for key, strict in (("lr", True), ("scale_lr", False), ("grad_clip", True)):
            check_number(key, getattr(self, key), low=0.0, strict=strict)
        check_number("impact_threshold", self.impact_threshold)  # negative: reject every drop (tests)
        check_number("threshold_growth", self.threshold_growth, low=1.0)
        check_number("sensitivity_weight", self.sensitivity_weight, low=0.0)
        check_number("bit_lambda", self.bit_lambda, low=0.0)
        for key, low in (("rounds", 0), ("epochs_per_round", 1), ("max_passes", 1), ("diff_epochs", 1)):
            check_number(key, getattr(self, key), low=low, whole=True)
        for key, low in (("points_per_image", 1), ("boxes_per_image", 0), ("batch_size", 1)):
            check_number(key, getattr(self, key), low=low, whole=True)
        if self.max_attempts is not None:
            check_number("max_attempts", self.max_attempts, low=1, whole=True)
        for key in ("bit_lr", "target_avg_bits", "target_bytes"):
            if getattr(self, key) is not None:
                check_number(key, getattr(self, key))
        problem = seed_problem(self.seed)
        if problem is not None:
            raise ConfigError(f"{problem}. {SEED_FIX}")

    def __post_init__(self) -> None:
        self._check_numbers()
        lad = tuple(int(b) for b in self.ladder)
        if not lad or list(lad) != sorted(set(lad), reverse=True) or not 2 <= lad[-1] <= lad[0] <= 8:
            raise ConfigError(
                f"ladder {self.ladder} must be strictly decreasing bit widths within 8..2, "
                "e.g. 8 4 2 or 8 6 4 3 2"
            )
        self.ladder = lad
        self.target_roots = tuple(self.target_roots)
        if self.video_frames is not None and (isinstance(self.video_frames, bool) or self.video_frames < 1):
            raise ConfigError(f"video_frames={self.video_frames!r}; use a positive frame count or None (all)")
        if self.group_size is not None:
            try:
                self.group_size = check_group_size(self.group_size)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        if self.order_by not in ORDERS:
            raise ConfigError(f"order_by={self.order_by!r}; use one of {ORDERS}")
        if self.storage not in STORAGE_MODES:
            raise ConfigError(f"storage={self.storage!r}; use one of {STORAGE_MODES}")
        if self.autocast not in (None, "bf16", "fp16"):
            raise ConfigError(f"autocast={self.autocast!r}; use 'bf16', 'fp16' or None (float32 teacher)")
        if self.rounding not in ("rtn", "gptq"):
            raise ConfigError(f"rounding={self.rounding!r}; use 'rtn' or 'gptq'")
        if self.bit_lr is not None and not self.bit_lr > 0:
            raise ConfigError(f"bit_lr={self.bit_lr}: must be > 0 (or None for the automatic rate)")
        if self.mode not in ("search", "differentiable"):
            raise ConfigError(f"mode={self.mode!r}; use 'search' or 'differentiable'")
        for key, value in (("target_avg_bits", self.target_avg_bits), ("target_bytes", self.target_bytes)):
            if value is not None and not value > 0:  # also NaN
                flag = "--target-bits" if key == "target_avg_bits" else "--target-mb"
                raise ConfigError(
                    f"{key}={value}: a size budget must be a positive number. Fix: pass {flag} > 0, "
                    "or omit it to search without a budget."
                )
        if self.target_avg_bits is not None and self.target_avg_bits > max(lad):
            raise ConfigError(
                f"target_avg_bits={self.target_avg_bits} is above the top rung of ladder {lad}, where every "
                "layer starts, so it is met before any attempt. Fix: ask for "
                f"{min(lad)}..{max(lad)} bits, or omit --target-bits to search without a budget."
            )
        if self.target_avg_bits is not None and self.target_avg_bits < min(lad):
            raise ConfigError(
                f"target_avg_bits={self.target_avg_bits} is below the lowest rung of ladder {lad}, so it can "
                f"never be met. Fix: ask for at least {min(lad)} bits, or add a lower rung to the ladder."
            )
        if self.target_bytes is not None and self.storage in ("onnx", "nbits") and min(lad) > 4:
            raise ConfigError(
                f"target_bytes with storage={self.storage!r} and ladder {lad}: the export stores every width "
                "above 4 bits as int8, so no step on this ladder saves a byte and the budget cannot be met. "
                "Fix: add 4 (or lower) to the ladder, or count packed bits with storage='packed'."
            )

    @property
    def has_budget(self) -> bool:
        """A size budget (average bits or bytes) is set: the search runs until it is met."""
        return self.target_avg_bits is not None or self.target_bytes is not None

    @property
    def same_architecture(self) -> bool:
        return self.teacher_config == self.student_config
