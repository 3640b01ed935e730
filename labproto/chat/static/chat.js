/*
 * labchat in the browser, in plain JavaScript.
 *
 * The page speaks labchat's line protocol (docs/labchat.rst) over one
 * WebSocket to /ws: every line the server sends arrives as one text
 * message, and every line we send goes as one text message. The server does
 * all the work (names, commands, the room); the page only reads its lines,
 * the way a person reading nc's output would, and keeps three things up to
 * date from them: the message list, the list of users, and our own name.
 *
 * One rule above all: a line from the server is text, never HTML. Every
 * line goes into the page through textContent or createTextNode, never
 * innerHTML, so a message such as <img src=x onerror=alert(1)> shows as
 * those characters and runs nothing.
 */

"use strict";

// The server's lines the page reacts to, as in docs/labchat.rst.

const PROMPT = "Welcome to labchat! Please enter your name:";
const SHUTTING_DOWN = "* server shutting down";

// A name: 1 to 24 ASCII letters, digits, "_", "-" or ".". Knowing exactly what
// a name can be is what lets the patterns below tell a name from other text.
const NAME = "[A-Za-z0-9_.-]{1,24}";

// "Welcome alice! 2 users online: alice, bob", or for a room of more than 20,
// "Welcome alice! 1234 users online (/who lists them)".
const WELCOME = new RegExp(`^Welcome (${NAME})! (\\d+) users? online(?:: (.*)| \\(/who lists them\\))$`);
// The answer to /who: "2 users online: alice, bob" in one line for up to 20
// users, else "1234 users online:" and then lines of up to 20 names.
const WHO_IN_ONE_LINE = /^(\d+) users? online: (.+)$/;
const WHO_HEADER = /^(\d+) users? online:$/;
const NAME_LIST = new RegExp(`^${NAME}(?:, ${NAME})*$`);

const JOINED = new RegExp(`^\\* (${NAME}) joined$`);
// The "s" flag lets "." match any character, even U+2028 (a line separator
// the server lets through), so a reason or a message is matched whole.
const LEFT = new RegExp(`^\\* (${NAME}) left \\((.*)\\)$`, "s");
const RENAMED = new RegExp(`^\\* (${NAME}) is now known as (${NAME})$`);
const BYE = new RegExp(`^Bye (${NAME})!$`);

// The kinds of line in the message list, each styled by its class in chat.css.
const MESSAGE = new RegExp(`^(<(${NAME})>)( .*)$`, "s"); //    <alice> hello
const PRIVATE_IN = new RegExp(`^(\\*${NAME}\\*)( .*)$`, "s"); // *alice* psst
const PRIVATE_OUT = new RegExp(`^(-> \\*${NAME}\\*)( .*)$`, "s"); // -> *bob* psst

// Lines kept in the message list: a day in a busy room must not fill the
// browser's memory. The oldest go first.
const MAX_SHOWN_LINES = 2000;
// How close to the bottom (in pixels) still counts as "reading the newest lines".
const FOLLOW_SLACK = 40;

// Everything the page knows, in one place.
const state = {
  socket: null, //         the WebSocket, or null when there is none
  stage: "idle", //        idle, connecting, login, chat or closed
  pendingName: null, //    the name to send once the server's prompt arrives
  lastName: "", //         offered again by "Reconnect"
  myName: null, //         our name in the room, once welcomed
  requestedNick: null, //  the name of our last /nick, until the server confirms it
  users: new Map(), //     lower-case name -> name as written, for everyone online
  quietWhoAnswers: 0, //   answers of /who the page asked for itself, not to be shown
  whoCollecting: null, //  a long /who answer being read: {count, names, quiet}
  goodbye: null, //        why the server is about to close, when it said so
  following: true, //      whether the reader was at the newest line when last seen
};

