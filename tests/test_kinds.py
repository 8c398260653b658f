"""The dataset kinds and the one size parser: every spelling, every refusal as a typed one-line error."""
from __future__ import annotations

import pytest

from posetransfer.errors import ConfigError, DataError, ModelError
from posetransfer.kinds import FASHION, MARKET, find_kind, kind_of_filename, parse_kind, parse_size


@pytest.mark.parametrize("text, kind", [("market", MARKET), ("Market-1501", MARKET), ("market1501", MARKET),
                                        ("fashion", FASHION), ("DeepFashion", FASHION), (" fasion ", FASHION),
                                        ("deep-fashion", FASHION)])
def test_every_spelling_names_one_kind(text, kind):
    assert parse_kind(text) is kind and find_kind(text) is kind


def test_what_each_kind_knows():
    assert (MARKET.size, FASHION.size, FASHION.raw_size) == ((128, 64), (256, 176), (256, 256))
    assert (MARKET.prefix, FASHION.prefix) == ("market", "fasion-resize")     # the official typo is written
    assert (MARKET.norm, FASHION.norm) == ("batch", "instance")
    assert (FASHION.name, FASHION.dataset) == ("fashion", "deepfashion")
    assert kind_of_filename("fasion-annotation-test.csv") is FASHION and kind_of_filename("x.csv") is None


def test_unknown_kind_is_a_typed_error_naming_it():
    with pytest.raises(DataError, match="unknown dataset kind 'cityscapes' \\(market or fashion\\)"):
        parse_kind("cityscapes")
    with pytest.raises(ModelError, match="unknown synthetic size"):
        parse_kind(3, what="synthetic size", error=ModelError)


@pytest.mark.parametrize("value, size", [("market", (128, 64)), ("deepfashion", (256, 176)), ("128x64", (128, 64)),
                                         ("256×176", (256, 176)), ("512,352", (512, 352)), ((64, 32), (64, 32)),
                                         ([128.0, 64], (128, 64)), (None, None)])
def test_sizes(value, size):
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["big", "128x", "x64", [128], [128, 64, 3], [True, 64], [128.5, 64], [0, 64],
                                   [float("nan"), 64], 12])
def test_bad_sizes_are_one_line_errors(value):
    with pytest.raises(ConfigError) as info:
        parse_size(value)
    assert "\n" not in str(info.value) and str(info.value).startswith("size ")


def test_size_constraints_and_error_types():
    with pytest.raises(DataError, match="dataset.json: size .* at least 32x16"):
        parse_size([16, 16], where="dataset.json: size", error=DataError, minimum=(32, 16))
    with pytest.raises(ConfigError, match="multiples of 4"):
        parse_size("130x64", multiple=4)
    assert parse_size("market", multiple=4) == (128, 64)
