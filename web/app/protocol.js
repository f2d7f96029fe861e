/**
 * The chat's frames, as the README documents them: what the page sends, how it reads what
 * arrives, and every error code in plain words.
 */

/** The largest frame API Gateway takes from a client (`MAX_FRAME_BYTES` in crates/core). */
export const MAX_FRAME_BYTES = 32 * 1024;

/** Letters, digits and `_ . @ -`, 1 to 128 characters: user ids and room ids alike. */
const ID = /^[A-Za-z0-9_.@-]{1,128}$/;

/** Whether `value` is a valid user or room id (the server checks again; this saves a round trip). */
export function isValidId(value) {
  return ID.test(value);
}

/** A direct message. */
export function directMessage(userId, body) {
  return JSON.stringify({ action: "sendMessage", destinationUserId: userId, body });
}

/** A message to everyone else in a room. */
export function roomMessage(roomId, body) {
  return JSON.stringify({ action: "sendMessage", roomId, body });
}

export function joinRoom(roomId) {
  return JSON.stringify({ action: "joinRoom", roomId });
}

export function leaveRoom(roomId) {
  return JSON.stringify({ action: "leaveRoom", roomId });
}

/**
 * What an incoming frame is:
 * `{kind: "direct", senderId, destinationUserId, body, seq, sentAt}`,
 * `{kind: "room", senderId, roomId, body, seq, sentAt}`,
 * `{kind: "joined", roomId}`, `{kind: "left", roomId}`, `{kind: "error", code, message}`,
 * `{kind: "gateway", message}` (API Gateway's own error frames), `{kind: "pong", message}`,
 * or `{kind: "unknown", text}`.
 */
export function readFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return { kind: "unknown", text };
  }
  if (frame === null || typeof frame !== "object") return { kind: "unknown", text };
  if (typeof frame.error === "string") {
    return { kind: "error", code: frame.error, message: String(frame.message ?? "") };
  }
  if (typeof frame.roomId === "string" && frame.joined === true) return { kind: "joined", roomId: frame.roomId };
  if (typeof frame.roomId === "string" && frame.left === true) return { kind: "left", roomId: frame.roomId };
  if (typeof frame.senderId === "string" && typeof frame.body === "string") {
    return typeof frame.roomId === "string"
      ? { kind: "room", senderId: frame.senderId, roomId: frame.roomId, body: frame.body, seq: frame.seq, sentAt: frame.sentAt }
      : {
          kind: "direct",
          senderId: frame.senderId,
          destinationUserId: frame.destinationUserId,
          body: frame.body,
          seq: frame.seq,
          sentAt: frame.sentAt,
        };
  }
  // API Gateway's own frames, not the chat's: `{"message":"Internal server error",
  // "connectionId":…,"requestId":…}` when a function fails, `{"message":"Forbidden",…}` when no
  // route takes a frame, `{"message":"Too Many Requests",…}` when the stage is throttling. Only
  // they carry `connectionId` and `requestId`.
  if (typeof frame.message === "string" && typeof frame.connectionId === "string" && typeof frame.requestId === "string") {
    return { kind: "gateway", message: frame.message };
  }
  if (typeof frame.message === "string") return { kind: "pong", message: frame.message };
  return { kind: "unknown", text };
}

/** Every error code the server sends (`ErrorCode` in crates/core), in plain words. */
export const ERROR_WORDS = {
  invalidJson: "The message was not valid JSON.",
  missingField: "A required field was missing.",
  invalidField: "A field was not valid: ids are 1 to 128 letters, digits or _ . @ -.",
  bodyTooLarge: "Too long: a delivered message must fit in 128 KB.",
  unknownAction: "The server does not know that action.",
  unknownConnection: "The server lost this connection's record: reconnect.",
  unavailable: "The server is busy or a backend failed: try again in a moment.",
  tooManyConnections: "This user already has the most connections allowed.",
  unauthorized: "This connection has no verified identity.",
  notInRoom: "Not delivered: join the room first.",
  tooManyRooms: "Not joined: you may be in at most 50 rooms; leave one first.",
};

/** API Gateway's own error frames in plain words. */
export function gatewayWords(message) {
  if (message === "Internal server error") return "The server failed to handle that: try again in a moment.";
  if (message === "Forbidden") return "The server has no route for that request.";
  if (message === "Too Many Requests") return "Too many messages at once: wait a moment and send again.";
  return `API Gateway: ${message}`;
}

/** An error frame in plain words; an unknown code falls back to the server's own sentence. */
export function errorWords(code, message) {
  return ERROR_WORDS[code] ?? (message || `Error: ${code}`);
}
