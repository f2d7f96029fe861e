//! One behavioural suite for every store (connections, rooms, messages, users): the in-memory store,
//! and the DynamoDB store against a real DynamoDB API server (dynalite) with the tables
//! `template.yaml` declares.

use chat_core::limits::{MAX_ROOMS_PER_USER, PREVIEW_CHARS};
use chat_core::protocol::{ConversationRef, RoomId, UserId};
use chat_core::store::{
    Appended, ConnectionStore, Conversation, Cursor, MemoryStore, MessageStore, ReadMark, RoomJoin, StoredMessage,
    Subscribed, SubscriptionStore, SyncPage, UserStore,
};
use chat_testing::events;
use chat_testing::members_of as all_members;

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

async fn sorted_connections_of(store: &dyn ConnectionStore, user_id: &str) -> Vec<String> {
    let mut ids = store.connections_of(&user(user_id), events::now_ms()).await.unwrap();
    ids.sort();
    ids
}

async fn a_saved_connection_can_be_found_with_every_field(store: &dyn ConnectionStore) {
    let connection = events::connection("L0SM9cOFvHcCIhw=", "alice@example.com");

    store.save(&connection).await.unwrap();

    assert_eq!(store.find("L0SM9cOFvHcCIhw=").await.unwrap(), Some(connection));
}

async fn an_unknown_connection_is_not_found(store: &dyn ConnectionStore) {
    assert_eq!(store.find("nobody+/=").await.unwrap(), None);
    assert!(store.connections_of(&user("nobody"), events::now_ms()).await.unwrap().is_empty());
}

async fn a_users_connections_are_all_of_theirs_and_only_theirs(store: &dyn ConnectionStore) {
    for (id, owner) in [("a1", "alice"), ("a2", "alice"), ("b1", "bob"), ("a3", "alice")] {
        store.save(&events::connection(id, owner)).await.unwrap();
    }

    assert_eq!(sorted_connections_of(store, "alice").await, vec!["a1", "a2", "a3"]);
    assert_eq!(sorted_connections_of(store, "bob").await, vec!["b1"]);
}

async fn a_removed_connection_is_gone_from_both_lookups(store: &dyn ConnectionStore) {
    store.save(&events::connection("a1", "alice")).await.unwrap();
    store.save(&events::connection("a2", "alice")).await.unwrap();

    store.remove("a1").await.unwrap();

    assert_eq!(store.find("a1").await.unwrap(), None);
    assert_eq!(sorted_connections_of(store, "alice").await, vec!["a2"]);
}

async fn removing_an_unknown_connection_succeeds(store: &dyn ConnectionStore) {
    store.remove("never-seen").await.unwrap();
}

async fn saving_a_connection_again_moves_it_to_its_new_user(store: &dyn ConnectionStore) {
    store.save(&events::connection("c1", "alice")).await.unwrap();

    store.save(&events::connection("c1", "bob")).await.unwrap();

    assert!(sorted_connections_of(store, "alice").await.is_empty());
    assert_eq!(sorted_connections_of(store, "bob").await, vec!["c1"]);
}

async fn many_connections_of_one_user_come_back_from_one_lookup(store: &dyn ConnectionStore) {
    // 120 is 18 pages of PAGE_SIZE on DynamoDB.
    let ids: Vec<String> = (0..120).map(|n| format!("conn-{n:03}")).collect();
    for id in &ids {
        store.save(&events::connection(id, "busy")).await.unwrap();
    }

    assert_eq!(sorted_connections_of(store, "busy").await, ids);
}

async fn a_connection_whose_record_expired_is_not_among_its_users_connections(store: &dyn ConnectionStore) {
    let open = events::connection("open", "alice");
    let mut stale = events::connection("stale", "alice");
    // Opened a day before, so its record expired hours ago: its `$disconnect` never came, and
    // TTL deletes lazily.
    stale.connected_at -= DAY_MS;
    stale.expires_at -= DAY_MS / 1000;
    let mut ending = events::connection("ending", "alice");
    ending.expires_at = events::now_ms() / 1000;
    for connection in [&open, &stale, &ending] {
        store.save(connection).await.unwrap();
    }

    let ids = store.connections_of(&user("alice"), events::now_ms()).await.unwrap();
    let before = store.connections_of(&user("alice"), stale.expires_at * 1000 - 1).await.unwrap();

    assert_eq!(ids, ["open"], "expired at or before now: left out");
    assert_eq!(before.len(), 3, "each was listed while it lasted");
}

async fn forgetting_a_users_entry_that_is_not_there_succeeds(store: &dyn ConnectionStore) {
    store.save(&events::connection("a1", "alice")).await.unwrap();

    store.forget_entry(&user("alice"), "never-seen").await.unwrap();
    store.forget_entry(&user("nobody"), "a1").await.unwrap();

    assert_eq!(sorted_connections_of(store, "alice").await, ["a1"]);
}

async fn a_gone_connection_is_removed_only_if_it_was_opened_by_the_cutoff(store: &dyn ConnectionStore) {
    let connection = events::connection("c1", "alice");
    store.save(&connection).await.unwrap();

    let too_young = store.remove_if_opened_by("c1", connection.connected_at - 1).await.unwrap();
    let still_there = store.find("c1").await.unwrap();
    let old_enough = store.remove_if_opened_by("c1", connection.connected_at).await.unwrap();
    let unknown = store.remove_if_opened_by("never-seen", connection.connected_at).await.unwrap();

    assert!(!too_young);
    assert_eq!(still_there, Some(connection));
    assert!(old_enough);
    assert_eq!(store.find("c1").await.unwrap(), None);
    assert!(sorted_connections_of(store, "alice").await.is_empty());
    assert!(!unknown);
}

