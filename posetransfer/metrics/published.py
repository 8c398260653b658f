"""Published numbers of the papers this library implements, copied from their comparison tables.

Values are kept as the strings printed in the papers (so ``1.000`` stays ``1.000``; ``∞`` for the real-data
PSNR; ``-`` where the paper has no value). Sources (text of the papers, see /work/shared/reference):

* ``patn-tpami-t1`` — Z. Zhu, T. Huang, M. Xu, B. Shi, W. Cheng, X. Bai, "Progressive and Aligned Pose
  Attention Transfer for Person Image Generation", IEEE TPAMI 2021, **Table 1** (the CVPR'19 PATN paper's
  Table 1 has the same PATN row). Protocol: PATN's ``getMetrics_*.py`` (padded DeepFashion SSIM/IS), Caffe SSD
  DS, OpenPose PCKh.
* ``pona-tip-t1`` — K. Li, J. Zhang, Y. Liu, Y.-K. Lai, Q. Dai, "PoNA: Pose-guided Non-local Attention for
  Human Pose Transfer", IEEE TIP 29 (2020), **Table I**. PATN protocol plus PSNR (their own YCbCr script).
* ``structure-aware-aaai-t1`` — J. Tang, Y. Yuan, T. Shao, Y. Liu, M. Wang, K. Zhou, "Structure-aware Person
  Image Generation with Pose Decomposition and Semantic Correlation", AAAI 2021, **Table 1**. FID / LPIPS
  from GFLA's script (GFLA's FID: torchvision's ImageNet Inception-v3, not TF-FID); SSIM / PSNR computation
  unspecified.
"""
from __future__ import annotations

from dataclasses import dataclass

Columns = tuple[tuple[str, str], ...]  # (dataset kind, metric key)


@dataclass(frozen=True)
class PublishedTable:
    key: str
    citation: str
    columns: Columns
    rows: tuple[tuple[str, tuple[str, ...]], ...]  # (method, values in column order)
    #: the FID kind (protocols.FID_KINDS) behind the published FID column, if the table has one
    fid_kind: str | None = None

    def value(self, method: str, kind: str, metric: str) -> str | None:
        for name, values in self.rows:
            if name == method:
                for (k, m), v in zip(self.columns, values):
                    if k == kind and m == metric:
                        return v
        return None


PATN_COLUMNS: Columns = (
    ("market", "ssim"), ("market", "is"), ("market", "mask_ssim"), ("market", "mask_is"), ("market", "ds"),
    ("market", "pckh"), ("fashion", "ssim"), ("fashion", "is"), ("fashion", "ds"), ("fashion", "pckh"),
)
PONA_COLUMNS: Columns = (
    ("market", "ssim"), ("market", "is"), ("market", "mask_ssim"), ("market", "mask_is"), ("market", "psnr"),
    ("market", "pckh"), ("fashion", "ssim"), ("fashion", "is"), ("fashion", "psnr"), ("fashion", "pckh"),
)
STRUCTURE_AWARE_COLUMNS: Columns = (
    ("market", "fid"), ("market", "lpips"), ("market", "mask_lpips"), ("market", "ssim"), ("market", "mask_ssim"),
    ("market", "psnr"), ("market", "mask_psnr"), ("fashion", "fid"), ("fashion", "lpips"), ("fashion", "ssim"),
    ("fashion", "psnr"),
)

PATN_TPAMI_TABLE1 = PublishedTable(
    key="patn-tpami-t1",
    citation="Zhu et al., Progressive and Aligned Pose Attention Transfer, IEEE TPAMI 2021, Table 1",
    columns=PATN_COLUMNS,
    rows=(
        ("Ma et al. (PG2)", ("0.253", "3.460", "0.792", "3.435", "-", "-", "0.762", "3.090", "-", "-")),
        ("Ma et al. [6]", ("0.099", "3.483", "0.614", "3.491", "-", "-", "0.614", "3.228", "-", "-")),
        ("Siarohin et al. (Def-GAN)", ("0.290", "3.185", "0.805", "3.502", "0.72", "-", "0.756", "3.439", "0.96", "-")),
        ("Ma et al.* (PG2)", ("0.261", "3.495", "0.782", "3.367", "0.39", "0.73", "0.773", "3.163", "0.951", "0.89")),
        ("Siarohin et al.* (Def-GAN)", ("0.291", "3.230", "0.807", "3.502", "0.72", "0.94", "0.760", "3.362", "0.967",
                                        "0.94")),
        ("Esser et al.* (VUnet)", ("0.266", "2.965", "0.793", "3.549", "0.72", "0.92", "0.763", "3.440", "0.972",
                                   "0.93")),
        ("Tang et al.* (XingGAN)", ("0.313", "3.506", "0.816", "3.872", "0.57", "0.93", "0.778", "3.476", "0.962",
                                    "0.95")),
        ("PATN", ("0.311", "3.323", "0.811", "3.773", "0.74", "0.94", "0.773", "3.209", "0.976", "0.96")),
        ("APATN", ("0.326", "3.426", "0.817", "3.801", "0.66", "0.91", "0.780", "3.435", "0.971", "0.96")),
        ("Real Data", ("1.000", "3.890", "1.000", "3.706", "0.74", "1.00", "1.000", "4.053", "0.968", "1.00")),
    ),
)