// The page's elements, found once.
const $ = (id) => document.getElementById(id);
const ui = {
  loginView: $("login-view"),
  loginForm: $("login-form"),
  loginName: $("login-name"),
  loginButton: $("login-button"),
  loginError: $("login-error"),
  chatView: $("chat-view"),
  whoami: $("whoami"),
  myName: $("my-name"),
  notice: $("connection-notice"),
  noticeText: $("connection-text"),
  reconnect: $("reconnect"),
  usersPanel: $("users-panel"),
  usersToggle: $("users-toggle"),
  userCount: $("user-count"),
  users: $("users"),
  messages: $("messages"),
  jumpToNewest: $("jump-to-newest"),
  messageForm: $("message-form"),
  messageInput: $("message-input"),
  sendButton: $("send-button"),
};

// ---------------------------------------------------------------------------
// The connection

/** The address of the room's WebSocket: the page's own server, path /ws. */
function webSocketAddress() {
  // A page loaded over https must use wss (WebSocket over TLS): a browser
  // refuses plain ws from a secure page.
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  return scheme + location.host + "/ws";
}

/** Open a new connection; the name in state.pendingName goes when the prompt comes. */
function connect() {
  const socket = new WebSocket(webSocketAddress());
  state.socket = socket;
  state.stage = "connecting";
  state.goodbye = null;
  // Each handler first checks that its socket is still the current one: an
  // old connection that closes late must not disturb a newer one.
  socket.addEventListener("message", (event) => {
    // The server sends text frames only; anything else is not a line.
    if (socket === state.socket && typeof event.data === "string") {
      lineReceived(event.data);
    }
  });
  socket.addEventListener("close", (event) => {
    if (socket === state.socket) {
      connectionClosed(event);
    }
  });
  // An "error" event is always followed by "close", which says all there is
  // to say, so the page does not listen for "error".
}

/** Send one line: one WebSocket text message, with no line ending in it. */
function sendLine(text) {
  if (state.socket === null || state.socket.readyState !== WebSocket.OPEN) {
    return false;
  }
  // A text field cannot hold a line break, but pasted text might bring one:
  // inside a frame it would not start a new line, so the server would refuse
  // or misread it. A space takes its place.
  state.socket.send(text.replace(/[\r\n]+/g, " "));
  return true;
}

/** Every line from the server comes here, in order. */
function lineReceived(line) {
  if (state.stage === "chat") {
    chatLineReceived(line);
  } else {
    loginLineReceived(line);
  }
}

/** The WebSocket has closed, whoever closed it. */
function connectionClosed(event) {
  const wasChatting = state.stage === "chat";
  state.socket = null;
  state.stage = wasChatting ? "closed" : "idle";
  if (wasChatting) {
    showConnectionNotice(closedBecause(event));
    return;
  }
  // Still logging in: keep the server's last word (ERROR room full, ERROR
  // login timed out) if it said one; the next "Join" opens a new connection.
  if (ui.loginError.textContent === "") {
    showLoginError(
      state.pendingName !== null
        ? "Could not reach the chat server. Try again in a moment."
        : "The server closed the connection. Join again to reconnect.",
    );
  }
  state.pendingName = null;
  ui.loginButton.disabled = false;
}

/** Why the connection ended, in words for the person at the page. */
function closedBecause(event) {
  if (state.goodbye !== null) {
    return state.goodbye;
  }
  // 1006 is the code the browser reports itself when the connection was cut
  // without a WebSocket goodbye: the network, or a server that died.
  if (event.code === 1006) {
    return "The connection to the chat server was lost.";
  }
  const reason = event.reason ? `: ${event.reason}` : "";
  return `The server closed the connection (code ${event.code}${reason}).`;
}

// ---------------------------------------------------------------------------
// Logging in

function loginSubmitted(event) {
  // The form is handled here: without this the browser would load a new page.
  event.preventDefault();
  const name = ui.loginName.value.trim();
  if (name === "") {
    showLoginError("Please type a name.");
    ui.loginName.focus();
    return;
  }
  showLoginError("");
  state.lastName = name;
  ui.loginButton.disabled = true;
  if (state.stage === "login") {
    // After a refusal the server still waits for a name on the same connection.
    sendLine(name);
  } else {
    state.pendingName = name;
    connect();
  }
}

