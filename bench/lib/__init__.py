"""Helpers shared by bench scripts (corpus readers, splits). Import with bench/ on sys.path."""
