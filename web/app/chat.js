/**
 * The chat page: sign-in, the conversation list from `sync` with unread counts, conversations
 * read from history and kept by `seq` (no gap, no duplicate), an outbox that survives drops and
 * reloads, read receipts, the connection's state, and every refusal beside what it refuses.
 */

import { Connection, tokenClaims, ANSWER_TIMEOUT_MS, KEEP_ALIVE_MS } from "./connection.js";
import { Conversation } from "./conversations.js";
import { Outbox, claimTab } from "./outbox.js";
import * as protocol from "./protocol.js";

/** Messages per history page. */
const PAGE = 50;
/** `sync` pages read after each (re)connect: up to 1,000 conversations. */
const MAX_SYNC_PAGES = 10;
/** A live message past a hole waits this long (plus jitter) for the missing ones before fetching. */
const GAP_WAIT_MS = 300;
/** A `markRead` waits this long for more messages, so reading a burst costs one request. */
const MARK_READ_DELAY_MS = 300;
/** How often the tab looks for outbox entries of closed tabs. */
const ADOPT_EVERY_MS = 5_000;
/** A `markRead` waits at most this long while messages keep arriving. */
const MARK_READ_MAX_WAIT_MS = 2000;
/** A message sent this many times on one connection without an answer is shown as not sent. */
const MAX_ATTEMPTS = 6;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
/** Seconds from the page's address, for tests and slow networks: `?keepAlive=60&timeout=10`. */
const seconds = (name, fallback) => (Number(params.get(name)) > 0 ? Number(params.get(name)) * 1000 : fallback);

const chat = {
  connection: null,
  outbox: null,
  me: "",
  tabId: sessionStorage.getItem("chat.tab") ?? protocol.newRequestId(),
  /** The token claim that holds the user id (the server's `AUTH_USER_CLAIM`). */
  userClaim: "sub",
  keepAliveMs: seconds("keepAlive", KEEP_ALIVE_MS),
  timeoutMs: seconds("timeout", ANSWER_TIMEOUT_MS),
  /** key (`direct:bob`, `room:lobby`) → Conversation */
  conversations: new Map(),
  active: null,
  /** Requests awaiting an answer: clientRequestId → `{what, key?, timer, …}`. */
  pending: new Map(),
  /** Per conversation, the outbox entry in flight (one at a time keeps the user's order). */
  inFlight: new Map(),
  /** Per outbox entry, how many times it went unanswered on the current connection. */
  attempts: new Map(),
  /** The `sync` cursor for more conversations than were read. */
  moreConversations: undefined,
  countdown: null,
  adopter: null,
  renderQueued: false,
};
sessionStorage.setItem("chat.tab", chat.tabId);
// The tab's Web Lock, held for the page's life: other tabs adopt this tab's outbox entries once
// it is gone.
const tabClaimed = claimTab(chat.tabId).then((tabId) => {
  chat.tabId = tabId;
  sessionStorage.setItem("chat.tab", tabId);
  if (chat.outbox) chat.outbox.tabId = tabId;
});

// ---- sign-in ----

