from labproto.text import decode_text, format_address, loggable, printable


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode_text(b"caf\xc3\xa9 \xff!") == "café \ufffd!"


def test_printable_escapes_terminal_controls() -> None:
    assert printable("a\tb\r\n\x1b[31mred\x7f\x9b") == "a\\tb\\r\\n\\x1b[31mred\\x7f\\x9b"


def test_printable_keeps_non_ascii_text() -> None:
    assert printable("héllo ☃") == "héllo ☃"


def test_loggable_cuts_long_text_and_gives_the_size() -> None:
    shown = loggable(b"x" * 65507, limit=10)
    assert shown == "xxxxxxxxxx... (65507 bytes in all)"


def test_loggable_keeps_short_text_whole() -> None:
    assert loggable(b"hi\x00", limit=10) == "hi\\x00"


def test_format_address_is_the_python_tuple() -> None:
    assert format_address("127.0.0.1", 5000) == "('127.0.0.1', 5000)"