const PAGE_SIZE: i32 = 7;

fn room(id: &str) -> RoomId {
    RoomId::parse(id).unwrap()
}

async fn a_joined_connection_is_a_member_and_its_record_lists_the_room<S: ConnectionStore + SubscriptionStore>(
    store: &S,
) {
    store.save(&events::connection("a1", "alice")).await.unwrap();
    store.save(&events::connection("b1", "bob")).await.unwrap();

    assert_eq!(store.subscribe("a1", &room("lobby")).await.unwrap(), Subscribed::Member);
    assert_eq!(store.subscribe("a1", &room("lobby")).await.unwrap(), Subscribed::Member, "joining twice is fine");
    assert_eq!(store.subscribe("b1", &room("lobby")).await.unwrap(), Subscribed::Member);
    assert_eq!(store.subscribe("b1", &room("kitchen")).await.unwrap(), Subscribed::Member);

    assert_eq!(all_members(store, "lobby").await, vec!["a1", "b1"]);
    assert_eq!(all_members(store, "kitchen").await, vec!["b1"]);
    assert!(all_members(store, "nowhere").await.is_empty());
    let rooms = store.find("b1").await.unwrap().unwrap().rooms;
    assert_eq!(rooms.into_iter().collect::<Vec<_>>(), vec![room("kitchen"), room("lobby")]);
}

async fn a_connection_without_a_record_cannot_join<S: ConnectionStore + SubscriptionStore>(store: &S) {
    assert_eq!(store.subscribe("ghost", &room("lobby")).await.unwrap(), Subscribed::UnknownConnection);
    assert!(all_members(store, "lobby").await.is_empty());
}

async fn leaving_ends_one_membership_and_leaving_again_succeeds<S: ConnectionStore + SubscriptionStore>(store: &S) {
    store.save(&events::connection("a1", "alice")).await.unwrap();
    store.subscribe("a1", &room("lobby")).await.unwrap();
    store.subscribe("a1", &room("kitchen")).await.unwrap();

    store.unsubscribe("a1", &room("lobby")).await.unwrap();
    store.unsubscribe("a1", &room("lobby")).await.unwrap();
    store.unsubscribe("never-seen", &room("lobby")).await.unwrap();

    assert!(all_members(store, "lobby").await.is_empty());
    assert_eq!(all_members(store, "kitchen").await, vec!["a1"]);
    assert_eq!(store.find("a1").await.unwrap().unwrap().rooms.len(), 1);
}

async fn a_users_rooms_past_the_limit_are_refused_and_a_room_already_joined_is_not(store: &impl UserStore) {
    let alice = user("alice");
    for n in 0..MAX_ROOMS_PER_USER {
        assert_eq!(
            store.add_room(&alice, &room(&format!("room-{n}"))).await.unwrap(),
            RoomJoin::Member { first: true }
        );
    }

    assert_eq!(store.add_room(&alice, &room("one-too-many")).await.unwrap(), RoomJoin::TooManyRooms);
    assert_eq!(store.add_room(&alice, &room("room-0")).await.unwrap(), RoomJoin::Member { first: false });
    assert!(!store.in_room(&alice, &room("one-too-many")).await.unwrap());
    assert_eq!(store.rooms_of(&alice).await.unwrap().len(), MAX_ROOMS_PER_USER);
    assert!(store.rooms_of(&user("bob")).await.unwrap().is_empty());
}

async fn a_room_left_is_no_longer_the_users_and_leaving_again_succeeds(store: &impl UserStore) {
    let alice = user("alice");
    store.add_room(&alice, &room("lobby")).await.unwrap();
    store.add_room(&alice, &room("kitchen")).await.unwrap();

    store.remove_room(&alice, &room("lobby")).await.unwrap();
    store.remove_room(&alice, &room("lobby")).await.unwrap();

    assert!(!store.in_room(&alice, &room("lobby")).await.unwrap());
    assert!(store.in_room(&alice, &room("kitchen")).await.unwrap());
    assert_eq!(store.rooms_of(&alice).await.unwrap(), vec![room("kitchen")]);
}

fn stored(seq: u64, sender: &str, body: &str, sent_at: i64) -> StoredMessage {
    StoredMessage { seq, sender_id: user(sender), body: body.into(), sent_at }
}

/// Each conversation of a page, as `(name, seq, readSeq, peerReadSeq)`.
fn listed(page: &SyncPage) -> Vec<(String, u64, u64, u64)> {
    page.conversations
        .iter()
        .map(|entry| {
            let name = match &entry.conversation {
                ConversationRef::User(other) => format!("user:{other}"),
                ConversationRef::Room(room) => format!("room:{room}"),
            };
            (name, entry.last_seq, entry.read_seq, entry.peer_read_seq)
        })
        .collect()
}

