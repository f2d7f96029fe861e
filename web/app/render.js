/**
 * Rendering: the conversation list, the open conversation with its outbox entries and notices,
 * and the composer, redrawn at most once a frame.
 */

import { $, chat } from "./state.js";
import { discardEntry, load, open, retryEntry } from "./requests.js";
import { conversation } from "./inbox.js";

// ---- rendering ----

export function scheduleRender() {
  if (chat.renderQueued) return;
  chat.renderQueued = true;
  setTimeout(() => {
    chat.renderQueued = false;
    render();
  }, 0);
}

export function render({ toBottom = false } = {}) {
  renderList();
  renderConversation(toBottom);
  renderComposer();
}

/** The outbox entries of one conversation (every tab's). */
export function waiting(key) {
  return (chat.outbox?.entries() ?? []).filter((entry) => entry.conversation === key);
}

/** Whether `what` differs from what `part` last rendered (re-rendering only on change keeps clicks and selection steady). */
export function changed(part, what) {
  const signature = JSON.stringify(what);
  if (changed.last[part] === signature) return false;
  changed.last[part] = signature;
  return true;
}
changed.last = {};

export function renderList() {
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

export function renderConversation(toBottom) {
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

export function conversationItems(current) {
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
export function edge(current) {
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

export function time(at) {
  return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function messageItem(current, message) {
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
export function entryItem(entry) {
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

export function noticeItem(notice) {
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

export function renderComposer() {
  const current = chat.conversations.get(chat.active);
  // Typing never waits for the connection: what is sent offline waits in the outbox.
  const ready = Boolean(chat.outbox && current && current.joined && !current.left);
  $("body").disabled = !ready;
  $("send").disabled = !ready;
}

