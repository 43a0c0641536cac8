"""Runnable examples; ``examples.invoice`` holds the shared Invoice/Item models."""
