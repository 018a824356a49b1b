"""Flags port: OpenFeature for reading (kill switch), flag definitions for writing (ramps)."""
