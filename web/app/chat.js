/**
 * The chat page: sign-in, conversations (direct messages and rooms) with unread counts, the
 * connection's state, and every error frame in plain words next to what caused it.
 */

import { Connection, tokenClaims } from "./connection.js";
import * as protocol from "./protocol.js";

/** Messages kept per conversation; older ones scroll away. */
const MAX_MESSAGES = 500;
/** An error frame belongs to the last request if it arrives within this long. */
const ERROR_WINDOW_MS = 10000;

const $ = (id) => document.getElementById(id);

const chat = {
  connection: null,
  me: "",
  /** The token claim that holds the user id (the server's `AUTH_USER_CLAIM`). */
  userClaim: "sub",
  /** key (`direct:bob`, `room:lobby`) → {key, kind, id, messages, unread, joined, rejoining} */
  conversations: new Map(),
  active: null,
  /** The last request sent: `{conversation, message, at}`; error frames attach to it. */
  lastRequest: null,
  countdown: null,
};

// ---- sign-in ----

function prefill() {
  const params = new URLSearchParams(location.search);
  $("url").value = params.get("url") ?? localStorage.getItem("chat.url") ?? "";
  $("user-id").value = localStorage.getItem("chat.userId") ?? "";
  if (params.get("issuer")) $("issuer").value = params.get("issuer");
  chat.userClaim = params.get("claim") || "sub";
  if (params.get("mode") === "token") document.querySelector('input[name=mode][value=token]').checked = true;
  showModeFields();
}

function mode() {
  return document.querySelector("input[name=mode]:checked").value;
}

function showModeFields() {
  $("token-fields").hidden = mode() !== "token";
  $("user-id").required = mode() === "demo";
}

async function fetchToken() {
  const userId = $("user-id").value.trim();
  if (!protocol.isValidId(userId)) {
    signInError("Type the user id the token is for first.");
    return;
  }
  try {
    const response = await fetch(`${$("issuer").value.replace(/\/$/, "")}/token?user=${encodeURIComponent(userId)}`);
    if (!response.ok) throw new Error(`the issuer answered ${response.status}`);
    $("token").value = (await response.text()).trim();
    signInError("");
  } catch (error) {
    signInError(`No token from the local issuer (${error.message}): is make dev-auth running?`);
  }
}

