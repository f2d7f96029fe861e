//! Room subscriptions: which connections receive a room's messages, derived from two facts
//! each side writes for itself: a user's open connections ([`ConnectionStore`]) and the rooms
//! they joined ([`UserStore`]). A connection is subscribed to a room exactly when its user has
//! joined the room and the connection is open.
//!
//! Whoever changes a fact (`$connect`, `joinRoom`, `leaveRoom`) writes it first, then settles
//! the subscriptions it affects: it reads both facts strongly consistently, writes each affected
//! subscription to match (subscribe or unsubscribe, whatever it was before), and reads the facts
//! again, until a read finds them as they were when it wrote. Why that is enough, with tabs of
//! one user connecting, joining and leaving at once: of two writers that each write then read,
//! at least one reads the other's write, so a change is never missed by both; and the last write
//! to a subscription is always made from facts read after every change to them (a writer whose
//! facts changed under it writes again), so no stale write survives. `$disconnect` deletes the
//! connection's record and its subscriptions; a settling writer that subscribes it afterwards
//! reads it gone and unsubscribes it again.
//!
//! The argument assumes every writer finishes. One that fails part-way (a DynamoDB error, or
//! facts that kept changing for [`ROUNDS`] rounds) fails closed: `$connect` deletes its
//! connection, `joinRoom` and `leaveRoom` unsubscribe the connections they touched, and the
//! client's retry settles again. One that is stopped outright (its function timing out between
//! two calls) can leave a subscription too many until the user joins or leaves that room again,
//! or the connection closes (its record expires 3 hours after it opened at the latest).

use std::collections::BTreeSet;

use super::{ConnectionStore, Store, SubscriptionStore};
use crate::error::StoreError;
use crate::protocol::{RoomId, UserId};

/// Settling rounds before giving up: each round past the first means a fact changed while the
/// previous one was written, which takes a user's tabs changing rooms within milliseconds.
const ROUNDS: usize = 5;

/// Subscribes a newly recorded connection to every room its user has joined.
///
/// # Errors
/// A [`StoreError`] from any call, or [`StoreError::Unsettled`] when the user's rooms kept
/// changing for [`ROUNDS`] rounds; the connection may then be subscribed to some of them only.
pub async fn settle_connection(store: &dyn Store, connection_id: &str, user: &UserId) -> Result<(), StoreError> {
    let mut touched: BTreeSet<RoomId> = BTreeSet::new();
    let mut facts = connection_facts(store, connection_id, user).await?;
    for _ in 0..ROUNDS {
        let (open, rooms) = &facts;
        touched.extend(rooms.iter().cloned());
        for room in &touched {
            let subscribed = *open && rooms.contains(room);
            subscribe(store, connection_id, room, subscribed).await?;
        }
        let again = connection_facts(store, connection_id, user).await?;
        if again == facts {
            return Ok(());
        }
        facts = again;
    }
    Err(StoreError::Unsettled { rounds: ROUNDS })
}

/// Subscribes every open connection of `user` to `room` if they have joined it, or
/// unsubscribes them if not: after `joinRoom` and `leaveRoom`.
///
/// # Errors
/// As [`settle_connection`].
pub async fn settle_room(store: &dyn Store, user: &UserId, room: &RoomId, now_ms: i64) -> Result<(), StoreError> {
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let settled = settle_room_rounds(store, user, room, now_ms, &mut touched).await;
    if settled.is_err() {
        // Failing closed: a writer that stops part-way may have subscribed from facts that no
        // longer hold, and a subscription too many leaks a room's messages, while one too few
        // only defers them to history. The client's retry settles again.
        for connection_id in &touched {
            let _ = SubscriptionStore::unsubscribe(store, connection_id, room).await;
        }
    }
    settled
}

async fn settle_room_rounds(
    store: &dyn Store,
    user: &UserId,
    room: &RoomId,
    now_ms: i64,
    touched: &mut BTreeSet<String>,
) -> Result<(), StoreError> {
    let mut facts = room_facts(store, user, room, now_ms).await?;
    for _ in 0..ROUNDS {
        let (member, connections) = &facts;
        touched.extend(connections.iter().cloned());
        for connection_id in touched.iter() {
            let subscribed = *member && connections.contains(connection_id);
            subscribe(store, connection_id, room, subscribed).await?;
        }
        let again = room_facts(store, user, room, now_ms).await?;
        if again == facts {
            return Ok(());
        }
        facts = again;
    }
    Err(StoreError::Unsettled { rounds: ROUNDS })
}

/// Whether the connection is open, and its user's rooms.
async fn connection_facts(
    store: &dyn Store,
    connection_id: &str,
    user: &UserId,
) -> Result<(bool, BTreeSet<RoomId>), StoreError> {
    let (record, rooms) = futures::try_join!(ConnectionStore::find(store, connection_id), store.rooms_of(user))?;
    Ok((record.is_some(), rooms.into_iter().collect()))
}

/// Whether the user has joined the room, and their connections open at `now_ms`.
async fn room_facts(
    store: &dyn Store,
    user: &UserId,
    room: &RoomId,
    now_ms: i64,
) -> Result<(bool, BTreeSet<String>), StoreError> {
    let (member, connections) = futures::try_join!(store.in_room(user, room), store.connections_of(user, now_ms))?;
    Ok((member, connections.into_iter().collect()))
}

/// Writes one subscription as it should be. Subscribing a connection with no record writes
/// nothing ([`SubscriptionStore::subscribe`] requires the record).
async fn subscribe(store: &dyn Store, connection_id: &str, room: &RoomId, subscribed: bool) -> Result<(), StoreError> {
    if subscribed {
        SubscriptionStore::subscribe(store, connection_id, room).await.map(|_| ())
    } else {
        SubscriptionStore::unsubscribe(store, connection_id, room).await
    }
}