async fn a_direct_message_lists_the_conversation_on_both_sides_read_by_its_sender<S: UserStore + MessageStore>(
    store: &S,
) {
    let (alice, bob) = (user("alice"), user("bob"));
    for (sender, recipient, body) in
        [(&alice, &bob, "hi bob"), (&bob, &alice, "hi alice"), (&alice, &bob, "how are you?")]
    {
        let Appended::Stored(message) =
            store.append(&Conversation::direct(sender, recipient), sender, body, SENT, None).await.unwrap()
        else {
            panic!("stored")
        };
        store.record_direct(recipient, &message).await.unwrap();
    }

    let alices = store.sync(&alice, None, 10, SENT).await.unwrap();
    let bobs = store.sync(&bob, None, 10, SENT).await.unwrap();

    assert_eq!(listed(&alices), [("user:bob".to_owned(), 3, 3, 0)]);
    assert_eq!(listed(&bobs), [("user:alice".to_owned(), 3, 2, 0)]);
    let last = bobs.conversations[0].last.clone().unwrap();
    assert_eq!((last.seq, last.sender_id, last.body), (3, alice.clone(), "how are you?".to_owned()));
    assert_eq!(bobs.next, None);
}

async fn an_older_message_recorded_late_does_not_roll_an_entry_back(store: &impl UserStore) {
    let (alice, bob) = (user("alice"), user("bob"));
    store.record_direct(&bob, &stored(2, "alice", "second", SENT + 2)).await.unwrap();
    store.record_direct(&bob, &stored(1, "alice", "first", SENT + 1)).await.unwrap();

    let page = store.sync(&bob, None, 10, SENT).await.unwrap();

    assert_eq!(listed(&page), [("user:alice".to_owned(), 2, 0, 0)]);
    assert_eq!(page.conversations[0].last.as_ref().unwrap().body, "second");
    assert_eq!(listed(&store.sync(&alice, None, 10, SENT).await.unwrap()), [("user:bob".to_owned(), 2, 2, 0)]);
}

async fn a_preview_is_cut_to_its_first_hundred_characters(store: &impl UserStore) {
    let long = "é".repeat(150);
    store.record_direct(&user("bob"), &stored(1, "alice", &long, SENT)).await.unwrap();

    let page = store.sync(&user("bob"), None, 10, SENT).await.unwrap();

    assert_eq!(page.conversations[0].last.as_ref().unwrap().body, "é".repeat(PREVIEW_CHARS));
}

async fn read_state_is_raised_never_lowered_and_a_room_needs_a_membership<S: UserStore>(store: &S) {
    let (alice, bob) = (user("alice"), user("bob"));
    store.record_direct(&bob, &stored(5, "alice", "five", SENT)).await.unwrap();
    let with_alice = ConversationRef::User(alice.clone());

    let mark = |read_seq, raised| ReadMark { read_seq, raised };
    assert_eq!(store.mark_read(&bob, &with_alice, 3).await.unwrap(), mark(3, true));
    assert_eq!(store.mark_read(&bob, &with_alice, 2).await.unwrap(), mark(3, false), "never lowered");
    assert_eq!(store.mark_read(&bob, &with_alice, 3).await.unwrap(), mark(3, false), "read already");
    assert_eq!(store.mark_read(&bob, &with_alice, 5).await.unwrap(), mark(5, true));
    assert!(store.mark_peer_read(&alice, &bob, 5).await.unwrap());
    assert!(!store.mark_peer_read(&alice, &bob, 4).await.unwrap(), "never lowered");
    assert!(!store.mark_peer_read(&alice, &bob, 5).await.unwrap(), "known already");

    let lobby = ConversationRef::Room(room("lobby"));
    assert_eq!(store.mark_read(&bob, &lobby, 7).await.unwrap(), mark(0, false), "not a member");
    store.add_room(&bob, &room("lobby")).await.unwrap();
    assert_eq!(store.mark_read(&bob, &lobby, 7).await.unwrap(), mark(7, true));

    let alices = store.sync(&alice, None, 10, SENT).await.unwrap();
    assert_eq!(listed(&alices), [("user:bob".to_owned(), 5, 5, 5)]);
}

async fn a_message_read_in_another_tab_before_its_entry_was_written_still_updates_the_entry(store: &impl UserStore) {
    let (alice, bob) = (user("alice"), user("bob"));
    store.record_direct(&bob, &stored(4, "alice", "four", SENT + 4)).await.unwrap();

    // Alice's other tab marks seq 5 read as it arrives, before the send records it.
    assert_eq!(store.mark_read(&alice, &ConversationRef::User(bob.clone()), 5).await.unwrap().read_seq, 5);
    store.record_direct(&bob, &stored(5, "alice", "five", SENT + 5)).await.unwrap();

    let alices = store.sync(&alice, None, 10, SENT).await.unwrap();
    assert_eq!(listed(&alices), [("user:bob".to_owned(), 5, 5, 0)]);
    assert_eq!(alices.conversations[0].last.as_ref().unwrap().body, "five", "the entry moved on");
}

async fn a_read_or_a_receipt_before_the_first_messages_entry_is_kept(store: &impl UserStore) {
    let (alice, bob) = (user("alice"), user("bob"));

    assert_eq!(store.mark_read(&bob, &ConversationRef::User(alice.clone()), 1).await.unwrap().read_seq, 1);
    store.mark_peer_read(&alice, &bob, 1).await.unwrap();
    store.record_direct(&bob, &stored(1, "alice", "first", SENT)).await.unwrap();

    assert_eq!(listed(&store.sync(&bob, None, 10, SENT).await.unwrap()), [("user:alice".to_owned(), 1, 1, 0)]);
    assert_eq!(listed(&store.sync(&alice, None, 10, SENT).await.unwrap()), [("user:bob".to_owned(), 1, 1, 1)]);
}

async fn saving_a_connection_again_drops_the_memberships_its_old_record_listed<
    S: ConnectionStore + SubscriptionStore,
