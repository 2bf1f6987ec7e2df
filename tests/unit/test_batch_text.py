"""Incremental detokenization in the batched engine: whole UTF-8 characters, stop strings held back."""

from __future__ import annotations

import pytest

from slmnode.engine.batch import TextOut


@pytest.mark.parametrize(("pieces", "stops", "emitted", "stopped"), [
    ([b"Hello", b" world"], [], ["Hello", " world"], False),
    # a 2-byte character split over two tokens is emitted once whole
    ([b"caf", b"\xc3", b"\xa9!"], [], ["caf", "", "\u00e9!"], False),
    # text that may start a stop string is held until it cannot
    ([b"a\n", b"\nb"], ["\n\n"], ["a", ""], True),
    ([b"a\n", b"b"], ["\n\n"], ["a", "\nb"], False),
    ([b"x END", b" y"], ["END"], ["x "], True),
    ([b"xEN", b"Dy"], ["END"], ["x", ""], True),
])
def test_text_out(pieces: list[bytes], stops: list[str], emitted: list[str], stopped: bool) -> None:
    out = TextOut(stops)
    got, hit = [], False
    for piece in pieces:
        text, hit = out.feed(piece)
        got.append(text)
        if hit:
            break
    assert got == emitted
    assert hit is stopped


def test_flush_returns_held_text_when_no_stop_follows() -> None:
    out = TextOut(["STOP"])
    assert out.feed(b"abc ST") == ("abc ", False)
    assert out.flush() == "ST"
