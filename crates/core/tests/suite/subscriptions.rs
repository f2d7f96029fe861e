//! Rooms belong to users: every connection of a user who joined a room is subscribed to it,
//! including connections opened later, until they leave; tabs connecting, joining, leaving and
//! closing at the same moment never leave a connection missing a joined room or subscribed to a
//! left one. On both stores; the DynamoDB store against a real DynamoDB API server (dynalite).

use chat_core::protocol::{RoomId, UserId};
use chat_core::routes::Services;
use chat_core::store::{RoomJoin, Store, subscriptions};
use chat_testing::events;
use chat_testing::members_of as members;

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn room(id: &str) -> RoomId {
    RoomId::parse(id).unwrap()
}

/// What `$connect` does: record, then settle.
async fn connect(store: &dyn Store, connection_id: &str, owner: &str) {
    store.save(&events::connection(connection_id, owner)).await.unwrap();
    subscriptions::settle_connection(store, connection_id, &user(owner)).await.unwrap();
}

/// What `joinRoom` does: the user's fact, then settle.
async fn join(store: &dyn Store, owner: &str, name: &str) {
    assert!(matches!(store.add_room(&user(owner), &room(name)).await.unwrap(), RoomJoin::Member { .. }));
    subscriptions::settle_room(store, &user(owner), &room(name), events::now_ms()).await.unwrap();
}

/// What `leaveRoom` does.
async fn leave(store: &dyn Store, owner: &str, name: &str) {
    store.remove_room(&user(owner), &room(name)).await.unwrap();
    subscriptions::settle_room(store, &user(owner), &room(name), events::now_ms()).await.unwrap();
}

async fn joining_subscribes_every_connection_of_the_user_and_leaving_unsubscribes_them(store: &dyn Store) {
    connect(store, "a1", "alice").await;
    connect(store, "a2", "alice").await;
    connect(store, "b1", "bob").await;

    join(store, "alice", "lobby").await;
    assert_eq!(members(store, "lobby").await, ["a1", "a2"]);
    assert!(store.find("a2").await.unwrap().unwrap().rooms.contains(&room("lobby")));

    leave(store, "alice", "lobby").await;
    assert!(members(store, "lobby").await.is_empty());
    assert!(store.find("a2").await.unwrap().unwrap().rooms.is_empty());
}

async fn a_connection_opened_later_is_subscribed_to_the_users_rooms(store: &dyn Store) {
    connect(store, "a1", "alice").await;
    join(store, "alice", "lobby").await;
    join(store, "alice", "kitchen").await;

    connect(store, "a2", "alice").await;

    assert_eq!(members(store, "lobby").await, ["a1", "a2"]);
    assert_eq!(members(store, "kitchen").await, ["a1", "a2"]);
    assert_eq!(store.find("a2").await.unwrap().unwrap().rooms.len(), 2);
}

async fn a_closed_connection_leaves_its_rooms_but_its_user_stays_in_them(store: &dyn Store) {
    connect(store, "a1", "alice").await;
    join(store, "alice", "lobby").await;

    store.remove("a1").await.unwrap();
    connect(store, "a2", "alice").await;

    assert_eq!(members(store, "lobby").await, ["a2"]);
    assert!(store.in_room(&user("alice"), &room("lobby")).await.unwrap());
}

/// Rounds of each race: every round opens a new tab while another changes the rooms.
const RACES: usize = 15;

async fn a_tab_connecting_while_another_joins_is_subscribed(store: &dyn Store) {
    connect(store, "tab-0", "alice").await;
    for n in 1..=RACES {
        let name = format!("room-{n}");
        let tab = format!("tab-{n}");
        futures::join!(connect(store, &tab, "alice"), join(store, "alice", &name));
        let expected: Vec<String> =
            (0..=n).map(|n| format!("tab-{n}")).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        assert_eq!(members(store, &name).await, expected, "round {n}: every open tab is in the room just joined");
    }
}