>(
    store: &S,
) {
    store.save(&events::connection("c1", "alice")).await.unwrap();
    store.subscribe("c1", &room("lobby")).await.unwrap();

    store.save(&events::connection("c1", "alice")).await.unwrap();

    assert!(all_members(store, "lobby").await.is_empty(), "no membership that no record lists");
}

async fn sync_lists_rooms_and_direct_conversations_most_recently_active_first_page_by_page<
    S: UserStore + MessageStore,
>(
    store: &S,
) {
    let carol = user("carol");
    // Rooms and direct conversations, active at interleaved times; one room never spoken in.
    for (n, name) in ["r0", "r1", "r2", "quiet"].iter().enumerate() {
        store.add_room(&carol, &room(name)).await.unwrap();
        if *name != "quiet" {
            let sent_at = SENT + 10 * n as i64;
            store.add_room(&user("dave"), &room(name)).await.unwrap();
            let lobby = Conversation::Room(room(name));
            if let Appended::Stored(message) =
                store.append(&lobby, &user("dave"), "in a room", sent_at, None).await.unwrap()
            {
                store.record_latest(&lobby, &message).await;
            }
        }
    }
    for n in 0..4 {
        store.record_direct(&carol, &stored(1, &format!("friend-{n}"), "hello", SENT + 10 * n + 5)).await.unwrap();
    }
    let expected = [
        "user:friend-3",
        "user:friend-2",
        "room:r2",
        "user:friend-1",
        "room:r1",
        "user:friend-0",
        "room:r0",
        "room:quiet",
    ];

    let mut names = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = store.sync(&carol, cursor.as_ref(), 3, SENT).await.unwrap();
        assert!(page.conversations.len() <= 3);
        names.extend(listed(&page).into_iter().map(|(name, ..)| name));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }

    assert_eq!(names, expected);
}

async fn a_sync_cursor_keeps_its_meaning_while_a_conversation_moves_to_the_top(store: &impl UserStore) {
    let carol = user("carol");
    for n in 0..4 {
        store.record_direct(&carol, &stored(1, &format!("friend-{n}"), "hello", SENT + n)).await.unwrap();
    }
    let first = store.sync(&carol, None, 2, SENT).await.unwrap();
    // friend-0, not yet listed, becomes the most recent while the client pages.
    store.record_direct(&carol, &stored(2, "friend-0", "again", SENT + 100)).await.unwrap();

    let second = store.sync(&carol, first.next.as_ref(), 2, SENT).await.unwrap();

    let names = |page: &SyncPage| listed(page).into_iter().map(|(name, ..)| name).collect::<Vec<_>>();
    assert_eq!(names(&first), ["user:friend-3", "user:friend-2"]);
    assert_eq!(names(&second), ["user:friend-1"], "friend-0 moved above the cursor: it was delivered live");
    assert_eq!(second.next, None);
}

async fn a_direct_conversation_whose_messages_expired_is_left_out(store: &impl UserStore) {
    store.record_direct(&user("bob"), &stored(1, "alice", "old", SENT)).await.unwrap();
    let later = SENT + chat_core::limits::MESSAGE_RETENTION.as_millis() as i64 + 1_000;

    assert_eq!(store.sync(&user("bob"), None, 10, SENT).await.unwrap().conversations.len(), 1);
    assert!(store.sync(&user("bob"), None, 10, later).await.unwrap().conversations.is_empty());
}

async fn removing_a_connection_removes_its_memberships_however_it_is_removed<S: ConnectionStore + SubscriptionStore>(
    store: &S,
) {
    let mut old = events::connection("old", "alice");
    old.connected_at -= 60_000;
    store.save(&old).await.unwrap();
    store.save(&events::connection("b1", "bob")).await.unwrap();
    for id in ["old", "b1"] {
        for name in ["lobby", "kitchen"] {
            store.subscribe(id, &room(name)).await.unwrap();
        }
    }

    store.remove("b1").await.unwrap();
    assert!(store.remove_if_opened_by("old", old.connected_at).await.unwrap());

    assert!(all_members(store, "lobby").await.is_empty(), "$disconnect and a 410 leave no membership behind");
    assert!(all_members(store, "kitchen").await.is_empty());
}

async fn a_large_room_is_read_page_by_page_with_every_member_once<S: ConnectionStore + SubscriptionStore>(store: &S) {
    let ids: Vec<String> = (0..40).map(|n| format!("m{n:02}")).collect();
    for id in &ids {
        store.save(&events::connection(id, "crowd")).await.unwrap();
        store.subscribe(id, &room("hall")).await.unwrap();
    }
    assert_eq!(all_members(store, "hall").await, ids);
}

