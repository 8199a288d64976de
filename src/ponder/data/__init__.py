"""Reasoning data: one record type, readers for the field's formats, and built-in synthetic tasks."""
