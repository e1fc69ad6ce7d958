"""apflab.safetext: what a target printed, made visible and bounded, and said so."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from apflab.safetext import HeadTail, bound, from_target, visible


def test_control_characters_and_invalid_bytes_are_written_out_and_counted() -> None:
    text = from_target(b"A\x00B\x1b[31m\t\n\xff\xfe ok \xc3\xa9", 1000)
    assert text == "A\\x00B\\x1b[31m\t\n\\xff\\xfe ok \u00e9 [2 control characters and 2 invalid bytes escaped]"


def test_clean_text_is_left_alone() -> None:
    line = "EV seq=0 pe=0 depth=1 x0=40400000 results=-"
    assert visible(line) is line and from_target(line.encode(), 512) == line


@given(st.binary(max_size=300))
def test_any_bytes_come_out_printable_and_stay_so(data: bytes) -> None:
    text = from_target(data, 200)
    assert all(c in "\t\n" or (0x20 <= ord(c) < 0x7F) or 0xA0 <= ord(c) < 0xD800 or ord(c) > 0xDFFF for c in text)
    assert "\ufffe" not in text and "\uffff" not in text
    assert from_target(text, 200) == text  # once is enough: no second note, no second cut


def test_bound_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    text = "H" * 100 + "x" * 10_000 + "T" * 100
    short = bound(text, 300)
    assert short.startswith("H" * 100) and short.endswith("T" * 100)
    assert "[... 9900 characters cut ...]" in short and len(short) < 340


def test_head_tail_of_a_stream_that_never_ends() -> None:
    kept = HeadTail(8, 16)
    for chunk in (b"BANNER: ", b"x" * 1000, b"...the last words"):
        kept.add(chunk)
    assert kept.kept() == b"BANNER:  [... 1001 bytes cut ...] ..the last words"
    assert kept.recent() == b"..the last words"
