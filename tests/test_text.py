import pytest

from labproto.text import clean_message, decode_text, format_address, loggable, printable


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode_text(b"caf\xc3\xa9 \xff!") == "café \ufffd!"


def test_printable_escapes_terminal_controls() -> None:
    assert printable("a\tb\r\n\x1b[31mred\x7f\x9b") == "a\\tb\\r\\n\\x1b[31mred\\x7f\\x9b"


def test_printable_escapes_what_would_break_or_reorder_a_log_line() -> None:
    # A line separator ends a line in some viewers; a bidi override makes
    # the rest of a log line read backwards ("Trojan Source").
    assert printable("a\u2028b\u2029c \u202eevil\u202c \u2066x\u2069") == (
        "a\\u2028b\\u2029c \\u202eevil\\u202c \\u2066x\\u2069"
    )


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
def test_printable_escapes_zero_width_characters(invisible: str) -> None:
    # Hidden in a name, they make two names that look alike in the log.
    assert printable(f"al{invisible}ice") == f"al\\u{ord(invisible):04x}ice"


def test_printable_keeps_non_ascii_text() -> None:
    assert printable("héllo ☃") == "héllo ☃"


def test_loggable_cuts_long_text_and_gives_the_size() -> None:
    shown = loggable(b"x" * 65507, limit=10)
    assert shown == "xxxxxxxxxx... (65507 bytes in all)"


def test_loggable_keeps_short_text_whole() -> None:
    assert loggable(b"hi\x00", limit=10) == "hi\\x00"


def test_format_address_is_the_python_tuple() -> None:
    assert format_address("127.0.0.1", 5000) == "('127.0.0.1', 5000)"


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b[1;31;42mloud", "loud"),
        ("up\x1b[2Aover\x1b[2J", "upover"),
        ("\x1b[?25lhidden cursor", "hidden cursor"),
    ],
)
def test_clean_message_removes_csi_sequences_whole(text: str, cleaned: str) -> None:
    assert clean_message(text) == cleaned


def test_clean_message_removes_a_c1_csi_sequence_whole() -> None:
    assert clean_message("\x9b31mred\x9b0m") == "red"


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("\x1b]0;owned\x07title", "title"),
        ("\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),
    ],
)
def test_clean_message_removes_osc_and_other_string_sequences_whole(
    text: str, cleaned: str
) -> None:
    assert clean_message(text) == cleaned


def test_clean_message_removes_an_unterminated_osc_to_the_end() -> None:
    assert clean_message("hi \x1b]0;the rest is a title") == "hi"


def test_clean_message_removes_other_escape_sequences_whole() -> None:
    assert clean_message("\x1bcreset\x1b(0box\x1b7") == "resetbox"


@pytest.mark.parametrize("override", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e"])
def test_clean_message_removes_bidi_embeddings_and_overrides(override: str) -> None:
    assert clean_message(f"abc{override}def") == "abcdef"


@pytest.mark.parametrize("isolate", ["\u2066", "\u2067", "\u2068", "\u2069"])
def test_clean_message_removes_bidi_isolates(isolate: str) -> None:
    assert clean_message(f"abc{isolate}def") == "abcdef"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029"])
def test_clean_message_removes_line_and_paragraph_separators(separator: str) -> None:
    # Some terminals and viewers break a line there: a forged second line.
    assert clean_message(f"hi{separator}<bob> i owe alice 5") == "hi<bob> i owe alice 5"


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
def test_clean_message_removes_zero_width_characters(invisible: str) -> None:
    assert clean_message(f"{invisible}abc{invisible}def") == "abcdef"


def test_clean_message_keeps_a_tab() -> None:
    assert clean_message("a\tb") == "a\tb"


def test_clean_message_removes_c0_controls_del_and_c1_controls() -> None:
    assert clean_message("a\x00b\x07c\rd\ne\x7ff\x85g\x9ch") == "abcdefgh"


def test_clean_message_removes_a_lone_escape() -> None:
    assert clean_message("a\x1b") == "a"


@pytest.mark.parametrize("text", ["  hi  ", "\thi\t", " \x1b[0m hi \u202e "])
def test_clean_message_trims_surrounding_whitespace(text: str) -> None:
    assert clean_message(text) == "hi"


def test_clean_message_keeps_whitespace_inside() -> None:
    assert clean_message("a  b \t c") == "a  b \t c"


def test_clean_message_of_nothing_but_controls_is_empty() -> None:
    assert clean_message("\x1b[2J\x00\u202e ") == ""


def test_clean_message_keeps_non_ascii_text_and_replacement_characters() -> None:
    assert clean_message("héllo ☃ \ufffd") == "héllo ☃ \ufffd"


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        # C1 string openers alone lose only themselves: in mis-decoded text
        # they stand for letters, and the rest of the line is worth keeping.
        ("caf\x9f rest", "caf rest"),
        ("a\x9eb c d", "ab c d"),
        ("\x9d0;title\x07shown", "0;titleshown"),
    ],
)
def test_clean_message_removes_a_lone_c1_string_opener_and_keeps_the_rest(
    text: str, cleaned: str
) -> None:
    assert clean_message(text) == cleaned
