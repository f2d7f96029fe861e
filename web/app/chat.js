/**
 * The chat page: sign-in, the conversation list from `sync` with unread counts, conversations
 * read from history and kept by `seq` (no gap, no duplicate), an outbox that survives drops and
 * reloads, read receipts, the connection's state, and every refusal beside what it refuses.
 */

import { $, chat } from "./state.js";
import { fetchToken, prefill, showModeFields, signIn, signOut, submitSignIn } from "./session.js";
import { joinRoom, leaveRoom, load, openDirect, sendMessage } from "./requests.js";
import { conversation } from "./inbox.js";
import * as protocol from "./protocol.js";

// ---- wiring ----

prefill();
for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", showModeFields);
$("fetch-token").addEventListener("click", fetchToken);
$("sign-in").addEventListener("submit", submitSignIn);
$("sign-out").addEventListener("click", signOut);
$("reconnect").addEventListener("click", () => chat.connection?.connect());
$("new-direct").addEventListener("submit", openDirect);
$("join-room").addEventListener("submit", joinRoom);
$("leave-room").addEventListener("click", leaveRoom);
$("composer").addEventListener("submit", sendMessage);
$("messages").addEventListener("scroll", () => {
  const current = chat.conversations.get(chat.active);
  if (current && $("messages").scrollTop < 40) load(current, "older");
});

// A reload signs in again by itself and reopens the conversation it showed.
const session = JSON.parse(sessionStorage.getItem("chat.session") ?? "null");
if (session?.url && session.identity) {
  chat.active = sessionStorage.getItem("chat.active");
  signIn(session.url, session.identity, { resumed: true });
  if (chat.active) {
    const { kind, id } = protocol.parseKey(chat.active);
    conversation(kind, id);
  }
}