/// When the test conversations' messages are sent: 2026-11-21T10:00:00Z, epoch ms.
const SENT: i64 = 1_795_255_200_000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The latest seq a conversation's head records, on DynamoDB (none before it is raised).
async fn head_of(tables: &chat_testing::dynalite::Tables, conversation: &Conversation) -> Option<u64> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let key = match conversation {
        Conversation::Direct(..) => format!("h#{}", sha256_hex(&conversation.key())),
        Conversation::Room(_) => conversation.key(),
    };
    let output = tables
        .client()
        .get_item()
        .table_name(tables.messages())
        .key("conversation", AttributeValue::S(key))
        .key("seq", AttributeValue::N("0".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    output.item.and_then(|item| item.get("lastSeq")?.as_n().ok()?.parse().ok())
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Stores a message with no `clientRequestId`: always a new one, recorded as its conversation's
/// latest, as `sendMessage` does. A send that found every seq taken for its whole time limit
/// stored nothing (`Contended`, which the client sees as `unavailable`), so it is sent again, as
/// a client would.
async fn append(
    store: &impl chat_core::store::Store,
    conversation: &Conversation,
    sender: &UserId,
    body: &str,
    at: i64,
) -> StoredMessage {
    // A room's messages come from its members.
    if let Conversation::Room(room) = conversation {
        store.add_room(sender, room).await.unwrap();
    }
    loop {
        match store.append(conversation, sender, body, at, None).await {
            Ok(Appended::Stored(message)) => {
                store.record_latest(conversation, &message).await;
                return message;
            }
            Err(chat_core::error::StoreError::Contended { .. }) => continue,
            other => panic!("a send without a clientRequestId is always stored, got {other:?}"),
        }
    }
}

fn direct(a: &str, b: &str) -> Conversation {
    Conversation::direct(&user(a), &user(b))
}

async fn seqs_of(store: &impl MessageStore, conversation: &Conversation, cursor: Cursor, limit: usize) -> Vec<u64> {
    let page = store.history(conversation, cursor, limit, SENT).await.unwrap();
    page.messages.iter().map(|message| message.seq).collect()
}

async fn messages_are_numbered_from_one_in_each_conversation_whichever_side_names_it(
    store: &impl chat_core::store::Store,
) {
    let mut seqs = Vec::new();
    for (from, to) in [("alice", "bob"), ("bob", "alice"), ("alice", "carol"), ("alice", "bob")] {
        seqs.push(append(store, &direct(from, to), &user(from), "hi", SENT).await.seq);
    }
    seqs.push(append(store, &Conversation::Room(room("lobby")), &user("alice"), "all", SENT).await.seq);

    assert_eq!(seqs, [1, 2, 1, 3, 1]);
    let page = store.history(&direct("bob", "alice"), Cursor::Newest, 10, SENT).await.unwrap();
    let senders: Vec<&str> = page.messages.iter().map(|message| message.sender_id.as_str()).collect();
    assert_eq!(senders, ["alice", "bob", "alice"]);
    assert_eq!((page.messages[0].body.as_str(), page.messages[0].sent_at), ("hi", SENT));
    assert_eq!((page.has_more, page.oldest_seq), (false, 1));
}

async fn concurrent_senders_get_every_seq_once_with_no_gap(store: &impl chat_core::store::Store) {
    let lobby = Conversation::Room(room("lobby"));
    let senders = (0..20).map(|n| {
        let lobby = &lobby;
        async move {
            let mut seqs = Vec::new();
            for m in 0..10 {
                let body = format!("{n}-{m}");
                seqs.push(append(store, lobby, &user(&format!("u{n}")), &body, SENT).await.seq);
            }
            seqs
        }
    });

    let mut seqs: Vec<u64> = futures::future::join_all(senders).await.into_iter().flatten().collect();

    seqs.sort();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    let mut stored = Vec::new();
    let mut cursor = Cursor::After(0);
    loop {
        let page = store.history(&lobby, cursor, 100, SENT).await.unwrap();
        stored.extend(page.messages.iter().map(|message| message.seq));
        match (page.has_more, page.messages.last()) {
            (true, Some(last)) => cursor = Cursor::After(last.seq),
            _ => break,
        }
    }
    assert_eq!(stored, (1..=200).collect::<Vec<u64>>(), "history holds each once, in order");
}

async fn history_pages_backwards_and_forwards_from_a_cursor(store: &impl chat_core::store::Store) {
    let chat = direct("alice", "bob");
    for n in 1..=7 {
        append(store, &chat, &user("alice"), &format!("m{n}"), SENT + n).await;
    }

    assert_eq!(seqs_of(store, &chat, Cursor::Newest, 3).await, [5, 6, 7]);
    assert_eq!(seqs_of(store, &chat, Cursor::Before(5), 3).await, [2, 3, 4]);
    assert_eq!(seqs_of(store, &chat, Cursor::Before(2), 3).await, [1]);
    assert!(seqs_of(store, &chat, Cursor::Before(1), 3).await.is_empty());
    assert_eq!(seqs_of(store, &chat, Cursor::After(2), 3).await, [3, 4, 5]);
    assert!(seqs_of(store, &chat, Cursor::After(7), 3).await.is_empty());
    let newest = store.history(&chat, Cursor::Newest, 3, SENT).await.unwrap();
    let oldest = store.history(&chat, Cursor::Before(2), 3, SENT).await.unwrap();
    let forward = store.history(&chat, Cursor::After(4), 3, SENT).await.unwrap();
    assert_eq!((newest.has_more, oldest.has_more, forward.has_more), (true, false, false));
    assert_eq!(newest.messages[2].body, "m7");
}

async fn cursors_past_two_to_the_sixty_third_page_as_far_as_they_say(store: &impl chat_core::store::Store) {
    let chat = direct("alice", "bob");
    for n in 1..=3 {
        append(store, &chat, &user("alice"), &format!("m{n}"), SENT + n).await;
    }
    let edges = [i64::MAX as u64, 1 << 63, u64::MAX - 1, u64::MAX];

    for edge in edges {
        assert!(seqs_of(store, &chat, Cursor::After(edge), 10).await.is_empty(), "after {edge}");
        assert_eq!(seqs_of(store, &chat, Cursor::Before(edge), 10).await, [1, 2, 3], "before {edge}");
        let page = store.history(&chat, Cursor::After(edge), 10, SENT).await.unwrap();
        assert_eq!((page.has_more, page.oldest_seq), (false, 1), "after {edge}");
    }
}

async fn expired_messages_are_never_returned_and_numbering_never_restarts(store: &impl chat_core::store::Store) {
    let chat = direct("alice", "bob");
    for n in 0..3 {
        append(store, &chat, &user("alice"), "old", SENT + n).await;
    }
    // 31 days on, with the default 30 days' retention, all three have expired (TTL may not have
    // deleted them yet).
    let later = SENT + 31 * DAY_MS;

    let gone = store.history(&chat, Cursor::Newest, 10, later).await.unwrap();
    let next = append(store, &chat, &user("bob"), "new", later).await;
    let after = store.history(&chat, Cursor::Newest, 10, later).await.unwrap();

    assert!(gone.messages.is_empty());
    assert_eq!(gone.oldest_seq, 4, "nothing retained: the next seq, so 1 to 3 read as expired");
    assert_eq!(next.seq, 4, "numbering goes on");
    assert_eq!(after.messages.iter().map(|message| message.seq).collect::<Vec<_>>(), [4]);
    assert_eq!(after.oldest_seq, 4);
}

async fn a_page_of_large_messages_holds_what_fits_in_one_frame_from_either_end(store: &impl chat_core::store::Store) {
    let chat = direct("alice", "bob");
    let large = "x".repeat(60 * 1024);
    for n in 0..5 {
        append(store, &chat, &user("alice"), &large, SENT + n).await;
    }

    let newest = store.history(&chat, Cursor::Newest, 50, SENT).await.unwrap();
    let before = store.history(&chat, Cursor::Before(4), 50, SENT).await.unwrap();
    let after = store.history(&chat, Cursor::After(0), 50, SENT).await.unwrap();
    let last = store.history(&chat, Cursor::After(3), 50, SENT).await.unwrap();

    let seqs = |page: &chat_core::store::HistoryPage| page.messages.iter().map(|m| m.seq).collect::<Vec<_>>();
    // Two of 60 KB fit in a page; a third would not.
    assert_eq!((seqs(&newest), newest.has_more), (vec![4, 5], true));
    assert_eq!((seqs(&before), before.has_more), (vec![2, 3], true));
    assert_eq!((seqs(&after), after.has_more), (vec![1, 2], true));
    assert_eq!((seqs(&last), last.has_more), (vec![4, 5], false));
}

async fn a_page_after_an_expired_message_starts_at_the_oldest_retained_one(store: &impl chat_core::store::Store) {
    let chat = direct("alice", "bob");
    for n in 0..3 {
        append(store, &chat, &user("alice"), "old", SENT + n).await;
    }
    let later = SENT + 31 * DAY_MS;
    for n in 0..3 {
        append(store, &chat, &user("bob"), "new", later + n).await;
    }

    let page = store.history(&chat, Cursor::After(1), 2, later).await.unwrap();

    assert_eq!(page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [4, 5]);
    assert_eq!((page.has_more, page.oldest_seq), (true, 4), "the sixth follows");
}

async fn an_empty_conversation_has_no_history_and_starts_at_one(store: &impl chat_core::store::Store) {
    let page = store.history(&direct("x", "y"), Cursor::Newest, 10, SENT).await.unwrap();

    assert!(page.messages.is_empty());
    assert_eq!((page.has_more, page.oldest_seq), (false, 1));
}

chat_testing::on_both_stores!(page_size = PAGE_SIZE;

    cursors_past_two_to_the_sixty_third_page_as_far_as_they_say,
    a_connection_whose_record_expired_is_not_among_its_users_connections,
    forgetting_a_users_entry_that_is_not_there_succeeds,
    messages_are_numbered_from_one_in_each_conversation_whichever_side_names_it,
    concurrent_senders_get_every_seq_once_with_no_gap,
    history_pages_backwards_and_forwards_from_a_cursor,
    expired_messages_are_never_returned_and_numbering_never_restarts,
    an_empty_conversation_has_no_history_and_starts_at_one,
    a_page_of_large_messages_holds_what_fits_in_one_frame_from_either_end,
    a_page_after_an_expired_message_starts_at_the_oldest_retained_one,
    a_gone_connection_is_removed_only_if_it_was_opened_by_the_cutoff,
    a_saved_connection_can_be_found_with_every_field,
    an_unknown_connection_is_not_found,
    a_users_connections_are_all_of_theirs_and_only_theirs,
    a_removed_connection_is_gone_from_both_lookups,
    removing_an_unknown_connection_succeeds,
    saving_a_connection_again_moves_it_to_its_new_user,
    many_connections_of_one_user_come_back_from_one_lookup,
    a_joined_connection_is_a_member_and_its_record_lists_the_room,
    a_connection_without_a_record_cannot_join,
    leaving_ends_one_membership_and_leaving_again_succeeds,
    a_users_rooms_past_the_limit_are_refused_and_a_room_already_joined_is_not,
    a_room_left_is_no_longer_the_users_and_leaving_again_succeeds,
    a_direct_message_lists_the_conversation_on_both_sides_read_by_its_sender,
    an_older_message_recorded_late_does_not_roll_an_entry_back,
    a_preview_is_cut_to_its_first_hundred_characters,
    read_state_is_raised_never_lowered_and_a_room_needs_a_membership,
    sync_lists_rooms_and_direct_conversations_most_recently_active_first_page_by_page,
    a_sync_cursor_keeps_its_meaning_while_a_conversation_moves_to_the_top,
    a_direct_conversation_whose_messages_expired_is_left_out,
    a_message_read_in_another_tab_before_its_entry_was_written_still_updates_the_entry,
    a_read_or_a_receipt_before_the_first_messages_entry_is_kept,
    saving_a_connection_again_drops_the_memberships_its_old_record_listed,
    removing_a_connection_removes_its_memberships_however_it_is_removed,
    a_large_room_is_read_page_by_page_with_every_member_once,
);

#[tokio::test]
async fn the_dynamodb_store_writes_the_attributes_the_template_declares() {
    let tables = chat_testing::dynalite::tables().await;
    let store = tables.store.clone();

    store.save(&events::connection("c1", "alice")).await.unwrap();

    let item = tables
        .client()
        .get_item()
        .table_name(&tables.name)
        .key("connectionId", aws_sdk_dynamodb::types::AttributeValue::S("c1".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let mut names: Vec<_> = item.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["connectedAt", "connectionId", "expiresAt", "userId"]);
}

#[tokio::test]
async fn the_memory_store_keeps_at_most_its_capacity_dropping_the_oldest_as_if_expired() {
    let store = MemoryStore::new().with_capacity(3);
    let lobby = Conversation::Room(room("lobby"));
    for n in 0..5 {
        append(&store, &lobby, &user("alice"), &format!("m{n}"), SENT).await;
    }

    let page = store.history(&lobby, Cursor::Newest, 10, SENT).await.unwrap();

    assert_eq!(page.messages.iter().map(|message| message.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(page.oldest_seq, 3, "the dropped ones read as expired, not missing");
    assert_eq!(store.latest_seq(&lobby).await.unwrap(), 5, "numbering goes on");
}

#[tokio::test]
async fn the_memory_store_lets_go_of_expired_messages_text_as_ttl_would() {
    let store = MemoryStore::new();
    let chat = direct("alice", "bob");
    for n in 0..3 {
        let message = append(&store, &chat, &user("alice"), "old", SENT + n).await;
        store.record_direct(&user("bob"), &message).await.unwrap();
    }
    store.mark_read(&user("bob"), &ConversationRef::User(user("alice")), 2).await.unwrap();
    assert_eq!(store.messages_held(), 3);

    // 31 days on, with the default 30 days' retention, the next message stored anywhere finds
    // them expired.
    let later = SENT + 31 * DAY_MS;
    append(&store, &direct("carol", "dave"), &user("carol"), "unrelated", later).await;

    assert_eq!(store.messages_held(), 1, "only carol's message is held");
    let page = store.history(&chat, Cursor::Newest, 10, later).await.unwrap();
    assert_eq!((page.messages.len(), page.oldest_seq), (0, 4));
    // Read state and numbering stay, as on DynamoDB.
    let next = append(&store, &chat, &user("alice"), "new", later).await;
    store.record_direct(&user("bob"), &next).await.unwrap();
    assert_eq!(next.seq, 4);
    let bob = store.sync(&user("bob"), None, 10, later).await.unwrap();
    let entry = bob.conversations.iter().find(|entry| entry.conversation == ConversationRef::User(user("alice")));
    assert_eq!(entry.map(|entry| (entry.read_seq, entry.last_seq)), Some((2, 4)));
}

/// Behaviours only the DynamoDB store has (its items, its calls, its tables), on dynalite.
mod on_dynamodb {
    use super::*;

    /// The users table's item for `user`'s entry `entry`, deleted as TTL deletes it.
    async fn delete_entry(tables: &chat_testing::dynalite::Tables, user: &str, entry: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        tables
            .client()
            .delete_item()
            .table_name(tables.users())
            .key("userId", AttributeValue::S(user.into()))
            .key("entry", AttributeValue::S(entry.into()))
            .send()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_missing_table_is_reported_with_the_operation_and_what_to_check() {
        let tables = chat_testing::dynalite::tables().await;
        let store = chat_core::DynamoDbStore::new(tables.client(), "no-such-table");

        let error = store.find("c1").await.unwrap_err();

        let chain = chat_core::error::Chain(&error).to_string();
        assert!(chain.contains("GetItem"), "{chain}");
        assert!(chain.contains("check that the table exists"), "{chain}");
        assert!(chain.contains("ResourceNotFoundException") || chain.contains("resource not found"), "{chain}");
    }

    #[tokio::test]
    async fn an_entry_that_ttl_deleted_with_its_expired_messages_comes_back_with_them_read() {
        let tables = chat_testing::dynalite::tables().await;
        let store = tables.store.clone();
        let (alice, bob) = (user("alice"), user("bob"));
        let conversation = Conversation::direct(&alice, &bob);
        for body in ["one", "two", "three"] {
            let message = append(&store, &conversation, &alice, body, SENT).await;
            store.record_direct(&bob, &message).await.unwrap();
        }
        store.mark_read(&bob, &ConversationRef::User(alice.clone()), 2).await.unwrap();

        // A month later those three have expired, and TTL took bob's entry with them.
        let later = SENT + chat_core::limits::MESSAGE_RETENTION.as_millis() as i64 + 1_000;
        delete_entry(&tables, "bob", "d#alice").await;
        let fourth = append(&store, &conversation, &alice, "four", later).await;
        store.record_direct(&bob, &fourth).await.unwrap();

        let page = store.sync(&bob, None, 10, later).await.unwrap();
        assert_eq!(listed(&page), [("user:alice".to_owned(), 4, 3, 0)], "one unread: the one that can be read");
    }

    #[tokio::test]
    async fn recording_a_repeats_first_message_raises_a_head_its_first_send_left_behind() {
        let tables = chat_testing::dynalite::tables().await;
        let store = tables.store.clone();
        let chat = direct("alice", "bob");
        let id = chat_core::store::Idempotency { client_request_id: "r1" };
        // The first send died after storing the message, before raising the head.
        store.append(&chat, &user("alice"), "hi", SENT, Some(id)).await.unwrap();
        assert_eq!(head_of(&tables, &chat).await, None);

        let repeat = store.append(&chat, &user("alice"), "hi", SENT + 20_000, Some(id)).await.unwrap();
        // What sendMessage does with a repeat's first message, as with a new one.
        let Appended::Repeat(first) = &repeat else { panic!("a repeat: {repeat:?}") };
        store.record_latest(&chat, first).await;

        assert_eq!(head_of(&tables, &chat).await, Some(1), "numbering survives the message's expiry");
    }

    #[tokio::test]
    async fn no_item_keeps_text_or_who_talked_to_whom_past_the_retention() {
        let tables = chat_testing::dynalite::tables().await;
        let store = tables.store.clone();
        let (alice, bob) = (user("alice"), user("bob"));
        let chat = direct("alice", "bob");
        let lobby = Conversation::Room(room("lobby"));
        let id = chat_core::store::Idempotency { client_request_id: "r1" };
        let first = append(&store, &chat, &alice, "between us", SENT).await;
        store.record_direct(&bob, &first).await.unwrap();
        let stored = store.append(&chat, &bob, "a reply", SENT + 1_000, Some(id)).await.unwrap();
        let Appended::Stored(second) = stored else { panic!("stored: {stored:?}") };
        store.record_latest(&chat, &second).await;
        store.record_direct(&alice, &second).await.unwrap();
        // bob reads carol's first message before its record: the read makes his entry.
        store.mark_read(&bob, &ConversationRef::User(user("carol")), 1).await.unwrap();
        append(&store, &lobby, &alice, "to the room", SENT + 2_000).await;

        // Every item holding a message's text, a preview or a pair of users expires (TTL
        // deletes it) within the retention of the last message (the read's entry: of the
        // functions' clock); what lives on holds none.
        let latest = (SENT + 2_000).max(events::now_ms());
        let until = latest / 1000 + chat_core::limits::MESSAGE_RETENTION.as_secs() as i64;
        for table in [tables.messages(), tables.users()] {
            let items = tables.client().scan().table_name(&table).send().await.unwrap().items.unwrap_or_default();
            assert!(!items.is_empty());
            for item in items {
                let text = |name: &str| item.get(name).and_then(|value| value.as_s().ok()).cloned().unwrap_or_default();
                let key = format!("{} {}", text("conversation"), text("entry"));
                let names_a_pair = key.contains("d#") || key.starts_with("k#");
                let holds_text =
                    ["body", "lastBody", "lastSenderId", "senderId"].iter().any(|name| item.contains_key(*name));
                if names_a_pair || holds_text {
                    let expires = item.get("expiresAt").and_then(|value| value.as_n().ok()?.parse::<i64>().ok());
                    assert!(expires.is_some_and(|at| at <= until), "{table}: {item:?} outlives the retention");
                }
            }
        }
    }

    #[tokio::test]
    async fn the_upgrade_moves_old_heads_text_out_and_numbering_goes_on() {
        use aws_sdk_dynamodb::types::AttributeValue;
        let tables = chat_testing::dynalite::tables().await;
        let store = tables.store.clone();
        let (chat, lobby) = (direct("alice", "bob"), Conversation::Room(room("lobby")));
        // Heads as the previous version wrote them, their messages long expired and deleted.
        for (key, seq) in [(chat.key(), "7"), (lobby.key(), "9")] {
            tables
                .client()
                .put_item()
                .table_name(tables.messages())
                .item("conversation", AttributeValue::S(key))
                .item("seq", AttributeValue::N("0".into()))
                .item("lastSeq", AttributeValue::N(seq.into()))
                .item("lastSenderId", AttributeValue::S("alice".into()))
                .item("lastBody", AttributeValue::S("an old secret".into()))
                .item("lastSentAt", AttributeValue::N(SENT.to_string()))
                .send()
                .await
                .unwrap();
        }
        assert_eq!(store.latest_seq(&chat).await.unwrap(), 7, "the new version reads the old heads");

        let done = store.strip_head_text().await.unwrap();
        let again = store.strip_head_text().await.unwrap();

        assert_eq!((done.moved, done.stripped), (1, 1));
        assert_eq!(again, chat_core::store::HeadsStripped::default(), "nothing left to do");
        let items = tables.client().scan().table_name(tables.messages()).send().await.unwrap().items.unwrap();
        assert!(items.iter().all(|item| !item.contains_key("lastBody") && !item.contains_key("lastSenderId")));
        assert!(items.iter().all(|item| !item["conversation"].as_s().unwrap().starts_with("d#")), "{items:?}");
        assert_eq!(head_of(&tables, &chat).await, Some(7));
        assert_eq!(append(&store, &chat, &user("bob"), "again", SENT).await.seq, 8, "numbering goes on");
        assert_eq!(append(&store, &lobby, &user("bob"), "again", SENT).await.seq, 10);
    }
}
