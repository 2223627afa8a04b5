"""Encoder = torchvision ResNet backbone (global-pooled features) + MLP projection head."""
import torchvision
from torch import nn


class Encoder(nn.Module):
    """``features(x)`` is the backbone's pooled output (what evaluation uses);
    ``forward(x)`` adds the MoCo v2 head Linear(d, hidden)-ReLU-Linear(hidden, out)."""

    def __init__(self, arch, proj_hidden, proj_dim):
        super().__init__()
        # one of config.ARCHITECTURES; random init: nothing is downloaded
        self.backbone = getattr(torchvision.models, arch)(weights=None)
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
