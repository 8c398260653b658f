"""Flow-field / visibility figure and the relation-map figure (paper Fig. 7) of the part-flow model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer.errors import ModelError
from posetransfer.models.base import GeneratorOutput
from posetransfer.models.registry import build_generator
from posetransfer.viz_flow import cell_box, flow_figure, flow_to_color, relation_figure

TINY = dict(ngf=4, max_channels=16, flow_ngf=4, flow_max_channels=8)


def test_flow_colours():
    zero = flow_to_color(torch.zeros(2, 4, 4))
    assert zero.dtype == np.uint8 and np.all(zero == 255)               # no motion = white
    flow = torch.zeros(2, 1, 4)
    flow[0, 0, 0], flow[0, 0, 1], flow[1, 0, 2], flow[0, 0, 3] = 1.0, -1.0, 1.0, 0.5
    rgb = flow_to_color(flow).astype(int)[0]
    assert not np.array_equal(rgb[0], rgb[1]) and not np.array_equal(rgb[0], rgb[2])
    assert rgb[0].min() == 0 and rgb[3].min() > 100                     # half the length → paler
    assert np.array_equal(rgb[0], flow_to_color(flow * 3)[0, 0])        # normalised by the maximum
    with pytest.raises(ModelError, match="2×h×w"):
        flow_to_color(torch.zeros(3, 4, 4))


@pytest.fixture(scope="module")
def output():
    torch.manual_seed(0)
    g = build_generator("flow", dataset="market", **TINY).eval()
    image = torch.rand(1, 3, 128, 64) * 2 - 1
    maps = torch.rand(1, 18, 128, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.no_grad():
        out = g(image, maps, maps.flip(-1), return_extras=True)
    torch.set_num_threads(threads)
    out.flows[0][:, 0] += 2.0                     # make one flow visible
    return image, out


def test_flow_figure(output):
    image, out = output
    fig = flow_figure(out, source_image=image, target_image=image)
    assert fig.dtype == np.uint8 and fig.ndim == 3 and fig.shape[2] == 3
    # 2 rows × (source + 3 flows + warped) panels of 64 px at 2× with 2 px gaps, labels on top
    assert fig.shape[1] == 5 * 128 + 4 * 2
    assert fig.shape[0] > 2 * 256
    coloured = fig[:, 130:258]                    # the head flow column
    assert (coloured.astype(int).max(axis=2) - coloured.min(axis=2) > 100).any()
    plain = flow_figure(out, labels=False, scale=1)
    assert plain.shape == (128 * 2 + 2, 5 * 64 + 4 * 2, 3)
    with pytest.raises(ModelError, match="no flow fields"):
        flow_figure(GeneratorOutput(image=image))


def test_relation_figure(output):
    image, out = output
    fig = relation_figure(out, labels=False, scale=1, cells=[(2, 3)])
    assert fig.shape == (128, 2 * 64 + 2, 3)
    panel = fig[:, 66:]
    y0, x0, y1, x1 = cell_box((2, 3), 6, (128, 64))
    red = (panel[..., 0] == 255) & (panel[..., 1] == 0) & (panel[..., 2] == 0)
    assert red[y0, x0:x1 + 1].all() and red[y1, x0:x1 + 1].all()
    assert red.sum() == 2 * (x1 - x0 + 1) + 2 * (y1 - y0 - 1)           # only the frame is pure red
    with pytest.raises(ModelError, match="outside"):
        relation_figure(out, cells=[(6, 0)])
    with pytest.raises(ModelError, match="no 5x5 relation map.*available: 4, 6"):
        relation_figure(out, grid=5)
    no_pnb = GeneratorOutput(image=image, flows=out.flows, extras={})
    with pytest.raises(ModelError, match="pyramid non-local"):
        relation_figure(no_pnb)


def test_cell_boxes_tile_the_image():
    covered = np.zeros((128, 64), dtype=int)
    for r in range(6):
        for c in range(6):
            y0, x0, y1, x1 = cell_box((r, c), 6, (128, 64))
            covered[y0:y1 + 1, x0:x1 + 1] += 1
    assert covered.min() >= 1 and covered.max() <= 4
