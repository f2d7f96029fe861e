/**
 * Signing in and out, and the connection's state: the form, the token, the connection's
 * lifecycle shown in the header, and what a reconnect sends again.
 */

import { Connection, tokenClaims } from "./connection.js";
import { Outbox } from "./outbox.js";
import { $, ADOPT_EVERY_MS, chat, params, tabClaimed } from "./state.js";
import { flushAll, loadNewest, refused, request, startSync } from "./requests.js";
import { conversation, receive } from "./inbox.js";
import { render, scheduleRender, waiting } from "./render.js";
import * as protocol from "./protocol.js";

// ---- sign-in ----

export function prefill() {
  $("url").value = params.get("url") ?? localStorage.getItem("chat.url") ?? "";
  // A link may name any gateway: say so when it is not the one used before, since a token
  // signed in with goes there.
  const before = localStorage.getItem("chat.url");
  if (params.get("url") && before && hostOf(before) !== hostOf(params.get("url"))) {
    $("url-warning").textContent = `This link connects to ${hostOf(params.get("url"))}, not ${hostOf(before)} as before.`;
    $("url-warning").hidden = false;
  }
  $("user-id").value = localStorage.getItem("chat.userId") ?? "";
  if (params.get("issuer")) $("issuer").value = params.get("issuer");
  chat.userClaim = params.get("claim") || "sub";
  if (params.get("mode") === "token") document.querySelector('input[name=mode][value=token]').checked = true;
  showModeFields();
}

export function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

export function mode() {
  return document.querySelector("input[name=mode]:checked").value;
}

export function showModeFields() {
  $("token-fields").hidden = mode() !== "token";
  $("user-id").required = mode() === "demo";
}

export async function fetchToken() {
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

export function submitSignIn(event) {
  event.preventDefault();
  const url = $("url").value.trim();
  const userId = $("user-id").value.trim();
  if (!/^wss?:\/\//.test(url)) return signInError("The URL starts with ws:// or wss://.");
  let identity;
  if (mode() === "demo") {
    if (!protocol.isValidId(userId)) return signInError("A user id is 1 to 128 letters, digits or _ . @ -.");
    identity = { userId };
  } else {
    const token = $("token").value.trim();
    if (!token) return signInError("Paste a token, or get one from the local issuer.");
    identity = { token };
  }
  localStorage.setItem("chat.url", url);
  if (userId) localStorage.setItem("chat.userId", userId);
  signIn(url, identity);
}

/**
 * Connects as `identity`. The session (the URL and the user id, or the token) is kept in this
 * tab's session storage, so a reload signs in again by itself; closing the tab forgets it.
 */
export function signIn(url, identity, { resumed = false } = {}) {
  signInError("");
  stop();
  // The claim the server takes the user id from; `sync` confirms it.
  chat.me = identity.userId ?? tokenClaims(identity.token)[chat.userClaim] ?? "";
  sessionStorage.setItem("chat.session", JSON.stringify({ url, identity }));
  chat.outbox = new Outbox(chat.me, chat.tabId);
  chat.outbox.addEventListener("change", () => {
    flushAll();
    scheduleRender();
  });
  tabClaimed.then(adopt);
  chat.adopter = setInterval(adopt, ADOPT_EVERY_MS);
  chat.connection = new Connection(url, identity, {
    keepAliveMs: chat.keepAliveMs,
    answerTimeoutMs: chat.timeoutMs,
    resumed,
  });
  chat.connection.addEventListener("state", (event) => showState(event.detail));
  chat.connection.addEventListener("open", resume);
  chat.connection.addEventListener("frame", (event) => receive(event.detail));
  chat.connection.connect();
  // A restored session shows its conversations (and takes messages into the outbox) at once.
  if (resumed) showChat();
  scheduleRender();
}

export function showChat() {
  $("sign-in-view").hidden = true;
  $("chat-view").hidden = false;
}

export function signInError(text) {
  $("sign-in-error").textContent = text;
}

/** Closes the connection and forgets the conversations (not the outbox). */
export function stop() {
  chat.connection?.close();
  chat.connection = null;
  chat.outbox?.detach();
  chat.outbox = null;
  clearInterval(chat.adopter);
  dropPending();
  chat.conversations.clear();
  chat.moreConversations = undefined;
}

/** Signing out forgets the session and clears the outbox, in every tab of this user. */
export function signOut() {
  const me = chat.me;
  chat.outbox?.clear();
  stop();
  sessionStorage.removeItem("chat.session");
  sessionStorage.removeItem("chat.active");
  chat.active = null;
  localStorage.setItem("chat.signedOut", JSON.stringify({ userId: me, at: Date.now() }));
  $("chat-view").hidden = true;
  $("sign-in-view").hidden = false;
  render();
}

addEventListener("storage", (event) => {
  if (event.key !== "chat.signedOut" || !event.newValue || !chat.connection) return;
  if (JSON.parse(event.newValue).userId === chat.me) signOut();
});

// ---- connection state ----

export function showState(state) {
  clearInterval(chat.countdown);
  const line = $("state");
  line.dataset.state = state.name;
  const words = {
    connecting: () => "Connecting…",
    connected: () => `Connected as ${chat.me}`,
    reconnecting: () =>
      `Reconnecting in ${Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000))} s` +
      (state.reason ? ` (${state.reason})` : ""),
    refused: () => `Refused: ${state.reason}`,
    closed: () => "Not connected",
  };
  line.textContent = words[state.name]();
  if (state.name === "reconnecting") {
    chat.countdown = setInterval(() => (line.textContent = words.reconnecting()), 1000);
  }
  if (state.name !== "connected") dropPending();
  $("reconnect").hidden = !["reconnecting", "refused"].includes(state.name) || !chat.connection?.everOpened;
  $("sign-out").hidden = state.name === "closed";
  if (state.name === "connected") showChat();
  if (state.name === "refused" && (state.expired || !chat.connection?.everOpened)) {
    // A sign-in to correct, or a token to renew: back to the form. The outbox stays, and is
    // sent once the same user signs in again.
    sessionStorage.removeItem("chat.session");
    clearInterval(chat.adopter);
    $("chat-view").hidden = true;
    $("sign-in-view").hidden = false;
    signInError(`Refused: ${state.reason}`);
  }
}

/** Forgets every request in flight: a new socket answers none of them. */
export function dropPending() {
  for (const request of chat.pending.values()) clearTimeout(request.timer);
  chat.pending.clear();
  for (const waiting of chat.inFlight.values()) clearTimeout(waiting.timer);
  chat.inFlight.clear();
  chat.attempts.clear();
  for (const conversation of chat.conversations.values()) {
    conversation.loading.clear();
    conversation.readRequested = 0;
  }
}

/**
 * Each time a socket opens: the server has resumed this user's rooms on it, so the page asks
 * `sync` what changed, fetches what it missed in the conversations it holds, and sends its outbox.
 */
export function resume() {
  dropPending();
  startSync();
  const active = chat.conversations.get(chat.active);
  if (active && !active.loaded) loadNewest(active);
  adopt();
  flushAll();
}

export async function adopt() {
  if ((await chat.outbox?.adopt()) === true) {
    flushAll();
    scheduleRender();
  }
}

