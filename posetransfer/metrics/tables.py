"""Markdown comparison tables: the papers' published rows next to our measured results.

Each layout reproduces the columns of one paper's Table 1 (see :mod:`.published`). Published rows are marked
``published`` with a numbered citation; measured rows are marked ``measured`` and footnoted with the protocol,
resolution, weights and anything that makes them not directly comparable (another FID network than the
published column's, BlazePose PCKh, torchvision DS detector, missing images). The offline shift-tolerant
LPIPS is stored as ``st_lpips`` and never fills an LPIPS column: it is listed in the row's footnote.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import DataError
from ..io import read_json
from ..kinds import KINDS
from .protocols import FID_KINDS
from .published import LAYOUT_FOR_PROTOCOL, LAYOUTS, PublishedTable

HEADERS = {
    "ssim": "SSIM↑", "mask_ssim": "mask-SSIM↑", "is": "IS↑", "mask_is": "mask-IS↑", "ds": "DS↑", "pckh": "PCKh↑",
    "psnr": "PSNR↑", "mask_psnr": "mask-PSNR↑", "fid": "FID↓", "lpips": "LPIPS↓", "mask_lpips": "mask-LPIPS↓",
    "l1": "L1↓", "ssim_win51": "SSIM(w51)↑", "st_lpips": "ST-LPIPS↓", "mask_st_lpips": "mask-ST-LPIPS↓",
}
FORMATS = {"lpips": "{:.4f}", "mask_lpips": "{:.4f}", "l1": "{:.4f}", "st_lpips": "{:.4f}",
           "mask_st_lpips": "{:.4f}"}
KIND_LABEL = {kind.name: kind.label for kind in KINDS}
FALLBACK_MARK = "†"
FID_MARK = "‡"
#: metrics without a published counterpart, listed in the measured row's footnote
FOOTNOTE_METRICS = ("st_lpips", "mask_st_lpips")


def _is_fallback(result: dict, metric: str) -> bool:
    """True when ``metric`` was computed with a substitute network: the shift-tolerant LPIPS stored as ``lpips``
    by results files written before it got its own key."""
    source = result.get("weights", {}).get(metric)
    return (metric in ("lpips", "mask_lpips") and isinstance(source, dict)
            and not str(source.get("network", "")).startswith("LPIPS"))


def fid_kind_of(result: dict) -> str | None:
    """The FID kind of a results file; files written before kinds existed computed TF-FID."""
    if "fid" not in result.get("metrics", {}):
        return None
    return result.get("settings", {}).get("fid", {}).get("kind", "tf")


def _fid_differs(result: dict, metric: str, table: PublishedTable) -> bool:
    return metric == "fid" and table.fid_kind is not None and fid_kind_of(result) not in (None, table.fid_kind)


def read_results(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Load results JSON files written by :func:`posetransfer.evaluation.evaluate`."""
    results = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise DataError(f"{path}: results file not found")
        doc = read_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict) or "dataset" not in doc:
            raise DataError(f"{path}: not a posetransfer eval results file (no 'metrics'/'dataset')")
        doc.setdefault("_file", str(path))
        results.append(doc)
    return results


def _format(metric: str, value) -> str:
    if value is None:
        return "n/a"
    return FORMATS.get(metric, "{:.3f}").format(float(value))


def _measured_label(result: dict) -> str:
    label = result.get("label") or Path(result.get("generated", {}).get("dir", "run")).name or "run"
    return f"ours: {label}"


