//! What a handler is given: the request and the services it may use (as axum's `State` carries
//! dependencies), and the one place that establishes who is calling.

use super::{Failure, Request};
use crate::delivery::queue::FanOutQueue;
use crate::identity::Mode;
use crate::messenger::Messenger;
use crate::protocol::{ErrorCode, UserId};
use crate::store::{Connection, Store};

/// The dependencies of the routes: built once per process by a Lambda function (from its
/// environment), the local gateway or a test, and shared by every invocation.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    /// Connections, rooms, messages and users; `None` in a function whose routes use none
    /// (`$default`).
    pub store: Option<&'a dyn Store>,
    /// API Gateway's @connections API; `None` where nothing is posted (`$connect`,
    /// `$disconnect`).
    pub messenger: Option<&'a dyn Messenger>,
    /// The fan-out queue for big rooms, when the deployment has one.
    pub queue: Option<&'a dyn FanOutQueue>,
    /// How `$connect` establishes identity.
    pub mode: Mode,
}

impl<'a> Services<'a> {
    /// The store alone: demo mode, no messenger, no queue.
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store: Some(store), ..Self::none() }
    }

    /// Nothing: demo mode, no store, no messenger, no queue.
    pub fn none() -> Self {
        Self { store: None, messenger: None, queue: None, mode: Mode::Demo }
    }

    /// With a messenger to post answers and deliveries through.
    #[must_use]
    pub fn with_messenger(self, messenger: &'a dyn Messenger) -> Self {
        Self { messenger: Some(messenger), ..self }
    }

    /// With (or without) a fan-out queue.
    #[must_use]
    pub fn with_queue(self, queue: Option<&'a dyn FanOutQueue>) -> Self {
        Self { queue, ..self }
    }

    /// In `mode`.
    #[must_use]
    pub fn with_mode(self, mode: Mode) -> Self {
        Self { mode, ..self }
    }
}

/// One invocation's request and the services its handler may use.
pub struct Context<'a> {
    /// What the event said.
    pub request: &'a Request,
    /// The process's services.
    pub services: &'a Services<'a>,
}

impl Context<'_> {
    /// The store.
    ///
    /// # Errors
    /// A backend failure when the process was given none: a route that uses it was wired
    /// without one.
    pub fn store(&self) -> Result<&dyn Store, Failure> {
        self.services.store.ok_or_else(|| Failure::Backend("this function was started without a store".into()))
    }

    /// The messenger.
    ///
    /// # Errors
    /// A backend failure when the process was given none: a route that posts was wired without
    /// one.
    pub fn messenger(&self) -> Result<&dyn Messenger, Failure> {
        self.services.messenger.ok_or_else(|| Failure::Backend("this function was started without a messenger".into()))
    }

    /// The sending connection's record.
    ///
    /// # Errors
    /// `unknownConnection` when the store has none; a backend failure when it cannot be read.
    pub async fn connection(&self) -> Result<Connection, Failure> {
        self.store()?.find(&self.request.connection_id).await?.ok_or_else(unknown_connection)
    }

    /// Who is calling: in token mode the user the `$connect` authorizer verified, when API
    /// Gateway's event carries it (`requestContext.authorizer`, set by API Gateway, never by the
    /// client), else the user of the sending connection's record. Handlers that need the
    /// record's contents read it with [`Context::connection`].
    ///
    /// # Errors
    /// As [`Context::connection`], when the record is read.
    pub async fn user(&self) -> Result<UserId, Failure> {
        let verified = match self.services.mode {
            Mode::Token => self.request.caller.verified_user.as_deref().and_then(|user| UserId::parse(user).ok()),
            Mode::Demo => None,
        };
        match verified {
            Some(user) => Ok(user),
            None => Ok(self.connection().await?.user_id),
        }
    }
}

/// The refusal of a frame from a connection the store has no record of: it expired, or its
/// `$connect` never completed. Right in both modes: a new connection gets a new record.
pub(crate) fn unknown_connection() -> Failure {
    Failure::refused(
        ErrorCode::UnknownConnection,
        "this connection is not on record (it may have expired); open a new connection",
    )
}
