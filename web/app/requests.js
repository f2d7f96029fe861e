/**
 * Requests and their fates: every request is sent with a `clientRequestId` and remembered until
 * its answer; `KINDS` says, for each kind of request, what its timeout and its refusal do. Also
 * the requests themselves: `sync`, history pages, `markRead`, the outbox's sends, opening,
 * joining and leaving conversations.
 */

import { $, GAP_WAIT_MS, MARK_READ_DELAY_MS, MARK_READ_MAX_WAIT_MS, MAX_ATTEMPTS, PAGE, chat } from "./state.js";
import { conversation, roomGone } from "./inbox.js";
import { render, scheduleRender } from "./render.js";
import * as protocol from "./protocol.js";

// ---- requests and answers ----

/**
 * Sends a request with a `clientRequestId` (a fresh one, or `id`) and remembers it until its
 * answer, or until `timeoutMs` pass: then the connection is probed and the request retried.
 */
export function request(what, frame, fields = {}, id = protocol.newRequestId()) {
  if (!chat.connection?.send(frame(id))) return undefined;
  const timer = setTimeout(() => timedOut(id), chat.timeoutMs);
  chat.pending.set(id, { what, timer, ...fields });
  return id;
}

/** The request an answer belongs to, no longer pending. */
export function settle(id) {
  const request = id === undefined ? undefined : chat.pending.get(id);
  if (!request) return undefined;
  clearTimeout(request.timer);
  chat.pending.delete(id);
  return request;
}

/**
 * Every kind of request the page sends (the `what` it is remembered by), and what happens when
 * it goes unanswered (`timedOut`) or is refused (`refused`), given the request, its
 * conversation (if it names one) and its `clientRequestId`. Its answer is read where its frame
 * arrives (inbox.js). A refusal of a kind without `refused` is shown as a notice; a timeout of a
 * kind without `timedOut` is dropped (the keep-alive probe tells whether the connection lives).
 */
const KINDS = {
  send: {
    timedOut(request, _, id) {
      chat.inFlight.delete(request.key);
      unanswered(id);
      flush(request.key);
    },
    refused(request, _, id, { code, words }) {
      if (protocol.RETRYABLE.has(code)) {
        // The server could not store it yet: the same request again, after a pause.
        unanswered(id, { code, words });
        const timer = setTimeout(() => {
          chat.inFlight.delete(request.key);
          flush(request.key);
        }, 500 + Math.random() * 1000);
        chat.inFlight.set(request.key, { timer });
      } else {
        chat.outbox?.fail(id, { code, words });
        chat.inFlight.delete(request.key);
        flush(request.key);
      }
    },
  },
  sync: {
    timedOut(request) {
      startSync(request.cursor, request.page, request.seen, request.startedAt);
    },
    refused(request, _, __, { code, words }) {
      if (protocol.RETRYABLE.has(code)) {
        setTimeout(() => startSync(request.cursor, request.page, request.seen, request.startedAt), 1000 + Math.random() * 1000);
      } else {
        showNotice(words);
      }
    },
  },
  history: {
    timedOut(request, conversation) {
      conversation?.loading.delete(request.direction);
      if (conversation && request.direction !== "older") load(conversation, request.direction);
    },
    refused(request, conversation, _, { code, words }) {
      conversation?.loading.delete(request.direction);
      if (conversation && protocol.RETRYABLE.has(code)) {
        setTimeout(() => load(conversation, request.direction), 1000 + Math.random() * 1000);
      } else {
        conversation?.notices.push({ afterSeq: conversation.seq, text: words, error: { code, words } });
      }
    },
  },
  markRead: {
    timedOut(_, conversation) {
      if (conversation) conversation.readRequested = 0;
      scheduleMarkRead();
    },
    refused(_, conversation) {
      if (conversation) conversation.readRequested = 0;
    },
  },
  join: {
    refused(_, conversation, __, { code, words }) {
      if (conversation && !conversation.joined) conversation.notices.push({ afterSeq: conversation.seq, text: words, error: { code, words } });
    },
  },
  leave: {},
};

