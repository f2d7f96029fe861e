/**
 * The chat's frames, as the README documents them: what the page sends, how it reads what
 * arrives, and every error code in plain words.
 */

/** The largest frame API Gateway takes from a client (`MAX_FRAME_BYTES` in crates/core). */
export const MAX_FRAME_BYTES = 32 * 1024;

/** The server keeps a `sendMessage`'s `clientRequestId` for 24 hours (its idempotency window). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** The most messages one `getHistory` page holds (`MAX_HISTORY_PAGE` in crates/core). */
export const HISTORY_LIMIT = 100;

/** The most conversations one `sync` page holds (`MAX_SYNC_PAGE` in crates/core). */
export const SYNC_LIMIT = 100;

/** Letters, digits and `_ . @ -`, 1 to 128 characters: user ids and room ids alike. */
const ID = /^[A-Za-z0-9_.@-]{1,128}$/;

/** Whether `value` is a valid user or room id (the server checks again; this saves a round trip). */
export function isValidId(value) {
  return ID.test(value);
}

/** A fresh `clientRequestId`: 32 hex digits (the server takes 1 to 64 of `[A-Za-z0-9_-]`). */
export function newRequestId() {
  return crypto.randomUUID().replaceAll("-", "");
}

/**
 * A conversation as the page names it: `direct:bob` or `room:lobby`, from `{kind, id}`, and back.
 */
export function conversationKey(kind, id) {
  return `${kind}:${id}`;
}

export function parseKey(key) {
  const at = key.indexOf(":");
  return { kind: key.slice(0, at), id: key.slice(at + 1) };
}

/** The field that names a conversation in `getHistory` and `markRead`: `userId` or `roomId`. */
function naming({ kind, id }) {
  return kind === "room" ? { roomId: id } : { userId: id };
}

/** `sendMessage` to a conversation (`{kind, id}`), with its `clientRequestId`. */
export function sendMessage(conversation, body, clientRequestId) {
  const to = conversation.kind === "room" ? { roomId: conversation.id } : { destinationUserId: conversation.id };
  return JSON.stringify({ action: "sendMessage", ...to, body, clientRequestId });
}

/** `getHistory`: the newest page, or `{before}` / `{after}` a seq (exclusive). */
export function getHistory(conversation, { before, after, limit = 50 } = {}, clientRequestId) {
  return JSON.stringify({ action: "getHistory", ...naming(conversation), before, after, limit, clientRequestId });
}

/** `sync`: the user's conversations, most recently active first; `cursor` from the last page. */
export function sync({ cursor, limit = SYNC_LIMIT } = {}, clientRequestId) {
  return JSON.stringify({ action: "sync", limit, cursor, clientRequestId });
}

/** `markRead`: read up to `seq` (the server clamps it to the latest and never lowers it). */
export function markRead(conversation, seq, clientRequestId) {
  return JSON.stringify({ action: "markRead", ...naming(conversation), seq, clientRequestId });
}

export function joinRoom(roomId, clientRequestId) {
  return JSON.stringify({ action: "joinRoom", roomId, clientRequestId });
}

export function leaveRoom(roomId, clientRequestId) {
  return JSON.stringify({ action: "leaveRoom", roomId, clientRequestId });
}

/** The keep-alive: the `send` route echoes `message` back with the `clientRequestId`. */
export function keepAlive(clientRequestId) {
  return JSON.stringify({ action: "send", message: "keepalive", clientRequestId });
}

/** `{senderId, body, seq, sentAt}` from a delivered, history or last message. */
function message(frame) {
  return { senderId: frame.senderId, body: frame.body, seq: frame.seq, sentAt: frame.sentAt };
}

/** `{kind: "direct"|"room", id}` of a frame naming a conversation by `userId` or `roomId`. */
function named(frame) {
  return typeof frame.roomId === "string" ? { kind: "room", id: frame.roomId } : { kind: "direct", id: frame.userId };
}

/**
 * What an incoming frame is, each with the `clientRequestId` it answers (or undefined):
 * - `{kind: "direct", senderId, destinationUserId, body, seq, sentAt}`, `{kind: "room", senderId,
 *   roomId, body, seq, sentAt}`: a delivered message;
 * - `{kind: "ack", conversation: {kind, id}, seq, sentAt}`: a `sendMessage` stored;
 * - `{kind: "history", conversation, messages, hasMore, oldestSeq}`;
 * - `{kind: "sync", userId, conversations: [{conversation, seq, readSeq, peerReadSeq?,
 *   lastMessage?}], nextCursor?}`;
 * - `{kind: "read", conversation, readSeq}` (this user's, from any tab) and
 *   `{kind: "readReceipt", userId, readSeq}` (the other user of a direct conversation);
 * - `{kind: "joined", roomId, seq}`, `{kind: "left", roomId}`;
 * - `{kind: "error", code, message}`, `{kind: "gateway", message}` (API Gateway's own error
 *   frames), `{kind: "pong", message}` (the `send` route's echo), or `{kind: "unknown", text}`.
 */
