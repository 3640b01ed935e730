"""labchat's web page (``twistd -n labchat --web ENDPOINT``) in a real browser.

Each browser user is Debian's chromium, headless, driven by Selenium
through Debian's chromedriver; the TCP user is a plain socket. Where
chromium, chromedriver or selenium is missing, the tests skip and say why
(in CI they fail: see support.system).

LABPROTO_UPDATE_SCREENSHOT=1 also writes the screenshot of docs/web.rst,
docs/web/labchat-page.png; without it the tests leave the tree as it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.chat import ChatUser, Connect
from support.processes import DEADLINE, LOOPBACK_TCP, ServerProcess
from support.system import missing

try:
    from selenium.common.exceptions import NoAlertPresentException, WebDriverException
    from selenium.webdriver import Chrome, ChromeOptions
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:
    HAVE_SELENIUM = False
else:
    HAVE_SELENIUM = True

Start = Callable[..., ServerProcess]

# Debian's packages chromium and chromium-driver; both given by path, so that
# Selenium Manager never goes looking for (or downloading) a browser or driver.
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGUMENTS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # The size of the page's screenshot in docs/web.rst.
    "--window-size=1000,650",
)

WEB_LISTENING = r"labchat web listening on TCP \S+:(\d+)$"
CHAT_LISTENING = r"labchat listening on TCP \S+:(\d+)$"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "web" / "labchat-page.png"
UPDATE_SCREENSHOT = "LABPROTO_UPDATE_SCREENSHOT"

# Markup that would run if the page ever inserted a line as HTML.
MARKUP = "<img src=x onerror=alert(1)><script>alert(2)</script>"

# The texts of the elements of a list, as the page inserted them, in one round trip.
TEXTS_OF = "return Array.from(document.querySelectorAll(arguments[0]), e => e.textContent);"


class BrowserUser:
    """One person at the chat page, in a headless chromium of their own."""

    def __init__(self, driver: Chrome, url: str) -> None:
        self.driver = driver
        self.url = url
        self.closed = False

    def wait(self, condition: Callable[[BrowserUser], object], what: str) -> None:
        """Wait until condition(self) is true, failing with what after the deadline."""
        WebDriverWait(self.driver, DEADLINE, poll_frequency=0.02).until(
            lambda _: condition(self), what
        )

    def texts(self, selector: str) -> list[str]:
        """The text of every element that selector finds, in page order."""
        texts = self.driver.execute_script(TEXTS_OF, selector)
        assert isinstance(texts, list)
        return [str(text) for text in texts]

    def text(self, element_id: str) -> str:
        """The text that the element with this id shows (nothing, when it is hidden)."""
        return self.driver.find_element(By.ID, element_id).text

    def messages(self) -> list[str]:
        """Every line in the message list."""
        return self.texts("#messages li")

    def users(self) -> list[str]:
        """The list of users online, as the page shows it."""
        return self.texts("#users li")

    def open_page(self) -> None:
        """Load the chat page: its login form."""
        self.driver.get(self.url)

    def try_name(self, name: str) -> None:
        """Type name in the login form, replacing what is there, and press Enter."""
        field = self.driver.find_element(By.ID, "login-name")
        field.clear()
        field.send_keys(name, Keys.ENTER)

    def log_in(self, name: str) -> None:
        """Open the page and log in as name; return once the room is shown."""
        self.open_page()
        self.try_name(name)
        self.wait(lambda user: user.text("whoami") == f"you are {name}", f"{name} logged in")

    def say(self, line: str) -> None:
        """Type line in the message field and press Enter."""
        self.driver.find_element(By.ID, "message-input").send_keys(line, Keys.ENTER)

    def wait_for_line(self, line: str) -> None:
        """Wait until line is in the message list."""
        self.wait(lambda user: line in user.messages(), f"the line {line!r}")

    def wait_for_users(self, names: list[str]) -> None:
        """Wait until the list of users online is names, in that order."""
        self.wait(lambda user: user.users() == names, f"the user list {names}")

    def alert_is_open(self) -> bool:
        """Whether a JavaScript alert() is open on the page."""
        try:
            self.driver.switch_to.alert  # noqa: B018 (the property raises when there is none)
        except NoAlertPresentException:
            return False
        return True

    def close(self) -> None:
        """Quit the browser: its connections close as when a person closes the window."""
        if not self.closed:
            self.closed = True
            self.driver.quit()


def check_browser_is_here() -> None:
    """Skip (or fail, in CI) the test if a part it needs is not installed."""
    if not HAVE_SELENIUM:
        missing("selenium is not installed: pip install -e '.[test]'")
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is not installed: apt-get install chromium")
    if not CHROMEDRIVER.exists():
        missing(f"{CHROMEDRIVER} is not installed: apt-get install chromium-driver")


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Callable[[str, str], BrowserUser]]:
    """Start headless browsers at a page (each with a fresh profile); all quit after the test."""
    check_browser_is_here()
    opened: list[BrowserUser] = []

    def open_browser(label: str, url: str) -> BrowserUser:
        options = ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in CHROMIUM_ARGUMENTS:
            options.add_argument(argument)
        options.add_argument(f"--user-data-dir={tmp_path / f'chromium-{label}'}")
        driver = Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        opened.append(BrowserUser(driver, url))
        return opened[-1]

    try:
        yield open_browser
    finally:
        for user in opened:
            # One browser that fails to quit must not leave the others running.
            with contextlib.suppress(WebDriverException):
                user.close()


def web_chat_server(servers: Start) -> tuple[ServerProcess, str, int]:
    """Start labchat with its web page, both on free ports of 127.0.0.1.

    Returns the server, the page's address and the chat's TCP port.
    """
    server = servers("labchat", "--port", LOOPBACK_TCP, "--web", LOOPBACK_TCP)
    web_port = server.wait_for(WEB_LISTENING).group(1)
    chat_port = int(server.wait_for(CHAT_LISTENING).group(1))
    return server, f"http://127.0.0.1:{web_port}/", chat_port


def test_browser_and_tcp_users_share_one_room(
    browsers: Callable[[str, str], BrowserUser], servers: Start, connect: Connect, tmp_path: Path
) -> None:
    server, url, chat_port = web_chat_server(servers)
    carol = connect(chat_port)
    assert carol.log_in("carol") == "Welcome carol! 1 user online: carol"

    alice = browsers("alice", url)
    alice.log_in("alice")
    alice.wait_for_users(["alice", "carol"])
    assert alice.messages() == ["Welcome alice! 2 users online: alice, carol"]

    # A name already taken is refused on the login form; the same connection
    # then logs in under another name.
    bob = browsers("bob", url)
    bob.open_page()
    bob.try_name("alice")
    bob.wait(lambda user: user.text("login-error") == "ERROR name taken: alice", "the refusal")
    bob.try_name("Bob")
    bob.wait(lambda user: user.text("whoami") == "you are Bob", "Bob logged in")
    # Sorted whatever the case, as the server sorts them.
    for user in (alice, bob):
        user.wait_for_users(["alice", "Bob", "carol"])

    alice.say("hello from a browser")
    bob.wait_for_line("<alice> hello from a browser")
    carol.send("hello from a socket")
    carol.send("/me waves")
    for user in (alice, bob):
        user.wait_for_line("* carol waves")

    # A line is text: the markup shows as its characters and makes no element.
    bob.say(MARKUP)
    for user in (alice, bob):
        user.wait_for_line(f"<Bob> {MARKUP}")
        assert user.driver.find_elements(By.CSS_SELECTOR, "#messages img, #messages script") == []

    alice.say("/msg Bob psst")
    bob.wait_for_line("*alice* psst")
    alice.wait_for_line("-> *Bob* psst")

    # The page follows its own /nick: the header, and everyone's user list.
    bob.say("/nick robert")
    bob.wait(lambda user: user.text("whoami") == "you are robert", "robert renamed")
    for user in (alice, bob):
        user.wait_for_users(["alice", "carol", "robert"])
    alice.wait_for_line("* Bob is now known as robert")

    alice.driver.save_screenshot(str(tmp_path / "alice-in-the-room.png"))
    if os.environ.get(UPDATE_SCREENSHOT) == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "alice-in-the-room.png", SCREENSHOT)

    # Closing a browser drops its connection: the others see robert leave.
    bob.close()
    alice.wait_for_users(["alice", "carol"])
    alice.wait_for_line("* robert left (connection lost)")
    assert carol.lines_through("* robert left (connection lost)") == [
        "* alice joined",
        "* Bob joined",
        "<alice> hello from a browser",
        "<carol> hello from a socket",
        "* carol waves",
        f"<Bob> {MARKUP}",
        "* Bob is now known as robert",
        "* robert left (connection lost)",
    ]
    assert alice.messages() == [
        "Welcome alice! 2 users online: alice, carol",
        "* Bob joined",
        "<alice> hello from a browser",
        "<carol> hello from a socket",
        "* carol waves",
        f"<Bob> {MARKUP}",
        "-> *Bob* psst",
        "* Bob is now known as robert",
        "* robert left (connection lost)",
    ]
    # Long after the markup arrived, nothing it held has run.
    assert not alice.alert_is_open()

    # The server stops: the page says so, and Reconnect goes back to the
    # login form with the name filled in.
    server.stop()
    alice.wait_for_line("* server shutting down")
    alice.wait(
        lambda user: user.driver.find_element(By.ID, "connection-notice").is_displayed(),
        "the connection notice",
    )
    assert "shutting down" in alice.text("connection-text")
    alice.driver.save_screenshot(str(tmp_path / "alice-at-the-end.png"))
    alice.driver.find_element(By.ID, "reconnect").click()
    alice.wait(
        lambda user: user.driver.find_element(By.ID, "login-form").is_displayed(),
        "the login form",
    )
    assert alice.driver.find_element(By.ID, "login-name").get_attribute("value") == "alice"


def test_a_crowded_room_is_listed_by_the_pages_own_who(
    browsers: Callable[[str, str], BrowserUser], servers: Start, connect: Connect
) -> None:
    """Past 20 users the welcome line only counts them: the page asks /who itself, quietly."""
    _, url, chat_port = web_chat_server(servers)
    crowd: list[ChatUser] = []
    for number in range(1, 22):
        crowd.append(connect(chat_port))
        crowd[-1].log_in(f"user{number:02}")
    names = [f"user{number:02}" for number in range(1, 22)] + ["zoe"]

    zoe = browsers("zoe", url)
    zoe.log_in("zoe")
    zoe.wait_for_users(names)
    assert zoe.messages() == ["Welcome zoe! 22 users online (/who lists them)"]

    # A /who of one's own is shown, 20 names to a line.
    zoe.say("/who")
    zoe.wait_for_line("user21, zoe")
    assert zoe.messages()[1:] == ["22 users online:", ", ".join(names[:20]), "user21, zoe"]
    crowd[0].send("/quit")
    zoe.wait_for_users(names[1:])
