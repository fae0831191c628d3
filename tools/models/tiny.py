"""Tiny randomly initialised CLIPs, built from small configs with a fixed seed.

They exercise the whole CLIP code path (tokeniser, prompt ensemble, image and
text towers, scoring, caching) in seconds on a CPU with no weights to fetch.
Their suggestions are meaningless: they are for tests and benchmarks only.
Specs: `openclip:tiny/random` and `hf:tiny-random`.
"""

from __future__ import annotations

SEED = 0
IMAGE_SIZE = 32


def tiny_openclip(device: str = "cpu"):
    import open_clip
    import torch
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    from .openclip import OpenClipBackend

    torch.manual_seed(SEED)
    model = CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=8, image_size=IMAGE_SIZE),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
    )
    return OpenClipBackend(
        model,
        open_clip.image_transform(IMAGE_SIZE, is_train=False),
        open_clip.get_tokenizer("ViT-B-32"),
        spec="openclip:tiny/random",
        device=device,
        description="tiny random CLIP via open_clip (tests only: its labels mean nothing)",
    )


def tiny_hf_clip(device: str = "cpu"):
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from .hf import HFClipBackend, clip_tokenizer_from_open_clip

    torch.manual_seed(SEED)
    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(tower, vocab_size=49408, max_position_embeddings=77),
        vision_config=dict(tower, image_size=IMAGE_SIZE, patch_size=8),
        projection_dim=32,
    )
    processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return HFClipBackend(
        CLIPModel(config),
        processor,
        clip_tokenizer_from_open_clip(),
        spec="hf:tiny-random",
        device=device,
        description="tiny random CLIP via transformers (tests only: its labels mean nothing)",
    )