async fn a_tab_connecting_while_another_leaves_is_not_subscribed(store: &dyn Store) {
    connect(store, "tab-0", "alice").await;
    for n in 1..=RACES {
        let name = format!("room-{n}");
        let tab = format!("tab-{n}");
        join(store, "alice", &name).await;
        futures::join!(connect(store, &tab, "alice"), leave(store, "alice", &name));
        assert!(members(store, &name).await.is_empty(), "round {n}: no tab is left in the room just left");
        let record = store.find(&tab).await.unwrap().unwrap();
        assert!(!record.rooms.contains(&room(&name)), "round {n}: the new tab's record does not list it");
    }
}

async fn a_tab_closing_while_another_joins_leaves_no_membership_behind(store: &dyn Store) {
    connect(store, "stay", "alice").await;
    for n in 1..=RACES {
        let (name, tab) = (format!("room-{n}"), format!("tab-{n}"));
        connect(store, &tab, "alice").await;
        let close = async { store.remove(&tab).await.unwrap() };
        futures::join!(close, join(store, "alice", &name));
        assert_eq!(members(store, &name).await, ["stay"], "round {n}: the closed tab is not a member");
    }
}

chat_testing::on_both_stores!(page_size = 3;
    joining_subscribes_every_connection_of_the_user_and_leaving_unsubscribes_them,
    a_connection_opened_later_is_subscribed_to_the_users_rooms,
    a_closed_connection_leaves_its_rooms_but_its_user_stays_in_them,
    a_tab_connecting_while_another_joins_is_subscribed,
    a_tab_connecting_while_another_leaves_is_not_subscribed,
    a_tab_closing_while_another_joins_leaves_no_membership_behind,
);

/// A store that holds one kind of call, once, until the test lets it go: to force the
/// interleavings that timing alone rarely produces.
struct Held<'a> {
    inner: &'a dyn Store,
    /// The call to hold: `join` of this connection, or `rooms_of`.
    hold: std::sync::Mutex<Option<&'static str>>,
    reached: tokio::sync::Notify,
    released: tokio::sync::Notify,
    /// A call that fails instead, after this many calls of it succeeded.
    fail: Option<&'static str>,
    fail_after: usize,
    calls: std::sync::atomic::AtomicUsize,
}

impl<'a> Held<'a> {
    fn new(inner: &'a dyn Store, hold: &'static str) -> Self {
        Self {
            inner,
            hold: std::sync::Mutex::new(Some(hold)),
            reached: tokio::sync::Notify::new(),
            released: tokio::sync::Notify::new(),
            fail: None,
            fail_after: 0,
            calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Whether `call` fails now.
    fn fails(&self, call: &str) -> bool {
        self.fail == Some(call) && self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= self.fail_after
    }

    /// A store whose `call` fails, as DynamoDB does when unreachable.
    fn failing(inner: &'a dyn Store, call: &'static str) -> Self {
        Self::failing_after(inner, call, 0)
    }

    /// A store whose `call` succeeds `succeeding` times, then fails.
    fn failing_after(inner: &'a dyn Store, call: &'static str, succeeding: usize) -> Self {
        Self { hold: std::sync::Mutex::new(None), fail: Some(call), fail_after: succeeding, ..Self::new(inner, "") }
    }

    /// Waits at `call` the first time it is made, until [`Held::release`].
    async fn pause_at(&self, call: &str) {
        let take = {
            let mut hold = self.hold.lock().unwrap();
            let matches = hold.as_deref() == Some(call);
            if matches {
                *hold = None;
            }
            matches
        };
        if take {
            self.reached.notify_one();
            self.released.notified().await;
        }
    }

    async fn reached(&self) {
        self.reached.notified().await;
    }

    fn release(&self) {
        self.released.notify_one();
    }
}

mod delegation {
    use async_trait::async_trait;
    use chat_core::error::StoreError;
    use chat_core::protocol::{ConversationRef, RoomId, UserId};
    use chat_core::store::*;

    use super::Held;

    #[async_trait]
    impl ConnectionStore for Held<'_> {
        async fn save(&self, connection: &Connection) -> Result<(), StoreError> {
            self.inner.save(connection).await
        }
        async fn remove(&self, connection_id: &str) -> Result<(), StoreError> {
            self.inner.remove(connection_id).await
        }
        async fn remove_if_opened_by(&self, connection_id: &str, opened_by: i64) -> Result<bool, StoreError> {
            self.inner.remove_if_opened_by(connection_id, opened_by).await
        }
        async fn find(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
            self.inner.find(connection_id).await
        }
        async fn connections_of(&self, user_id: &UserId, now_ms: i64) -> Result<Vec<String>, StoreError> {
            self.inner.connections_of(user_id, now_ms).await
        }
        async fn forget_entry(&self, user_id: &UserId, connection_id: &str) -> Result<(), StoreError> {
            self.inner.forget_entry(user_id, connection_id).await
        }
    }

    #[async_trait]
    impl SubscriptionStore for Held<'_> {
        async fn subscribe(&self, connection_id: &str, room: &RoomId) -> Result<Subscribed, StoreError> {
            self.pause_at(&format!("join {connection_id}")).await;
            self.inner.subscribe(connection_id, room).await
        }
        async fn unsubscribe(&self, connection_id: &str, room: &RoomId) -> Result<(), StoreError> {
            self.inner.unsubscribe(connection_id, room).await
        }
        async fn members(&self, room: &RoomId, after: Option<&str>) -> Result<MembersPage, StoreError> {
            self.inner.members(room, after).await
        }
    }

