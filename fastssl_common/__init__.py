"""Helpers shared by writers/, loaders/ and fastssl/ (none of which may import each other
upstream)."""
