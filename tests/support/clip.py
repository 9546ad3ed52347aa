"""A randomly initialised open_clip model saved as a local checkpoint: the CLIP
plumbing is real (open_clip, the CLI, SQLite, FAISS), the weights are not, and nothing
touches the network or the Hugging Face cache."""

from __future__ import annotations

ARCH = "ViT-S-32-alt"  # the smallest open_clip architecture: 43M parameters, 256-d
DIM = 256


def save_random_checkpoint(path, seed: int = 0):
    """A randomly initialised open_clip checkpoint (fp16 to halve the file)."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    model = open_clip.create_model(ARCH, pretrained=None)
    torch.save({k: v.half() for k, v in model.state_dict().items()}, path)
    return path
