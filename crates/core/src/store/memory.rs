//! The connection store for one machine: two maps behind a lock, for the local gateway.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use async_trait::async_trait;

use super::{Connection, ConnectionStore};
use crate::error::StoreError;
use crate::protocol::UserId;

/// Connections kept in process memory, indexed by connection and by user.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    connections: HashMap<String, Connection>,
    by_user: HashMap<UserId, HashSet<String>>,
}

impl Inner {
    fn unlink(&mut self, connection: &Connection) {
        if let Some(ids) = self.by_user.get_mut(&connection.user_id) {
            ids.remove(&connection.connection_id);
            if ids.is_empty() {
                self.by_user.remove(&connection.user_id);
            }
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many connections are recorded.
    pub fn len(&self) -> usize {
        self.read().connections.len()
    }

    /// Whether no connection is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while holding the lock cannot leave the maps half-updated (each update is a
    // few infallible map operations), so a poisoned lock is safe to keep using.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn save(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut inner = self.write();
        if let Some(previous) = inner.connections.insert(connection.connection_id.clone(), connection.clone()) {
            inner.unlink(&previous);
        }
        inner.by_user.entry(connection.user_id.clone()).or_default().insert(connection.connection_id.clone());
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> Result<(), StoreError> {
        let mut inner = self.write();
        if let Some(previous) = inner.connections.remove(connection_id) {
            inner.unlink(&previous);
        }
        Ok(())
    }

    async fn remove_if_opened_by(&self, connection_id: &str, opened_by: i64) -> Result<bool, StoreError> {
        let mut inner = self.write();
        match inner.connections.get(connection_id) {
            Some(connection) if connection.connected_at <= opened_by => {
                if let Some(previous) = inner.connections.remove(connection_id) {
                    inner.unlink(&previous);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn find(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self.read().connections.get(connection_id).cloned())
    }

    async fn connections_of(&self, user_id: &UserId) -> Result<Vec<String>, StoreError> {
        Ok(self.read().by_user.get(user_id).map(|ids| ids.iter().cloned().collect()).unwrap_or_default())
    }
}
