"""`train --kind finetune`: the image tower and a head that starts as the zero-shot head.

Reads top to bottom: build the tower and head, then for each epoch a pass of
class-balanced, augmented batches (AdamW, warm-up then cosine decay, mixed
precision on a GPU), a validation pass, a checkpoint, and early stopping. The
best epoch's weights are then blended with the zero-shot weights (WiSE-FT,
Wortsman et al. 2022) with the mixing weight that does best on validation.

A CUDA out-of-memory error halves the batch and restarts the epoch. On a CPU
it works, slowly: fine for a few hundred small images.
"""

from __future__ import annotations

import math
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from ..models.base import Backend, BridgeHead, LinearHead, ModelError, ResidualHead, ZeroShotHead
from ..loaders import DEFAULT_WORKERS
from .checkpoint import load_tensors, read_json, save_tensors, write_json
from .config import TrainConfig
from .progress import EpochRecord, ProgressFn, StopFn, TrainingCancelled, TrainProgress

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

GPU_BATCH, CPU_BATCH = 64, 16
EVAL_BATCH = 128
CROP_SCALE = (0.6, 1.0)  # random-resized-crop area range


@dataclass
class Example:
    path: Path
    column: int


@dataclass
class FinetuneResult:
    tower_state: dict  # name -> tensor (cpu), the blended weights
    head: ZeroShotHead
    history: list[EpochRecord]
    wise_alpha: float
    wise_accuracy: dict[str, float]  # validation accuracy per mixing weight
    best_epoch: int
    device: str
    precision: str
    batch_size: int
    peak_memory_mb: float | None  # CUDA only


# -- the head as a torch module ------------------------------------------------