/** A line before the server has welcomed us: the prompt, the welcome, or a refusal. */
function loginLineReceived(line) {
  if (line === PROMPT) {
    state.stage = "login";
    if (state.pendingName !== null) {
      sendLine(state.pendingName);
      state.pendingName = null;
    }
    return;
  }
  const welcome = WELCOME.exec(line);
  if (welcome !== null) {
    enterRoom(line, welcome);
    return;
  }
  if (line === SHUTTING_DOWN) {
    showLoginError("The server is shutting down.");
    return;
  }
  if (line.startsWith("ERROR ")) {
    // ERROR name taken, ERROR invalid name, ERROR room unavailable: the same
    // connection may try another name. ERROR room full and ERROR login timed
    // out come just before the server closes; the next Join reconnects.
    showLoginError(line);
    ui.loginButton.disabled = false;
    ui.loginName.focus();
    ui.loginName.select();
  }
}

function showLoginError(text) {
  ui.loginError.textContent = text;
  ui.loginName.setAttribute("aria-invalid", text === "" ? "false" : "true");
}

/** The server has welcomed us: show the room. */
function enterRoom(line, welcome) {
  const [, name, , names] = welcome;
  state.stage = "chat";
  state.requestedNick = null;
  state.whoCollecting = null;
  state.quietWhoAnswers = 0;
  setMyName(name);
  if (names !== undefined) {
    setUsers(names.split(", "));
  } else {
    // A room of more than 20 is only counted in the welcome: ask for the
    // names ourselves, and keep the answer out of the message list.
    setUsers([]);
    state.quietWhoAnswers += 1;
    sendLine("/who");
  }
  ui.loginButton.disabled = false;
  ui.loginView.hidden = true;
  ui.chatView.hidden = false;
  ui.notice.hidden = true;
  ui.users.classList.remove("stale");
  ui.messageInput.disabled = false;
  ui.sendButton.disabled = false;
  showLine(line);
  // Whatever was read before, the newest line is where a new session starts.
  scrollToNewest();
  ui.messageInput.focus();
}

// ---------------------------------------------------------------------------
// In the room

/** A line while in the room: keep the user list and our name current, then show it. */
function chatLineReceived(line) {
  if (state.whoCollecting !== null && NAME_LIST.test(line)) {
    // One line of names of a long /who answer.
    const answer = state.whoCollecting;
    answer.names.push(...line.split(", "));
    if (answer.names.length >= answer.count) {
      state.whoCollecting = null;
      setUsers(answer.names);
    }
    if (!answer.quiet) {
      showLine(line);
    }
    return;
  }
  const header = WHO_HEADER.exec(line);
  if (header !== null) {
    const quiet = takeQuietWhoAnswer();
    state.whoCollecting = { count: Number(header[1]), names: [], quiet };
    if (!quiet) {
      showLine(line);
    }
    return;
  }
  const oneLine = WHO_IN_ONE_LINE.exec(line);
  if (oneLine !== null && NAME_LIST.test(oneLine[2])) {
    const quiet = takeQuietWhoAnswer();
    setUsers(oneLine[2].split(", "));
    if (!quiet) {
      showLine(line);
    }
    return;
  }
  followRoomChanges(line);
  showLine(line);
}

function takeQuietWhoAnswer() {
  // Answers come in the order of the questions, and the page asks its /who
  // right after the welcome, before the person can type one: so the first
  // answers are the page's own.
  if (state.quietWhoAnswers > 0) {
    state.quietWhoAnswers -= 1;
    return true;
  }
  return false;
}

/**
 * Update the user list and our own name from a join, a leave or a rename.
 *
 * A caution worth knowing: "/me joined" from alice reads "* alice joined",
 * exactly like a real join, and "/me left (quit)" like a real leave. The
 * protocol cannot tell them apart, so the page believes only what is
 * possible: nobody joins twice, nobody takes a name already taken, and we
 * never leave while we are still reading the room's lines. A /who (or
 * Reconnect) puts the list right whatever happened.
 */
