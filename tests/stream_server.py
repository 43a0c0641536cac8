"""Moved to :mod:`schemagen.testing.streaming` (public); this name stays for older imports."""

from schemagen.testing.streaming import StreamRecord, StreamScript, StreamServer, pieces

Script = StreamScript

__all__ = ["Script", "StreamRecord", "StreamServer", "pieces"]
