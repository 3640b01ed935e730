"""``labproto chat``: join the labchat room, at a terminal or from a script.

What it does
------------
The client connects, answers the server's ``Please enter your name:`` with
a name (``--name``, or one the user types), and once the server has said
``Welcome <name>! ...`` it does two things at the same time: every line the
room sends is shown as it arrives, and every line the user types is sent.
The end of the input (Ctrl-D), Ctrl-C or a typed ``/quit`` says ``/quit``
to the server, which answers ``Bye <name>!`` and closes the connection;
the client then exits with status 0. A connection that ends without our
``/quit`` (the server stopped, or logged us out after its login timeout)
is a failure: one line on standard error, status 1.

Two front ends, one session
---------------------------
"At the same time" is the hard part of a chat client. A terminal shows
what the user types and what the program prints in one place, so a
message that arrives while the user is half-way through a line would be
printed in the middle of it. The session (ChatSession) therefore never
touches the terminal itself: it talks to a small front end (UserIO) that
reads the user's lines and shows the room's, and there are two of them.

* TerminalIO, when standard input and output are both a terminal: a
  prompt_toolkit prompt (``alice> ``) sits on the last line, and
  patch_stdout makes every printed line appear above it, the half-typed
  line redrawn below. prompt_toolkit runs on asyncio, so this client then
  runs Twisted on asyncio's event loop too: prepare() installs Twisted's
  asyncio reactor, which must happen before anything imports
  ``twisted.internet.reactor`` (the labproto command calls it before
  task.react does). A prompt's answer, an asyncio Future, becomes a
  Deferred with Deferred.fromFuture.
* PipedIO, otherwise: input lines read by a thread (InputLines), received
  lines printed as they come, nothing else. This is the client for scripts
  and tests (``printf 'alice\\nhello\\n' | labproto chat``), and for a
  terminal whose output goes to a file, where prompt_toolkit's drawing
  would only be noise in the file.

At a terminal a refused name is asked for again; piped, the input lines
are tried as names in turn until one is accepted (as if typed into
``nc``), but a ``--name`` that is refused ends the client, since nobody is
there to type another. Only ``ERROR invalid name:`` and ``ERROR name
taken:`` (or ``ERROR line too long`` for a piped line) refuse a name;
another ERROR in answer to one (``ERROR login timed out``, the server's
timeout passing as the name arrived) is shown, and piped, the client then
reports how the visit ends rather than a refused name.

The prompt shows the name we are known by. It follows a rename of ours only
to the name of the user's own last ``/nick``: ``* alice is now known as zed``
is also what alice's ``/me is now known as zed`` looks like.

The server's lines are shown with their control characters removed
(labproto.text.without_controls): a hostile server or user must not be
able to drive the terminal with escape sequences.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred

from labproto import ports
from labproto.chat.commands import split_command
from labproto.chat.names import NAME_PATTERN, parse_name
from labproto.chat.wire import NAME_RULE, PROMPT
from labproto.clients import arguments
from labproto.clients.common import ClientError, Console
from labproto.clients.lines_in import MAX_INPUT_LINE, InputLines, LineTooLong
from labproto.clients.tcp import (
    ServerConnection,
    add_timeout_argument,
    add_tls_arguments,
    connect_lines,
)
from labproto.text import printable, without_controls

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession

DESCRIPTION = (
    "Join a labchat room: log in with a name, then every line you type is sent to "
    "the room and every line the room sends is shown as it arrives. At a terminal, "
    "the room's lines appear above a prompt that shows your name, never inside a "
    "half-typed line; a refused name is asked for again. Piped, it works line by "
    "line so that it can be scripted: input lines are tried as names until one is "
    "accepted, then each is sent as it is, and each line received is printed. "
    "/quit, Ctrl-D, Ctrl-C or the end of the input leaves the room (status 0). "
    "Status 1 if the server cannot be reached, turns the client away, refuses a "
    "--name given with piped input, or drops the connection. --timeout bounds the "
    "wait for the server's prompt, for its answer to a name and for its close after "
    "/quit; the room itself may stay silent as long as it likes."
)

QUIT = "/quit"
NICK = "/nick"
ERROR = "ERROR "
# The only answers to a name that refuse it: the server then waits for another.
# (A piped line too long for the server is refused as a line, to the same effect.)
# Any other ERROR (login timed out, room full) is about the visit, not the name.
NAME_REFUSALS = ("ERROR invalid name:", "ERROR name taken:", "ERROR line too long")
RENAMED = re.compile(rf"\* ({NAME_PATTERN}) is now known as ({NAME_PATTERN})")

NAME_PROMPT = "name: "


# --name: a name the server accepts, checked before connecting.
name_argument = arguments.name_type(parse_name, NAME_RULE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the chat client's options to its subcommand parser."""
    arguments.add_server_arguments(parser, ports.LABCHAT)
    add_tls_arguments(parser)
    parser.add_argument(
        "--name",
        type=name_argument,
        help="the name to log in with: 1 to 24 ASCII letters, digits, _, - or . "
        "(default: ask for it at a terminal, or try the input lines in turn when piped)",
    )
    add_timeout_argument(parser)
    parser.set_defaults(at_terminal=False)


