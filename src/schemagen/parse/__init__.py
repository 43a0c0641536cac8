"""Parse stage (pure): tool-call arguments back out of a completion, repaired and decoded.

``formats/`` is the registry of native tool-call text formats.
"""
