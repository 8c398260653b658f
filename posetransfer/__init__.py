"""posetransfer — pose-guided person image generation (PATN, APATN, PoNA, GFLA, structure-aware part flow).

Public API (see README; ``tests/test_package_example.py`` runs this example on a run folder it trains):
    model = posetransfer.load_model("runs/patn-market")       # a run (train --out), a checkpoint folder or a .safetensors file
    images = model.generate_batch(images, source_keypoints, target_keypoints)   # uint8 + keypoints in model.frame
    G = posetransfer.load_generator("runs/patn-market")       # the bare nn.Module (G.input_contract)
    image = G(source_image, source_heatmaps, target_heatmaps)  # [-1, 1], B×3×H×W
    posetransfer.save_generator(G, "patn.safetensors", posetransfer.InputContract(size=(128, 64)))
    model = posetransfer.load_model("patn.safetensors")
"""
from __future__ import annotations

__version__ = "0.1.0"

#: public name → the module that defines it (imported lazily: importing the package must not import torch)
_EXPORTS = {
    "build_generator": "posetransfer.models.registry",
    "build_discriminator": "posetransfer.models.registry",
    "load_generator": "posetransfer.inference",
    "load_model": "posetransfer.inference",
    "InferenceModel": "posetransfer.inference",
    "TransferResult": "posetransfer.inference",
    "InputContract": "posetransfer.modelfile",
    "save_generator": "posetransfer.modelfile",
    "Pose": "posetransfer.apps.poses",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
