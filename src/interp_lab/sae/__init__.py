"""Sparse autoencoders and transcoders trained by interp-lab: architectures (one file each, registered by
name in ``base.ARCHITECTURES``), data streaming from a store, training with resume, evaluation,
checkpoints in the SAE Lens on-disk layout (and loading of SAE Lens and sparsify checkpoints).

Nothing here imports torch until a module that needs it is imported (``config`` does not).
"""
