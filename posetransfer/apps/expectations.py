"""What to expect of a model trained on the synthetic people when it meets real photos, said where it matters.

Why: the only model a user can train offline learns synthetic people; on real photos it gives blurry
silhouettes (after the short demo: grey boxes). ``transfer``, ``animate`` and ``demo`` say so, with the way
to a model made for real photos (a converted official checkpoint), instead of leaving a newcomer to guess.
Kept free of torch so that a command can print it without the import.
"""
from __future__ import annotations

from typing import Any, Mapping

#: printed by transfer, animate and demo; the README's "Your own photos — what to expect" says the same
REAL_PHOTO_ADVICE = (
    "trained on synthetic people, so on real photos it gives blurry silhouettes; for real photos convert an "
    "official checkpoint (README, 'Official checkpoints'), e.g. posetransfer convert --arch gfla --input "
    "latest_net_G.pth --out gfla-fashion.safetensors --dataset deepfashion"
)


def synthetic_note(name: str, provenance: Mapping[str, Any]) -> str | None:
    """``note: ...`` for a model whose file says it was trained on a synthetic dataset (its contract's
    provenance, written by ``train``), else None."""
    if provenance.get("synthetic") is True:
        return f"note: {name} was {REAL_PHOTO_ADVICE}"
    return None