export function timedOut(id) {
  const request = settle(id);
  if (!request) return;
  // No answer: either the function was slow or the connection is dead. The keep-alive tells.
  chat.connection?.probe();
  KINDS[request.what]?.timedOut?.(request, chat.conversations.get(request.key), id);
}

/**
 * Counts an unanswered (or `unavailable`) send of an outbox entry; after `MAX_ATTEMPTS` on one
 * connection (a new connection starts again from 0) the entry is shown as not sent, with *Retry*,
 * so that it does not hold up the conversation's later messages.
 */
export function unanswered(clientRequestId, error = { code: "noAnswer", words: "No answer from the server." }) {
  const attempts = (chat.attempts.get(clientRequestId) ?? 0) + 1;
  chat.attempts.set(clientRequestId, attempts);
  if (attempts < MAX_ATTEMPTS) return;
  chat.attempts.delete(clientRequestId);
  chat.outbox?.fail(clientRequestId, { code: error.code, words: `${error.words} Not sent after ${attempts} tries.` });
  scheduleRender();
}

/** An error frame: shown beside the request it answers, matched by `clientRequestId`. */
export function refused({ code, message, clientRequestId }) {
  const request = settle(clientRequestId);
  const words = protocol.errorWords(code, message);
  if (!request) return showNotice(words);
  const current = chat.conversations.get(request.key);
  // The server lost this connection's record (it outlived its TTL): only a new connection helps,
  // and every request is sent again on it.
  if (code === "unknownConnection") return chat.connection?.restart("the server lost this connection");
  const fate = KINDS[request.what]?.refused;
  if (!fate) return showNotice(words);
  fate(request, current, clientRequestId, { code, words });
}

/** A message for the header: API Gateway's frames and errors that name no request. */
export function showNotice(words) {
  $("notice").textContent = words;
  $("notice").hidden = false;
  clearTimeout(showNotice.timer);
  showNotice.timer = setTimeout(() => ($("notice").hidden = true), 8000);
}

// ---- sync, history and read state ----

export function startSync(cursor, page = 0, seen = [], startedAt = Date.now()) {
  request("sync", (id) => protocol.sync({ cursor }, id), { cursor, page, seen, startedAt });
}

export function loadNewest(conversation) {
  load(conversation, "newest");
}

/** One history request per direction at a time: `newest`, `older` (before the floor) or `after` the top. */
export function load(conversation, direction) {
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
export function scheduleFill(conversation) {
  if (conversation.fillTimer) return;
  conversation.fillTimer = setTimeout(() => {
    conversation.fillTimer = null;
    if (conversation.hasGap()) load(conversation, "after");
  }, GAP_WAIT_MS + Math.random() * GAP_WAIT_MS);
}

/** Marks the open conversation read up to what it shows, once messages stop arriving for a moment. */
export function scheduleMarkRead() {
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
export function markRead(current, seq) {
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
export function flush(key) {
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

export function flushAll() {
  for (const key of chat.outbox?.conversations() ?? []) flush(key);
}

export function sendMessage(event) {
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

export function retryEntry(clientRequestId) {
  const entry = chat.outbox?.retry(clientRequestId);
  if (entry) flush(entry.conversation);
  scheduleRender();
}

export function discardEntry(clientRequestId) {
  chat.outbox?.remove(clientRequestId);
  scheduleRender();
}

// ---- conversations ----

export function open(key) {
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

export function openDirect(event) {
  event.preventDefault();
  const userId = $("direct-user").value.trim();
  if (!protocol.isValidId(userId)) return;
  $("direct-user").value = "";
  const direct = conversation("direct", userId);
  if (!direct.activity) direct.activity = Date.now();
  open(direct.key);
}

export function joinRoom(event) {
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

export function leaveRoom() {
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

