"""Model specs, the tiny random CLIPs (open_clip and transformers), precision and device choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import imagefiles
from index.types import Label
from tools.models import DEFAULT_SPEC, OFFLINE_SPEC, ModelError, load_backend, parse_spec
from tools.models.base import BridgeHead, LinearHead, head_from_bytes, head_to_bytes, label_texts
from tools.models.device import BF16_MIN_COSINE, pick_device
from tools.zeroshot import templates


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("openclip:ViT-B-32/laion2b_s34b_b79k", "openclip:ViT-B-32/laion2b_s34b_b79k"),
        ("openclip:ViT-B-32//models/clip.safetensors", "openclip:ViT-B-32//models/clip.safetensors"),
        ("hf:openai/clip-vit-base-patch32", "hf:openai/clip-vit-base-patch32"),
        ("offline", OFFLINE_SPEC),
        (" offline ", OFFLINE_SPEC),
        ("offline:efficientnet-lite0+minilm", OFFLINE_SPEC),  # the name before the middle-stage features
    ],
)
def test_model_specs_parse_to_one_canonical_form(text, canonical):
    assert str(parse_spec(text)) == canonical


@pytest.mark.parametrize("text", ["clip", "openclip:ViT-B-32", "hf:", "openai/clip", "offline:resnet"])
def test_unknown_specs_say_which_forms_exist(text):
    with pytest.raises(ModelError, match=r"openclip:<arch>/<pretrained>.*hf:<hub-id-or-folder>.*offline"):
        parse_spec(text)


def test_bad_openclip_names_and_missing_files_are_named(tmp_path):
    with pytest.raises(ModelError, match="no model 'ViT-Q-99'"):
        load_backend("openclip:ViT-Q-99/openai")
    with pytest.raises(ModelError, match="knows no weights 'nonsense' for ViT-B-32"):
        load_backend("openclip:ViT-B-32/nonsense")
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelError, match=f"{missing} does not exist"):
        load_backend(f"openclip:ViT-B-32/{missing}")
    with pytest.raises(ModelError, match="does not exist"):
        load_backend(f"hf:{tmp_path / 'no-such-folder'}")


def test_default_clip_without_weights_fails_fast_offline_and_falls_back_with_one_notice():
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        load_backend(DEFAULT_SPEC)
    notices: list[str] = []
    backend = load_backend(DEFAULT_SPEC, fallback=True, on_notice=notices.append)
    assert backend.spec == OFFLINE_SPEC
    (notice,) = notices
    assert "offline backend" in notice and "labelchat fetch-model" in notice
    assert "--model openclip:ViT-B-32/" in notice


def test_device_choice():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") in ("cpu", "cuda", "mps")
    with pytest.raises(ModelError, match="Unknown device 'tpu'"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            pick_device("cuda")


@pytest.fixture(scope="module", params=["openclip:tiny/random", "hf:tiny-random"])
def tiny(request):
    return load_backend(request.param, "cpu")


def _pixels(backend, n=3):
    return torch.stack([backend.preprocess(imagefiles.noise_image(i, (80, 60))) for i in range(n)])


def test_tiny_clip_embeds_images_and_builds_a_prompt_ensemble_head(tiny):
    features = tiny.encode_images(_pixels(tiny))
    assert features.shape == (3, tiny.dim) and features.dtype == np.float32
    labels = [Label("cat"), Label("dog", description="a small dog"), Label("bird", prompts=("a bird in flight",))]
    head = tiny.zero_shot_head(labels, templates("default"))
    assert isinstance(head, LinearHead) and head.weights.shape == (3, tiny.dim)
    assert np.allclose(np.linalg.norm(head.weights, axis=1), 1, atol=1e-5)
    probabilities = head.probabilities(features)
    assert probabilities.shape == (3, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    again = head_from_bytes(head_to_bytes(head))
    assert again.labels == ("cat", "dog", "bird") and np.allclose(again.probabilities(features), probabilities)


def test_worker_threads_hand_over_uint8_pixels_that_encode_like_the_models_own_transform(tiny):
    images = [imagefiles.noise_image(i, size) for i, size in enumerate([(80, 60), (31, 97), (224, 224)])]
    prepared = torch.stack([tiny.prepare(image) for image in images])
    assert prepared.dtype == torch.uint8 and tiny.pixel_norm is not None  # a quarter of the bytes
    own = torch.stack([tiny.preprocess(image) for image in images])
    assert torch.allclose(tiny.pixel_norm.apply(prepared), own, atol=1e-5)
    assert np.allclose(tiny.encode_images(prepared), tiny.encode_images(own), atol=1e-5)


def test_a_transform_that_cannot_be_split_still_embeds_with_float_pixels():
    import open_clip
    import torchvision.transforms as T

    from tools.models.openclip import OpenClipBackend, split_transform

    base = load_backend("openclip:tiny/random", "cpu")
    odd = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3),
                     T.Lambda(lambda x: x.clamp(-1, 1))])  # arithmetic after Normalize: not ours to redo
    assert split_transform(odd) == (None, None)
    backend = OpenClipBackend(base.model, odd, open_clip.get_tokenizer("ViT-B-32"), spec="openclip:odd/random",
                              device="cpu", description="test")
    pixels = backend.prepare(imagefiles.noise_image(1, (50, 40)))
    assert pixels.dtype == torch.float32 and pixels.shape == (3, 32, 32)
    assert backend.encode_images(pixels[None]).shape == (1, backend.dim)
    with pytest.raises(ModelError, match="takes float pixels"):
        backend.encode_images(torch.zeros((1, 3, 32, 32), dtype=torch.uint8))


def test_transformers_geometry_is_done_by_torchvision_exactly_as_the_processor_does_it():
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    from tools.models.hf import fast_resize_crop, processor_pixels

    clip = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 48, "width": 48})
    siglip = SiglipImageProcessor(size={"height": 40, "width": 40})
    nearest = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 48, "width": 48}, resample=0)
    assert fast_resize_crop(nearest) is None  # not a geometry it knows: the processor itself is called
    for processor in (clip, siglip):
        fast = fast_resize_crop(processor)
        assert fast is not None
        # (82, 60) and (60, 82): resized to 87 on the long side, a crop offset of 19.5 that transformers floors
        for i, size in enumerate([(80, 60), (31, 97), (64, 64), (300, 17), (82, 60), (60, 82)]):
            image = imagefiles.noise_image(i, size)
            assert torch.equal(fast(image), processor_pixels(processor, image))


def test_pixel_norm_matches_torchvision():
    import torchvision.transforms.functional as F

    from tools.models.base import PixelNorm

    image = imagefiles.noise_image(3, (20, 10))
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    expected = F.normalize(F.to_tensor(image.convert("RGB")), mean, std)
    got = PixelNorm(mean, std).apply(torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None])[0]
    assert torch.allclose(got, expected, atol=1e-5)


def test_label_texts_use_the_description_and_add_the_labels_own_prompts():
    texts = label_texts(Label("tabby", "a striped cat", ("my cat Felix",)), ["a photo of a {{ label }}."])
    assert texts == ["a photo of a tabby, a striped cat.", "my cat Felix"]


def test_prompts_cut_to_the_longest_give_the_same_text_features():
    from tools.models.openclip import encode_text_truncated

    backend = load_backend("openclip:tiny/random", "cpu")
    tokens = backend.tokenizer(["a photo of a cat.", "a blurry photo of a small red sneaker."])
    assert int((tokens != 0).sum(dim=1).max()) < tokens.shape[1] / 3  # the cut is real
    with torch.inference_mode():
        full = backend.model.float().encode_text(tokens)
        cut = encode_text_truncated(backend.model, tokens)
    assert torch.allclose(full, cut, atol=1e-5)


def test_the_rebuilt_transformers_tokenizer_matches_open_clip():
    import open_clip

    from tools.models.hf import clip_tokenizer_from_open_clip, tokenizer_is_usable

    ours = clip_tokenizer_from_open_clip()
    reference = open_clip.get_tokenizer("ViT-B-32")
    for text in ["a photo of a windmill.", "Red sneakers, size 42!", "Äpfel und Birnen"]:
        expected = [t for t in reference([text])[0].tolist() if t]
        assert ours(text)["input_ids"] == expected
    assert tokenizer_is_usable(ours)
    assert not tokenizer_is_usable(lambda text: {"input_ids": [49406, 0, 49407]})


def test_bf16_is_adopted_on_cpu_only_when_it_agrees_with_fp32():
    backend = load_backend("openclip:tiny/random", "cpu")
    pixels = _pixels(backend, 4)
    first = backend.encode_images(pixels)
    chooser = backend.precision
    if chooser.dtype == torch.bfloat16:
        assert chooser.agreement >= BF16_MIN_COSINE and chooser.speedup > 1
    with torch.inference_mode():  # the cached backend's weights may be inference tensors (an earlier test's)
        reference = backend.model.float().encode_image(pixels).numpy()
    backend.model.to(chooser.dtype)
    cosine = (first * reference).sum(1) / np.linalg.norm(first, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= BF16_MIN_COSINE


def test_offline_backend_is_real_and_honest():
    backend = load_backend("offline", "cpu")
    assert backend.spec == OFFLINE_SPEC and "CLIP" in backend.description
    with Image.open(next(iter(sorted((imagefiles_dir() / "windmill").glob("*.jpg"))))) as image:
        features = backend.encode_images(torch.stack([backend.preprocess(image)]))
        prepared = backend.prepare(image)
    assert prepared.dtype == torch.uint8
    assert np.allclose(backend.encode_images(prepared[None]), features, atol=1e-3)
    head = backend.zero_shot_head([Label("windmill"), Label("fish"), Label("tool")], templates("default"))
    assert isinstance(head, BridgeHead)
    from tools.models.offline import HEAD_DIM

    assert features.shape == (1, backend.dim) and backend.dim > HEAD_DIM
    head_only = features.copy()
    head_only[:, HEAD_DIM:] = 0  # the middle layers are for examples and search: zero-shot ignores them
    assert np.allclose(head.probabilities(head_only), head.probabilities(features))
    probabilities = head.probabilities(features)[0]
    assert probabilities.argmax() == 0, f"a windmill photo should look like a windmill: {probabilities}"


def imagefiles_dir():
    from conftest import PHOTOS

    return PHOTOS


def test_the_loader_stacks_channels_last_pixels_without_changing_a_value():
    """uint8 images laid out channels last (PIL, torchvision) are stacked as (N, H, W, C) and seen
    as (N, C, H, W): the same numbers as a plain stack; float tensors are stacked as they are."""
    from tools.loaders import collate
    from tools.sources import Problem
    from tools.images import Reason

    rng = np.random.default_rng(0)
    hwc = [torch.from_numpy(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)) for _ in range(3)]
    chw = [image.permute(2, 0, 1) for image in hwc]
    bad = Problem("x.png", Reason.CORRUPT, "item 9 cannot be decoded")
    batch = collate([(1, chw[0]), (9, bad), (2, chw[1]), (3, chw[2])])
    assert batch.ids == [1, 2, 3] and batch.problems == [bad] and batch.channels_last
    assert torch.equal(batch.nchw(), torch.stack([c.contiguous() for c in chw]))
    floats = [c.float() / 255 for c in chw]
    plain = collate(list(enumerate(floats)))
    assert not plain.channels_last and torch.equal(plain.nchw(), torch.stack(floats))
    assert collate([(9, bad)]).pixels is None