function signIn(event) {
  event.preventDefault();
  const url = $("url").value.trim();
  const userId = $("user-id").value.trim();
  if (!/^wss?:\/\//.test(url)) return signInError("The URL starts with ws:// or wss://.");
  let identity;
  if (mode() === "demo") {
    if (!protocol.isValidId(userId)) return signInError("A user id is 1 to 128 letters, digits or _ . @ -.");
    identity = { userId };
    chat.me = userId;
  } else {
    const token = $("token").value.trim();
    if (!token) return signInError("Paste a token, or get one from the local issuer.");
    identity = { token };
    // The claim the server takes the user id from (the gateway names it in `?claim=`).
    chat.me = tokenClaims(token)[chat.userClaim] ?? "you";
  }
  localStorage.setItem("chat.url", url);
  if (userId) localStorage.setItem("chat.userId", userId);
  signInError("");
  chat.connection?.close();
  chat.connection = new Connection(url, identity);
  chat.connection.addEventListener("state", (event) => showState(event.detail));
  chat.connection.addEventListener("open", rejoinRooms);
  chat.connection.addEventListener("frame", (event) => receive(event.detail));
  chat.connection.connect();
}

function signInError(text) {
  $("sign-in-error").textContent = text;
}

function signOut() {
  chat.connection?.close();
  chat.connection = null;
  chat.conversations.clear();
  chat.active = null;
  chat.lastRequest = null;
  $("chat-view").hidden = true;
  $("sign-in-view").hidden = false;
  render();
}

// ---- connection state ----

function showState(state) {
  clearInterval(chat.countdown);
  const line = $("state");
  line.dataset.state = state.name;
  const words = {
    connecting: () => "Connecting…",
    connected: () => `Connected as ${chat.me}`,
    reconnecting: () => `Reconnecting in ${Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000))} s`,
    refused: () => `Refused: ${state.reason}`,
    closed: () => "Not connected",
  };
  line.textContent = words[state.name]();
  if (state.name === "reconnecting") {
    chat.countdown = setInterval(() => (line.textContent = words.reconnecting()), 1000);
  }
  $("reconnect").hidden = !["reconnecting", "refused"].includes(state.name) || !chat.connection?.everOpened;
  $("sign-out").hidden = state.name === "closed";
  if (state.name === "connected") {
    $("sign-in-view").hidden = true;
    $("chat-view").hidden = false;
  }
  if (state.name === "refused" && !chat.connection?.everOpened) {
    signInError(`Refused: ${state.reason}`);
  }
  renderComposer();
}

/**
 * A new socket is in no room: join each again. API Gateway runs a connection's frames
 * concurrently, in no set order, so a message sent before the join's answer could reach the room
 * before the join does; the room's composer stays disabled ("joining…") until the answer.
 */
function rejoinRooms() {
  for (const conversation of chat.conversations.values()) {
    if (conversation.kind !== "room") continue;
    conversation.rejoining = conversation.joined || conversation.rejoining;
    conversation.joined = false;
    chat.connection.send(protocol.joinRoom(conversation.id));
  }
  renderComposer();
}

// ---- conversations ----

function conversation(kind, id) {
  const key = `${kind}:${id}`;
  if (!chat.conversations.has(key)) {
    chat.conversations.set(key, { key, kind, id, messages: [], unread: 0, joined: false });
  }
  return chat.conversations.get(key);
}

function add(conversation, fields) {
  const message = { at: new Date(), ...fields };
  conversation.messages.push(message);
  if (conversation.messages.length > MAX_MESSAGES) conversation.messages.shift();
  if (conversation.key !== chat.active && !message.own) conversation.unread += 1;
  return message;
}

function open(key) {
  chat.active = key;
  const current = chat.conversations.get(key);
  if (current) current.unread = 0;
  render();
  $("body").focus();
}

function receive(text) {
  const frame = protocol.readFrame(text);
  switch (frame.kind) {
    case "direct": {
      // A message this user sent from another tab comes back too: it belongs to the
      // conversation with its recipient, and is this user's own.
      const own = frame.senderId === chat.me && typeof frame.destinationUserId === "string";
      const other = own ? frame.destinationUserId : frame.senderId;
      add(conversation("direct", other), { sender: frame.senderId, body: frame.body, own });
      break;
    }
    case "room":
      add(conversation("room", frame.roomId), { sender: frame.senderId, body: frame.body });
      break;
    case "joined": {
      const room = conversation("room", frame.roomId);
      if (!room.joined && !room.rejoining) add(room, { notice: `You joined ${frame.roomId}.`, own: true });
      room.joined = true;
      room.rejoining = false;
      break;
    }
    case "left":
      chat.conversations.delete(`room:${frame.roomId}`);
      if (chat.active === `room:${frame.roomId}`) chat.active = null;
      break;
    case "error":
      showError(frame);
      break;
    case "gateway":
      showError({ code: "gateway", message: frame.message, words: protocol.gatewayWords(frame.message) });
      break;
    default:
      break;
  }
  render();
}

/** Puts an error frame next to the request that caused it: the last one, if recent. */
function showError({ code, message, words = protocol.errorWords(code, message) }) {
  const last = chat.lastRequest;
  if (last && Date.now() - last.at < ERROR_WINDOW_MS && chat.conversations.has(last.conversation.key)) {
    if (last.message) last.message.error = { code, words };
    else add(last.conversation, { notice: words, error: { code, words }, own: true });
    chat.lastRequest = null;
  } else {
    const current = chat.conversations.get(chat.active);
    if (current) add(current, { notice: words, error: { code, words }, own: true });
    else $("state").textContent = `${$("state").textContent} (${words})`;
  }
}

function request(conversation, frame, message) {
  chat.lastRequest = { conversation, message, at: Date.now() };
  // A bigger frame would make the gateway close the connection (1009) and lose the message.
  if (new Blob([frame]).size > protocol.MAX_FRAME_BYTES) {
    return failed(conversation, message, "frameTooLarge", "Not sent: a message must fit in 32 KB.");
  }
  if (!chat.connection?.send(frame)) failed(conversation, message, "notConnected", "Not sent: not connected.");
}

/** Marks a request that never left the page. */
function failed(conversation, message, code, words) {
  if (message) message.error = { code, words };
  else add(conversation, { notice: words, error: { code, words }, own: true });
}

function sendMessage(event) {
  event.preventDefault();
  const current = chat.conversations.get(chat.active);
  const body = $("body").value;
  if (!current || !body.trim()) return;
  const message = add(current, { sender: chat.me, body, own: true });
  const frame =
    current.kind === "room" ? protocol.roomMessage(current.id, body) : protocol.directMessage(current.id, body);
  request(current, frame, message);
  $("body").value = "";
  render();
}

function openDirect(event) {
  event.preventDefault();
  const userId = $("direct-user").value.trim();
  if (!protocol.isValidId(userId)) return;
  $("direct-user").value = "";
  open(conversation("direct", userId).key);
}

function joinRoom(event) {
  event.preventDefault();
  const roomId = $("room-id").value.trim();
  if (!protocol.isValidId(roomId)) return;
  $("room-id").value = "";
  const room = conversation("room", roomId);
  request(room, protocol.joinRoom(roomId), null);
  open(room.key);
}

function leaveRoom() {
  const current = chat.conversations.get(chat.active);
  if (current?.kind !== "room") return;
  if (!current.joined || !chat.connection?.send(protocol.leaveRoom(current.id))) {
    chat.conversations.delete(current.key);
    chat.active = null;
    render();
  }
}

// ---- rendering ----

function render() {
  renderList();
  renderConversation();
  renderComposer();
}

function renderList() {
  const list = $("conversations");
  list.replaceChildren(
    ...[...chat.conversations.values()].map((conversation) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.key = conversation.key;
      button.textContent = conversation.kind === "room" ? `# ${conversation.id}` : conversation.id;
      if (conversation.key === chat.active) button.setAttribute("aria-current", "true");
      if (conversation.unread > 0) {
        const badge = document.createElement("span");
        badge.className = "unread";
        badge.textContent = String(conversation.unread);
        badge.setAttribute("aria-label", `${conversation.unread} unread`);
        button.append(" ", badge);
      }
      button.addEventListener("click", () => open(conversation.key));
      item.append(button);
      return item;
    }),
  );
}

