"""Metrics as files (edm2's split): ``ref`` statistics once per dataset split, ``calc`` per sample set.

inception (FID network) → backends (clean-fid / torch-fidelity features, FID/KID/PR) → fid (CLI);
frechet (pure Fréchet distance); clip_model → clip (CLIP score + FD_CLIP CLI); train_clip (small
offline CLIP); common (image sets, provenance, JSON).
"""