def torch_head(head: ZeroShotHead):
    """A trainable module whose initial outputs are log(head.probabilities) (up to a constant).

    For a probe (`ResidualHead`) the zero-shot part is frozen and the tower and
    the probe's linear correction learn: linear probing, then fine-tuning
    (LP-FT, Kumar et al. 2022), which starts where the probe is.
    """
    import torch

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = torch.nn.Parameter(torch.tensor(head.weights, dtype=torch.float32))
            self.scale = head.scale

        def forward(self, features):
            normalised = torch.nn.functional.normalize(features.float(), dim=-1)
            return self.scale * normalised @ self.weights.T

    class Bridge(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.class_weights = torch.nn.Parameter(torch.tensor(head.class_weights, dtype=torch.float32))
            self.class_bias = torch.nn.Parameter(torch.tensor(head.class_bias, dtype=torch.float32))
            self.register_buffer("log_bridge", torch.log(torch.tensor(head.bridge, dtype=torch.float32).clamp_min(1e-30)))

        def forward(self, features):
            class_logp = torch.log_softmax(features.float() @ self.class_weights.T + self.class_bias, dim=-1)
            return torch.logsumexp(class_logp[:, :, None] + self.log_bridge[None], dim=1)

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.base = torch_head(head.base).requires_grad_(False)
            self.weights = torch.nn.Parameter(torch.tensor(head.weights, dtype=torch.float32))
            self.bias = torch.nn.Parameter(torch.tensor(head.bias, dtype=torch.float32))
            self.register_buffer("mean", torch.tensor(head.mean, dtype=torch.float32))

        def forward(self, features):
            base = torch.log_softmax(self.base(features), dim=-1)
            centred = torch.nn.functional.normalize(features.float(), dim=-1) - self.mean
            return base + centred @ self.weights.T + self.bias

    if isinstance(head, LinearHead):
        return Linear()
    if isinstance(head, BridgeHead):
        return Bridge()
    if isinstance(head, ResidualHead):
        return Residual()
    raise ModelError(f"Fine-tuning cannot start from a {type(head).__name__}; train from the base model's zero-shot head.")


def numpy_head(module, like: ZeroShotHead) -> ZeroShotHead:
    """The trained module back as a head of the same type as `like`."""
    state = {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}
    if isinstance(like, ResidualHead):
        return ResidualHead(like.labels, numpy_head(module.base, like.base), state["weights"], state["bias"], state["mean"])
    if isinstance(like, LinearHead):
        return LinearHead(like.labels, state["weights"], like.scale)
    return BridgeHead(like.labels, state["class_weights"], state["class_bias"], like.bridge)


# -- images ---------------------------------------------------------------------


def augment(image: "Image.Image", rng: random.Random) -> "Image.Image":
    """A random crop of 60-100% of the area (aspect 3:4 to 4:3) and a coin-flip mirror image."""
    from PIL import Image

    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(*CROP_SCALE)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            image = image.crop((left, top, left + w, top + h))
            break
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def load_pixels(backend: Backend, path: Path, rng: random.Random | None):
    from PIL import Image

    with Image.open(path) as image:
        image.seek(0)
        image.draft("RGB", (448, 448))
        image = image.convert("RGB")
    return backend.preprocess(augment(image, rng) if rng else image)


def batches(backend: Backend, examples: Sequence[Example], batch_size: int, pool: ThreadPoolExecutor,
            seed: int | None) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
    """(pixels, columns) batches, decoded a batch ahead in the pool; augmented when `seed` is given."""
    import torch

    def load(start: int):
        chunk = examples[start : start + batch_size]
        rngs = [random.Random(f"{seed}:{start + i}") if seed is not None else None for i in range(len(chunk))]
        pixels = list(pool.map(lambda pair: load_pixels(backend, pair[0].path, pair[1]), zip(chunk, rngs)))
        return torch.stack(pixels), torch.tensor([e.column for e in chunk])

    starts = list(range(0, len(examples), batch_size))
    pending = pool.submit(load, starts[0]) if starts else None
    for i in range(len(starts)):
        current = pending.result()
        pending = pool.submit(load, starts[i + 1]) if i + 1 < len(starts) else None
        yield current


def balanced_epoch(examples: Sequence[Example], seed: int) -> list[Example]:
    """As many draws as there are examples, each class equally likely (with replacement within a class)."""
    rng = random.Random(seed)
    by_class: dict[int, list[Example]] = {}
    for example in examples:
        by_class.setdefault(example.column, []).append(example)
    classes = sorted(by_class)
    return [rng.choice(by_class[rng.choice(classes)]) for _ in range(len(examples))]


# -- mixed precision and the schedule -------------------------------------------


def autocast_dtype(device: str):
    """bf16 where the GPU has it, else fp16 (with a gradient scaler); None on CPU: plain fp32."""
    import torch

    if not device.startswith("cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def learning_rate_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# -- the loop ----------------------------------------------------------------------


class Finetuner:
    """One fine-tuning run; `run()` trains, checkpointing to `folder` after every epoch."""

    def __init__(self, backend: Backend, base_head: ZeroShotHead, train: list[Example], validation: list[Example],
                 config: TrainConfig, device: str, folder: Path, *, on_progress: ProgressFn | None = None,
                 should_stop: StopFn | None = None, check_labels: Callable[[], None] | None = None,
                 job_id: int | None = None):
        import torch

        self.backend, self.base_head, self.config, self.device = backend, base_head, config, device
        self.train_set, self.validation = train, validation
        self.folder = folder
        self.progress = on_progress or (lambda p: None)
        self.should_stop = should_stop or (lambda: False)
        self.check_labels = check_labels or (lambda: None)
        self.job_id = job_id
        self.tower = backend.trainable_tower().to(device)
        self.head = torch_head(base_head).to(device)
        self.zero_shot_tower = {k: v.detach().cpu().clone() for k, v in self.tower.state_dict().items()}
        self.zero_shot_head = {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()}
        self.batch_size = config.batch_size or (GPU_BATCH if device.startswith("cuda") else CPU_BATCH)
        self.dtype = autocast_dtype(device)
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.optimizer = torch.optim.AdamW([
            {"params": self.tower.parameters(), "lr": config.lr},
            {"params": [p for p in self.head.parameters() if p.requires_grad], "lr": config.lr * config.head_lr_scale},
        ], weight_decay=config.weight_decay)
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.step = 0
        self.history: list[EpochRecord] = []
        self.best_accuracy = -1.0
        self.best_epoch = 0
        self.pool = ThreadPoolExecutor(max_workers=config.workers or DEFAULT_WORKERS)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)

    # The run, top to bottom.
    def run(self, resume: bool = False) -> FinetuneResult:
        start = self.load_checkpoint() + 1 if resume and (self.folder / "state.json").exists() else 1
        bad_epochs = start - 1 - self.best_epoch if self.history else 0
        for epoch in range(start, self.config.epochs + 1):
            started = time.perf_counter()
            loss = self.train_epoch(epoch)
            accuracy, val_loss = self.evaluate(self.validation) if self.validation else (None, None)
            self.history.append(EpochRecord(epoch, loss, accuracy, val_loss,
                                            time.perf_counter() - started, self.batch_size))
            improved = accuracy is None or accuracy > self.best_accuracy
            if improved:
                self.best_accuracy, self.best_epoch = (accuracy or 0.0), epoch
                save_tensors(self.folder / "best.safetensors", self.weights())
            bad_epochs = 0 if improved else bad_epochs + 1
            self.save_checkpoint(epoch)
            self.progress(TrainProgress("epoch", epoch, self.config.epochs, train_loss=loss,
                                        val_accuracy=accuracy, message=self.describe(epoch)))
            self.check_labels()
            if bad_epochs >= self.config.patience:
                break
        self.load_weights(load_tensors(self.folder / "best.safetensors"))
        alpha, by_alpha = self.choose_wise_alpha()
        return FinetuneResult(
            tower_state={k: v.detach().cpu() for k, v in self.tower.state_dict().items()},
            head=numpy_head(self.head, self.base_head), history=self.history, wise_alpha=alpha,
            wise_accuracy=by_alpha, best_epoch=self.best_epoch, device=self.device,
            precision=str(self.dtype).replace("torch.", "") if self.dtype else "float32",
            batch_size=self.batch_size, peak_memory_mb=self.peak_memory_mb(),
        )

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def train_epoch(self, epoch: int) -> float:
        """One pass; on CUDA out-of-memory, halve the batch and start the epoch again."""
        while True:
            try:
                return self.run_epoch(epoch)
            except RuntimeError as exc:
                if "out of memory" not in str(exc).lower() or self.batch_size == 1:
                    raise
                self.optimizer.zero_grad(set_to_none=True)
                _free_cuda_cache()
                self.batch_size //= 2
                self.progress(TrainProgress("epoch", epoch, self.config.epochs, message=(
                    f"Out of memory on {self.device}: retrying epoch {epoch} with batch size {self.batch_size}.")))

    def run_epoch(self, epoch: int) -> float:
        import torch

        self.tower.train()
        self.head.train()
        order = balanced_epoch(self.train_set, seed=self.config.seed * 1000 + epoch)
        steps_per_epoch = math.ceil(len(order) / self.batch_size)
        total_steps = steps_per_epoch * self.config.epochs
        warmup = round(self.config.warmup_epochs * steps_per_epoch)
        losses = []
        for i, (pixels, columns) in enumerate(batches(self.backend, order, self.batch_size, self.pool,
                                                      seed=self.config.seed * 1000 + epoch)):
            for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base_lr * learning_rate_factor(self.step, warmup, total_steps)
            pixels, columns = pixels.to(self.device, non_blocking=True), columns.to(self.device)
            with self.autocast():
                logits = self.head(self.tower(pixels))
            loss = torch.nn.functional.cross_entropy(logits.float(), columns)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            self.step += 1
            losses.append(float(loss.detach()))
            self.progress(TrainProgress("step", epoch, self.config.epochs, i + 1, steps_per_epoch,
                                        train_loss=float(np.mean(losses))))
            if self.should_stop():
                raise TrainingCancelled(self.job_id, epoch - 1)
        return float(np.mean(losses)) if losses else float("nan")

    def evaluate(self, examples: Sequence[Example]) -> tuple[float, float]:
        """(accuracy, mean log-loss) without augmentation."""
        import torch

        logits, columns = self.logits(examples)
        loss = float(torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(columns)))
        return float((logits.argmax(axis=1) == columns).mean()), loss

    def logits(self, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        self.tower.eval()
        self.head.eval()
        outputs, columns = [], []
        with torch.inference_mode(), self.autocast():
            for pixels, cols in batches(self.backend, examples, EVAL_BATCH, self.pool, seed=None):
                outputs.append(self.head(self.tower(pixels.to(self.device))).float().cpu().numpy())
                columns.append(cols.numpy())
        return np.concatenate(outputs), np.concatenate(columns)

    def choose_wise_alpha(self) -> tuple[float, dict[str, float]]:
        """Blend best-epoch and zero-shot weights; keep the mix with the best validation accuracy
        (ties go to the mix nearest 0.5, the paper's default)."""
        if not self.validation:
            return 1.0, {}
        fine_tower = {k: v.detach().cpu().clone() for k, v in self.tower.state_dict().items()}
        fine_head = {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()}
        scores = {}
        for alpha in self.config.wise_alphas:
            self.tower.load_state_dict(_blend(self.zero_shot_tower, fine_tower, alpha))
            self.head.load_state_dict(_blend(self.zero_shot_head, fine_head, alpha))
            scores[alpha] = self.evaluate(self.validation)[0]
            self.progress(TrainProgress("blend", message=f"WiSE-FT mix {alpha}: validation accuracy {scores[alpha]:.3f}"))
        best = max(scores, key=lambda a: (scores[a], -abs(a - 0.5)))
        self.tower.load_state_dict(_blend(self.zero_shot_tower, fine_tower, best))
        self.head.load_state_dict(_blend(self.zero_shot_head, fine_head, best))
        return best, {str(a): s for a, s in scores.items()}

    def autocast(self):
        """Mixed precision on CUDA; nothing at all on a CPU (fp32 throughout)."""
        import contextlib

        import torch

        return torch.autocast("cuda", dtype=self.dtype) if self.dtype is not None else contextlib.nullcontext()

    # -- checkpoints ------------------------------------------------------------------

    def weights(self) -> dict:
        return {**{f"tower.{k}": v for k, v in self.tower.state_dict().items()},
                **{f"head.{k}": v for k, v in self.head.state_dict().items()}}

    def load_weights(self, tensors: dict) -> None:
        self.tower.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("tower.")})
        self.head.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})

    def save_checkpoint(self, epoch: int) -> None:
        """Weights and optimizer state (safetensors), then the small state file that points at them."""
        tensors = self.weights()
        for index, state in self.optimizer.state_dict()["state"].items():
            for name, value in state.items():
                tensors[f"optim.{index}.{name}"] = value if hasattr(value, "shape") else _scalar(value)
        save_tensors(self.folder / "last.safetensors", tensors)
        write_json(self.folder / "state.json", {
            "epoch": epoch, "step": self.step, "batch_size": self.batch_size,
            "best_accuracy": self.best_accuracy, "best_epoch": self.best_epoch,
            "history": [record.__dict__ for record in self.history], "config": self.config.to_dict(),
        })

    def load_checkpoint(self) -> int:
        """Restore the last checkpoint; returns the epoch it ended."""
        state = read_json(self.folder / "state.json")
        tensors = load_tensors(self.folder / "last.safetensors")
        self.load_weights(tensors)
        optimizer_state = self.optimizer.state_dict()
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                optimizer_state["state"].setdefault(int(index), {})[name] = value.to(self.device) if name != "step" else value
        self.optimizer.load_state_dict(optimizer_state)
        self.step, self.batch_size = state["step"], state["batch_size"]
        self.best_accuracy, self.best_epoch = state["best_accuracy"], state["best_epoch"]
        self.history = [EpochRecord(**record) for record in state["history"]]
        return int(state["epoch"])

    def describe(self, epoch: int) -> str:
        record = self.history[-1]
        accuracy = f", validation accuracy {record.val_accuracy:.3f}" if record.val_accuracy is not None else ""
        return f"epoch {epoch}/{self.config.epochs}: loss {record.train_loss:.3f}{accuracy} ({record.seconds:.1f} s)"

    def peak_memory_mb(self) -> float | None:
        import torch

        if not self.device.startswith("cuda"):
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**20


def _blend(zero_shot: dict, fine: dict, alpha: float) -> dict:
    return {k: (1 - alpha) * zero_shot[k].float() + alpha * fine[k].float() if fine[k].is_floating_point() else fine[k]
            for k in fine}


def _scalar(value):
    import torch

    return torch.tensor(value)


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_finetunable(backend: Backend) -> None:
    """Fail before any work if this backend's tower cannot be trained."""
    if type(backend).trainable_tower is Backend.trainable_tower:
        backend.trainable_tower()  # raises the explanatory ModelError


__all__ = ["Example", "Finetuner", "FinetuneResult", "check_finetunable"]
