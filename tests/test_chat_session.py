"""labchat's room and sessions on fake connections and a task.Clock: what each user reads."""

from __future__ import annotations

from typing import Any, cast

import pytest
from support.rooms import FakeConnection, Lab, User
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from labproto.chat.room import ChatRoom, IChatMember
from labproto.chat.session import IChatConnection, Stage

PROMPT = b"Welcome to labchat! Please enter your name:\r\n"
INVALID_NAME = b"ERROR invalid name: use 1 to 24 ASCII letters, digits, _, - or .\r\n"
SLOW_DOWN = b"ERROR slow down: message dropped\r\n"
ROOM_FULL = b"ERROR room full\r\n"
LOGIN_TIMED_OUT = b"ERROR login timed out\r\n"
SHUTTING_DOWN = b"* server shutting down\r\n"
HELP = (
    b"Commands: /me ACTION, /msg NAME TEXT, /who, /nick NAME, /help, /quit [REASON]\r\n"
    b"Any other line is a message to everyone; start it with // to send one that begins with /"
    b"\r\n"
)


@implementer(IChatMember)
class FakeMember:
    """A member of the room that records every bytes object the room hands it."""

    kind = "tcp"
    host: str | None = None

    def __init__(self, peer: str) -> None:
        self.name: str | None = None
        self.peer = peer
        self.received: list[bytes] = []

    def deliver(self, line: bytes) -> None:
        self.received.append(line)

    def shut_down(self, notice: bytes) -> None:
        self.received.append(notice)

    def cut_off(self) -> None:
        pass

    def lose_name(self, notice: bytes) -> None:
        self.received.append(notice)


def lines(*texts: str) -> bytes:
    """Texts as the server sends them: UTF-8 lines ending with CRLF."""
    return b"".join(text.encode() + b"\r\n" for text in texts)


def fired(deferred: Any) -> bool:
    results: list[object] = []
    deferred.addBoth(results.append)
    return bool(results)


# The fakes


def test_the_fakes_provide_the_interfaces_they_stand_in_for() -> None:
    assert verifyObject(IChatConnection, FakeConnection())
    assert verifyObject(IChatMember, FakeMember("p"))
    assert verifyObject(IChatMember, Lab().connect().session)


# Login


def test_a_new_connection_gets_the_login_prompt() -> None:
    user = Lab().connect()
    assert user.heard() == PROMPT
    assert user.session.stage is Stage.LOGIN


def test_the_first_user_is_welcomed_as_the_only_one_online() -> None:
    user = Lab().connect()
    user.heard()
    user.types("alice")
    assert user.heard() == b"Welcome alice! 1 user online: alice\r\n"
    assert user.session.stage is Stage.CHAT


def test_a_name_is_trimmed_before_it_is_checked() -> None:
    user = Lab().connect()
    user.heard()
    user.types("  alice \t")
    assert user.heard() == b"Welcome alice! 1 user online: alice\r\n"


def test_the_welcome_line_lists_users_case_insensitively_whatever_the_join_order() -> None:
    lab = Lab()
    lab.users("bob", "Carol")
    user = lab.connect()
    user.heard()
    user.types("alice")
    assert user.heard() == b"Welcome alice! 3 users online: alice, bob, Carol\r\n"


def test_the_welcome_line_of_a_room_of_20_still_lists_them() -> None:
    lab = Lab()
    lab.users(*(f"user{i:02d}" for i in range(1, 20)))
    user = lab.user("zed")
    names = ", ".join([f"user{i:02d}" for i in range(1, 20)] + ["zed"])
    assert user.heard() == PROMPT + lines(f"Welcome zed! 20 users online: {names}")


def test_the_welcome_line_of_a_room_of_more_than_20_gives_the_count_alone() -> None:
    lab = Lab()
    lab.users(*(f"user{i:02d}" for i in range(1, 21)))
    user = lab.user("zed")
    assert user.heard() == PROMPT + b"Welcome zed! 21 users online (/who lists them)\r\n"


def test_a_join_is_announced_to_the_others_only() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    carol = lab.user("carol")
    assert alice.heard() == bob.heard() == b"* carol joined\r\n"
    assert carol.heard() == PROMPT + b"Welcome carol! 3 users online: alice, bob, carol\r\n"


@pytest.mark.parametrize(
    "name",
    [
        "al ice",
        "al\x01ice",
        "al\x1b[31mice",
        "x" * 25,
        "\u0410lice",  # CYRILLIC CAPITAL LETTER A, which looks like A
        "\u13aalice",  # CHEROKEE LETTER GO, which looks like A
        "alicé",
        "",
        "   ",
        "/quitter",
    ],
)
def test_an_invalid_name_is_refused_and_the_connection_stays_in_login(name: str) -> None:
    user = Lab().connect()
    user.heard()
    user.types(name)
    assert user.heard() == INVALID_NAME
    assert user.session.stage is Stage.LOGIN
    assert not user.connection.closed


def test_after_an_invalid_name_a_valid_one_logs_in() -> None:
    user = Lab().connect()
    user.types("al ice")
    user.heard()
    user.types("alice")
    assert user.heard() == b"Welcome alice! 1 user online: alice\r\n"


@pytest.mark.parametrize("name", ["x" * 24, "a", "A.b_c-9"])
def test_a_name_of_1_to_24_letters_digits_underscores_dashes_and_dots_is_accepted(
    name: str,
) -> None:
    user = Lab().connect()
    user.heard()
    user.types(name)
    assert user.heard() == lines(f"Welcome {name}! 1 user online: {name}")


def test_an_invalid_name_is_not_announced() -> None:
    lab = Lab()
    (alice,) = lab.users("alice")
    lab.connect().types("al ice")
    assert alice.heard() == b""


def test_a_name_taken_in_another_case_is_refused_quoted_as_typed() -> None:
    lab = Lab()
    lab.users("alice")
    user = lab.connect()
    user.heard()
    user.types("ALICE")
    assert user.heard() == b"ERROR name taken: ALICE\r\n"
    assert user.session.stage is Stage.LOGIN


def test_a_refused_name_leaves_the_room_as_it_was() -> None:
    lab = Lab()
    (alice,) = lab.users("alice")
    lab.connect().types("Alice")
    assert alice.heard() == b""
    assert lab.room.sorted_names() == ["alice"]
    assert lab.room.find("ALICE") is alice.session


