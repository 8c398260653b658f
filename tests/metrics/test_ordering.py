"""Which images GFLA's batching keeps, in which order; PATN's os.listdir order."""
from __future__ import annotations

import glob
import os

from posetransfer.metrics.ordering import (gfla_fid_kept, gfla_glob_order, gfla_lpips_kept, gfla_used_count,
                                           listdir_positions)


def gfla_batches_used(d0: int, batch_size: int = 64) -> int:
    """GFLA ``get_activations`` / ``calculate_from_disk``: the batch shrinks to the data when it is bigger,
    then only ``d0 // batch_size`` whole batches run."""
    if batch_size > d0:
        batch_size = d0
    return (d0 // batch_size) * batch_size


def test_used_count_is_gflas_whole_batches():
    for n in (1, 2, 63, 64, 65, 127, 128, 160, 8570, 12000):
        assert gfla_used_count(n) == gfla_batches_used(n), n
    assert gfla_used_count(160) == 128 and gfla_used_count(8570) == 8512 and gfla_used_count(12000) == 11968


def test_fid_order_is_glob_jpg_then_png_and_lpips_order_is_sorted(tmp_path):
    names = [f"{c}{i}.{ext}" for i, (c, ext) in enumerate(zip("qbxafmzc", ["png", "jpg"] * 4))] + ["n.jpeg"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    files = [tmp_path / n for n in sorted(names)]
    expected = [os.path.basename(p) for p in glob.glob(str(tmp_path / "*.jpg")) + glob.glob(str(tmp_path / "*.png"))]
    ordered = [p.name for p in gfla_glob_order(files)]
    assert ordered[:-1] == expected and ordered[-1] == "n.jpeg"
    assert [p.name for p in gfla_fid_kept(files, batch=4)] == expected[:8]
    assert [p.name for p in gfla_fid_kept(files[:3], batch=4)] == [p.name for p in gfla_glob_order(files[:3])]
    assert [p.name for p in gfla_lpips_kept(files, batch=4)] == sorted(names)[:8]
    positions = listdir_positions(tmp_path)
    assert sorted(positions, key=positions.get) == os.listdir(tmp_path)
