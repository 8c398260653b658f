"""Named evaluation protocols: which metrics, with which settings, as each paper family computed them.

A protocol only *selects* metrics and settings; every choice ends up in the result JSON so two numbers can
be compared only when their settings agree. Metric names (keys of ``results["metrics"]``):

=================  =================================================================================
``ssim``           PATN-convention SSIM (Gaussian σ=1.5, data_range = generated span); DeepFashion padded
                   with 40 white columns per side under the ``patn``/``pona`` protocols (official script)
``ssim_win51``     GFLA-convention SSIM (uniform 51 window, data_range 1) — GFLA's ``ssim``
``mask_ssim``      PATN SSIM of both images multiplied by the target-pose mask
``l1``             mean absolute error; ``l1_range`` says in which units: PATN's [-1, 1] or GFLA's [0, 1]
``psnr``           PSNR; ``psnr_kind`` says which: GFLA's RGB (data_range 1) or PoNA's Y channel (MAX 255);
                   ``mask_psnr`` on masked images (structure-aware)
``is``             Inception Score, 10 splits (needs the Inception classifier weights); ``mask_is`` masked
``fid``            FID vs all training images; ``fid_kind`` says which network: ``tf`` (TF-Inception pool3,
                   the field standard) or ``gfla`` (torchvision's ImageNet Inception-v3, GFLA's script)
``lpips``          LPIPS v0.1 AlexNet; ``mask_lpips`` masked (GFLA)
``st_lpips``       shift-tolerant LPIPS (stlpips-pytorch, offline) — a different metric, never stored as
                   ``lpips``: it is what runs offline when the AlexNet weights are absent; ``mask_st_lpips``
``ds``             detection score (torchvision COCO person detector, needs weights)
``pckh``           PCKh@0.5 of BlazePose keypoints of generated images vs target annotations
=================  =================================================================================
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..errors import ConfigError

ALL_METRICS: tuple[str, ...] = (
    "ssim", "ssim_win51", "mask_ssim", "l1", "psnr", "mask_psnr", "is", "mask_is", "fid", "lpips",
    "mask_lpips", "st_lpips", "mask_st_lpips", "ds", "pckh",
)
#: Metrics that use the target-pose mask (the official scripts compute them on Market only).
MASK_METRICS = frozenset({"mask_ssim", "mask_psnr", "mask_is", "mask_lpips", "mask_st_lpips"})
#: FID kinds: which network and preprocessing the Fréchet distance is computed on.
FID_KINDS = {
    "tf": "TF-FID: TF inception-2015-12-05 pool3 (2048-d), the field standard (TTUR, pytorch-fid)",
    "gfla": "GFLA's FID (script/metrics.py): torchvision's ImageNet Inception-v3, final average pool (2048-d), "
            "GFLA's bilinear resize and normalisation",
}
IS_ORDERS = {"pairs": "the test pairs' order", "listdir": "os.listdir order of the generated folder (PATN's script)"}
#: GFLA's batch size in FID and LPIPS; its script drops the last partial batch.
GFLA_BATCH = 64


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    metrics_market: tuple[str, ...]
    metrics_fashion: tuple[str, ...]
    #: 40 → pad DeepFashion images with 40 white columns per side for SSIM / IS / DS (PATN ``addBounding``).
    fashion_pad: int = 0
    #: generated images of another size than the ground truth: "bicubic" (resize, recorded) or "reject".
    resize: str = "bicubic"
    #: FID network + preprocessing (a key of FID_KINDS); ``inception_preprocess`` applies to the TF network.
    fid_kind: str = "tf"
    inception_preprocess: str = "tf"
    #: L1 units (a key of pixel.L1_RANGES) and PSNR convention (a key of pixel.PSNR_KINDS).
    l1_range: str = "[-1,1]"
    psnr_kind: str = "rgb"
    #: GFLA's script drops the last partial batch of 64 in FID and LPIPS; True reproduces that.
    drop_last_batch: bool = False
    is_splits: int = 10
    #: order of the images before IS is split into consecutive parts (a key of IS_ORDERS).
    is_order: str = "pairs"
    pckh_alpha: float = 0.5
    pose_visibility: float = 0.5
    notes: tuple[str, ...] = field(default_factory=tuple)

    def metrics_for(self, kind: str) -> tuple[str, ...]:
        return self.metrics_fashion if kind == "fashion" else self.metrics_market

    def as_dict(self) -> dict:
        d = asdict(self)
        d["metrics_market"] = list(self.metrics_market)
        d["metrics_fashion"] = list(self.metrics_fashion)
        d["notes"] = list(self.notes)
        return d


_PATN_NOTES = (
    "official scripts: tool/getMetrics_{market,fashion}.py (SSIM/IS/L1/mask), tool/calPCKH_*.py, ssd_score/",
    "DeepFashion images padded to 256x256 with white before SSIM, IS and DS (addBounding(40))",
    "official generated images were JPEG strips; the official reference was the strip's target panel",
)

PROTOCOLS: dict[str, Protocol] = {
    "patn": Protocol(
        name="patn",
        description="PATN CVPR'19 / APATN TPAMI'21 Table 1: SSIM, IS, mask-SSIM, mask-IS, DS, PCKh (+ L1)",
        metrics_market=("ssim", "is", "mask_ssim", "mask_is", "ds", "pckh", "l1"),
        metrics_fashion=("ssim", "is", "ds", "pckh"),
        fashion_pad=40, resize="reject", notes=_PATN_NOTES,
    ),
    "pona": Protocol(
        name="pona",
        description="PoNA TIP'20 Table I: PATN protocol plus PSNR, without DS",
        metrics_market=("ssim", "is", "mask_ssim", "mask_is", "psnr", "pckh"),
        metrics_fashion=("ssim", "is", "psnr", "pckh"),
        fashion_pad=40, resize="reject",
        psnr_kind="y",
        notes=_PATN_NOTES + ("PSNR as PoNA's tool/Psnr.py: Y channel of PIL's YCbCr conversion, MAX 255, "
                             "mean of the per-image values",),
    ),
    "gfla": Protocol(
        name="gfla",
        description="GFLA CVPR'20 script/metrics.py: FID, LPIPS, mask-LPIPS, SSIM (win 51), ssim_256, PSNR, L1",
        metrics_market=("fid", "lpips", "mask_lpips", "ssim_win51", "ssim", "psnr", "l1"),
        metrics_fashion=("fid", "lpips", "ssim_win51", "ssim", "psnr", "l1"),
        resize="bicubic", fid_kind="gfla", l1_range="[0,1]",
        notes=("FID: GFLA's (torchvision ImageNet Inception-v3, its resize and normalisation); "
               "real set = all training images at the evaluation resolution",
               "l1 = GFLA's compare_l1 on [0,1] (half of PATN's [-1,1] L1)",
               "GFLA drops the last partial batch of 64 in FID/LPIPS: drop_last_batch reproduces it "
               "(default off: every image is used)"),
    ),
    "structure-aware": Protocol(
        name="structure-aware",
        description="Structure-aware AAAI'21 Table 1: FID, LPIPS, mask-LPIPS, SSIM, mask-SSIM, PSNR, mask-PSNR",
        metrics_market=("fid", "lpips", "mask_lpips", "ssim", "mask_ssim", "psnr", "mask_psnr"),
        metrics_fashion=("fid", "lpips", "ssim", "psnr"),
        resize="bicubic", fid_kind="gfla",
        notes=("exact computation unspecified by the paper; GFLA's used (digest §5), including GFLA's FID",),
    ),
    "fast": Protocol(
        name="fast",
        description="the cheap everyday set: SSIM, mask-SSIM, L1, PSNR, FID, LPIPS",
        metrics_market=("ssim", "mask_ssim", "l1", "psnr", "fid", "lpips"),
        metrics_fashion=("ssim", "mask_ssim", "l1", "psnr", "fid", "lpips"),
        resize="bicubic",
    ),
    "all": Protocol(
        name="all", description="every metric (unpadded SSIM)",
        metrics_market=ALL_METRICS, metrics_fashion=ALL_METRICS, resize="bicubic",
    ),
}


def get_protocol(name: str, metrics: list[str] | tuple[str, ...] | None = None,
                 resize: str | None = None, inception_preprocess: str | None = None, *,
                 fid_kind: str | None = None, drop_last_batch: bool | None = None,
                 is_order: str | None = None) -> Protocol:
    """The named protocol, optionally with another metric list / resize policy / FID kind / Inception
    preprocessing / batch dropping / IS order (``None`` keeps the protocol's)."""
    key = name.strip().lower().replace("_", "-")
    if key not in PROTOCOLS:
        raise ConfigError(f"unknown evaluation protocol {name!r} (one of {', '.join(PROTOCOLS)})")
    protocol = PROTOCOLS[key]
    if metrics:
        unknown = [m for m in metrics if m not in ALL_METRICS]
        if unknown:
            raise ConfigError(f"unknown metric {unknown[0]!r} (known: {', '.join(ALL_METRICS)})")
        chosen = tuple(dict.fromkeys(metrics))
        protocol = replace(protocol, metrics_market=chosen, metrics_fashion=chosen)
    choices = {"resize": (resize, ("bicubic", "reject"), "resize policy"),
               "inception_preprocess": (inception_preprocess, ("tf", "pytorch-fid"), "Inception preprocessing"),
               "fid_kind": (fid_kind, tuple(FID_KINDS), "FID kind"),
               "is_order": (is_order, tuple(IS_ORDERS), "IS order")}
    for field_name, (value, allowed, what) in choices.items():
        if value is None:
            continue
        if value not in allowed:
            raise ConfigError(f"unknown {what} {value!r} ({' or '.join(allowed)})")
        protocol = replace(protocol, **{field_name: value})
    if drop_last_batch is not None:
        protocol = replace(protocol, drop_last_batch=bool(drop_last_batch))
    return protocol
