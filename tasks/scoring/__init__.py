"""Batch scoring of review files with registered models."""