function followRoomChanges(line) {
  let match = JOINED.exec(line);
  if (match !== null) {
    addUser(match[1]);
    return;
  }
  match = LEFT.exec(line);
  if (match !== null) {
    if (match[1] !== state.myName) {
      removeUser(match[1]);
    }
    return;
  }
  match = RENAMED.exec(line);
  if (match !== null) {
    const [, oldName, newName] = match;
    const ours = oldName === state.myName;
    if (ours && newName !== state.requestedNick) {
      return; // our own "/me is now known as ...", not a /nick
    }
    const holder = state.users.get(newName.toLowerCase());
    if (holder !== undefined && newName.toLowerCase() !== oldName.toLowerCase()) {
      return; // that name is someone else's: this was a /me
    }
    removeUser(oldName);
    addUser(newName);
    if (ours) {
      state.requestedNick = null;
      setMyName(newName);
    }
    return;
  }
  if (line === SHUTTING_DOWN) {
    state.goodbye = "The server is shutting down.";
    return;
  }
  match = BYE.exec(line);
  if (match !== null && match[1] === state.myName) {
    state.goodbye = "You have left the room.";
    return;
  }
  if (line.startsWith("ERROR name taken: ") || line.startsWith("ERROR invalid name: ")) {
    state.requestedNick = null; // our /nick was refused: we keep our name
  }
}

function messageSubmitted(event) {
  event.preventDefault();
  const text = ui.messageInput.value;
  // An empty line says nothing (the server would not relay it either).
  if (text.trim() === "") {
    return;
  }
  // The line goes as typed: "/me", "/msg", "/who", "/nick", "/help" and
  // "/quit" are the server's commands, and it answers them itself.
  const nick = /^\/nick\s+(\S+)\s*$/i.exec(text);
  if (sendLine(text)) {
    if (nick !== null) {
      // Remember it: "* alice is now known as carol" is then our rename.
      state.requestedNick = nick[1];
    }
    ui.messageInput.value = "";
  }
}

function setMyName(name) {
  state.myName = name;
  state.lastName = name;
  ui.myName.textContent = name;
  ui.whoami.hidden = false;
  document.title = `labchat: ${name}`;
  renderUsers();
}

// ---------------------------------------------------------------------------
// The list of users

function setUsers(names) {
  state.users.clear();
  for (const name of names) {
    state.users.set(name.toLowerCase(), name);
  }
  renderUsers();
}

function addUser(name) {
  // Names are unique whatever their case: the lower-case name is the key.
  state.users.set(name.toLowerCase(), name);
  renderUsers();
}

function removeUser(name) {
  state.users.delete(name.toLowerCase());
  renderUsers();
}