function renderConversation() {
  const current = chat.conversations.get(chat.active);
  $("conversation-title").textContent = current
    ? current.kind === "room"
      ? `Room ${current.id}${current.joined ? "" : " (joining…)"}`
      : `Direct messages with ${current.id}`
    : "Pick or start a conversation";
  $("leave-room").hidden = current?.kind !== "room";
  $("messages").replaceChildren(...(current?.messages ?? []).map(renderMessage));
  $("messages").lastElementChild?.scrollIntoView({ block: "end" });
}

function renderMessage(message) {
  const item = document.createElement("li");
  item.className = message.notice ? "notice" : message.own ? "message own" : "message";
  const time = message.at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  if (message.notice) {
    item.textContent = message.notice;
  } else {
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${message.own ? "You" : message.sender} · ${message.own ? "sent" : "received"} ${time}`;
    const body = document.createElement("div");
    body.className = "body";
    body.textContent = message.body;
    item.append(meta, body);
  }
  if (message.error) {
    item.classList.add("failed");
    const error = document.createElement("div");
    error.className = "error";
    error.dataset.code = message.error.code;
    error.textContent = message.error.words;
    if (message.notice) item.replaceChildren(error);
    else item.append(error);
  }
  return item;
}

function renderComposer() {
  const current = chat.conversations.get(chat.active);
  const ready =
    chat.connection?.state.name === "connected" && current && (current.kind === "direct" || current.joined);
  $("body").disabled = !ready;
  $("send").disabled = !ready;
}

// ---- wiring ----

prefill();
for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", showModeFields);
$("fetch-token").addEventListener("click", fetchToken);
$("sign-in").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
$("reconnect").addEventListener("click", () => chat.connection?.connect());
$("new-direct").addEventListener("submit", openDirect);
$("join-room").addEventListener("submit", joinRoom);
$("leave-room").addEventListener("click", leaveRoom);
$("composer").addEventListener("submit", sendMessage);
