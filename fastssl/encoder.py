"""Encoder = torchvision ResNet backbone (global-pooled features) + MLP projection head."""
import torchvision
from torch import nn

ARCHS = {'resnet18': torchvision.models.resnet18, 'resnet50': torchvision.models.resnet50}


class Encoder(nn.Module):
    """``features(x)`` is the backbone's pooled output (what evaluation uses);
    ``forward(x)`` adds the MoCo v2 head Linear(d, hidden)-ReLU-Linear(hidden, out)."""

    def __init__(self, arch='resnet50', proj_hidden=0, proj_dim=128):
        super().__init__()
        self.backbone = ARCHS[arch](weights=None)  # random init: nothing is downloaded
        feature_dim = self.backbone.fc.in_features
        self.backbone.fc = nn.Identity()
        hidden = proj_hidden or feature_dim
        self.head = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, proj_dim))
        self.feature_dim = feature_dim

    def features(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.head(self.backbone(x))