export function readFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return { kind: "unknown", text };
  }
  if (frame === null || typeof frame !== "object") return { kind: "unknown", text };
  const clientRequestId = typeof frame.clientRequestId === "string" ? frame.clientRequestId : undefined;
  const read = readKnown(frame);
  if (read === undefined) return { kind: "unknown", text };
  return clientRequestId === undefined ? read : { ...read, clientRequestId };
}

function readKnown(frame) {
  if (typeof frame.error === "string") return { kind: "error", code: frame.error, message: String(frame.message ?? "") };
  switch (frame.type) {
    case "ack":
      return {
        kind: "ack",
        conversation:
          typeof frame.roomId === "string"
            ? { kind: "room", id: frame.roomId }
            : { kind: "direct", id: frame.destinationUserId },
        seq: frame.seq,
        sentAt: frame.sentAt,
      };
    case "history":
      return {
        kind: "history",
        conversation: named(frame),
        messages: (frame.messages ?? []).map(message),
        hasMore: frame.hasMore === true,
        oldestSeq: frame.oldestSeq ?? 1,
      };
    case "sync":
      return {
        kind: "sync",
        userId: frame.userId,
        conversations: (frame.conversations ?? []).map((entry) => ({
          conversation: named(entry),
          seq: entry.seq ?? 0,
          readSeq: entry.readSeq ?? 0,
          peerReadSeq: entry.peerReadSeq,
          lastMessage: entry.lastMessage ? message(entry.lastMessage) : undefined,
        })),
        nextCursor: frame.nextCursor,
      };
    case "read":
      return { kind: "read", conversation: named(frame), readSeq: frame.readSeq };
    case "readReceipt":
      return { kind: "readReceipt", userId: frame.userId, readSeq: frame.readSeq };
    default:
      break;
  }
  if (typeof frame.roomId === "string" && frame.joined === true) return { kind: "joined", roomId: frame.roomId, seq: frame.seq ?? 0 };
  if (typeof frame.roomId === "string" && frame.left === true) return { kind: "left", roomId: frame.roomId };
  if (typeof frame.senderId === "string" && typeof frame.body === "string") {
    return typeof frame.roomId === "string"
      ? { kind: "room", ...message(frame), roomId: frame.roomId }
      : { kind: "direct", ...message(frame), destinationUserId: frame.destinationUserId };
  }
  // API Gateway's own frames, not the chat's: `{"message": "Internal server error",
  // "connectionId":…, "requestId":…}` when a function fails, `Endpoint request timed out` when it
  // runs past 29 s, `Forbidden` when no route takes a frame, `Too Many Requests` when the stage
  // is throttling. Only they carry `connectionId` and `requestId`.
  if (typeof frame.message === "string" && typeof frame.connectionId === "string" && typeof frame.requestId === "string") {
    return { kind: "gateway", message: frame.message };
  }
  if (typeof frame.message === "string") return { kind: "pong", message: frame.message };
  return undefined;
}

/** Every error code the server sends (`ErrorCode` in crates/core), in plain words. */
export const ERROR_WORDS = {
  invalidJson: "The message was not valid JSON.",
  missingField: "A required field was missing.",
  invalidField: "A field was not valid: ids are 1 to 128 letters, digits or _ . @ -.",
  bodyTooLarge: "Too long: a delivered message must fit in 128 KB.",
  unknownAction: "The server does not know that action.",
  unknownConnection: "The server lost this connection's record: reconnect.",
  unavailable: "The server is busy or a backend failed: trying again.",
  tooManyConnections: "This user already has the most connections allowed.",
  unauthorized: "This connection has no verified identity.",
  notInRoom: "Not delivered: join the room first.",
  tooManyRooms: "Not joined: you may be in at most 50 rooms; leave one first.",
};

/**
 * Error codes after which the same request may succeed if sent again: the outbox retries these
 * and shows every other one beside the message it refuses.
 */
export const RETRYABLE = new Set(["unavailable", "unknownConnection"]);

/** API Gateway's own error frames in plain words. */
export function gatewayWords(message) {
  if (message === "Internal server error") return "The server failed to handle a request: retrying.";
  if (message === "Endpoint request timed out") return "The server took too long to answer: retrying.";
  if (message === "Forbidden") return "The server has no route for that request.";
  if (message === "Too Many Requests") return "Too many messages at once: slowing down.";
  return `API Gateway: ${message}`;
}

/** An error frame in plain words; an unknown code falls back to the server's own sentence. */
export function errorWords(code, message) {
  return ERROR_WORDS[code] ?? (message || `Error: ${code}`);
}