def at_terminal() -> bool:
    """Whether the user both types and reads at a terminal: the prompt_toolkit front end."""
    return all(stream is not None and stream.isatty() for stream in (sys.stdin, sys.stdout))


def prepare(options: argparse.Namespace) -> None:
    """Choose the front end and, for the terminal's, install the asyncio reactor it needs.

    Called before anything imports ``twisted.internet.reactor``, which
    would install the default reactor for good.
    """
    options.at_terminal = at_terminal()
    if options.at_terminal:
        from twisted.internet import asyncioreactor

        asyncioreactor.install()


def is_quit(line: str) -> bool:
    """Whether a typed line is the /quit command, with or without a reason."""
    command = split_command(line)
    return command is not None and command[0].lower() == QUIT


def requested_name(line: str) -> str | None:
    """The name a typed line asks for with /nick, or None when it is no /nick of a valid name."""
    command = split_command(line)
    if command is None or command[0].lower() != NICK:
        return None
    return parse_name(command[1])


class UserIO(Protocol):
    """Where the chat meets its user: the lines they type, and the lines they are shown."""

    def read_line(self, prompt: Callable[[], str]) -> Deferred[str | None]:
        """The user's next line, or None when they are done (end of input, Ctrl-D, Ctrl-C)."""

    def show(self, line: str) -> None:
        """Show one line from the server."""

    def complain(self, line: str) -> None:
        """Tell the user something the client itself has to say."""

    async def close(self) -> None:
        """Stop reading, leaving the terminal as it was."""


class PipedIO:
    """Lines from a pipe or a file, received lines printed as they come: a scriptable chat."""

    def __init__(self, lines: InputLines, console: Console) -> None:
        self.lines = lines
        self.console = console

    def read_line(self, prompt: Callable[[], str]) -> Deferred[str | None]:
        """The next input line; there is no prompt to show."""
        return Deferred.fromCoroutine(self.lines.next_line())

    def show(self, line: str) -> None:
        """Print the line on standard output, flushed."""
        self.console.say(line)

    def complain(self, line: str) -> None:
        """Print the line on standard error."""
        self.console.complain(line)

    async def close(self) -> None:
        """Nothing to do: the reading thread is a daemon."""


