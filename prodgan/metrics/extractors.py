"""Feature extractors, registered with torch-fidelity by name (never branched on).

`inception-v3-prodgan` is torch-fidelity's InceptionV3 made about twice as fast on a CPU while
staying exact fp32: batch norm folded into the convolutions, channels_last (oneDNN) layout, and
for grayscale inputs (all three channels equal) the resize done once instead of three times and
the first convolution run on one channel with its input-channel weights summed. The features
differ from stock only by float summation order (~1e-5); tests hold it to that.

`prodgan-evaluator` wraps the domain classifier (prodgan.models.evaluator) so IS and conditional
accuracy use torch-fidelity's own pipeline: it maps uint8 3xHxW back to the classifier's input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d, FeatureExtractorInceptionV3
from torch_fidelity.helpers import vassert
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

# InceptionV3 after the stem conv, in torch-fidelity's forward order, up to the 2048-d pool.
_TRUNK = (
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "MaxPool_1",
    "Conv2d_3b_1x1",
    "Conv2d_4a_3x3",
    "MaxPool_2",
    "Mixed_5b",
    "Mixed_5c",
    "Mixed_5d",
    "Mixed_6a",
    "Mixed_6b",
    "Mixed_6c",
    "Mixed_6d",
    "Mixed_6e",
    "Mixed_7a",
    "Mixed_7b",
    "Mixed_7c",
    "AvgPool",
)


def _fold(block: BasicConv2d) -> None:
    """conv -> BN(eval) becomes one conv with bias (exact up to rounding)."""
    conv, bn = block.conv, block.bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True
    )
    fused.weight.data = conv.weight.data * scale[:, None, None, None]
    fused.bias.data = bn.bias.data - bn.running_mean.data * scale
    block.conv, block.bn = fused, nn.Identity()


class FastInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's InceptionV3 weights and resize, folded and laid out for oneDNN."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list, **kwargs)
        vassert(
            self.feature_extractor_internal_dtype == torch.float32,
            "inception-v3-prodgan is fp32 only",
        )
        for block in self.modules():
            if isinstance(block, BasicConv2d):
                _fold(block)
        stem = self.Conv2d_1a_3x3.conv
        self.stem_gray = nn.Conv2d(
            1, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=True
        )
        self.stem_gray.weight.data = stem.weight.data.sum(dim=1, keepdim=True)
        self.stem_gray.bias.data = stem.bias.data.clone()
        self.to(memory_format=torch.channels_last).requires_grad_(False).eval()

    @staticmethod
    def get_provided_features_list():
        return "2048", "logits_unbiased", "logits"

    def forward(self, x):
        vassert(
            torch.is_tensor(x) and x.dtype == torch.uint8,
            "Expecting image as torch.Tensor with dtype=torch.uint8",
        )
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {x.shape}")
        gray = bool((x[:, 1:] == x[:, :1]).all())
        x = x[:, :1] if gray else x
        x = interpolate_bilinear_2d_like_tensorflow1x(
            x.float(), size=(self.INPUT_IMAGE_SIZE,) * 2, align_corners=False
        )
        x = ((x - 128) / 128).contiguous(memory_format=torch.channels_last)
        x = F.relu(self.stem_gray(x)) if gray else self.Conv2d_1a_3x3(x)
        for name in _TRUNK:
            x = getattr(self, name)(x)
        features = {"2048": torch.flatten(x, 1)}
        if "logits_unbiased" in self.features_list or "logits" in self.features_list:
            features["logits_unbiased"] = features["2048"].mm(self.fc.weight.T)
            features["logits"] = features["logits_unbiased"] + self.fc.bias.unsqueeze(0)
        return tuple(features[k] for k in self.features_list)


class EvaluatorExtractor(FeatureExtractorBase):
    """The domain classifier as a torch-fidelity feature extractor.

    Features: `logits` (for IS) and `penultimate`.

    torch-fidelity instantiates extractors by class, so the classifier is handed over through
    the `feature_extractor_weights_path` kwarg as an in-memory module (see `evaluator_kwargs`).
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        vassert(
            isinstance(feature_extractor_weights_path, nn.Module),
            "prodgan-evaluator needs the classifier module as feature_extractor_weights_path",
        )
        self.classifier = feature_extractor_weights_path.eval().requires_grad_(False)

    @staticmethod
    def get_provided_features_list():
        return "logits", "penultimate"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "penultimate", "kid": "penultimate", "prc": "penultimate"}[
            metric
        ]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 28, 28, dtype=torch.uint8)

    def forward(self, x):
        vassert(
            torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4,
            "Expecting uint8 Bx3xHxW",
        )
        channels = self.classifier.channels
        x = x[:, :channels].float() / 127.5 - 1
        penultimate = self.classifier.embed(x)
        features = {"penultimate": penultimate, "logits": self.classifier.head(penultimate)}
        return tuple(features[k].float() for k in self.features_list)


EXTRACTORS = {"inception-v3-prodgan": FastInceptionV3, "prodgan-evaluator": EvaluatorExtractor}


def register_extractors() -> None:
    """Idempotent: torch-fidelity refuses a second registration of a name."""
    for name, cls in EXTRACTORS.items():
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            register_feature_extractor(name, cls)