/** Draw the user list again, in the server's order: by lower-case name. */
function renderUsers() {
  // Compared as plain strings, as the server sorts them (Python's sorted by
  // name.lower()), not localeCompare, which orders "_" and "." differently.
  const keys = [...state.users.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const items = keys.map((key) => {
    const item = document.createElement("li");
    const name = state.users.get(key);
    item.textContent = name;
    if (name === state.myName) {
      item.classList.add("me");
    }
    return item;
  });
  // replaceChildren swaps the whole list in one step.
  ui.users.replaceChildren(...items);
  const count = keys.length;
  ui.userCount.textContent = count === 1 ? "1 user" : `${count} users`;
}

function toggleUsers() {
  // Only on narrow screens is the button shown (chat.css): the list then
  // folds away, and aria-expanded tells a screen reader whether it is open.
  const open = ui.usersPanel.classList.toggle("open");
  ui.usersToggle.setAttribute("aria-expanded", String(open));
  ui.usersToggle.textContent = open ? "Hide the list" : "Show who is online";
}

// ---------------------------------------------------------------------------
// The message list

/** Which kind of line this is, and how to split it, for chat.css to style. */
function lineKind(line) {
  let match = MESSAGE.exec(line);
  if (match !== null) {
    return { kind: match[2] === state.myName ? "mine" : "message", parts: [match[1], match[3]] };
  }
  match = PRIVATE_OUT.exec(line);
  if (match !== null) {
    return { kind: "private-out", parts: [match[1], match[2]] };
  }
  match = PRIVATE_IN.exec(line);
  if (match !== null) {
    return { kind: "private-in", parts: [match[1], match[2]] };
  }
  if (line === SHUTTING_DOWN) {
    return { kind: "warning", parts: null };
  }
  if (line.startsWith("* ")) {
    return { kind: "notice", parts: null }; // joins, leaves, renames, /me
  }
  if (line.startsWith("ERROR ")) {
    return { kind: "error", parts: null };
  }
  return { kind: "server", parts: null }; // welcome, /who, /help, Bye
}

/** Add one line to the message list, as text, following it if the reader is at the bottom. */
function showLine(line) {
  const following = isAtNewest();
  const item = document.createElement("li");
  const { kind, parts } = lineKind(line);
  item.className = `line-${kind}`;
  if (parts === null) {
    item.textContent = line;
  } else {
    // The sender in a span of its own, to colour it; the rest as a text
    // node. Together they are exactly the line: nothing added, nothing parsed
    // as HTML.
    const sender = document.createElement("span");
    sender.className = "sender";
    sender.textContent = parts[0];
    if (kind === "message" || kind === "mine") {
      sender.style.setProperty("--hue", String(hueOf(parts[0].slice(1, -1))));
    }
    item.append(sender, document.createTextNode(parts[1]));
  }
  item.title = new Date().toLocaleTimeString();
  ui.messages.append(item);
  while (ui.messages.childElementCount > MAX_SHOWN_LINES) {
    ui.messages.firstElementChild.remove();
  }
  if (following) {
    scrollToNewest();
  } else {
    // The reader has scrolled up to read older lines: leave the view where it
    // is, and offer a way down instead of pulling them away from what they read.
    ui.jumpToNewest.hidden = false;
  }
}

/** Whether the message list shows its last line (give or take a few pixels). */
function isAtNewest() {
  const list = ui.messages;
  return list.scrollHeight - list.scrollTop - list.clientHeight <= FOLLOW_SLACK;
}

function scrollToNewest() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
  ui.jumpToNewest.hidden = true;
}

// Hues (of the colour wheel, 0-359) far enough apart to tell names apart at a
// glance, each readable on the page's background at chat.css's lightness;
// no pure red, which the page keeps for errors.
const NAME_HUES = [25, 90, 140, 175, 205, 235, 270, 300, 330];

/** A hue for a name, the same every time and on every page, picked by a hash of the name. */
function hueOf(name) {
  let hash = 0;
  for (const character of name) {
    // Math.imul multiplies as 32-bit integers: the hash stays an exact whole
    // number however long the name, where plain * would round it.
    hash = (Math.imul(hash, 31) + character.codePointAt(0)) >>> 0;
  }
  return NAME_HUES[hash % NAME_HUES.length];
}

// ---------------------------------------------------------------------------
// Losing the connection, and coming back

function showConnectionNotice(text) {
  ui.noticeText.textContent = `${text} Press Reconnect to join again.`;
  ui.notice.hidden = false;
  ui.messageInput.disabled = true;
  ui.sendButton.disabled = true;
  ui.users.classList.add("stale");
  ui.reconnect.focus();
}

function reconnectClicked() {
  // Back to the login, the last name ready: one press of Enter logs in again.
  ui.chatView.hidden = true;
  ui.loginView.hidden = false;
  ui.whoami.hidden = true;
  document.title = "labchat";
  ui.loginName.value = state.lastName;
  showLoginError("");
  ui.loginName.focus();
}

// ---------------------------------------------------------------------------
// Wiring: the page's events to the functions above

ui.loginForm.addEventListener("submit", loginSubmitted);
ui.messageForm.addEventListener("submit", messageSubmitted);
ui.reconnect.addEventListener("click", reconnectClicked);
ui.usersToggle.addEventListener("click", toggleUsers);
ui.jumpToNewest.addEventListener("click", scrollToNewest);
ui.messages.addEventListener("scroll", () => {
  state.following = isAtNewest();
  if (state.following) {
    ui.jumpToNewest.hidden = true;
  }
});
// The list changes size when the user list opens above it, or when a phone's
// keyboard comes up: a reader who was at the newest line stays there.
new ResizeObserver(() => {
  if (state.following) {
    scrollToNewest();
  }
}).observe(ui.messages);