    #[async_trait]
    impl MessageStore for Held<'_> {
        async fn append(
            &self,
            conversation: &Conversation,
            sender: &UserId,
            body: &str,
            sent_at: i64,
            idempotency: Option<Idempotency<'_>>,
        ) -> Result<Appended, StoreError> {
            self.inner.append(conversation, sender, body, sent_at, idempotency).await
        }
        async fn record_latest(&self, conversation: &Conversation, message: &chat_core::store::StoredMessage) {
            self.inner.record_latest(conversation, message).await;
        }
        async fn latest_seq(&self, conversation: &Conversation) -> Result<u64, StoreError> {
            self.inner.latest_seq(conversation).await
        }
        async fn history(
            &self,
            conversation: &Conversation,
            cursor: Cursor,
            limit: usize,
            now_ms: i64,
        ) -> Result<HistoryPage, StoreError> {
            self.inner.history(conversation, cursor, limit, now_ms).await
        }
    }

    #[async_trait]
    impl UserStore for Held<'_> {
        async fn add_room(&self, user: &UserId, room: &RoomId) -> Result<RoomJoin, StoreError> {
            self.inner.add_room(user, room).await
        }
        async fn remove_room(&self, user: &UserId, room: &RoomId) -> Result<(), StoreError> {
            self.inner.remove_room(user, room).await
        }
        async fn rooms_of(&self, user: &UserId) -> Result<Vec<RoomId>, StoreError> {
            if self.fails("rooms_of") {
                return Err(StoreError::Unsettled { rounds: 0 });
            }
            let rooms = self.inner.rooms_of(user).await;
            self.pause_at("rooms_of").await;
            rooms
        }
        async fn in_room(&self, user: &UserId, room: &RoomId) -> Result<bool, StoreError> {
            if self.fails("in_room") {
                return Err(StoreError::Unsettled { rounds: 0 });
            }
            self.inner.in_room(user, room).await
        }
        async fn record_direct(&self, recipient: &UserId, message: &StoredMessage) -> Result<(), StoreError> {
            self.inner.record_direct(recipient, message).await
        }
        async fn mark_read(
            &self,
            user: &UserId,
            conversation: &ConversationRef,
            seq: u64,
        ) -> Result<ReadMark, StoreError> {
            self.inner.mark_read(user, conversation, seq).await
        }
        async fn mark_peer_read(&self, user: &UserId, peer: &UserId, seq: u64) -> Result<bool, StoreError> {
            self.inner.mark_peer_read(user, peer, seq).await
        }
        async fn sync(
            &self,
            user: &UserId,
            after: Option<&SyncCursor>,
            limit: usize,
            now_ms: i64,
        ) -> Result<SyncPage, StoreError> {
            self.inner.sync(user, after, limit, now_ms).await
        }
    }
}