PONA_TIP_TABLE1 = PublishedTable(
    key="pona-tip-t1",
    citation="Li, Zhang et al., PoNA: Pose-guided Non-local Attention, IEEE TIP 2020, Table I",
    columns=PONA_COLUMNS,
    rows=(
        ("PG2", ("0.261", "3.495", "0.782", "3.367", "28.135", "0.73", "0.773", "3.163", "30.785", "0.89")),
        ("VUnet", ("0.266", "2.965", "0.793", "3.549", "28.071", "0.92", "0.763", "3.440", "30.856", "0.93")),
        ("Deform", ("0.291", "3.230", "0.807", "3.502", "28.227", "0.94", "0.760", "3.362", "31.022", "0.94")),
        ("PATN", ("0.311", "3.323", "0.811", "3.773", "28.228", "0.94", "0.773", "3.209", "31.160", "0.96")),
        ("LWG", ("-", "-", "-", "-", "-", "-", "0.696", "3.478", "28.396", "0.80")),
        ("PoNA (3 blocks)", ("0.315", "3.487", "0.814", "3.867", "28.257", "0.94", "0.775", "3.338", "31.382", "0.95")),
        ("Real Data", ("1.000", "3.890", "1.000", "3.706", "∞", "1.00", "1.000", "4.053", "∞", "1.00")),
    ),
)

STRUCTURE_AWARE_TABLE1 = PublishedTable(
    key="structure-aware-aaai-t1",
    citation="Tang et al., Structure-aware Person Image Generation with Pose Decomposition and Semantic "
             "Correlation, AAAI 2021, Table 1",
    columns=STRUCTURE_AWARE_COLUMNS,
    rows=(
        ("VU-Net", ("24.386", "0.3211", "0.1747", "0.242", "0.801", "13.664", "19.102", "13.836", "0.2637", "0.745",
                    "16.255")),
        ("Def-GAN", ("29.035", "0.2994", "0.1496", "0.276", "0.793", "14.391", "20.425", "26.283", "0.2330", "0.747",
                     "17.524")),
        ("PATN", ("24.917", "0.3196", "0.1590", "0.282", "0.799", "14.241", "20.482", "20.399", "0.2533", "0.671",
                  "16.621")),
        ("DIST / GFLA", ("21.539", "0.2817", "0.1482", "0.281", "0.796", "14.337", "20.421", "7.629", "0.2341",
                         "0.714", "17.445")),
        ("Structure-aware (ours in paper)", ("24.254", "0.2796", "0.1464", "0.290", "0.802", "14.526", "20.726",
                                             "8.755", "0.1815", "0.726", "18.030")),
    ),
    fid_kind="gfla",  # FID / LPIPS from GFLA's script/metrics.py (torchvision ImageNet Inception-v3)
)

#: Table layout name → the published table whose columns it reproduces.
LAYOUTS: dict[str, PublishedTable] = {
    "patn": PATN_TPAMI_TABLE1,
    "pona": PONA_TIP_TABLE1,
    "structure-aware": STRUCTURE_AWARE_TABLE1,
}

#: Which layout suits the results of each evaluation protocol.
LAYOUT_FOR_PROTOCOL: dict[str, str] = {
    "patn": "patn", "pona": "pona", "gfla": "structure-aware", "structure-aware": "structure-aware",
    "fast": "structure-aware", "all": "structure-aware",
}
