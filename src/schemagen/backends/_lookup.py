"""Drafts for copy-from-input speculation: what the output will likely copy next from a source.

A grounded string is a span of the input text. Once the bytes written so far end with a
stretch that occurs in the text, the text's next bytes are a good guess at what the model
writes next. The guess is only a draft: the token loop checks it against the grammar, scores
it in one batched forward pass and keeps the prefix the model itself would have chosen, so the
output is the same as without drafting. Pure: no model, no grammar.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

#: bytes of output tail matched against the source (longest suffix first)
TAIL = 32
#: the shortest suffix matched (a short one that occurs often shares no continuation: no draft)
MIN_MATCH = 1
#: bytes of source continuation tokenized into a draft
WINDOW = 96
#: where a copied value most likely ends: a line or column break, a bracket, a separator, or
#: a sentence or label end. A draft stops there, since scoring tokens the model then rejects
#: costs nearly as much as generating them.
_END = re.compile(rb'[\n,;()\[\]{}<>|"]|[.:!?](?=\s|\Z)')


def source_bytes(text: str) -> bytes:
    """``text`` as drafts copy from it: whitespace runs are one space, as in the grammar's spans,
    except runs with a line break or of several characters (a column gap), which become a line
    break so that drafts stop there."""
    return re.sub(r"\s+", lambda m: " " if m.group() in (" ", "\t") else "\n", text).encode("utf-8")


def _places(source: bytes, needle: bytes, word_start: bool) -> Iterator[int]:
    """Where ``needle`` occurs in ``source``; with ``word_start``, only where it starts a word
    (a grounded value is a span of whole words)."""
    at = source.find(needle)
    while at >= 0:
        if not word_start or at == 0 or not (source[at - 1: at].isalnum() and needle[:1].isalnum()):
            yield at
        at = source.find(needle, at + 1)


def continuation(source: bytes, tail: bytes, *, min_match: int = MIN_MATCH) -> tuple[bytes, bool]:
    """The bytes that follow the longest suffix of ``tail`` found in ``source``, and whether they
    end at a whole word (a likely value end or the source's end, not a cut).

    Where that suffix occurs more than once, only the continuation all occurrences share is
    returned: the written bytes then pick no single place, and a draft beyond the shared part
    would be a guess. A suffix that starts a word in the output (after a ``"``, a space, a
    ``:``: a string or a number begins there) only counts where it starts a word in the
    source. The continuation stops where a value most likely ends (see ``_END``).
    """
    tail = tail[-TAIL:]
    for size in range(len(tail), min_match - 1, -1):
        needle = tail[-size:]
        before = tail[-size - 1: -size]
        places = _places(source, needle, bool(before) and not before.isalnum())
        first = next(places, None)
        if first is None:
            continue
        shared = source[first + size: first + size + WINDOW]
        whole = first + size + WINDOW >= len(source)
        for at in places:
            if not shared:
                break
            other = source[at + size: at + size + len(shared)]
            n = 0
            while n < len(other) and other[n] == shared[n]:
                n += 1
            if n < len(shared):
                shared, whole = shared[:n], False
        end = _END.search(shared)
        return (shared[: end.start()].rstrip(b" "), True) if end else (shared, whole)
    return b"", False


def draft(
    source: bytes, tail: bytes, tokenize: Callable[[bytes], list[int]], *, max_tokens: int,
    min_match: int = MIN_MATCH,
) -> tuple[list[int], bool]:
    """Up to ``max_tokens`` token ids the output may copy next from ``source``, after ``tail``
    (the output's last bytes), and whether the value most likely ends after them.

    The continuation is tokenized on its own. Where it was cut inside a word, its last token is
    dropped: it may be a piece of a longer token.
    """
    if max_tokens <= 0:
        return [], False
    rest, whole = continuation(source, tail, min_match=min_match)
    ids = tokenize(rest) if rest else []
    if not whole:
        ids = ids[:-1]
    return ids[:max_tokens], whole and len(ids) <= max_tokens
