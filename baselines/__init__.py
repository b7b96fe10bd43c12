"""Baseline methods, one file each, registered in ``e2ed2.registry``."""