async fn a_tab_that_read_a_room_before_it_was_left_and_subscribes_after_unsubscribes_again(store: &dyn Store) {
    connect(store, "a1", "alice").await;
    join(store, "alice", "lobby").await;
    let held = Held::new(store, "join a2");

    // a2's $connect reads alice's rooms (lobby among them), then waits to subscribe while a1
    // leaves lobby completely.
    let others = async {
        held.reached().await;
        leave(store, "alice", "lobby").await;
        held.release();
    };
    futures::join!(connect(&held, "a2", "alice"), others);

    assert!(members(store, "lobby").await.is_empty());
    assert!(store.find("a2").await.unwrap().unwrap().rooms.is_empty());
}

async fn a_tab_that_read_no_room_yet_is_subscribed_by_the_join_that_follows(store: &dyn Store) {
    let held = Held::new(store, "rooms_of");

    // a1's $connect has recorded itself and read alice's rooms (none); before it goes on,
    // another tab joins lobby.
    let others = async {
        held.reached().await;
        connect(store, "a0", "alice").await;
        join(store, "alice", "lobby").await;
        held.release();
    };
    futures::join!(connect(&held, "a1", "alice"), others);

    assert_eq!(members(store, "lobby").await, ["a0", "a1"]);
}

async fn a_join_that_read_a_tab_before_it_closed_leaves_it_no_membership(store: &dyn Store) {
    connect(store, "a1", "alice").await;
    connect(store, "a2", "alice").await;
    let held = Held::new(store, "join a2");

    // The join reads both tabs, then waits to subscribe a2 while a2 closes.
    let others = async {
        held.reached().await;
        store.remove("a2").await.unwrap();
        held.release();
    };
    futures::join!(join(&held, "alice", "lobby"), others);

    assert_eq!(members(store, "lobby").await, ["a1"]);
}

async fn a_connect_that_fails_while_subscribing_removes_its_record_and_refuses_the_upgrade(store: &dyn Store) {
    let failing = Held::failing(store, "rooms_of");

    let event = events::connect("a1", Some("alice"));
    let status = chat_core::routes::handle(
        chat_core::routes::Route::Connect,
        &event,
        &Services::new(&failing).with_mode(chat_core::identity::Mode::Demo),
    )
    .await
    .status();

    assert_eq!(status, 500, "the upgrade is refused: the client connects again");
    assert_eq!(store.find("a1").await.unwrap(), None);
    assert!(store.connections_of(&user("alice"), events::now_ms()).await.unwrap().is_empty());
}

async fn a_join_that_fails_after_subscribing_unsubscribes_again(store: &dyn Store) {
    connect(store, "a1", "alice").await;
    let failing = Held::failing_after(store, "in_room", 1);

    // The join subscribes a1, then its read of the facts again fails.
    store.add_room(&user("alice"), &room("lobby")).await.unwrap();
    let settled = subscriptions::settle_room(&failing, &user("alice"), &room("lobby"), events::now_ms()).await;

    assert!(settled.is_err());
    assert!(members(store, "lobby").await.is_empty(), "failing closed: the client's retry subscribes it");
}

chat_testing::on_both_stores!(@ forced_memory, forced_dynamodb, page_size = 3;
    a_tab_that_read_a_room_before_it_was_left_and_subscribes_after_unsubscribes_again,
    a_tab_that_read_no_room_yet_is_subscribed_by_the_join_that_follows,
    a_join_that_read_a_tab_before_it_closed_leaves_it_no_membership,
    a_connect_that_fails_while_subscribing_removes_its_record_and_refuses_the_upgrade,
    a_join_that_fails_after_subscribing_unsubscribes_again
);
