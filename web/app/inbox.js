/**
 * What the server sends, each frame to the state it changes: deliveries held by `seq`,
 * acknowledgements, history pages, `sync` pages, read state, joins and leaves.
 */

import { Conversation } from "./conversations.js";
import { $, MAX_SYNC_PAGES, chat } from "./state.js";
import { flush, load, loadNewest, markRead, refused, request, scheduleFill, scheduleMarkRead, settle, showNotice, startSync } from "./requests.js";
import { scheduleRender, waiting } from "./render.js";
import * as protocol from "./protocol.js";

export function receive(text) {
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

export function conversation(kind, id) {
  const key = protocol.conversationKey(kind, id);
  if (!chat.conversations.has(key)) chat.conversations.set(key, new Conversation(kind, id));
  return chat.conversations.get(key);
}

/** A live message: held once by seq; one past a hole waits a moment for the missing ones. */
export function delivered(conversation, frame, own) {
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

export function acknowledged(frame) {
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

export function history(frame) {
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

export function synced(frame) {
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

export function joined(frame) {
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

export function left(frame) {
  settle(frame.clientRequestId);
  const room = chat.conversations.get(protocol.conversationKey("room", frame.roomId));
  if (room) roomGone(room);
}

/** A room left: gone from the list, unless messages to it wait in the outbox (they will be refused). */
export function roomGone(room) {
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