def test_lines_before_login_are_names_not_messages() -> None:
    lab = Lab()
    (alice,) = lab.users("alice")
    user = lab.connect()
    user.heard()
    user.types("hello there")
    assert user.heard() == INVALID_NAME
    assert alice.heard() == b""


# Messages


def test_a_connection_still_at_the_prompt_hears_no_messages() -> None:
    lab = Lab()
    (alice,) = lab.users("alice")
    stranger = lab.connect()
    stranger.heard()
    alice.types("hello", "/me waves", "/nick carol")
    assert stranger.heard() == b""


def test_a_message_is_relayed_to_everyone_including_the_sender() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("hello")
    assert alice.heard() == bob.heard() == b"<alice> hello\r\n"


def test_a_message_is_trimmed() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("  hello  world \t")
    assert bob.heard() == b"<alice> hello  world\r\n"


@pytest.mark.parametrize("text", ["", "   ", " \t "])
def test_an_empty_message_gets_no_answer_and_is_not_relayed(text: str) -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types(text)
    assert alice.heard() == bob.heard() == b""


def test_a_message_of_nothing_but_an_escape_sequence_is_not_relayed() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("\x1b[2J")
    assert alice.heard() == bob.heard() == b""


def test_ansi_escape_sequences_are_removed_from_a_relayed_message() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("\x1b[31mred\x1b[0m and \x1b]0;owned\x07plain\x9b2J")
    assert bob.heard() == b"<alice> red and plain\r\n"


def test_bidi_overrides_are_removed_from_a_relayed_message() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("abc\u202edef\u2066ghi\u2069")
    assert bob.heard() == b"<alice> abcdefghi\r\n"


def test_a_tab_is_relayed_and_other_controls_are_not() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("a\tb\x00c\x7fd\x85e\rf")
    assert bob.heard() == b"<alice> a\tbcdef\r\n"


def test_non_ascii_text_is_relayed_as_utf8() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("café ☃ \ufffd")
    assert bob.heard() == "<alice> café ☃ \ufffd\r\n".encode()


def test_a_double_slash_sends_a_message_beginning_with_one_slash() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("//shrug")
    assert alice.heard() == bob.heard() == b"<alice> /shrug\r\n"


def test_a_message_starting_with_a_space_then_a_slash_is_a_message() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types(" /who")
    assert bob.heard() == b"<alice> /who\r\n"


# /me


def test_me_shows_an_action_to_everyone() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/me waves")
    assert alice.heard() == bob.heard() == b"* alice waves\r\n"


