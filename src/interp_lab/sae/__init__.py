"""Sparse autoencoders trained by interp-lab: architectures (one file each), data streaming from a store,
training, checkpoints in the SAE Lens on-disk layout."""
