/**
 * The page's state, shared by its modules: the constants that tune it, the element lookup and
 * `chat`, what this tab holds (the connection, the outbox, the conversations, the requests
 * awaiting an answer).
 */

import { ANSWER_TIMEOUT_MS, KEEP_ALIVE_MS } from "./connection.js";
import { claimTab } from "./outbox.js";
import * as protocol from "./protocol.js";

/** Messages per history page. */
export const PAGE = 50;
/** `sync` pages read after each (re)connect: up to 1,000 conversations. */
export const MAX_SYNC_PAGES = 10;
/** A live message past a hole waits this long (plus jitter) for the missing ones before fetching. */
export const GAP_WAIT_MS = 300;
/** A `markRead` waits this long for more messages, so reading a burst costs one request. */
export const MARK_READ_DELAY_MS = 300;
/** How often the tab looks for outbox entries of closed tabs. */
export const ADOPT_EVERY_MS = 5_000;
/** A `markRead` waits at most this long while messages keep arriving. */
export const MARK_READ_MAX_WAIT_MS = 2000;
/** A message sent this many times on one connection without an answer is shown as not sent. */
export const MAX_ATTEMPTS = 6;

export const $ = (id) => document.getElementById(id);
export const params = new URLSearchParams(location.search);
/** Seconds from the page's address, for tests and slow networks: `?keepAlive=60&timeout=10`. */
export const seconds = (name, fallback) => (Number(params.get(name)) > 0 ? Number(params.get(name)) * 1000 : fallback);

export const chat = {
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
export const tabClaimed = claimTab(chat.tabId).then((tabId) => {
  chat.tabId = tabId;
  sessionStorage.setItem("chat.tab", tabId);
  if (chat.outbox) chat.outbox.tabId = tabId;
});

