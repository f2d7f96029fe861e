/**
 * One WebSocket to the chat that reconnects by itself: exponential backoff with jitter after a
 * drop, no retry after a refusal, and a keep-alive that notices a connection whose network died.
 *
 * API Gateway closes a connection after 10 minutes without traffic, and a socket whose network
 * died can look open for minutes (nothing is sent on it, so nothing fails). So when the page has
 * sent nothing for `keepAliveMs` it sends `{"action":"send","message":"keepalive"}` with a
 * `clientRequestId`, and expects the echo within `answerTimeoutMs`; with none, it drops the socket
 * and connects again. `probe()` asks the same question at once (the chat calls it when a request
 * goes unanswered).
 *
 * Browsers hide the HTTP status of a refused handshake: a 401, 403 or 400 from `$connect` and a
 * gateway that cannot be reached both end as a close (1006) before `open`. So the page tells
 * them apart itself: a failure right after sign-in is a refusal (someone is there to fix the
 * user id or token); later, an expired token is a refusal, and otherwise it asks whether the
 * gateway answers plain HTTP: if it does, the handshake was refused; if not, the network or the
 * gateway is down and it keeps trying.
 */

import { keepAlive } from "./protocol.js";

/** The first retry waits up to 1 s, doubling each time up to 30 s. */
export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 30000;
/** How long the reachability check may take. */
const PROBE_TIMEOUT_MS = 3000;
/** A keep-alive after 60 s of sending nothing: 1,440 a day on an idle connection. */
export const KEEP_ALIVE_MS = 60_000;
/** The keep-alive's echo (a Lambda round trip) is expected within 10 s. */
export const ANSWER_TIMEOUT_MS = 10_000;

/** The subprotocol offered beside the token (`SUBPROTOCOL` in crates/core). */
export const SUBPROTOCOL = "chat";

/**
 * The wait before retry number `attempt` (0-based): half of the doubled delay, plus a random
 * part of the other half, so clients dropped together do not return together.
 */
