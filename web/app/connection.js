/**
 * One WebSocket to the chat that reconnects by itself: exponential backoff with jitter after a
 * drop, and no retry after a refusal.
 *
 * Browsers hide the HTTP status of a refused handshake: a 401, 403 or 400 from `$connect` and a
 * gateway that cannot be reached both end as a close (1006) before `open`. So the page tells
 * them apart itself: a failure right after sign-in is a refusal (someone is there to fix the
 * user id or token); later, an expired token is a refusal, and otherwise it asks whether the
 * gateway answers plain HTTP: if it does, the handshake was refused; if not, the network or the
 * gateway is down and it keeps trying.
 */

/** The first retry waits up to 1 s, doubling each time up to 30 s. */
export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 30000;
/** How long the reachability check may take. */
const PROBE_TIMEOUT_MS = 3000;

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
 * Events: `state` (detail: `{name, retryAt?, reason?}` with name one of `connecting`,
 * `connected`, `reconnecting`, `refused`, `closed`), `open` (each time a socket opens) and
 * `frame` (detail: the text of a frame).
 */
export class Connection extends EventTarget {
  /** `identity`: `{userId}` (demo mode) or `{token}` (token mode). */
  constructor(url, identity) {
    super();
    this.url = url;
    this.identity = identity;
    this.socket = null;
    this.timer = null;
    this.attempt = 0;
    this.everOpened = false;
    this.state = { name: "closed" };
  }

  /** Connects now (also from `reconnecting` or `refused`). */
  connect() {
    clearTimeout(this.timer);
    this.timer = null;
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
    socket.addEventListener("open", () => {
      opened = true;
      this.everOpened = true;
      this.attempt = 0;
      this.setState({ name: "connected" });
      this.dispatchEvent(new Event("open"));
    });
    socket.addEventListener("message", (event) => {
      this.dispatchEvent(new CustomEvent("frame", { detail: String(event.data) }));
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (opened) this.retry();
      else this.failedToOpen();
    });
  }

  /** Sends a frame; false when not connected. */
  send(text) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(text);
    return true;
  }

  /** Closes for good (sign out). */
  close() {
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000);
    this.setState({ name: "closed" });
  }

  async failedToOpen() {
    if (!this.everOpened) {
      this.refuse(
        "the gateway refused the connection or cannot be reached (browsers do not say which). " +
          "Check the URL, the user id or the token.",
      );
      return;
    }
    const { exp } = this.identity.token ? tokenClaims(this.identity.token) : {};
    if (typeof exp === "number" && exp * 1000 < Date.now()) {
      this.refuse("your token has expired. Sign in again with a new one.");
      return;
    }
    if (await reachable(this.url)) {
      this.refuse("the gateway answers but refused this connection (401, 403 or 400). Sign in again.");
      return;
    }
    if (this.state.name === "connecting") this.retry();
  }

  refuse(reason) {
    this.setState({ name: "refused", reason });
  }

  retry() {
    const wait = backoff(this.attempt++);
    this.setState({ name: "reconnecting", retryAt: Date.now() + wait });
    this.timer = setTimeout(() => this.connect(), wait);
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
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
