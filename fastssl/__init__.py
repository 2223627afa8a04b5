"""fastssl: MoCo v2 and video variants, trained from FFCV pair loaders."""
