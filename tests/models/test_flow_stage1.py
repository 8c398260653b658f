"""Stage 1 of the part-flow model (flow pre-training with the sampling-correctness loss) lowers that loss on
a few synthetic people.

The people are drawn here (coloured limbs, head, torso on a plain background, one colour scheme per
identity, two poses per pair), so the test does not depend on the synthetic-dataset module. Run this file
directly for the longer measurement reported in the helper report::

    /work/venv/bin/python tests/models/test_flow_stage1.py --steps 100 --full-width
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from posetransfer.data.keypoints import heatmaps
from posetransfer.models import flow_losses
from posetransfer.models.registry import build_generator

SIZE = (128, 64)
TINY = dict(ngf=4, max_channels=16, flow_ngf=8, flow_max_channels=32)


def _pose(rng: np.random.Generator, size=SIZE) -> np.ndarray:
    """Forward kinematics of a stick person with random limb angles, position and scale → (18, 2) (y, x)."""
    h, w = size
    s = h / 128 * rng.uniform(0.9, 1.05)
    cx, hip_y = w / 2 + rng.uniform(-8, 8) * s, h * 0.5 + rng.uniform(-4, 4)
    lean = rng.uniform(-0.15, 0.15)
    neck = np.array([hip_y - 36 * s, cx + 36 * s * math.sin(lean)])
    kp = np.zeros((18, 2))
    kp[1] = neck
    kp[0] = neck + [-12 * s, 0]
    kp[14], kp[15] = kp[0] + [-2 * s, -2 * s], kp[0] + [-2 * s, 2 * s]
    kp[16], kp[17] = kp[0] + [-1 * s, -5 * s], kp[0] + [-1 * s, 5 * s]

    def limb(start, angle, length):          # angle 0 = straight down
        return start + length * s * np.array([math.cos(angle), math.sin(angle)])

    for side, (sh, el, wr, hp, kn, an) in ((-1, (2, 3, 4, 8, 9, 10)), (1, (5, 6, 7, 11, 12, 13))):
        kp[sh] = neck + [0, side * 8 * s]
        upper = side * rng.uniform(0.1, 1.6)
        kp[el] = limb(kp[sh], upper, 16)
        kp[wr] = limb(kp[el], upper + side * rng.uniform(0.0, 1.2), 15)
        kp[hp] = np.array([hip_y, cx + side * 5 * s])
        thigh = side * rng.uniform(-0.05, 0.45)
        kp[kn] = limb(kp[hp], thigh, 25)
        kp[an] = limb(kp[kn], thigh - side * rng.uniform(0.0, 0.3), 25)
    kp = np.rint(kp).astype(np.int64)
    kp[:, 0] = kp[:, 0].clip(0, h - 1)
    kp[:, 1] = kp[:, 1].clip(0, w - 1)
    return kp


def _render(kp: np.ndarray, colours: dict, size=SIZE) -> np.ndarray:
    h, w = size
    img = Image.new("RGB", (w, h), colours["background"])
    draw = ImageDraw.Draw(img)
    xy = [(int(x), int(y)) for y, x in kp]
    t = max(2, round(h / 20))
    draw.polygon([xy[2], xy[5], xy[11], xy[8]], fill=colours["shirt"])
    for a, b, part in ((8, 9, "trousers"), (9, 10, "trousers"), (11, 12, "trousers"), (12, 13, "trousers"),
                       (2, 3, "shirt"), (3, 4, "skin"), (5, 6, "shirt"), (6, 7, "skin"), (1, 0, "skin")):
        draw.line([xy[a], xy[b]], fill=colours[part], width=t)
    r = round(h / 16)
    draw.ellipse([xy[0][0] - r, xy[0][1] - r, xy[0][0] + r, xy[0][1] + r], fill=colours["hair"])
    draw.ellipse([xy[0][0] - r + 2, xy[0][1] - r + 3, xy[0][0] + r - 2, xy[0][1] + r], fill=colours["skin"])
    for foot in (10, 13):
        draw.ellipse([xy[foot][0] - t, xy[foot][1] - t // 2, xy[foot][0] + t, xy[foot][1] + t // 2],
                     fill=colours["shoes"])
    return np.array(img)


def synthetic_pairs(n: int, seed: int = 0, size=SIZE):
    """``n`` (source image, source maps, target image, target maps) tensors; one identity per pair."""
    rng = np.random.default_rng(seed)
    out = {k: [] for k in ("source_image", "source_heatmaps", "target_image", "target_heatmaps")}
    for _ in range(n):
        colours = {k: tuple(int(c) for c in rng.integers(0, 256, 3)) for k in
                   ("background", "shirt", "trousers", "skin", "hair", "shoes")}
        colours["skin"] = tuple(int(c) for c in rng.integers(150, 240, 3))
        for role in ("source", "target"):
            kp = _pose(rng, size)
            img = torch.from_numpy(_render(kp, colours, size)).permute(2, 0, 1).float() / 127.5 - 1
            out[f"{role}_image"].append(img)
            out[f"{role}_heatmaps"].append(torch.from_numpy(heatmaps(kp, size, sigma=6 * size[0] / 128)))
    return {k: torch.stack(v) for k, v in out.items()}


class CachedFeatures:
    """Wraps a feature extractor; the fixed training images are encoded once (stage 1 never changes them).

    Keyed by content: the loss encodes temporaries too (each part's masked source image), whose memory a
    later temporary may reuse, so an address is no key.
    """

    def __init__(self, extractor):
        self.extractor, self.cache = extractor, {}

    def __call__(self, images: torch.Tensor):
        key = (hashlib.sha1(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest(), tuple(images.shape))
        if key not in self.cache:
            with torch.no_grad():
                self.cache[key] = self.extractor(images)
        return self.cache[key]


def feature_extractor(prefer_vgg: bool):
    """The trainer's VGG features (offline fallback weights are fine) or a fixed random conv stand-in."""
    if prefer_vgg:
        try:
            from posetransfer.weights.vgg import VGGFeatures

            return VGGFeatures(layers=("relu3_1", "relu4_1")), "VGGFeatures(relu3_1, relu4_1)"
        except Exception:  # weights unavailable: fall back to the stand-in
            pass
    torch.manual_seed(0)
    a, b, c = torch.nn.Conv2d(3, 32, 3, 2, 1), torch.nn.Conv2d(32, 64, 3, 2, 1), torch.nn.Conv2d(64, 64, 3, 2, 1)

    def stand_in(x):
        f3 = torch.relu(b(torch.relu(a(x))))
        return {"relu3_1": f3, "relu4_1": torch.relu(c(f3))}

    return stand_in, "random conv stand-in"


def correctness(generator, vgg, data) -> float:
    with torch.no_grad():
        out = generator.predict_flows(data["source_image"], data["source_heatmaps"], data["target_heatmaps"])
        return float(flow_losses.sampling_correctness_loss(vgg, data["source_image"], data["target_image"], out))


def run_stage1(steps: int, model_kwargs: dict, n_pairs: int = 8, batch: int = 4, lr: float = 1e-3,
               prefer_vgg: bool = False, seed: int = 0):
    """Stage 1 as the trainer runs it (GFLA stage-1 weights: correctness 20, affine regularisation 0.01)."""
    torch.manual_seed(seed)
    data = synthetic_pairs(n_pairs, seed=seed)
    held_out = synthetic_pairs(n_pairs, seed=seed + 1000)
    extractor, name = feature_extractor(prefer_vgg)
    vgg = CachedFeatures(extractor)
    g = build_generator("flow", dataset="market", **model_kwargs)
    optim = torch.optim.Adam(g.flow_parameters(), lr=lr, betas=(0.0, 0.99))   # the paper's Adam settings
    batches = [{k: v[i:i + batch] for k, v in data.items()} for i in range(0, n_pairs, batch)]
    initial = {k: v.clone() for k, v in g.state_dict().items()}
    before = (correctness(g, vgg, data), correctness(g, vgg, held_out))
    for step in range(steps):
        b = batches[step % len(batches)]
        out = g.predict_flows(b["source_image"], b["source_heatmaps"], b["target_heatmaps"])
        loss = 20.0 * flow_losses.sampling_correctness_loss(vgg, b["source_image"], b["target_image"], out) \
            + 0.01 * flow_losses.affine_regularization_loss(out)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    after = (correctness(g, vgg, data), correctness(g, vgg, held_out))
    return {"features": name, "before": before, "after": after, "generator": g, "data": data,
            "initial": initial}


def test_stage1_lowers_the_sampling_correctness_loss():
    result = run_stage1(steps=30, model_kwargs=TINY)
    (train_before, _), (train_after, _) = result["before"], result["after"]
    assert train_before > 0.05                          # poses differ: identity flows are not correct
    assert train_after < 0.85 * train_before, result
    # only the flow networks are optimised in stage 1; the rest of G keeps its initial weights
    changed = {k for k, v in result["generator"].state_dict().items() if not torch.equal(v, result["initial"][k])}
    assert changed and all(k.startswith("flow_nets.") for k in changed)


if __name__ == "__main__":
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--full-width", action="store_true", help="the paper-size flow networks (ngf 32, cap 256)")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--out", default=None, help="write the flow figure of the first pair here (png)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kwargs = dict(ngf=4, max_channels=16) if args.full_width else TINY
    start = time.time()
    res = run_stage1(args.steps, kwargs, n_pairs=args.pairs, prefer_vgg=True)
    print(f"features: {res['features']}; flow nets: "
          f"{sum(p.numel() for p in res['generator'].flow_parameters()):,} parameters; "
          f"{args.steps} steps, batch 4, {args.pairs} training pairs, {time.time() - start:.0f} s")
    print(f"sampling correctness (train pairs): before {res['before'][0]:.4f} after {res['after'][0]:.4f}")
    print(f"sampling correctness (held-out pairs): before {res['before'][1]:.4f} after {res['after'][1]:.4f}")
    if args.out:
        from posetransfer.io import save_image
        from posetransfer.viz_flow import flow_figure

        d = res["data"]
        with torch.no_grad():
            out = res["generator"].predict_flows(d["source_image"][:1], d["source_heatmaps"][:1],
                                                 d["target_heatmaps"][:1])
        save_image(args.out, flow_figure(out, d["source_image"][:1], d["target_image"][:1]))