function prefill() {
  $("url").value = params.get("url") ?? localStorage.getItem("chat.url") ?? "";
  // A link may name any gateway: say so when it is not the one used before, since a token
  // signed in with goes there.
  const before = localStorage.getItem("chat.url");
  if (params.get("url") && before && hostOf(before) !== hostOf(params.get("url"))) {
    $("url-warning").textContent = `This link connects to ${hostOf(params.get("url"))}, not ${hostOf(before)} as before.`;
    $("url-warning").hidden = false;
  }
  $("user-id").value = localStorage.getItem("chat.userId") ?? "";
  if (params.get("issuer")) $("issuer").value = params.get("issuer");
  chat.userClaim = params.get("claim") || "sub";
  if (params.get("mode") === "token") document.querySelector('input[name=mode][value=token]').checked = true;
  showModeFields();
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function mode() {
  return document.querySelector("input[name=mode]:checked").value;
}

function showModeFields() {
  $("token-fields").hidden = mode() !== "token";
  $("user-id").required = mode() === "demo";
}

async function fetchToken() {
  const userId = $("user-id").value.trim();
  if (!protocol.isValidId(userId)) {
    signInError("Type the user id the token is for first.");
    return;
  }
  try {
    const response = await fetch(`${$("issuer").value.replace(/\/$/, "")}/token?user=${encodeURIComponent(userId)}`);
    if (!response.ok) throw new Error(`the issuer answered ${response.status}`);
    $("token").value = (await response.text()).trim();
    signInError("");
  } catch (error) {
    signInError(`No token from the local issuer (${error.message}): is make dev-auth running?`);
  }
}

function submitSignIn(event) {
  event.preventDefault();
  const url = $("url").value.trim();
  const userId = $("user-id").value.trim();
  if (!/^wss?:\/\//.test(url)) return signInError("The URL starts with ws:// or wss://.");
  let identity;
  if (mode() === "demo") {
    if (!protocol.isValidId(userId)) return signInError("A user id is 1 to 128 letters, digits or _ . @ -.");
    identity = { userId };
  } else {
    const token = $("token").value.trim();
    if (!token) return signInError("Paste a token, or get one from the local issuer.");
    identity = { token };
  }
  localStorage.setItem("chat.url", url);
  if (userId) localStorage.setItem("chat.userId", userId);
  signIn(url, identity);
}

/**
 * Connects as `identity`. The session (the URL and the user id, or the token) is kept in this
 * tab's session storage, so a reload signs in again by itself; closing the tab forgets it.
 */
function signIn(url, identity, { resumed = false } = {}) {
  signInError("");
  stop();
  // The claim the server takes the user id from; `sync` confirms it.
  chat.me = identity.userId ?? tokenClaims(identity.token)[chat.userClaim] ?? "";
  sessionStorage.setItem("chat.session", JSON.stringify({ url, identity }));
  chat.outbox = new Outbox(chat.me, chat.tabId);
  chat.outbox.addEventListener("change", () => {
    flushAll();
    scheduleRender();
  });
  tabClaimed.then(adopt);
  chat.adopter = setInterval(adopt, ADOPT_EVERY_MS);
  chat.connection = new Connection(url, identity, {
    keepAliveMs: chat.keepAliveMs,
    answerTimeoutMs: chat.timeoutMs,
    resumed,
  });
  chat.connection.addEventListener("state", (event) => showState(event.detail));
  chat.connection.addEventListener("open", resume);
  chat.connection.addEventListener("frame", (event) => receive(event.detail));
  chat.connection.connect();
  // A restored session shows its conversations (and takes messages into the outbox) at once.
  if (resumed) showChat();
  scheduleRender();
}

function showChat() {
  $("sign-in-view").hidden = true;
  $("chat-view").hidden = false;
}

function signInError(text) {
  $("sign-in-error").textContent = text;
}

/** Closes the connection and forgets the conversations (not the outbox). */
function stop() {
  chat.connection?.close();
  chat.connection = null;
  chat.outbox?.detach();
  chat.outbox = null;
  clearInterval(chat.adopter);
  dropPending();
  chat.conversations.clear();
  chat.moreConversations = undefined;
}

/** Signing out forgets the session and clears the outbox, in every tab of this user. */
function signOut() {
  const me = chat.me;
  chat.outbox?.clear();
  stop();
  sessionStorage.removeItem("chat.session");
  sessionStorage.removeItem("chat.active");
  chat.active = null;
  localStorage.setItem("chat.signedOut", JSON.stringify({ userId: me, at: Date.now() }));
  $("chat-view").hidden = true;
  $("sign-in-view").hidden = false;
  render();
}

addEventListener("storage", (event) => {
  if (event.key !== "chat.signedOut" || !event.newValue || !chat.connection) return;
  if (JSON.parse(event.newValue).userId === chat.me) signOut();
});

// ---- connection state ----

function showState(state) {
  clearInterval(chat.countdown);
  const line = $("state");
  line.dataset.state = state.name;
  const words = {
    connecting: () => "Connecting…",
    connected: () => `Connected as ${chat.me}`,
    reconnecting: () =>
      `Reconnecting in ${Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000))} s` +
      (state.reason ? ` (${state.reason})` : ""),
    refused: () => `Refused: ${state.reason}`,
    closed: () => "Not connected",
  };
  line.textContent = words[state.name]();
  if (state.name === "reconnecting") {
    chat.countdown = setInterval(() => (line.textContent = words.reconnecting()), 1000);
  }
  if (state.name !== "connected") dropPending();
  $("reconnect").hidden = !["reconnecting", "refused"].includes(state.name) || !chat.connection?.everOpened;
  $("sign-out").hidden = state.name === "closed";
  if (state.name === "connected") showChat();
  if (state.name === "refused" && (state.expired || !chat.connection?.everOpened)) {
    // A sign-in to correct, or a token to renew: back to the form. The outbox stays, and is
    // sent once the same user signs in again.
    sessionStorage.removeItem("chat.session");
    clearInterval(chat.adopter);
    $("chat-view").hidden = true;
    $("sign-in-view").hidden = false;
    signInError(`Refused: ${state.reason}`);
  }
}

/** Forgets every request in flight: a new socket answers none of them. */
function dropPending() {
  for (const request of chat.pending.values()) clearTimeout(request.timer);
  chat.pending.clear();
  for (const waiting of chat.inFlight.values()) clearTimeout(waiting.timer);
  chat.inFlight.clear();
  chat.attempts.clear();
  for (const conversation of chat.conversations.values()) {
    conversation.loading.clear();
    conversation.readRequested = 0;
  }
}

/**
 * Each time a socket opens: the server has resumed this user's rooms on it, so the page asks
 * `sync` what changed, fetches what it missed in the conversations it holds, and sends its outbox.
 */
function resume() {
  dropPending();
  startSync();
  const active = chat.conversations.get(chat.active);
  if (active && !active.loaded) loadNewest(active);
  adopt();
  flushAll();
}

async function adopt() {
  if ((await chat.outbox?.adopt()) === true) {
    flushAll();
    scheduleRender();
  }
}

// ---- requests and answers ----

/**
 * Sends a request with a `clientRequestId` (a fresh one, or `id`) and remembers it until its
 * answer, or until `timeoutMs` pass: then the connection is probed and the request retried.
 */
function request(what, frame, fields = {}, id = protocol.newRequestId()) {
  if (!chat.connection?.send(frame(id))) return undefined;
  const timer = setTimeout(() => timedOut(id), chat.timeoutMs);
  chat.pending.set(id, { what, timer, ...fields });
  return id;
}

/** The request an answer belongs to, no longer pending. */
function settle(id) {
  const request = id === undefined ? undefined : chat.pending.get(id);
  if (!request) return undefined;
  clearTimeout(request.timer);
  chat.pending.delete(id);
  return request;
}

function timedOut(id) {
  const request = settle(id);
  if (!request) return;
  // No answer: either the function was slow or the connection is dead. The keep-alive tells.
  chat.connection?.probe();
  const conversation = chat.conversations.get(request.key);
  switch (request.what) {
    case "send":
      chat.inFlight.delete(request.key);
      unanswered(id);
      flush(request.key);
      break;
    case "sync":
      startSync(request.cursor, request.page, request.seen, request.startedAt);
      break;
    case "history":
      conversation?.loading.delete(request.direction);
      if (conversation && request.direction !== "older") load(conversation, request.direction);
      break;
    case "markRead":
      if (conversation) conversation.readRequested = 0;
      scheduleMarkRead();
      break;
    default:
      break;
  }
}

/**
 * Counts an unanswered (or `unavailable`) send of an outbox entry; after `MAX_ATTEMPTS` on one
 * connection (a new connection starts again from 0) the entry is shown as not sent, with *Retry*,
 * so that it does not hold up the conversation's later messages.
 */
function unanswered(clientRequestId, error = { code: "noAnswer", words: "No answer from the server." }) {
  const attempts = (chat.attempts.get(clientRequestId) ?? 0) + 1;
  chat.attempts.set(clientRequestId, attempts);
  if (attempts < MAX_ATTEMPTS) return;
  chat.attempts.delete(clientRequestId);
  chat.outbox?.fail(clientRequestId, { code: error.code, words: `${error.words} Not sent after ${attempts} tries.` });
  scheduleRender();
}

function receive(text) {
  const frame = protocol.readFrame(text);
  switch (frame.kind) {
    case "direct": {
      // A message this user sent from another tab comes back too: it belongs to the
      // conversation with its recipient, and is this user's own.
      const own = frame.senderId === chat.me;
      const other = own ? frame.destinationUserId : frame.senderId;
      if (typeof other === "string") delivered(conversation("direct", other), frame, own);
      break;
    }
    case "room":
      delivered(conversation("room", frame.roomId), frame, frame.senderId === chat.me);
      break;
    case "ack":
      acknowledged(frame);
      break;
    case "history":
      history(frame);
      break;
    case "sync":
      synced(frame);
      break;
    case "read": {
      settle(frame.clientRequestId);
      chat.conversations.get(protocol.conversationKey(frame.conversation.kind, frame.conversation.id))?.read(frame.readSeq);
      break;
    }
    case "readReceipt":
      chat.conversations.get(protocol.conversationKey("direct", frame.userId))?.peerRead(frame.readSeq);
      break;
    case "joined":
      joined(frame);
      break;
    case "left":
      left(frame);
      break;
    case "error":
      refused(frame);
      break;
    case "gateway":
      // API Gateway's own frames name no request: the request they answer times out and is retried.
      showNotice(protocol.gatewayWords(frame.message));
      break;
    default:
      break;
  }
  scheduleRender();
}

function conversation(kind, id) {
  const key = protocol.conversationKey(kind, id);
  if (!chat.conversations.has(key)) chat.conversations.set(key, new Conversation(kind, id));
  return chat.conversations.get(key);
}

/** A live message: held once by seq; one past a hole waits a moment for the missing ones. */
function delivered(conversation, frame, own) {
  const message = { senderId: frame.senderId, body: frame.body, seq: frame.seq, sentAt: frame.sentAt };
  const known = conversation.seq > 0;
  if (!conversation.addNew(message)) return;
  conversation.liveAt = Date.now();
  // A room's message reaches only its members' connections.
  if (conversation.kind === "room" && !conversation.left) conversation.joined = true;
  // A conversation no `sync` listed is new since: only this message is unread (`sync` corrects it).
  if (!known) conversation.read(message.seq - 1);
  if (own) conversation.read(message.seq);
  if (conversation.hasGap()) scheduleFill(conversation);
  if (conversation.key === chat.active) scheduleMarkRead();
}

function acknowledged(frame) {
  const request = settle(frame.clientRequestId);
  if (request?.what !== "send") return;
  chat.outbox?.remove(frame.clientRequestId);
  chat.attempts.delete(frame.clientRequestId);
  const current = conversation(frame.conversation.kind, frame.conversation.id);
  current.addNew({ senderId: chat.me, body: request.body, seq: frame.seq, sentAt: frame.sentAt });
  // Sending advances the sender's own read position (the server does the same).
  current.read(frame.seq);
  if (current.hasGap()) scheduleFill(current);
  chat.inFlight.delete(request.key);
  flush(request.key);
}

function history(frame) {
  const request = settle(frame.clientRequestId);
  if (request?.what !== "history") return;
  const current = chat.conversations.get(request.key);
  if (!current) return;
  current.loading.delete(request.direction);
  if (request.direction === "newest") current.mergeNewest(frame);
  else if (request.direction === "older") current.mergeOlder(frame);
  else if (frame.oldestSeq > request.after + 1) {
    // What followed the held messages has expired meanwhile: start again from the newest page.
    current.reset();
    if (current.key === chat.active) loadNewest(current);
    return;
  } else if (current.mergeAfter(frame) === 0) return;
  if (current.hasGap()) load(current, "after");
  if (current.key === chat.active) scheduleMarkRead();
}

function synced(frame) {
  const request = settle(frame.clientRequestId);
  if (request?.what !== "sync") return;
  if (typeof frame.userId === "string") chat.me = frame.userId;
  const listed = new Set();
  for (const entry of frame.conversations) {
    const current = conversation(entry.conversation.kind, entry.conversation.id);
    listed.add(current.key);
    current.heard(entry.seq, entry.lastMessage);
    current.read(entry.readSeq);
    current.peerRead(entry.peerReadSeq);
    if (current.kind === "room") {
      current.joined = true;
      current.left = false;
      flush(current.key);
    }
    if (current.hasGap()) load(current, "after");
  }
  const seen = new Set([...(request.seen ?? []), ...listed]);
  if (frame.nextCursor && request.page + 1 < MAX_SYNC_PAGES) {
    startSync(frame.nextCursor, request.page + 1, seen, request.startedAt);
    return;
  }
  chat.moreConversations = frame.nextCursor;
  if (!frame.nextCursor) {
    // Every conversation was listed: a room missing from the list was left (in another tab, or
    // while away).
    for (const current of [...chat.conversations.values()]) {
      // A room joined or heard from since the listing began may have moved above its cursor.
      const since = Math.max(current.joinedAt ?? 0, current.liveAt ?? 0) >= request.startedAt;
      if (current.kind === "room" && current.joined && !seen.has(current.key) && !since) roomGone(current);
    }
  }
  if (chat.active && !chat.conversations.has(chat.active)) chat.active = null;
  // Reads the server did not hear of (the connection dropped first) are sent again.
  for (const current of chat.conversations.values()) if (current.key !== chat.active) markRead(current, current.seen ?? 0);
  scheduleMarkRead();
}

function joined(frame) {
  const request = settle(frame.clientRequestId);
  const room = conversation("room", frame.roomId);
  const first = !room.joined;
  room.joined = true;
  room.joinedAt = Date.now();
  room.left = false;
  room.heard(frame.seq);
  // A first join starts the user's read position at the room's latest seq (the server's rule).
  if (first) room.read(frame.seq);
  if (request?.what === "join" && first) room.notices.push({ afterSeq: frame.seq, text: `You joined ${frame.roomId}.` });
  if (room.key === chat.active && !room.loaded) loadNewest(room);
  flush(room.key);
}

function left(frame) {
  settle(frame.clientRequestId);
  const room = chat.conversations.get(protocol.conversationKey("room", frame.roomId));
  if (room) roomGone(room);
}

/** A room left: gone from the list, unless messages to it wait in the outbox (they will be refused). */
function roomGone(room) {
  room.joined = false;
  const waiting = chat.outbox?.entries().some((entry) => entry.conversation === room.key);
  if (waiting) {
    room.left = true;
    flush(room.key);
  } else {
    chat.conversations.delete(room.key);
    if (chat.active === room.key) {
      chat.active = null;
      sessionStorage.removeItem("chat.active");
    }
  }
}

/** An error frame: shown beside the request it answers, matched by `clientRequestId`. */
function refused({ code, message, clientRequestId }) {
  const request = settle(clientRequestId);
  const words = protocol.errorWords(code, message);
  if (!request) return showNotice(words);
  const current = chat.conversations.get(request.key);
  // The server lost this connection's record (it outlived its TTL): only a new connection helps,
  // and every request is sent again on it.
  if (code === "unknownConnection") return chat.connection?.restart("the server lost this connection");
  switch (request.what) {
    case "send":
      if (protocol.RETRYABLE.has(code)) {
        // The server could not store it yet: the same request again, after a pause.
        unanswered(clientRequestId, { code, words });
        const timer = setTimeout(() => {
          chat.inFlight.delete(request.key);
          flush(request.key);
        }, 500 + Math.random() * 1000);
        chat.inFlight.set(request.key, { timer });
      } else {
        chat.outbox?.fail(clientRequestId, { code, words });
        chat.inFlight.delete(request.key);
        flush(request.key);
      }
      break;
    case "history":
      current?.loading.delete(request.direction);
      if (current && protocol.RETRYABLE.has(code)) setTimeout(() => load(current, request.direction), 1000 + Math.random() * 1000);
      else current?.notices.push({ afterSeq: current.seq, text: words, error: { code, words } });
      break;
    case "sync":
      if (protocol.RETRYABLE.has(code)) {
        setTimeout(() => startSync(request.cursor, request.page, request.seen, request.startedAt), 1000 + Math.random() * 1000);
      } else {
        showNotice(words);
      }
      break;
    case "markRead":
      if (current) current.readRequested = 0;
      break;
    case "join":
      if (current && !current.joined) current.notices.push({ afterSeq: current.seq, text: words, error: { code, words } });
      break;
    default:
      showNotice(words);
      break;
  }
}

/** A message for the header: API Gateway's frames and errors that name no request. */
function showNotice(words) {
  $("notice").textContent = words;
  $("notice").hidden = false;
  clearTimeout(showNotice.timer);
  showNotice.timer = setTimeout(() => ($("notice").hidden = true), 8000);
}

// ---- sync, history and read state ----

function startSync(cursor, page = 0, seen = [], startedAt = Date.now()) {
  request("sync", (id) => protocol.sync({ cursor }, id), { cursor, page, seen, startedAt });
}

function loadNewest(conversation) {
  load(conversation, "newest");
}

/** One history request per direction at a time: `newest`, `older` (before the floor) or `after` the top. */
function load(conversation, direction) {
  if (conversation.loading.has(direction) || !chat.connection?.connected) return;
  if (direction !== "newest" && !conversation.loaded) return;
  if (direction === "older" && conversation.start) return;
  if (direction === "after" && conversation.seq - conversation.top() > protocol.HISTORY_LIMIT) {
    // Far behind: the newest page, when the conversation is shown, rather than every missed page.
    conversation.reset();
    if (conversation.key === chat.active) load(conversation, "newest");
    return;
  }
  const cursor =
    direction === "older"
      ? { before: conversation.floor, limit: PAGE }
      : direction === "after"
        ? { after: conversation.top(), limit: protocol.HISTORY_LIMIT }
        : { limit: PAGE };
  const id = request("history", (id) => protocol.getHistory(conversation, cursor, id), {
    key: conversation.key,
    direction,
    after: cursor.after,
  });
  if (id) conversation.loading.add(direction);
}

/**
 * A hole in the held messages: invocations run concurrently, so the missing ones often arrive
 * a moment later; only if they do not is what lies between fetched.
 */
function scheduleFill(conversation) {
  if (conversation.fillTimer) return;
  conversation.fillTimer = setTimeout(() => {
    conversation.fillTimer = null;
    if (conversation.hasGap()) load(conversation, "after");
  }, GAP_WAIT_MS + Math.random() * GAP_WAIT_MS);
}

/** Marks the open conversation read up to what it shows, once messages stop arriving for a moment. */
function scheduleMarkRead() {
  const now = Date.now();
  if (scheduleMarkRead.timer && now - scheduleMarkRead.since > MARK_READ_MAX_WAIT_MS) return;
  clearTimeout(scheduleMarkRead.timer);
  if (!scheduleMarkRead.timer) scheduleMarkRead.since = now;
  scheduleMarkRead.timer = setTimeout(() => {
    scheduleMarkRead.timer = null;
    const current = chat.conversations.get(chat.active);
    if (current?.loaded && document.visibilityState === "visible") markRead(current, current.top());
  }, MARK_READ_DELAY_MS);
}

/**
 * Marks `current` read up to `seq`, the last message it showed without a gap; remembered as
 * `seen`, so that a read the server never heard of (the connection dropped) is sent again.
 */
function markRead(current, seq) {
  if (!current?.joined) return;
  current.seen = Math.max(current.seen ?? 0, seq);
  if (seq <= current.readSeq || seq <= (current.readRequested ?? 0)) return;
  if (request("markRead", (id) => protocol.markRead(current, seq, id), { key: current.key })) {
    current.readRequested = seq;
  }
}

document.addEventListener("visibilitychange", scheduleMarkRead);

// ---- the outbox ----

/** Sends the next outbox entry of `key`, unless one is in flight or the socket is down. */
function flush(key) {
  if (!chat.outbox || !chat.connection?.connected || chat.inFlight.has(key)) return;
  const current = chat.conversations.get(key);
  if (current?.kind === "room" && !current.joined && !current.left) return;
  const entry = chat.outbox.next(key);
  if (!entry) return;
  const to = protocol.parseKey(key);
  const sent = request(
    "send",
    (id) => protocol.sendMessage(to, entry.body, id),
    { key, body: entry.body },
    entry.clientRequestId,
  );
  if (sent) chat.inFlight.set(key, { clientRequestId: sent });
}

function flushAll() {
  for (const key of chat.outbox?.conversations() ?? []) flush(key);
}

function sendMessage(event) {
  event.preventDefault();
  const current = chat.conversations.get(chat.active);
  const body = $("body").value;
  if (!current || !body.trim() || !chat.outbox) return;
  let entry;
  try {
    entry = chat.outbox.add(current.key, body);
  } catch (error) {
    // Local storage is full or refused: keep the text in the field rather than lose it.
    showNotice(`Not sent: the browser refused to keep it (${error.message}).`);
    return;
  }
  $("body").value = "";
  // A bigger frame would make the gateway close the connection (1009) and lose the message.
  const frame = protocol.sendMessage(current, body, entry.clientRequestId);
  if (new Blob([frame]).size > protocol.MAX_FRAME_BYTES) {
    chat.outbox.fail(entry.clientRequestId, { code: "frameTooLarge", words: "Not sent: a message must fit in 32 KB." });
  } else {
    flush(current.key);
  }
  scheduleRender();
}

function retryEntry(clientRequestId) {
  const entry = chat.outbox?.retry(clientRequestId);
  if (entry) flush(entry.conversation);
  scheduleRender();
}

function discardEntry(clientRequestId) {
  chat.outbox?.remove(clientRequestId);
  scheduleRender();
}

// ---- conversations ----

function open(key) {
  // What the conversation being left showed was read, even if it was open for a moment only.
  const leaving = chat.conversations.get(chat.active);
  if (chat.active !== key && leaving?.loaded) markRead(leaving, leaving.top());
  chat.active = key;
  sessionStorage.setItem("chat.active", key);
  const current = chat.conversations.get(key);
  if (current && !current.loaded) loadNewest(current);
  scheduleMarkRead();
  render({ toBottom: true });
  $("body").focus();
}

function openDirect(event) {
  event.preventDefault();
  const userId = $("direct-user").value.trim();
  if (!protocol.isValidId(userId)) return;
  $("direct-user").value = "";
  const direct = conversation("direct", userId);
  if (!direct.activity) direct.activity = Date.now();
  open(direct.key);
}

function joinRoom(event) {
  event.preventDefault();
  const roomId = $("room-id").value.trim();
  if (!protocol.isValidId(roomId)) return;
  $("room-id").value = "";
  const room = conversation("room", roomId);
  if (!room.activity) room.activity = Date.now();
  if (!room.joined) {
    const sent = request("join", (id) => protocol.joinRoom(roomId, id), { key: room.key });
    if (!sent) room.notices.push({ afterSeq: room.seq, text: "Not joined: not connected. Try again once connected." });
  }
  open(room.key);
}

function leaveRoom() {
  const current = chat.conversations.get(chat.active);
  if (current?.kind !== "room") return;
  if (!current.joined) {
    roomGone(current);
    chat.conversations.delete(current.key);
    chat.active = null;
    render();
    return;
  }
  request("leave", (id) => protocol.leaveRoom(current.id, id), { key: current.key });
}

// ---- rendering ----

function scheduleRender() {
  if (chat.renderQueued) return;
  chat.renderQueued = true;
  setTimeout(() => {
    chat.renderQueued = false;
    render();
  }, 0);
}

function render({ toBottom = false } = {}) {
  renderList();
  renderConversation(toBottom);
  renderComposer();
}

/** The outbox entries of one conversation (every tab's). */
function waiting(key) {
  return (chat.outbox?.entries() ?? []).filter((entry) => entry.conversation === key);
}

/** Whether `what` differs from what `part` last rendered (re-rendering only on change keeps clicks and selection steady). */
function changed(part, what) {
  const signature = JSON.stringify(what);
  if (changed.last[part] === signature) return false;
  changed.last[part] = signature;
  return true;
}
changed.last = {};

function renderList() {
  const conversations = [...chat.conversations.values()].sort((a, b) => b.activity - a.activity);
  const shown = conversations.map((c) => [c.key, c.key === chat.active, c.unread, c.lastMessage?.seq, c.lastMessage?.body]);
  if (!changed("list", [chat.me, shown])) return;
  $("conversations").replaceChildren(
    ...conversations.map((conversation) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.key = conversation.key;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = conversation.kind === "room" ? `# ${conversation.id}` : conversation.id;
      button.append(name);
      if (conversation.key === chat.active) button.setAttribute("aria-current", "true");
      const unread = conversation.key === chat.active ? 0 : conversation.unread;
      if (unread > 0) {
        const badge = document.createElement("span");
        badge.className = "unread";
        badge.textContent = String(unread);
        badge.setAttribute("aria-label", `${unread} unread`);
        button.append(" ", badge);
      }
      if (conversation.lastMessage) {
        const preview = document.createElement("span");
        preview.className = "preview";
        const who = conversation.lastMessage.senderId === chat.me ? "You" : conversation.lastMessage.senderId;
        preview.textContent = `${conversation.kind === "room" || who === "You" ? `${who}: ` : ""}${conversation.lastMessage.body}`;
        button.append(preview);
      }
      button.addEventListener("click", () => open(conversation.key));
      item.append(button);
      return item;
    }),
  );
}

function renderConversation(toBottom) {
  const current = chat.conversations.get(chat.active);
  $("conversation-title").textContent = current
    ? current.kind === "room"
      ? `Room ${current.id}${current.left ? " (you left it)" : current.joined ? "" : " (joining…)"}`
      : `Direct messages with ${current.id}`
    : "Pick or start a conversation";
  $("leave-room").hidden = current?.kind !== "room" || current.left;
  const entries = current ? waiting(current.key).map((entry) => [entry.clientRequestId, chat.outbox.stateOf(entry)]) : [];
  const held = current?.sorted() ?? [];
  const what = current && [
    current.key, current.loaded, current.start, current.expiredBefore, [...current.loading], current.peerReadSeq,
    held.length, held[0]?.seq, held.at(-1)?.seq, current.notices.length, entries,
  ];
  if (!changed("conversation", [chat.me, what]) && !toBottom) return;
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  // Keep the first message in view where it was, whether messages come above or below it.
  const anchor = [...list.querySelectorAll("li[data-seq]")].find((item) => item.offsetTop + item.offsetHeight > list.scrollTop);
  const offset = anchor ? anchor.offsetTop - list.scrollTop : 0;
  list.replaceChildren(...(current ? conversationItems(current) : []));
  const again = anchor && list.querySelector(`li[data-seq="${anchor.dataset.seq}"]`);
  if (toBottom || atBottom || !again) list.scrollTop = list.scrollHeight;
  else list.scrollTop = again.offsetTop - offset;
}

function conversationItems(current) {
  const items = [edge(current)];
  const notices = [...current.notices].sort((a, b) => a.afterSeq - b.afterSeq);
  let next = 0;
  for (const message of current.sorted()) {
    while (next < notices.length && notices[next].afterSeq < message.seq) items.push(noticeItem(notices[next++]));
    items.push(messageItem(current, message));
  }
  while (next < notices.length) items.push(noticeItem(notices[next++]));
  for (const entry of waiting(current.key)) items.push(entryItem(entry));
  return items;
}

/** The top of the list: a button for older messages, or where the conversation starts. */
function edge(current) {
  const item = document.createElement("li");
  item.className = "edge";
  if (!current.loaded) {
    item.textContent = current.loading.has("newest") ? "Loading…" : "";
  } else if (current.expiredBefore) {
    item.textContent = "Older messages have expired.";
    item.dataset.edge = "expired";
  } else if (current.start) {
    item.textContent = "The start of the conversation.";
    item.dataset.edge = "start";
  } else {
    const button = document.createElement("button");
    button.type = "button";
    button.id = "load-older";
    button.textContent = current.loading.has("older") ? "Loading older messages…" : "Load older messages";
    button.addEventListener("click", () => load(current, "older"));
    item.append(button);
  }
  return item;
}

function time(at) {
  return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function messageItem(current, message) {
  const own = message.senderId === chat.me;
  const item = document.createElement("li");
  item.className = own ? "message own" : "message";
  item.dataset.seq = String(message.seq);
  const meta = document.createElement("div");
  meta.className = "meta";
  if (own) {
    const state = current.kind === "direct" && message.seq <= current.peerReadSeq ? "read" : "sent";
    item.dataset.state = state;
    meta.textContent = `You · ${time(message.sentAt)} · ${state}`;
  } else {
    meta.textContent = `${message.senderId} · ${time(message.sentAt)}`;
  }
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = message.body;
  item.append(meta, body);
  return item;
}

/** A message in the outbox: sending, refused (with the reason), or too old to send by itself. */
function entryItem(entry) {
  const state = chat.outbox.stateOf(entry);
  const item = document.createElement("li");
  item.className = state === "sending" ? "message own pending" : "message own failed";
  item.dataset.state = state;
  item.dataset.clientRequestId = entry.clientRequestId;
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `You · ${time(entry.createdAt)} · ${state === "sending" ? "sending…" : "not sent"}`;
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = entry.body;
  item.append(meta, body);
  if (state !== "sending") {
    const error = document.createElement("div");
    error.className = "error";
    error.dataset.code = state === "expired" ? "expired" : entry.error?.code ?? "failed";
    error.textContent = state === "expired" ? "Not sent for a day: send it now?" : (entry.error?.words ?? "Not sent.");
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "retry";
    retry.textContent = "Retry";
    retry.addEventListener("click", () => retryEntry(entry.clientRequestId));
    const discard = document.createElement("button");
    discard.type = "button";
    discard.className = "discard";
    discard.textContent = "Discard";
    discard.addEventListener("click", () => discardEntry(entry.clientRequestId));
    error.append(" ", retry, " ", discard);
    item.append(error);
  }
  return item;
}

function noticeItem(notice) {
  const item = document.createElement("li");
  item.className = "notice";
  if (notice.error) {
    const error = document.createElement("div");
    error.className = "error";
    error.dataset.code = notice.error.code;
    error.textContent = notice.error.words;
    item.append(error);
  } else {
    item.textContent = notice.text;
  }
  return item;
}

function renderComposer() {
  const current = chat.conversations.get(chat.active);
  // Typing never waits for the connection: what is sent offline waits in the outbox.
  const ready = Boolean(chat.outbox && current && current.joined && !current.left);
  $("body").disabled = !ready;
  $("send").disabled = !ready;
}

// ---- wiring ----

prefill();
for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", showModeFields);
$("fetch-token").addEventListener("click", fetchToken);
$("sign-in").addEventListener("submit", submitSignIn);
$("sign-out").addEventListener("click", signOut);
$("reconnect").addEventListener("click", () => chat.connection?.connect());
$("new-direct").addEventListener("submit", openDirect);
$("join-room").addEventListener("submit", joinRoom);
$("leave-room").addEventListener("click", leaveRoom);
$("composer").addEventListener("submit", sendMessage);
$("messages").addEventListener("scroll", () => {
  const current = chat.conversations.get(chat.active);
  if (current && $("messages").scrollTop < 40) load(current, "older");
});

// A reload signs in again by itself and reopens the conversation it showed.
const session = JSON.parse(sessionStorage.getItem("chat.session") ?? "null");
if (session?.url && session.identity) {
  chat.active = sessionStorage.getItem("chat.active");
  signIn(session.url, session.identity, { resumed: true });
  if (chat.active) {
    const { kind, id } = protocol.parseKey(chat.active);
    conversation(kind, id);
  }
}
