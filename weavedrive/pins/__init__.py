"""Pinned manifests of the models Transformers-AO supports (names, paths, sizes, sha256)."""