def test_me_removes_escape_sequences_from_the_action() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/me \x1b[5mblinks\u202e")
    assert bob.heard() == b"* alice blinks\r\n"


@pytest.mark.parametrize("line", ["/me", "/me   ", "/me \x1b[0m"])
def test_me_without_an_action_gets_its_usage_alone(line: str) -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types(line)
    assert alice.heard() == b"ERROR usage: /me ACTION\r\n"
    assert bob.heard() == b""


def test_a_command_word_is_case_insensitive() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/ME waves")
    assert bob.heard() == b"* alice waves\r\n"


# /msg


def test_msg_reaches_the_recipient_and_confirms_to_the_sender() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/msg bob psst")
    assert bob.heard() == b"*alice* psst\r\n"
    assert alice.heard() == b"-> *bob* psst\r\n"


def test_msg_is_heard_by_nobody_else() -> None:
    alice, _, carol = Lab().users("alice", "bob", "carol")
    alice.types("/msg bob psst")
    assert carol.heard() == b""


def test_msg_finds_the_recipient_in_any_case_and_shows_their_own_spelling() -> None:
    alice, bob = Lab().users("alice", "Bob")
    alice.types("/msg bOB psst")
    assert bob.heard() == b"*alice* psst\r\n"
    assert alice.heard() == b"-> *Bob* psst\r\n"


def test_msg_keeps_the_spaces_inside_its_text() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/msg   bob   psst,  over here  ")
    assert bob.heard() == b"*alice* psst,  over here\r\n"


def test_msg_removes_escape_sequences_from_its_text() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/msg bob \x1b[31mred\u202e")
    assert bob.heard() == b"*alice* red\r\n"


def test_msg_to_nobody_is_refused_quoting_the_name_as_typed() -> None:
    (alice,) = Lab().users("alice")
    alice.types("/msg NoBody psst")
    assert alice.heard() == b"ERROR no such user: NoBody\r\n"


@pytest.mark.parametrize("line", ["/msg", "/msg bob", "/msg bob   ", "/msg   "])
def test_msg_without_a_name_and_text_gets_its_usage(line: str) -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types(line)
    assert alice.heard() == b"ERROR usage: /msg NAME TEXT\r\n"
    assert bob.heard() == b""


# /who


def test_who_lists_everyone_in_case_insensitive_order() -> None:
    lab = Lab()
    carol, _, _ = lab.users("carol", "Bob", "alice")
    carol.types("/who")
    assert carol.heard() == b"3 users online: alice, Bob, carol\r\n"


def test_who_of_one_user_says_user_in_the_singular() -> None:
    (alice,) = Lab().users("alice")
    alice.types("/who")
    assert alice.heard() == b"1 user online: alice\r\n"


def test_who_is_answered_to_the_asker_alone() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/who")
    assert bob.heard() == b""


def test_who_in_a_room_of_more_than_20_gives_a_count_line_then_20_names_a_line() -> None:
    names = [f"user{i:02d}" for i in range(45, 0, -1)]
    users = Lab().users(*names)
    users[0].types("/who")
    ordered = [f"user{i:02d}" for i in range(1, 46)]
    assert users[0].heard() == lines(
        "45 users online:",
        ", ".join(ordered[0:20]),
        ", ".join(ordered[20:40]),
        ", ".join(ordered[40:45]),
    )


# /nick


def test_nick_is_announced_to_everyone() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/nick carol")
    assert alice.heard() == bob.heard() == b"* alice is now known as carol\r\n"


def test_after_nick_messages_carry_the_new_name() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/nick carol")
    bob.heard()
    alice.types("hi")
    assert bob.heard() == b"<carol> hi\r\n"


def test_after_nick_the_old_name_is_free_at_once() -> None:
    lab = Lab()
    (alice,) = lab.users("alice")
    alice.types("/nick carol")
    newcomer = lab.user("alice")
    assert newcomer.heard() == PROMPT + b"Welcome alice! 2 users online: alice, carol\r\n"


def test_after_nick_the_new_name_is_found_and_the_old_one_is_not() -> None:
    lab = Lab()
    (alice,) = lab.users("alice")
    alice.types("/nick carol")
    assert lab.room.find("CAROL") is alice.session
    assert lab.room.find("alice") is None


def test_nick_to_a_name_taken_in_another_case_is_refused_quoted_as_typed() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/nick BOB")
    assert alice.heard() == b"ERROR name taken: BOB\r\n"
    assert bob.heard() == b""
    assert alice.session.name == "alice"


@pytest.mark.parametrize("name", ["car ol", "x" * 25, "c\u0430rol", "carol\x1b"])
def test_nick_to_an_invalid_name_is_refused(name: str) -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types(f"/nick {name}")
    assert alice.heard() == INVALID_NAME
    assert bob.heard() == b""
    assert alice.session.name == "alice"


def test_nick_without_a_name_gets_its_usage() -> None:
    (alice,) = Lab().users("alice")
    alice.types("/nick  ")
    assert alice.heard() == b"ERROR usage: /nick NAME\r\n"


def test_nick_may_change_the_case_of_ones_own_name() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    alice.types("/nick ALICE")
    assert alice.heard() == bob.heard() == b"* alice is now known as ALICE\r\n"
    assert lab.room.sorted_names() == ["ALICE", "bob"]


# /help, unknown commands


def test_help_lists_the_commands_to_the_asker_alone() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/help")
    assert alice.heard() == HELP
    assert bob.heard() == b""


def test_an_unknown_command_is_refused_with_a_pointer_to_help() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/dance wildly")
    assert alice.heard() == b"ERROR unknown command: /dance (try /help)\r\n"
    assert bob.heard() == b""


def test_an_unknown_command_is_quoted_without_its_escape_sequences() -> None:
    (alice,) = Lab().users("alice")
    alice.types("/x\x1b[2Jy")
    assert alice.heard() == b"ERROR unknown command: /xy (try /help)\r\n"


def test_a_lone_slash_is_an_unknown_command() -> None:
    (alice,) = Lab().users("alice")
    alice.types("/")
    assert alice.heard() == b"ERROR unknown command: / (try /help)\r\n"


# /quit and lost connections


def test_quit_says_bye_and_closes_the_connection() -> None:
    alice, _ = Lab().users("alice", "bob")
    alice.types("/quit")
    assert alice.heard() == b"Bye alice!\r\n"
    assert alice.connection.closed
    assert alice.session.stage is Stage.GONE


def test_quit_without_a_reason_tells_the_others_quit() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/quit")
    assert bob.heard() == b"* alice left (quit)\r\n"


def test_quit_with_a_reason_tells_the_others_the_reason() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/quit gone fishing")
    assert alice.heard() == b"Bye alice!\r\n"
    assert bob.heard() == b"* alice left (gone fishing)\r\n"


def test_a_quit_reason_loses_its_escape_sequences() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/quit \x1b[31mbye\u202e")
    assert bob.heard() == b"* alice left (bye)\r\n"


def test_quit_is_case_insensitive() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/QUIT")
    assert bob.heard() == b"* alice left (quit)\r\n"


def test_lines_after_quit_are_ignored() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/quit", "hello", "/who")
    assert alice.heard() == b"Bye alice!\r\n"
    assert bob.heard() == b"* alice left (quit)\r\n"


def test_a_quit_users_connection_loss_is_not_announced_again() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("/quit")
    alice.hangs_up()
    assert bob.heard() == b"* alice left (quit)\r\n"


def test_a_lost_connection_is_announced_as_connection_lost() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.hangs_up()
    assert bob.heard() == b"* alice left (connection lost)\r\n"
    assert alice.session.stage is Stage.GONE


def test_a_connection_lost_before_login_is_not_announced() -> None:
    lab = Lab()
    (alice,) = lab.users("alice")
    lab.connect().hangs_up()
    assert alice.heard() == b""


def leave_by_quit(lab: Lab, user: User) -> None:
    user.types("/quit")
    user.hangs_up()


def leave_by_losing_the_connection(lab: Lab, user: User) -> None:
    user.hangs_up()


def leave_by_half_closing(lab: Lab, user: User) -> None:
    user.session.input_ended()


@pytest.mark.parametrize(
    "leave", [leave_by_quit, leave_by_losing_the_connection, leave_by_half_closing]
)
def test_after_a_user_leaves_the_registry_no_longer_holds_them(leave: Any) -> None:
    lab = Lab()
    _, bob = lab.users("alice", "bob")
    leave(lab, bob)
    assert lab.room.find("bob") is None
    assert lab.room.sorted_names() == ["alice"]
    assert len(lab.room) == 1


@pytest.mark.parametrize("leave", [leave_by_quit, leave_by_losing_the_connection])
def test_after_a_user_leaves_their_name_can_be_taken_at_once(leave: Any) -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    leave(lab, bob)
    alice.heard()
    newcomer = lab.user("BOB")
    assert newcomer.heard() == PROMPT + b"Welcome BOB! 2 users online: alice, BOB\r\n"
    assert alice.heard() == b"* BOB joined\r\n"


def test_a_user_who_left_receives_no_more_broadcasts() -> None:
    alice, bob = Lab().users("alice", "bob")
    bob.hangs_up()
    alice.types("hello")
    assert bob.heard() == b""


# The log


def test_a_new_connection_is_logged_with_its_peer(logged) -> None:
    Lab().connect()
    assert logged.lines() == ["Connected ('10.0.0.7', 5000)"]


def test_a_join_is_logged_with_the_peer(logged) -> None:
    Lab().user("alice")
    assert logged.lines()[-1] == "alice joined from ('10.0.0.7', 5000)"


@pytest.mark.parametrize(
    ("line", "logged_line"),
    [
        ("/quit", "alice left (quit)"),
        ("/quit gone fishing", "alice left (gone fishing)"),
        ("/quit gone\tfishing", "alice left (gone\\tfishing)"),
    ],
)
def test_a_quit_is_logged_with_its_reason(logged, line: str, logged_line: str) -> None:
    (alice,) = Lab().users("alice")
    alice.types(line)
    assert logged.lines()[-1] == logged_line


def test_a_lost_connection_is_logged_as_a_leave(logged) -> None:
    (alice,) = Lab().users("alice")
    alice.hangs_up()
    assert logged.lines()[-1] == "alice left (connection lost)"


def test_a_connection_lost_before_login_is_logged_with_its_peer(logged) -> None:
    Lab().connect().hangs_up()
    assert logged.lines()[-1] == "Disconnected ('10.0.0.7', 5000) before logging in"


def test_a_rename_is_logged(logged) -> None:
    (alice,) = Lab().users("alice")
    alice.types("/nick carol")
    assert logged.lines()[-1] == "alice is now known as carol"


def test_a_message_is_logged_as_everyone_sees_it(logged) -> None:
    (alice,) = Lab().users("alice")
    alice.types("hello")
    assert logged.lines()[-1] == "<alice> hello"


def test_an_action_is_logged_as_everyone_sees_it(logged) -> None:
    (alice,) = Lab().users("alice")
    alice.types("/me waves")
    assert logged.lines()[-1] == "* alice waves"


def test_a_quiet_room_does_not_log_messages_or_actions(logged) -> None:
    (alice,) = Lab(quiet=True).users("alice")
    before = len(logged.lines())
    alice.types("hello", "/me waves", "/msg alice psst")
    assert len(logged.lines()) == before


def test_a_quiet_room_still_logs_joins_leaves_and_renames(logged) -> None:
    lab = Lab(quiet=True)
    (alice,) = lab.users("alice")
    alice.types("/nick carol", "/quit")
    assert logged.lines()[-3:] == [
        "alice joined from ('10.0.0.7', 5000)",
        "alice is now known as carol",
        "carol left (quit)",
    ]


def test_a_private_message_is_logged_without_its_text(logged) -> None:
    alice, _ = Lab().users("alice", "bob")
    alice.types("/msg bob the secret word")
    assert logged.lines()[-1] == "alice sent bob a private message"
    assert not any("secret" in line for line in logged.lines())


# Login timeout


def test_a_connection_not_logged_in_after_60_seconds_is_told_and_closed() -> None:
    lab = Lab()
    user = lab.connect()
    user.heard()
    lab.clock.advance(59.9)
    assert user.heard() == b""
    assert not user.connection.closed
    lab.clock.advance(0.1)
    assert user.heard() == LOGIN_TIMED_OUT
    assert user.connection.closed


def test_a_login_timeout_is_logged_with_the_peer(logged) -> None:
    lab = Lab()
    lab.connect()
    lab.clock.advance(60)
    assert logged.lines()[-1] == "Login timed out: ('10.0.0.7', 5000)"


def test_the_login_timeout_follows_the_limit() -> None:
    lab = Lab(login_timeout=5)
    user = lab.connect()
    user.heard()
    lab.clock.advance(5)
    assert user.heard() == LOGIN_TIMED_OUT


def test_lines_after_a_login_timeout_are_ignored() -> None:
    lab = Lab()
    user = lab.connect()
    lab.clock.advance(60)
    user.heard()
    user.types("alice")
    assert user.heard() == b""
    assert lab.room.find("alice") is None


def test_an_invalid_name_does_not_restart_the_login_timeout() -> None:
    lab = Lab()
    user = lab.connect()
    lab.clock.advance(50)
    user.types("al ice")
    user.heard()
    lab.clock.advance(10)
    assert user.heard() == LOGIN_TIMED_OUT


def test_logging_in_cancels_the_login_timeout() -> None:
    lab = Lab()
    (alice,) = lab.users("alice")
    lab.clock.advance(3600)
    assert alice.heard() == b""
    assert not alice.connection.closed
    assert lab.clock.getDelayedCalls() == []


def test_a_connection_lost_before_login_cancels_the_login_timeout() -> None:
    lab = Lab()
    lab.connect().hangs_up()
    assert lab.clock.getDelayedCalls() == []


def test_a_login_timeout_of_0_never_times_out() -> None:
    lab = Lab(login_timeout=0)
    user = lab.connect()
    user.heard()
    assert lab.clock.getDelayedCalls() == []
    lab.clock.advance(86400)
    assert user.heard() == b""
    assert not user.connection.closed


def test_a_timed_out_connection_once_gone_is_not_kept_for_shutdown() -> None:
    lab = Lab()
    user = lab.connect()
    lab.clock.advance(60)
    user.hangs_up()
    assert fired(lab.room.shut_down())
    assert len(lab.room) == 0


def test_a_login_refused_for_a_full_room_hears_nothing_more() -> None:
    lab = Lab(max_users=1)
    early, late = lab.connect(), lab.connect()
    early.types("alice")
    late.types("bob")
    late.heard()
    lab.clock.advance(60)
    assert late.heard() == b""


def test_a_connection_told_of_shutdown_before_login_hears_nothing_more() -> None:
    lab = Lab()
    user = lab.connect()
    lab.clock.advance(59)
    lab.room.shut_down()
    user.heard()
    lab.clock.advance(1)
    assert user.heard() == b""


# Flood control


def test_a_burst_of_lines_goes_through() -> None:
    alice, bob = Lab(burst=3, rate=2).users("alice", "bob")
    alice.types("1", "2", "3")
    assert bob.heard() == b"<alice> 1\r\n<alice> 2\r\n<alice> 3\r\n"


def test_the_line_past_the_burst_is_dropped_with_an_error() -> None:
    alice, bob = Lab(burst=3, rate=2).users("alice", "bob")
    alice.types("1", "2", "3")
    alice.heard()
    bob.heard()
    alice.types("4")
    assert alice.heard() == SLOW_DOWN
    assert bob.heard() == b""


def test_a_command_past_the_burst_is_dropped_too() -> None:
    alice, bob = Lab(burst=3, rate=2).users("alice", "bob")
    alice.types("1", "2", "3")
    alice.heard()
    alice.types("/who")
    assert alice.heard() == SLOW_DOWN


def test_the_bucket_refills_one_line_per_tick_of_the_rate() -> None:
    lab = Lab(burst=3, rate=2)
    alice, bob = lab.users("alice", "bob")
    alice.types("1", "2", "3", "4")
    alice.heard()
    bob.heard()
    lab.clock.advance(1 / 2)
    alice.types("5", "6")
    assert bob.heard() == b"<alice> 5\r\n"
    assert alice.heard() == b"<alice> 5\r\n" + SLOW_DOWN


def test_the_bucket_holds_no_more_than_the_burst() -> None:
    lab = Lab(burst=3, rate=2)
    alice, _ = lab.users("alice", "bob")
    lab.clock.advance(3600)
    alice.types("1", "2", "3", "4")
    assert alice.heard() == b"<alice> 1\r\n<alice> 2\r\n<alice> 3\r\n" + SLOW_DOWN


def test_the_default_burst_is_20_lines() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types(*(str(i) for i in range(21)))
    assert bob.heard() == b"".join(b"<alice> %d\r\n" % i for i in range(20))
    assert alice.heard().endswith(b"<alice> 19\r\n" + SLOW_DOWN)


def test_a_rate_of_0_turns_flood_control_off() -> None:
    alice, bob = Lab(burst=1, rate=0).users("alice", "bob")
    alice.types(*(str(i) for i in range(100)))
    assert bob.heard() == b"".join(b"<alice> %d\r\n" % i for i in range(100))


def test_empty_and_blank_lines_count_against_the_burst() -> None:
    # They are not relayed, but a flood of them costs the server its time.
    alice, bob = Lab(burst=2, rate=2).users("alice", "bob")
    alice.types("", "  ", "hi")
    assert bob.heard() == b""
    assert alice.heard() == SLOW_DOWN


def test_an_empty_line_past_the_burst_is_dropped_without_an_answer() -> None:
    alice, bob = Lab(burst=1, rate=2).users("alice", "bob")
    alice.types("hi", "", " \t ")
    assert alice.heard() == b"<alice> hi\r\n"
    assert bob.heard() == b"<alice> hi\r\n"


def test_quit_is_allowed_while_flooding() -> None:
    alice, bob = Lab(burst=1, rate=2).users("alice", "bob")
    alice.types("1", "2", "3")
    alice.heard()
    bob.heard()
    alice.types("/quit flooded")
    assert alice.heard() == b"Bye alice!\r\n"
    assert bob.heard() == b"* alice left (flooded)\r\n"
    assert alice.connection.closed


def test_a_flood_episode_logs_one_warning(logged) -> None:
    alice, _ = Lab(burst=2, rate=2.0).users("alice", "bob")
    alice.types(*(str(i) for i in range(10)))
    assert logged.levels().count("warn") == 1
    assert logged.lines()[-1] == "alice sends too fast: dropping lines past 2 at once or 2/s"


def test_a_flood_that_goes_on_at_twice_the_rate_logs_one_warning(logged) -> None:
    lab = Lab(burst=2, rate=2)
    alice, _ = lab.users("alice", "bob")
    for _ in range(20):
        alice.types("a line", "and another")
        lab.clock.advance(1 / 2)
    assert logged.levels().count("warn") == 1


def test_a_new_flood_after_the_bucket_refilled_logs_again(logged) -> None:
    lab = Lab(burst=2, rate=2)
    alice, _ = lab.users("alice", "bob")
    alice.types("1", "2", "3", "4")
    lab.clock.advance(1)
    alice.types("5", "6", "7")
    assert logged.levels().count("warn") == 2


# max-per-host

TOO_MANY_FROM_HOST = b"ERROR too many connections from your address\r\n"


def test_a_connection_past_max_per_host_is_refused_instead_of_the_prompt_and_closed() -> None:
    lab = Lab(max_per_host=2)
    first = lab.connect()
    lab.user("alice")
    assert first.heard() == PROMPT
    third = lab.connect()
    assert third.heard() == TOO_MANY_FROM_HOST
    assert third.connection.closed
    assert third.session.stage is Stage.GONE


def test_max_per_host_counts_only_the_connections_from_that_address() -> None:
    lab = Lab(max_per_host=1)
    lab.connect(host="10.0.0.7")
    assert lab.connect(host="10.0.0.8").heard() == PROMPT


def test_a_connection_that_ended_makes_room_for_another_from_its_address() -> None:
    lab = Lab(max_per_host=1)
    lab.connect().hangs_up()
    assert lab.connect().heard() == PROMPT


def test_a_refused_connection_does_not_count_against_its_address() -> None:
    lab = Lab(max_per_host=1)
    first = lab.connect()
    refused = lab.connect()
    refused.hangs_up()
    first.hangs_up()
    assert lab.connect().heard() == PROMPT


def test_max_per_host_0_sets_no_limit() -> None:
    lab = Lab(max_per_host=0)
    users = [lab.connect() for _ in range(60)]
    assert users[-1].heard() == PROMPT


def test_connections_without_an_address_are_not_counted() -> None:
    # A UNIX socket's peers have no address to tell them apart by.
    lab = Lab(max_per_host=1)
    lab.connect(host=None)
    assert lab.connect(host=None).heard() == PROMPT


def test_a_connection_past_max_per_host_is_logged_and_counted(logged) -> None:
    lab = Lab(max_per_host=1)
    lab.connect()
    lab.connect()
    assert logged.lines()[-1] == (
        "Too many connections from 10.0.0.7: turned away ('10.0.0.7', 5001)"
    )
    assert lab.room.figures.disconnects["too_many_from_host"] == 1


# max-users


def test_a_connection_to_a_full_room_is_refused_and_closed() -> None:
    lab = Lab(max_users=2)
    lab.users("alice", "bob")
    user = lab.connect()
    assert user.heard() == ROOM_FULL
    assert user.connection.closed
    assert user.session.stage is Stage.GONE


def test_a_connection_to_a_full_room_is_logged(logged) -> None:
    lab = Lab(max_users=1)
    lab.users("alice")
    lab.connect()
    assert logged.lines()[-2:] == [
        "Connected ('10.0.0.7', 5001)",
        "Room full: turned away ('10.0.0.7', 5001)",
    ]


def test_a_login_to_a_room_that_filled_meanwhile_is_refused_and_closed() -> None:
    lab = Lab(max_users=1)
    early, late = lab.connect(), lab.connect()
    early.types("alice")
    late.heard()
    late.types("bob")
    assert late.heard() == ROOM_FULL
    assert late.connection.closed
    assert lab.room.sorted_names() == ["alice"]


def test_a_room_full_refusal_is_not_announced() -> None:
    lab = Lab(max_users=1)
    early, late = lab.connect(), lab.connect()
    early.types("alice")
    early.heard()
    late.types("bob")
    assert early.heard() == b""


def test_connections_not_yet_logged_in_do_not_fill_the_room() -> None:
    lab = Lab(max_users=2)
    lab.connect()
    lab.connect()
    user = lab.connect()
    user.heard()
    user.types("alice")
    assert user.heard() == b"Welcome alice! 1 user online: alice\r\n"


def test_connections_logging_in_are_turned_away_past_twice_max_users() -> None:
    lab = Lab(max_users=2)
    for _ in range(4):
        assert lab.connect().heard() == PROMPT
    user = lab.connect()
    assert user.heard() == ROOM_FULL
    assert user.connection.closed


def test_quit_at_the_login_prompt_closes_the_connection_quietly(logged) -> None:
    user = Lab().connect()
    user.heard()
    user.types("/QUIT bye")
    assert user.heard() == b""
    assert user.connection.closed
    assert logged.lines()[-1] == "Disconnected ('10.0.0.7', 5000) before logging in"


def test_a_half_closed_connection_leaves_the_room_at_once() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    bob.session.input_ended()
    assert alice.heard() == b"* bob left (connection lost)\r\n"
    bob.hangs_up()
    assert alice.heard() == b""


def test_shutdown_empties_the_registry_at_once() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    lab.room.shut_down()
    assert lab.room.sorted_names() == []
    assert alice.heard() == bob.heard() == SHUTTING_DOWN


def test_a_user_who_quit_before_the_shutdown_hears_no_shutdown_notice() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    bob.types("/quit")
    bob.heard()
    lab.room.shut_down()
    assert bob.heard() == b""


def test_a_place_freed_by_a_leave_can_be_taken() -> None:
    lab = Lab(max_users=1)
    (alice,) = lab.users("alice")
    alice.hangs_up()
    user = lab.user("bob")
    assert user.heard() == PROMPT + b"Welcome bob! 1 user online: bob\r\n"


# Shutdown


def test_shutdown_tells_everyone_present_logged_in_or_not_and_closes() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    stranger = lab.connect()
    stranger.heard()
    lab.room.shut_down()
    for user in (alice, bob, stranger):
        assert user.heard() == SHUTTING_DOWN
        assert user.connection.closed


def test_leaves_during_shutdown_are_not_announced() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    lab.room.shut_down()
    alice.heard()
    bob.hangs_up()
    assert alice.heard() == b""


def test_leaves_during_shutdown_are_logged_as_shutdown(logged) -> None:
    lab = Lab()
    (alice,) = lab.users("alice")
    lab.room.shut_down()
    alice.hangs_up()
    assert logged.lines()[-1] == "alice left (server shutting down)"


def test_shutdown_fires_when_the_last_connection_has_gone() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    stopped = lab.room.shut_down()
    alice.hangs_up()
    assert not fired(stopped)
    bob.hangs_up()
    assert fired(stopped)
    assert lab.clock.getDelayedCalls() == []


def test_shutdown_of_an_empty_room_fires_at_once() -> None:
    assert fired(Lab().room.shut_down())


def test_shutdown_cuts_off_whoever_is_left_after_3_seconds() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    stopped = lab.room.shut_down()
    alice.hangs_up()
    lab.clock.advance(2.9)
    assert not fired(stopped)
    lab.clock.advance(0.1)
    assert fired(stopped)
    assert bob.connection.aborted
    assert not alice.connection.aborted


def test_a_connection_during_shutdown_is_turned_away() -> None:
    lab = Lab()
    lab.users("alice")
    lab.room.shut_down()
    user = lab.connect()
    assert user.heard() == ROOM_FULL
    assert user.connection.closed


# Broadcasts: encoded once


def turn_ends(room: ChatRoom) -> None:
    """End the reactor's turn, when the room sends what it broadcast in it."""
    cast(Clock, room.clock).advance(0)


def members(room: ChatRoom, *names: str) -> list[FakeMember]:
    joined = []
    for port, name in enumerate(names, 5000):
        member = FakeMember(f"('10.0.0.7', {port})")
        assert room.join(member, name) is None
        joined.append(member)
    turn_ends(room)
    for member in joined:
        member.received.clear()
    return joined


def test_a_message_hands_every_member_the_same_bytes_object() -> None:
    room = ChatRoom(Clock())
    alice, bob, carol = members(room, "alice", "bob", "carol")
    room.say(alice, "hello")
    turn_ends(room)
    assert alice.received == [b"<alice> hello\r\n"]
    assert bob.received[0] is alice.received[0]
    assert carol.received[0] is alice.received[0]


def test_a_join_hands_every_other_member_the_same_bytes_object() -> None:
    room = ChatRoom(Clock())
    alice, bob = members(room, "alice", "bob")
    members(room, "carol")
    assert alice.received == [b"* carol joined\r\n"]
    assert bob.received[0] is alice.received[0]


def test_a_leave_hands_every_member_the_same_bytes_object() -> None:
    room = ChatRoom(Clock())
    alice, bob, carol = members(room, "alice", "bob", "carol")
    room.leave(carol, "quit")
    turn_ends(room)
    assert alice.received == [b"* carol left (quit)\r\n"]
    assert bob.received[0] is alice.received[0]
    assert carol.received == []


def test_a_rename_hands_every_member_the_same_bytes_object() -> None:
    room = ChatRoom(Clock())
    alice, bob = members(room, "alice", "bob")
    assert room.rename(alice, "carol") is None
    turn_ends(room)
    assert alice.received == [b"* alice is now known as carol\r\n"]
    assert bob.received[0] is alice.received[0]


def test_the_shutdown_notice_is_the_same_bytes_object_for_everyone() -> None:
    room = ChatRoom(Clock())
    alice, bob = members(room, "alice", "bob")
    for member in (alice, bob):
        room.arrive(member)
    room.shut_down()
    assert alice.received == [SHUTTING_DOWN]
    assert bob.received[0] is alice.received[0]


def test_a_session_delivers_the_rooms_bytes_object_to_its_connection_as_it_is() -> None:
    alice, bob = Lab().users("alice", "bob")
    alice.types("hello")
    alice.clock.advance(0)
    assert bob.connection.lines[0] is alice.connection.lines[0]


# A held room: the broadcasts of one turn of the reactor go out together


def test_a_held_room_sends_nothing_until_the_turn_ends_then_one_bytes_object_to_each() -> None:
    lab = Lab(rate=0)
    alice, bob, carol = lab.users("alice", "bob", "carol")
    lab.room.hold()
    alice.types("one", "two")
    bob.types("three")
    assert bob.connection.lines == []
    lab.clock.advance(0)
    assert bob.connection.lines == [b"<alice> one\r\n<alice> two\r\n<bob> three\r\n"]
    assert alice.connection.lines[0] is bob.connection.lines[0]
    assert carol.connection.lines[0] is bob.connection.lines[0]


def test_a_room_held_twice_in_one_turn_releases_once() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    lab.room.hold()
    alice.types("one")
    lab.room.hold()
    alice.types("two")
    lab.clock.advance(0)
    assert bob.connection.lines == [b"<alice> one\r\n<alice> two\r\n"]
    alice.types("three")
    lab.clock.advance(0)
    assert bob.connection.lines[-1] == b"<alice> three\r\n"


def test_a_user_who_joins_while_held_hears_only_what_follows_the_join() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    lab.room.hold()
    alice.types("before")
    carol = lab.user("carol")
    alice.types("after")
    lab.clock.advance(0)
    assert carol.heard() == PROMPT + b"Welcome carol! 3 users online: alice, bob, carol\r\n" + (
        b"<alice> after\r\n"
    )
    assert bob.heard() == b"<alice> before\r\n* carol joined\r\n<alice> after\r\n"


def test_users_who_join_in_one_turn_each_hear_the_joins_after_their_own() -> None:
    lab = Lab()
    (alice,) = lab.users("alice")
    lab.room.hold()
    bob, carol, dave = (lab.user(name) for name in ("bob", "carol", "dave"))
    for user in (bob, carol, dave):
        # Their prompts and welcomes, which no turn's end holds back.
        user.connection.lines.clear()
    lab.clock.advance(0)
    assert alice.heard() == b"* bob joined\r\n* carol joined\r\n* dave joined\r\n"
    assert bob.heard() == b"* carol joined\r\n* dave joined\r\n"
    assert carol.heard() == b"* dave joined\r\n"
    assert dave.heard() == b""


def test_a_line_to_one_user_while_held_comes_after_the_broadcasts_before_it() -> None:
    lab = Lab()
    alice, bob, carol = lab.users("alice", "bob", "carol")
    lab.room.hold()
    alice.types("hello")
    carol.types("/msg bob psst")
    bob.types("/frobnicate")
    alice.types("bye")
    lab.clock.advance(0)
    assert bob.heard() == (
        b"<alice> hello\r\n*carol* psst\r\n"
        b"ERROR unknown command: /frobnicate (try /help)\r\n<alice> bye\r\n"
    )
    assert carol.heard() == b"<alice> hello\r\n-> *bob* psst\r\n<alice> bye\r\n"
    assert alice.heard() == b"<alice> hello\r\n<alice> bye\r\n"


def test_a_user_who_quits_while_held_first_hears_what_was_said_before() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    lab.room.hold()
    alice.types("hello", "/quit")
    assert alice.heard() == b"<alice> hello\r\nBye alice!\r\n"
    assert alice.connection.closed
    lab.clock.advance(0)
    assert alice.heard() == b""
    assert bob.heard() == b"<alice> hello\r\n* alice left (quit)\r\n"


def test_a_user_whose_connection_drops_while_held_is_handed_what_was_said_before() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    lab.room.hold()
    bob.types("hello")
    alice.hangs_up()
    lab.clock.advance(0)
    assert alice.heard() == b"<bob> hello\r\n"
    assert bob.heard() == b"<bob> hello\r\n* alice left (connection lost)\r\n"


def test_a_rename_while_held_keeps_the_order_of_the_turn() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    lab.room.hold()
    alice.types("one", "/nick carol", "two")
    lab.clock.advance(0)
    assert bob.heard() == b"<alice> one\r\n* alice is now known as carol\r\n<carol> two\r\n"


def test_shutdown_sends_what_was_held_before_the_notice() -> None:
    lab = Lab()
    alice, bob = lab.users("alice", "bob")
    lab.room.hold()
    alice.types("last words")
    lab.room.shut_down()
    assert bob.heard() == b"<alice> last words\r\n" + SHUTTING_DOWN
    lab.clock.advance(0)
    assert bob.heard() == b""


def test_a_broadcast_excluding_a_member_with_lines_waiting_hands_it_those_first() -> None:
    clock = Clock()
    room = ChatRoom(clock)
    alice, bob = members(room, "alice", "bob")
    room.hold()
    room.broadcast("one")
    room.broadcast("not for bob", exclude=bob)
    room.broadcast("two")
    clock.advance(0)
    assert b"".join(bob.received) == b"one\r\ntwo\r\n"
    assert b"".join(alice.received) == b"one\r\nnot for bob\r\ntwo\r\n"
    assert len(alice.received) == 1


def test_members_with_the_same_start_share_one_bytes_object() -> None:
    clock = Clock()
    room = ChatRoom(clock)
    alice, bob = members(room, "alice", "bob")
    room.hold()
    room.broadcast("one")
    carol, dave = FakeMember("('10.0.0.7', 6000)"), FakeMember("('10.0.0.7', 6001)")
    assert room.join(carol, "carol") is None
    assert room.join(dave, "dave") is None
    for member in (carol, dave):
        member.received.clear()
    room.broadcast("two")
    clock.advance(0)
    assert carol.received == [b"* dave joined\r\ntwo\r\n"]
    assert dave.received == [b"two\r\n"]
    assert alice.received == [b"one\r\n* carol joined\r\n* dave joined\r\ntwo\r\n"]
    assert bob.received[0] is alice.received[0]


def test_a_line_to_someone_who_has_left_carries_nothing_said_after_they_went() -> None:
    clock = Clock()
    room = ChatRoom(clock)
    alice, bob = members(room, "alice", "bob")
    room.hold()
    room.leave(bob, "quit")
    room.broadcast("after bob left")
    room.tell(bob, b"a last word\r\n")
    clock.advance(0)
    assert bob.received == [b"a last word\r\n"]
    assert alice.received == [b"* bob left (quit)\r\nafter bob left\r\n"]


# A room that answers later (as a room spread over nodes does)


def later(lab: Lab, method: str) -> list[Deferred[Any]]:
    """Make lab's room answer method with a Deferred; returns those it hands out."""
    handed: list[Deferred[Any]] = []
    answer_now = getattr(lab.room, method)

    def answer_later(*args: Any) -> Deferred[Any]:
        answer = answer_now(*args)
        deferred: Deferred[Any] = Deferred()
        handed.append(deferred)
        deferred.addCallback(lambda _: answer)
        return deferred

    setattr(lab.room, method, answer_later)
    return handed


def test_lines_read_while_the_room_works_on_an_answer_wait_for_it_in_order() -> None:
    lab = Lab()
    alice = lab.user("alice")
    alice.heard()
    answers = later(lab, "list_names")
    alice.types("/who", "hello", "/me waves")
    assert alice.heard() == b""
    answers[0].callback(None)
    assert alice.heard() == lines("1 user online: alice", "<alice> hello", "* alice waves")


def test_a_line_that_asks_again_makes_the_rest_wait_again() -> None:
    lab = Lab()
    alice = lab.user("alice")
    alice.heard()
    answers = later(lab, "list_names")
    alice.types("/who", "/who", "hello")
    answers[0].callback(None)
    assert alice.heard() == lines("1 user online: alice")
    answers[1].callback(None)
    assert alice.heard() == lines("1 user online: alice", "<alice> hello")


def test_lines_waiting_when_the_name_is_lost_are_not_taken_for_names() -> None:
    lab = Lab()
    alice = lab.user("alice")
    alice.heard()
    answers = later(lab, "list_names")
    alice.types("/who", "hello")
    lab.room.let_go(alice.session, "name taken meanwhile")
    alice.session.lose_name(b"* your name was taken\r\n")
    answers[0].callback(None)
    assert alice.heard() == b"* your name was taken\r\n" + lines(
        "Welcome to labchat! Please enter your name:"
    )
    assert alice.session.stage is Stage.LOGIN
    alice.types("alice2")
    assert alice.heard() == lines("Welcome alice2! 1 user online: alice2")


def test_lines_read_while_an_answer_waits_are_held_up_to_a_burst_and_quit_always() -> None:
    lab = Lab(burst=3)
    alice = lab.user("alice")
    alice.heard()
    answers = later(lab, "list_names")
    alice.types("/who", "one", "two", "three", "four", "/QUIT bye")
    # The fourth is one too many to hold: the user is told at once.
    assert alice.heard() == lines("ERROR slow down: message dropped")
    assert lab.room.figures.flood_dropped == 1
    answers[0].callback(None)
    # Then flood control reads them as it would have: /who took one of the three.
    assert alice.heard() == lines(
        "1 user online: alice",
        "<alice> one",
        "<alice> two",
        "ERROR slow down: message dropped",
        "Bye alice!",
    )


def test_an_empty_line_read_past_the_burst_while_an_answer_waits_gets_no_answer() -> None:
    lab = Lab(burst=2)
    alice = lab.user("alice")
    alice.heard()
    later(lab, "list_names")
    alice.types("/who", "one", "two", "", "three")
    assert alice.heard() == SLOW_DOWN
    assert lab.room.figures.flood_dropped == 2


def test_lines_that_are_no_name_at_the_prompt_count_against_the_burst() -> None:
    lab = Lab(burst=2, rate=2)
    user = lab.connect()
    user.types("", "no!", "not a name", "", "alice")
    assert user.heard() == (
        PROMPT + INVALID_NAME + INVALID_NAME + SLOW_DOWN
        + b"Welcome alice! 1 user online: alice\r\n"
    )  # fmt: skip


def test_without_flood_control_every_line_read_while_an_answer_waits_is_kept() -> None:
    lab = Lab(burst=3, rate=0)
    alice = lab.user("alice")
    alice.heard()
    answers = later(lab, "list_names")
    alice.types("/who", *(f"line {number}" for number in range(10)))
    answers[0].callback(None)
    assert alice.heard() == lines(
        "1 user online: alice", *(f"<alice> line {number}" for number in range(10))
    )


# The log of a crowd leaving at once


def test_the_users_who_leave_after_the_first_in_one_turn_are_logged_twenty_to_a_line(
    logged,
) -> None:
    lab = Lab()
    users = lab.users(*(f"user{number:02d}" for number in range(42)))
    for user in users[:41]:
        user.hangs_up()
    assert logged.lines()[-1] == "user00 left (connection lost)"
    lab.clock.advance(0)
    assert logged.lines()[-2:] == [
        ", ".join(f"user{number:02d}" for number in range(1, 21)) + " left (connection lost)",
        ", ".join(f"user{number:02d}" for number in range(21, 41)) + " left (connection lost)",
    ]
    # A turn later, a leave is the first of its turn again.
    users[41].types("/quit bye")
    assert logged.lines()[-1] == "user41 left (bye)"


def test_leaves_of_one_turn_are_logged_together_by_reason(logged) -> None:
    lab = Lab()
    alice, bob, carol, dave = lab.users("alice", "bob", "carol", "dave")
    alice.hangs_up()
    bob.types("/quit")
    carol.hangs_up()
    dave.types("/quit")
    lab.clock.advance(0)
    assert logged.lines()[-3:] == [
        "alice left (connection lost)",
        "bob, dave left (quit)",
        "carol left (connection lost)",
    ]