export function backoff(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** The claims of a JWT, unverified (for display and expiry only; the server verifies). */
export function tokenClaims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

/**
 * Events: `state` (detail: `{name, retryAt?, reason?, expired?}` with name one of `connecting`,
 * `connected`, `reconnecting`, `refused`, `closed`), `open` (each time a socket opens) and
 * `frame` (detail: the text of a frame; keep-alive echoes are not passed on).
 */
export class Connection extends EventTarget {
  /**
   * `identity`: `{userId}` (demo mode) or `{token}` (token mode); `options`: `{keepAliveMs,
   * answerTimeoutMs}` (defaults above) and `resumed` (a session restored after a reload: its
   * first failure is a drop to retry, not a sign-in to correct).
   */
  constructor(url, identity, { keepAliveMs = KEEP_ALIVE_MS, answerTimeoutMs = ANSWER_TIMEOUT_MS, resumed = false } = {}) {
    super();
    this.url = url;
    this.identity = identity;
    this.keepAliveMs = keepAliveMs;
    this.answerTimeoutMs = answerTimeoutMs;
    this.socket = null;
    this.timer = null;
    this.watchdog = null;
    this.lastSentAt = 0;
    /** The keep-alive awaiting its echo: `{id, deadline}`. */
    this.awaitedEcho = null;
    this.keepAlivesSent = 0;
    this.attempt = 0;
    this.everOpened = resumed;
    this.closed = false;
    this.state = { name: "closed" };
  }

  /** Connects now (also from `reconnecting` or `refused`). */
  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    this.closed = false;
    this.setState({ name: "connecting" });
    const { userId, token } = this.identity;
    let socket;
    try {
      socket = token
        ? new WebSocket(this.url, [SUBPROTOCOL, token])
        : new WebSocket(withUserId(this.url, userId));
    } catch (error) {
      this.setState({ name: "refused", reason: `That URL cannot be used: ${error.message}` });
      return;
    }
    this.socket = socket;
    let opened = false;
    // A handshake that never completes (a stalled network, a captive portal) is given up too.
    const handshake = setTimeout(() => {
      if (this.socket !== socket || opened) return;
      this.socket = null;
      socket.close();
      this.failedToOpen();
    }, this.answerTimeoutMs);
    socket.addEventListener("open", () => {
      clearTimeout(handshake);
      if (this.socket !== socket) return;
      opened = true;
      this.everOpened = true;
      this.attempt = 0;
      this.lastSentAt = Date.now();
      this.awaitedEcho = null;
      this.watch();
      this.setState({ name: "connected" });
      this.dispatchEvent(new Event("open"));
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return;
      const text = String(event.data);
      if (this.awaitedEcho && text.includes("keepalive") && isEcho(text, this.awaitedEcho.id)) {
        this.awaitedEcho = null;
        return;
      }
      this.dispatchEvent(new CustomEvent("frame", { detail: text }));
    });
    socket.addEventListener("close", () => {
      clearTimeout(handshake);
      if (this.socket !== socket) return;
      this.socket = null;
      this.unwatch();
      if (opened) this.retry();
      else this.failedToOpen();
    });
  }

  /** Sends a frame; false when not connected. */
  send(text) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(text);
    this.lastSentAt = Date.now();
    return true;
  }

  /** Whether a socket is open (it may still turn out dead: see `probe`). */
  get connected() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** Sends a keep-alive now, unless one is already awaiting its echo. */
  probe() {
    if (this.awaitedEcho || !this.connected) return;
    const id = `keepalive-${++this.keepAlivesSent}`;
    this.awaitedEcho = { id, deadline: Date.now() + this.answerTimeoutMs };
    this.send(keepAlive(id));
  }

  /** Closes for good (sign out): it reports nothing more. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.unwatch();
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000);
    this.setState({ name: "closed" });
  }

  /** Checks the connection a few times per keep-alive period. */
  watch() {
    this.unwatch();
    const every = Math.max(250, Math.min(1000, this.answerTimeoutMs / 4));
    this.watchdog = setInterval(() => {
      if (this.awaitedEcho && Date.now() > this.awaitedEcho.deadline) this.restart("no answer to a keep-alive");
      else if (Date.now() - this.lastSentAt >= this.keepAliveMs) this.probe();
    }, every);
  }

  unwatch() {
    clearInterval(this.watchdog);
    this.watchdog = null;
    this.awaitedEcho = null;
  }

  /**
   * Gives up on this socket (its keep-alive went unanswered, or the server lost its record): it
   * is dropped without waiting for its close (which, with the network gone, may take minutes)
   * and a new one is opened after the usual backoff.
   */
  restart(reason) {
    const socket = this.socket;
    this.socket = null;
    this.unwatch();
    try {
      socket?.close(4000, reason);
    } catch {
      // Closing a socket that is already closing throws nothing useful.
    }
    this.retry(reason);
  }

  async failedToOpen() {
    const { exp } = this.identity.token ? tokenClaims(this.identity.token) : {};
    if (typeof exp === "number" && exp * 1000 < Date.now()) {
      this.refuse("your token has expired. Sign in again with a new one.", { expired: true });
      return;
    }
    if (!this.everOpened) {
      this.refuse(
        "the gateway refused the connection or cannot be reached (browsers do not say which). " +
          "Check the URL, the user id or the token.",
      );
      return;
    }
    const answers = await reachable(this.url);
    if (this.closed) return;
    if (answers) {
      this.refuse("the gateway answers but refused this connection (401, 403 or 400). Sign in again.");
      return;
    }
    if (this.state.name === "connecting") this.retry();
  }

  refuse(reason, { expired = false } = {}) {
    this.setState({ name: "refused", reason, expired });
  }

  retry(reason) {
    if (this.closed) return;
    const wait = backoff(this.attempt++);
    this.setState({ name: "reconnecting", retryAt: Date.now() + wait, reason });
    this.timer = setTimeout(() => this.connect(), wait);
  }

  setState(state) {
    if (this.closed && state.name !== "closed") return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }
}

/**
 * Whether a frame answers the keep-alive `id`: the `send` route's echo carries it back; a
 * route answered by API Gateway itself (a MOCK integration's fixed response) cannot, so a bare
 * `{"message":"keepalive"}` counts too.
 */
function isEcho(text, id) {
  try {
    const frame = JSON.parse(text);
    return frame.clientRequestId === id || (frame.clientRequestId === undefined && frame.message === "keepalive");
  } catch {
    return false;
  }
}

function withUserId(url, userId) {
  const address = new URL(url);
  address.searchParams.set("userId", userId);
  return address.toString();
}

/** Whether anything answers HTTP at the WebSocket URL's host (any status counts). */
async function reachable(url) {
  const http = url.replace(/^ws/, "http");
  try {
    await fetch(http, { mode: "no-cors", cache: "no-store", signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    return true;
  } catch {
    return false;
  }
}
