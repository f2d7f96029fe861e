/**
 * Messages typed but not yet stored by the server, kept in local storage so that they survive a
 * drop, a reload and a closed tab, and sent with their `clientRequestId` until acknowledged.
 *
 * Each entry is its own local-storage item, `chat.outbox.<userId>.<clientRequestId>` →
 * `{clientRequestId, conversation, body, createdAt, owner, state, error?}`, so that tabs never
 * overwrite each other's entries. Tabs of one browser share the outbox: every tab shows every
 * entry, and the tab that owns an entry (the one it was typed in) sends it. A tab holds a Web Lock
 * named after itself for as long as it is open; an entry whose owner holds no lock (its tab was
 * closed, or is reloading) is adopted by the next tab that looks. Two tabs adopting one entry at
 * once both send it, and the server stores it once (it deduplicates by `clientRequestId`). Where
 * the Web Locks API is missing (pages served over plain HTTP from another host), every tab sends
 * every entry, deduplicated the same way.
 *
 * `state` is `sending` (waiting or in flight), `failed` (refused by the server or the page, with
 * `error: {code, words}`) or `expired`: older than the server's 24-hour deduplication window, so
 * sending it again could store it twice; it waits for the user to say "retry".
 */

import { IDEMPOTENCY_WINDOW_MS, newRequestId } from "./protocol.js";

/** An hour's margin inside the server's window (an entry may first have been sent late). */
export const RESEND_WINDOW_MS = IDEMPOTENCY_WINDOW_MS - 60 * 60 * 1000;

const LOCK_PREFIX = "chat.tab.";

export class Outbox extends EventTarget {
  /** Dispatches `change` when another tab adds, sends or drops an entry. */
  constructor(userId, tabId, storage = localStorage) {
    super();
    this.prefix = `chat.outbox.${userId}.`;
    this.tabId = tabId;
    this.storage = storage;
    this.locks = globalThis.navigator?.locks;
    this.onStorage = (event) => {
      if (event.key === null || event.key.startsWith(this.prefix)) this.dispatchEvent(new Event("change"));
    };
    addEventListener("storage", this.onStorage);
  }

  /** Stops listening (sign-out). */
  detach() {
    removeEventListener("storage", this.onStorage);
  }

  /** Every entry, oldest first. */
  entries() {
    const entries = [];
    for (let index = 0; index < this.storage.length; index += 1) {
      const key = this.storage.key(index);
      if (!key?.startsWith(this.prefix)) continue;
      const entry = parse(this.storage.getItem(key));
      if (entry) entries.push(entry);
      else this.storage.removeItem(key);
    }
    return entries.sort((a, b) => a.createdAt - b.createdAt || a.clientRequestId.localeCompare(b.clientRequestId));
  }

  get(clientRequestId) {
    return parse(this.storage.getItem(this.prefix + clientRequestId));
  }

  /** A new entry for `conversation` (a key such as `direct:bob`), owned by this tab. */
  add(conversation, body, now = Date.now()) {
    const entry = { clientRequestId: newRequestId(), conversation, body, createdAt: now, owner: this.tabId, state: "sending" };
    this.put(entry);
    return entry;
  }

  put(entry) {
    this.storage.setItem(this.prefix + entry.clientRequestId, JSON.stringify(entry));
  }

  remove(clientRequestId) {
    this.storage.removeItem(this.prefix + clientRequestId);
  }

  /** Marks an entry refused; it stays (shown with the reason) until retried or discarded. */
  fail(clientRequestId, error) {
    const entry = this.get(clientRequestId);
    if (entry) this.put({ ...entry, state: "failed", error });
  }

  /** Sends a failed or expired entry again, as a new message (a new `clientRequestId`). */
  retry(clientRequestId) {
    const entry = this.get(clientRequestId);
    if (!entry) return undefined;
    this.remove(clientRequestId);
    return this.add(entry.conversation, entry.body);
  }

  /** Every entry of every tab (sign-out). */
  clear() {
    for (const entry of this.entries()) this.remove(entry.clientRequestId);
  }

  /** The state to show: `expired` once past the resend window, else as stored. */
  stateOf(entry, now = Date.now()) {
    if (entry.state === "sending" && now - entry.createdAt > RESEND_WINDOW_MS) return "expired";
    return entry.state;
  }

  /** The next entry this tab sends in `conversation`: its oldest one still `sending`. */
  next(conversation, now = Date.now()) {
    return this.entries().find(
      (entry) =>
        entry.conversation === conversation &&
        this.stateOf(entry, now) === "sending" &&
        (entry.owner === this.tabId || !this.locks),
    );
  }

  /** The conversations with entries waiting to be sent. */
  conversations() {
    return [...new Set(this.entries().map((entry) => entry.conversation))];
  }

  /** Takes over the entries of tabs that are gone; true when it took any. */
  async adopt() {
    if (!this.locks) return false;
    const { held = [] } = await this.locks.query();
    const alive = new Set(held.map((lock) => lock.name));
    let adopted = false;
    for (const entry of this.entries()) {
      if (entry.owner !== this.tabId && !alive.has(LOCK_PREFIX + entry.owner)) {
        this.put({ ...entry, owner: this.tabId });
        adopted = true;
      }
    }
    return adopted;
  }
}

/**
 * Takes the Web Lock that says "tab `tabId` is open" and holds it for as long as the page lives
 * (call it once per page). Resolves to the tab's id: `tabId`, or a new one when another tab holds
 * that lock (a duplicated tab inherits its session storage, and with it the id).
 */
export async function claimTab(tabId, newId = newRequestId) {
  const locks = globalThis.navigator?.locks;
  if (!locks) return tabId;
  for (let id = tabId; ; id = newId()) {
    const held = await new Promise((resolve) => {
      locks.request(LOCK_PREFIX + id, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        return lock ? new Promise(() => {}) : undefined;
      });
    });
    if (held) return id;
  }
}

/** An entry from its stored text; undefined for anything that is not one. */
function parse(text) {
  try {
    const entry = JSON.parse(text);
    const valid = entry && typeof entry.clientRequestId === "string" && typeof entry.conversation === "string";
    return valid && typeof entry.body === "string" && Number.isFinite(entry.createdAt) ? entry : undefined;
  } catch {
    return undefined;
  }
}
