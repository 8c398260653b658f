"""The registry names and builds: a name registered twice is an error, every model records its resolved options."""
from __future__ import annotations

import pytest
from torch import nn

from posetransfer.errors import ModelError
from posetransfer.models import registry
from posetransfer.models.registry import build_discriminator, build_generator, generator_names


def test_registering_a_name_twice_is_an_error():
    assert "patn" in generator_names()
    with pytest.raises(ModelError, match="'patn' is registered twice"):
        registry.register_generator("patn")(lambda: nn.Identity())
    with pytest.raises(ModelError, match="'patn_resnet' is registered twice"):
        registry.register_discriminator("patn_resnet")(lambda input_nc: nn.Identity())


@pytest.mark.parametrize("name", ["patn", "apatn", "pona", "resnet", "flow", "gfla"])
def test_every_generator_records_its_resolved_options(name):
    """A saved file must rebuild the same network whatever the defaults are later: ``model.config`` holds
    every option, not only the ones passed (the part-flow builder used to record ``{'preset': 'market'}`` only)."""
    model = build_generator(name, dataset="market")
    assert model.config["dataset"] == "market" and len(model.config) > 4
    rebuilt = build_generator(name, **model.config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_discriminators_record_their_defaults_too():
    assert build_discriminator("patn_resnet", input_nc=6).config == {
        "input_nc": 6, "ndf": 64, "n_blocks": 3, "norm": "batch", "dropout": 0.5, "output": "features",
        "use_sigmoid": False, "activation": "leaky"}
    assert build_discriminator("spectral_resnet", dataset="market", input_nc=3).config["n_layers"] == 3


def test_a_builder_that_hides_its_options_is_refused(monkeypatch):
    monkeypatch.setitem(registry._GENERATORS, "test_hidden", lambda **options: nn.Conv2d(3, 3, 1))
    with pytest.raises(ModelError, match="does not record the resolved ones"):
        build_generator("test_hidden", width=3)


def test_preset_keyword_is_a_deprecated_alias_of_dataset(caplog):
    """Scripts written before the rename keep working: ``preset=`` builds the same model, with a warning."""
    with caplog.at_level("WARNING"):
        old = build_generator("patn", preset="deepfashion", ngf=8, n_blocks=1)
    assert any("deprecated" in r.getMessage() and "dataset=" in r.getMessage() for r in caplog.records)
    new = build_generator("patn", dataset="deepfashion", ngf=8, n_blocks=1)
    fashion = build_generator("patn", dataset="fashion", ngf=8, n_blocks=1)   # any spelling of the kind
    assert old.config == new.config == fashion.config and new.config["norm"] == "instance"