def _measured_notes(result: dict) -> str:
    ds = result.get("dataset", {})
    gen = result.get("generated", {})
    prot = result.get("protocol", {})
    parts = [f"protocol {prot.get('name', '?')}",
             f"{ds.get('kind', '?')} {'x'.join(str(v) for v in ds.get('resolution', []))}",
             f"{gen.get('matched', '?')} images"]
    if gen.get("missing"):
        parts.append(f"{gen['missing']} test pairs missing")
    if gen.get("resized"):
        parts.append(f"{gen['resized']} resized ({gen.get('resize_method')})")
    for metric, source in sorted(result.get("weights", {}).items()):
        if isinstance(source, dict) and source.get("network"):
            parts.append(f"{metric}: {source['network']} [{source.get('kind')}]")
    kind = fid_kind_of(result)
    if kind is not None:
        parts.append(f"FID kind {kind}")
    metrics = result.get("metrics", {})
    for metric in FOOTNOTE_METRICS:
        if metrics.get(metric) is not None:
            parts.append(f"{metric} {_format(metric, metrics[metric])} (shift-tolerant LPIPS, no published counterpart)")
    for metric, reason in sorted(result.get("unavailable", {}).items()):
        parts.append(f"{metric} n/a: {reason}")
    return "; ".join(parts)


def render_table(results: list[dict], layout: str | None = None) -> str:
    """One Markdown table (published rows, then measured rows) plus footnotes."""
    if layout is None:
        protocols = [r.get("protocol", {}).get("name") for r in results]
        layout = LAYOUT_FOR_PROTOCOL.get(protocols[0], "patn") if protocols else "patn"
    if layout not in LAYOUTS:
        raise DataError(f"unknown table layout {layout!r} (one of {', '.join(LAYOUTS)})")
    table: PublishedTable = LAYOUTS[layout]
    header = ["Model", "Row"] + [f"{KIND_LABEL[k]} {HEADERS[m]}" for k, m in table.columns]
    lines = [f"Layout of {table.citation} [1]. M = Market-1501, DF = DeepFashion.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, values in table.rows:
        lines.append("| " + " | ".join([method, "published [1]", *values]) + " |")
    notes = [f"[1] {table.citation} (copied from the paper; see posetransfer/metrics/published.py)."]
    for i, result in enumerate(results, start=2):
        kind = result.get("dataset", {}).get("kind")
        metrics = result.get("metrics", {})
        cells = []
        for k, m in table.columns:
            if k != kind or m not in metrics:
                cells.append("–")
            else:
                mark = (FALLBACK_MARK if _is_fallback(result, m) else "") + (
                    FID_MARK if _fid_differs(result, m, table) else "")
                cells.append(_format(m, metrics[m]) + mark)
        lines.append("| " + " | ".join([_measured_label(result), f"**measured** [{i}]", *cells]) + " |")
        notes.append(f"[{i}] {_measured_notes(result)}.")
    if any(_is_fallback(r, m) for r in results for m in r.get("metrics", {})):
        notes.append(f"{FALLBACK_MARK} computed with the offline shift-tolerant LPIPS (stlpips-pytorch), not the "
                     f"published LPIPS v0.1 AlexNet: not comparable with published LPIPS values.")
    if any(_fid_differs(r, "fid", table) and r.get("metrics", {}).get("fid") is not None for r in results):
        notes.append(f"{FID_MARK} another FID network than the published column's ({table.fid_kind}: "
                     f"{FID_KINDS[table.fid_kind]}): not comparable with the published FID values.")
    lines += ["", "Published and measured rows use different tools (see the notes): compare measured rows "
                  "with each other; published numbers are for orientation.", ""]
    return "\n".join(lines + notes) + "\n"


def render_tables(results: list[dict], layout: str | None = None) -> str:
    """All layouts needed: the requested one, else one per protocol family present (or all when no results)."""
    if layout is not None:
        return render_table(results, layout)
    if not results:
        return "\n".join(f"## {name}\n\n" + render_table([], name) for name in LAYOUTS)
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(LAYOUT_FOR_PROTOCOL.get(r.get("protocol", {}).get("name"), "patn"), []).append(r)
    if len(groups) == 1:
        name, rs = next(iter(groups.items()))
        return render_table(rs, name)
    return "\n".join(f"## {name}\n\n" + render_table(rs, name) for name, rs in groups.items())
