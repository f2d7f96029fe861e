/**
 * What the page knows of one conversation: its messages by `seq`, its latest seq, read state, and
 * which seqs it holds without a gap, so that no message is shown twice and a missing one is
 * noticed and fetched.
 */

import { conversationKey } from "./protocol.js";

/**
 * The most messages held per conversation as new ones arrive; beyond it the oldest go (scrolling up
 * loads them again). Pages loaded by scrolling up are kept until the next new message.
 */
export const MAX_HELD = 2000;

export class Conversation {
  /** `kind`: `direct` (named by the other user's id) or `room`. */
  constructor(kind, id) {
    this.kind = kind;
    this.id = id;
    this.key = conversationKey(kind, id);
    /** seq → `{seq, senderId, body, sentAt}` */
    this.messages = new Map();
    /** The latest seq the page has heard of (from a message, an ack, `sync` or `joined`). */
    this.seq = 0;
    /** This user's read position, and in a direct conversation the other user's. */
    this.readSeq = 0;
    this.peerReadSeq = 0;
    /** The last message, for the list's preview; `activity` (epoch ms) orders the list. */
    this.lastMessage = undefined;
    this.activity = 0;
    /** Whether the newest page has been read: from then on, `floor..top()` is held without a gap. */
    this.loaded = false;
    this.floor = 1;
    /** Nothing older to load: `floor` is the first message, or the oldest retained (`oldestSeq`). */
    this.start = false;
    this.oldestSeq = 1;
    /** Rooms: joined (from `sync` or `joined`), or left while messages to it wait in the outbox. */
    this.joined = kind === "direct";
    this.left = false;
    /** Local notices (`{afterSeq, text, error?}`), shown after the message at `afterSeq`. */
    this.notices = [];
    /** The history requests in flight: `newest`, `older`, `after`. */
    this.loading = new Set();
    /** The latest seq shown to the user here, and the latest a `markRead` in flight asked for. */
    this.seen = 0;
    this.readRequested = 0;
    /** When (epoch ms) the page last joined this room, and last heard a live message here. */
    this.joinedAt = 0;
    this.liveAt = 0;
  }

  /** Messages after this user's read position. */
  get unread() {
    return Math.max(0, this.seq - this.readSeq);
  }

  /** Holds a message; false when it is held already (a repeat delivery or a page overlap). */
  add(message) {
    if (!Number.isSafeInteger(message.seq) || message.seq < 1) return false;
    this.heard(message.seq, message);
    if (this.messages.has(message.seq)) return false;
    this.messages.set(message.seq, message);
    return true;
  }

  /** Holds a new message (live, acknowledged or fetched after the top), dropping the oldest past `MAX_HELD`. */
  addNew(message) {
    const added = this.add(message);
    if (added && this.messages.size > MAX_HELD) this.trim();
    return added;
  }

  /**
   * Forgets the held messages: the next open reads the newest page again. For a conversation so
   * far behind that fetching every missed page would cost more than starting from the newest.
   */
  reset() {
    this.messages.clear();
    this.loaded = false;
    this.floor = 1;
    this.start = false;
  }

  /** Raises the latest seq (and the last message, when given and newer). */
  heard(seq, message) {
    if (seq > this.seq) this.seq = seq;
    if (message && (!this.lastMessage || message.seq >= this.lastMessage.seq)) {
      this.lastMessage = message;
      if (Number.isFinite(message.sentAt)) this.activity = Math.max(this.activity, message.sentAt);
    }
  }

  read(readSeq) {
    if (Number.isSafeInteger(readSeq) && readSeq > this.readSeq) this.readSeq = readSeq;
  }

  peerRead(readSeq) {
    if (Number.isSafeInteger(readSeq) && readSeq > this.peerReadSeq) this.peerReadSeq = readSeq;
  }

  /** The highest seq held with every seq from `floor` to it (0 before the newest page). */
  top() {
    if (!this.loaded) return 0;
    let top = this.floor - 1;
    while (this.messages.has(top + 1)) top += 1;
    return top;
  }

  /** Whether messages are missing after `top()`: heard of, or held past a hole. */
  hasGap() {
    return this.loaded && this.seq > this.top();
  }

  /**
   * The newest page: the held block starts at its first message. Live messages held from before
   * it and below it are dropped, since what lies between them and the page is unknown.
   */
  mergeNewest({ messages, hasMore, oldestSeq }) {
    for (const message of messages) this.add(message);
    this.oldestSeq = oldestSeq;
    if (!this.loaded) {
      this.floor = messages.length ? messages[0].seq : Math.max(oldestSeq, this.seq + 1);
      for (const seq of this.messages.keys()) if (seq < this.floor) this.messages.delete(seq);
      this.start = !hasMore;
      this.loaded = true;
    }
  }

  /** A page `before` the floor: the held block now starts at its first message. */
  mergeOlder({ messages, hasMore, oldestSeq }) {
    for (const message of messages) this.add(message);
    this.oldestSeq = oldestSeq;
    if (messages.length && messages[0].seq < this.floor) this.floor = messages[0].seq;
    this.start = !hasMore || messages.length === 0;
  }

  /** A page `after` the top. Returns how many messages were new. */
  mergeAfter({ messages, oldestSeq }) {
    this.oldestSeq = oldestSeq;
    let added = 0;
    for (const message of messages) if (this.addNew(message)) added += 1;
    return added;
  }

  /** Held messages in `seq` order. */
  sorted() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Whether the oldest held message is the oldest retained one, but not the first ever. */
  get expiredBefore() {
    return this.start && this.oldestSeq > 1 && this.floor <= this.oldestSeq;
  }

  /** Drops the oldest held messages past `MAX_HELD`; they can be loaded again. */
  trim() {
    const seqs = [...this.messages.keys()].sort((a, b) => a - b);
    for (const seq of seqs.slice(0, seqs.length - MAX_HELD)) this.messages.delete(seq);
    const lowest = seqs[seqs.length - MAX_HELD];
    if (lowest > this.floor) {
      this.floor = lowest;
      this.start = false;
    }
  }
}