class TerminalIO:
    """A prompt_toolkit prompt on the terminal's last line, the room's lines printed above it.

    Must run inside patch_stdout, with Twisted on the asyncio reactor.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._session = _prompt_session()
        self._reading: asyncio.Future[str | None] | None = None

    def read_line(self, prompt: Callable[[], str]) -> Deferred[str | None]:
        """Prompt for a line; prompt is called at each redraw, so a new name shows at once."""
        self._reading = asyncio.ensure_future(self._prompt(prompt))
        return Deferred.fromFuture(self._reading)

    async def _prompt(self, prompt: Callable[[], str]) -> str | None:
        try:
            # handle_sigint off: Ctrl-C at the prompt is a key, and a SIGINT
            # from elsewhere stays Twisted's to handle (farewell, then stop).
            line: str = await self._session.prompt_async(prompt, handle_sigint=False)
        except (EOFError, KeyboardInterrupt):
            return None  # Ctrl-D or Ctrl-C: the user is done.
        return line

    def show(self, line: str) -> None:
        """Print the line above the prompt, and redraw the prompt, which may show a new name."""
        self.console.say(line)
        self._session.app.invalidate()

    def complain(self, line: str) -> None:
        """Print the line above the prompt too."""
        self.console.complain(line)

    async def close(self) -> None:
        """Take the prompt away and wait until prompt_toolkit has restored the terminal."""
        reading, self._reading = self._reading, None
        if reading is not None and not reading.done():
            reading.cancel()
            await Deferred.fromFuture(asyncio.ensure_future(asyncio.wait([reading])))


def _prompt_session() -> PromptSession[str]:
    # Imported here: only the terminal front end needs prompt_toolkit, and a
    # piped chat should not pay for loading it.
    from prompt_toolkit import PromptSession

    # The typed line is erased once sent: the room's echo of it replaces it.
    return PromptSession(erase_when_done=True)


class ChatSession:
    """One visit to the room: log in under a name, then relay lines both ways until the end.

    interactive says whether someone is there to type another name when the
    one given with --name is refused.
    """

    def __init__(
        self, reactor: Any, server: ServerConnection, user: UserIO, interactive: bool
    ) -> None:
        self.reactor = reactor
        self.server = server
        self.user = user
        self.interactive = interactive
        self.name: str | None = None
        # The name of the last /nick the user sent, until the server renames us to it.
        self.renaming: str | None = None
        self.quitting = False

    def prompt(self) -> str:
        """What the user's line starts with: the name they are known by, once logged in."""
        return NAME_PROMPT if self.name is None else f"{self.name}> "

    def show(self, line: str) -> None:
        """Show a line from the server without its control characters, noting our own new name."""
        line = without_controls(line)
        renamed = RENAMED.fullmatch(line)
        if renamed and self._asked_for(renamed[1], renamed[2]):
            self.name, self.renaming = renamed[2], None
        self.user.show(line)

    def _asked_for(self, old: str, new: str) -> bool:
        # "* alice is now known as zed" is also what alice's "/me is now known
        # as zed" looks like: only a rename to the name of our own /nick counts.
        return (
            self.name is not None
            and self.renaming is not None
            and old.lower() == self.name.lower()
            and new.lower() == self.renaming.lower()
        )

    async def next_typed(self) -> str | None:
        """The user's next line, None when they are done; ClientError if the server goes first."""
        try:
            return await self.server.while_connected(self.user.read_line(self.prompt))
        except ClientError:
            await self.show_until_the_end()

    async def show_until_the_end(self) -> NoReturn:
        """Show what the server says until it goes; ClientError then, or if it falls silent."""
        # The server's last words, such as ERROR login timed out before it
        # hangs up; receive() fails at the end with the error of the end.
        while True:
            self.show(await self.server.receive())

    async def visit(self, name: str | None) -> None:
        """Log in, then chat until the user leaves; ClientError if the server fails us."""
        if await self.log_in(name):
            await self.chat()

    async def log_in(self, name: str | None) -> bool:
        """Send names until one is accepted; False if the user gave up before that."""
        # labchat greets with its prompt, or turns us away with an ERROR line.
        greeting = await self.server.receive_first(
            "labchat", lambda line: line == PROMPT or line.startswith(ERROR)
        )
        if greeting.startswith(ERROR):  # ERROR room full
            raise ClientError(f"{self.server.where} did not let us in: {printable(greeting)}")
        self.show(greeting)
        while True:
            from_option = name is not None
            if name is None:
                name = await self.ask_name()
                if name is None:
                    return False
            self.server.send(name)
            answer = await self.server.receive()
            if not answer.startswith(ERROR):
                break
            refused = answer.startswith(NAME_REFUSALS)
            if refused and from_option and not self.interactive:
                raise ClientError(
                    f"{self.server.where} refused the name {name!r}: {printable(answer)}"
                )
            self.show(answer)
            if not refused and not self.interactive:
                # Not about the name: ERROR login timed out, the server's
                # timeout passing as the name arrived. The next input line
                # is no name to try; show how the visit ends instead.
                await self.show_until_the_end()
            # Refused, the server waits for another name. At a terminal, the
            # user may try again after any ERROR, and a hang-up is reported
            # as soon as it comes.
            name = None
        self.name = name
        self.show(answer)
        # From now on a Ctrl-C (the reactor stopping) leaves politely; before,
        # /quit would have been taken for a name.
        self.server.farewell = QUIT
        return True

    async def ask_name(self) -> str | None:
        """The next line the user types that is not blank, trimmed; None if they are done."""
        while (typed := await self.next_typed()) is not None:
            if typed.strip():
                return typed.strip()
        return None

    async def chat(self) -> None:
        """Show the room's lines as they come and send the user's, until the connection ends."""
        typing = Deferred.fromCoroutine(self._send_typed())
        # Cancelled below when the connection ends; a prompt cancelled is
        # asyncio's CancelledError, which is not Twisted's.
        typing.addErrback(lambda failure: failure.trap(CancelledError, asyncio.CancelledError))
        try:
            while True:
                try:
                    line = await self.server.receive(wait_forever=True)
                except ClientError:
                    if self.quitting:
                        return  # The server's close after our /quit.
                    raise
                self.show(line)
        finally:
            typing.cancel()

    async def _send_typed(self) -> None:
        """Send the user's lines; when they are done, quit, and hang up if the server does not."""
        try:
            line = await self._send_until_quit()
        except CancelledError:
            raise
        except Exception as e:
            # The input broke (a terminal gone): leave as at its end.
            self.user.complain(f"cannot read the input: {e}")
            line = QUIT
        self.quitting = True
        self.server.farewell = None  # Said already; a Ctrl-C now only hangs up.
        self.server.send(line)
        await task.deferLater(self.reactor, self.server.timeout)
        transport: Any = self.server.protocol.transport
        transport.abortConnection()

    async def _send_until_quit(self) -> str:
        """Send each line typed, as it is, until /quit or the end; return the line to quit with."""
        while (line := await self.user.read_line(self.prompt)) is not None:
            if isinstance(line, LineTooLong):
                self.user.complain(f"not sent: a line longer than {MAX_INPUT_LINE} bytes")
            elif is_quit(line):
                return line
            else:
                self.renaming = requested_name(line) or self.renaming
                self.server.send(line)
        return QUIT


def _standard_input() -> int:
    # With standard input closed (labproto chat <&-), there is no input at all.
    return sys.stdin.fileno() if sys.stdin is not None else os.open(os.devnull, os.O_RDONLY)


async def run(reactor: Any, options: argparse.Namespace, console: Console) -> None:
    """Visit the chat room of options, with the front end that prepare() chose."""
    server = await connect_lines(reactor, options)
    try:
        if options.at_terminal:
            await _visit_at_terminal(reactor, server, options.name)
        else:
            user = PipedIO(InputLines(reactor, _standard_input()), console)
            await ChatSession(reactor, server, user, interactive=False).visit(options.name)
    finally:
        await server.close()


async def _visit_at_terminal(reactor: Any, server: ServerConnection, name: str | None) -> None:
    from prompt_toolkit.patch_stdout import patch_stdout

    with patch_stdout():
        # A Console made now writes to patch_stdout's proxies, above the prompt.
        user = TerminalIO(Console())
        try:
            await ChatSession(reactor, server, user, interactive=True).visit(name)
        finally:
            await user.close()
