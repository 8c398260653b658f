"""Issue 20, item 1: keypoints far outside the photo must not make ``serve`` / ``transfer`` allocate a huge crop.

Before the fix ``crop_image`` padded the whole crop box built from ``source_keypoints``: a 100×200 photo with
joints at (15000, 7500) made the server pad the photo to 19500×9750 pixels (and a span of 500 000 asked for
terabytes). Now the keypoints are bounded by the photo plus a margin and the crop box by a pixel budget,
*before* anything is allocated: 400 from the web demo, exit 2 (or a reported file) from ``transfer``.
The peak memory of the request is measured with ``tracemalloc`` (numpy reports its buffers to it).
"""
from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pytest

from posetransfer.apps import crop as C
from posetransfer.cli import main
from posetransfer.errors import DataError
from posetransfer.io import save_image

#: a photo 200 px high and 100 px wide, a person inside it
PHOTO_SIZE = (200, 100)
INSIDE = np.array([[20 + 9 * j, 30 + (j % 5) * 8] for j in range(18)])
#: the issue's repro: 9 joints at the origin and 9 at (15000, 7500)
BOMB = [[0, 0]] * 9 + [[15000, 7500]] * 9
#: far-away joints cost nothing once refused; peak memory of a refused request stays below this
PEAK_LIMIT_MB = 40


def _jpeg(shape=PHOTO_SIZE) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    from posetransfer.models.registry import build_generator
    from posetransfer.modelfile import InputContract, save_generator

    path = tmp_path_factory.mktemp("gen") / "patn_tiny.safetensors"
    save_generator(build_generator("patn", ngf=8, n_blocks=1, dropout=0.0), path, InputContract(size=(128, 64)))
    return path


@pytest.fixture(scope="module")
def client(tiny_generator):
    from fastapi.testclient import TestClient

    from posetransfer.apps import serve as S
    from posetransfer.inference import load_model

    return TestClient(S.create_app(load_model(tiny_generator)), raise_server_exceptions=False)


def _peak_mb(call):
    tracemalloc.start()
    try:
        result = call()
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("source", [BOMB, [[0, 0]] * 9 + [[500000, 250000]] * 9, [[0, 0]] * 9 + [[1, 20000]] * 9],
                         ids=["issue-repro-15000", "span-500000", "wide-20000"])
def test_serve_refuses_far_away_source_keypoints_without_allocating(client, source, tally):
    form = {"target_keypoints": json.dumps((INSIDE * [0.6, 0.6]).astype(int).tolist()),
            "source_keypoints": json.dumps(source)}
    r, peak = _peak_mb(lambda: client.post("/api/transfer", data=form,
                                           files={"image": ("p.jpg", _jpeg(), "image/jpeg")}))
    tally("web demo: source keypoints far outside the photo (memory bomb)", tried=1,
          refused_400=int(r.status_code == 400), max_peak_mb=round(peak, 1))
    assert r.status_code == 400, (r.status_code, r.text[:300])
    message = r.json()["error"]
    assert "source_keypoints" in message or "p.jpg" in message, message
    assert "outside" in message and "\n" not in message, message
    assert peak < PEAK_LIMIT_MB, f"the refused request allocated {peak:.0f} MB"
    assert client.get("/api/info").status_code == 200


def test_serve_still_accepts_a_person_partly_outside_the_photo(client):
    """Joints a little beyond the photo (a cut-off person) are legitimate and still processed."""
    near = INSIDE.copy()
    near[10] = (230, 60)          # an ankle 30 px below a 200 px photo
    form = {"target_keypoints": json.dumps((INSIDE * [0.6, 0.6]).astype(int).tolist()),
            "source_keypoints": json.dumps(near.tolist())}
    r = client.post("/api/transfer", data=form, files={"image": ("p.jpg", _jpeg(), "image/jpeg")})
    assert r.status_code == 200, r.text[:300]


def test_transfer_cli_refuses_far_away_source_keypoints(tiny_generator, tmp_path, capsys, tally):
    photo = tmp_path / "person.jpg"
    save_image(photo, np.random.default_rng(1).integers(0, 255, (*PHOTO_SIZE, 3), dtype=np.uint8))
    pose = tmp_path / "person.json"
    pose.write_text(json.dumps({"keypoints": BOMB}))      # no "size": the reader cannot drop far joints
    target = tmp_path / "target.json"
    target.write_text(json.dumps({"keypoints": INSIDE.tolist(), "size": list(PHOTO_SIZE)}))
    argv = ["transfer", "--checkpoint", str(tiny_generator), "--source", str(photo), "--source-pose", str(pose),
            "--target", str(target), "--out", str(tmp_path / "out.png")]
    code, peak = _peak_mb(lambda: main(argv))
    err = capsys.readouterr().err.strip()
    tally("transfer: source keypoints far outside the photo (memory bomb)", tried=1, exit_2=int(code == 2),
          max_peak_mb=round(peak, 1))
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and str(pose) in err and "outside" in err, err
    assert peak < PEAK_LIMIT_MB, f"the refused transfer allocated {peak:.0f} MB"
    assert not (tmp_path / "out.png").exists()


def test_crop_image_bounds_the_box_before_allocating():
    """The library function itself refuses a box beyond the pixel budget (any caller is protected)."""
    photo = np.zeros((*PHOTO_SIZE, 3), dtype=np.uint8)
    box = C.CropBox(-100000, -50000, 400000, 200000)
    (_, peak) = _peak_mb(lambda: pytest.raises(DataError, C.crop_image, photo, box, (128, 64), where="x.jpg"))
    assert peak < PEAK_LIMIT_MB
    with pytest.raises(DataError, match="x.jpg"):
        C.crop_image(photo, box, (128, 64), where="x.jpg")


@pytest.mark.parametrize("pad", ["edge", "grey"])
def test_crop_of_a_box_partly_outside_is_unchanged(pad):
    """The crop now fills only the box: the same pixels as padding the whole photo first."""
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)
    box = C.CropBox(-7, 25, 64, 32)
    widths = ((7, 64 - 7 - 50), (0, 25 + 32 - 40), (0, 0))
    padded = np.pad(photo, widths, mode="edge") if pad == "edge" else \
        np.pad(photo, widths, mode="constant", constant_values=C.GREY)
    expected = padded[0:64, 25:57]
    assert np.array_equal(C.crop_image(photo, box, (64, 32), pad), expected)
