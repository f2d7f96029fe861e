//! A real DynamoDB API server for tests: dynalite (from npm), in memory, on a free port.
//!
//! `make test` installs the pinned dynalite into `.tools/node`; a test that cannot start it
//! fails with a message that says how to fix that. Tables are created exactly as
//! `template.yaml` declares them. A test binary shares its servers ([`tables`]): each test gets
//! four tables of its own, on one dynalite started on first use, as
//! zero2prod's `spawn_app` gives each test its own database on one server.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType,
};
use chat_core::DynamoDbStore;
use chat_core::store::schema;
use chat_template::Template;

/// Overrides where the dynalite CLI script is found.
pub const DYNALITE_ENV: &str = "DYNALITE_CLI";

/// A dynalite process, killed when dropped.
pub struct Dynalite {
    child: Child,
    endpoint: String,
}

fn how_to_fix() -> &'static str {
    "run `make tools` (installs the pinned dynalite into .tools/node) or set DYNALITE_CLI to dynalite's cli.js"
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// The connections table's name in local runs and tests (`make dynalite`'s `TABLE`).
pub const TABLE: &str = "chat-connections";

/// The memberships table's name beside [`TABLE`]: [`Dynalite::create_table`] names it so.
pub const MEMBERSHIPS_TABLE: &str = "chat-connections-memberships";

/// The messages table's name beside [`TABLE`]: [`Dynalite::create_table`] names it so.
pub const MESSAGES_TABLE: &str = "chat-connections-messages";
/// The users table's name beside [`TABLE`]: [`Dynalite::create_table`] names it so.
pub const USERS_TABLE: &str = "chat-connections-users";

/// A store over [`TABLE`] and the tables beside it, reached with `client`, keeping messages for
/// the default retention.
pub fn store_with(client: Client) -> DynamoDbStore {
    DynamoDbStore::new(client, TABLE)
        .with_clock(sample_clock())
        .with_memberships(MEMBERSHIPS_TABLE)
        .with_users(USERS_TABLE)
        .with_messages(MESSAGES_TABLE, chat_core::limits::MESSAGE_RETENTION)
}

/// The functions' clock as the tests play time out: the sample events' "now"
/// ([`crate::events::now_ms`]); an event sent later is later by its own time.
pub fn sample_clock() -> chat_core::store::Clock {
    std::sync::Arc::new(crate::events::now_ms)
}

/// A DynamoDB client for `endpoint` with dummy credentials, as every local test uses, and the
/// functions' own behaviour version and time limits.
pub fn client_for(endpoint: &str, max_attempts: u32) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::from(&chat_core::aws::local())
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(max_attempts))
        .build();
    Client::from_conf(config)
}

/// A store whose DynamoDB endpoint refuses every connection: a real backend failure.
pub fn unreachable_store() -> DynamoDbStore {
    DynamoDbStore::new(client_for(&format!("http://127.0.0.1:{}", free_port()), 1), TABLE)
}

impl Dynalite {
    /// Starts dynalite on a free port and waits until it accepts connections.
    ///
    /// # Panics
    /// When node or dynalite is missing or dynalite does not come up, with what to do about it.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts dynalite on `port` and waits until it accepts connections.
    ///
    /// # Panics
    /// As [`Dynalite::start`].
    pub fn start_on(port: u16) -> Self {
        Self::spawn(port, None)
    }

    /// Starts dynalite on `port` keeping its data in the folder `path` (LevelDB), so a
    /// dynalite started again on the same folder finds the same tables and items.
    ///
    /// # Panics
    /// As [`Dynalite::start`].
    pub fn start_persistent(port: u16, path: &std::path::Path) -> Self {
        Self::spawn(port, Some(path))
    }

    fn spawn(port: u16, path: Option<&std::path::Path>) -> Self {
        Self::spawn_with(Command::new("node"), port, path)
    }

    /// Starts dynalite on a free port under a shell that kills it when its standard input
    /// closes: when the process that started it exits, however it exits. For a server held in a
    /// `static`, which is never dropped.
    fn start_for_this_process() -> Self {
        let mut shell = Command::new("sh");
        shell.args(["-c", r#"node "$@" & server=$!; cat >/dev/null; kill "$server""#, "dynalite"]);
        shell.stdin(Stdio::piped());
        Self::spawn_with(shell, free_port(), None)
    }

    fn spawn_with(mut command: Command, port: u16, path: Option<&std::path::Path>) -> Self {
        let cli = match std::env::var_os(DYNALITE_ENV) {
            Some(cli) => PathBuf::from(cli),
            None => crate::tool("node/node_modules/dynalite/cli.js"),
        };
        assert!(cli.exists(), "{DYNALITE_ENV} names {}, which does not exist", cli.display());
        let child = command
            .arg(&cli)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"])
            .args(path.map(|path| ["--path".as_ref(), path.as_os_str()]).into_iter().flatten())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run node ({error}); install Node.js 18 or later, then {}", how_to_fix())
            });
        let mut dynalite = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        dynalite.wait_until_listening(SocketAddr::from(([127, 0, 0, 1], port)));
        dynalite
    }

    fn wait_until_listening(&mut self, address: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dynalite exited with {status} before listening on {address}; {}", how_to_fix());
            }
            assert!(Instant::now() < deadline, "dynalite did not listen on {address} within 20 s; {}", how_to_fix());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's URL, for `AWS_ENDPOINT_URL_DYNAMODB`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A client of this server.
    pub fn client(&self) -> Client {
        client_for(&self.endpoint, 3)
    }

    /// Creates the connections table named `name`, its memberships table (`{name}-memberships`)
    /// its messages table (`{name}-messages`) and its users table (`{name}-users`) as `template.yaml` declares them, and a store
    /// over the four, keeping messages for the default retention. dynalite has no TTL API, so
    /// only TTL is left out.
    pub async fn create_table(&self, name: &str) -> DynamoDbStore {
        let memberships = format!("{name}-memberships");
        let messages = format!("{name}-messages");
        let users = format!("{name}-users");
        self.create_from_template(schema::CONNECTIONS_TABLE, name).await;
        self.create_from_template(schema::MEMBERSHIPS_TABLE, &memberships).await;
        self.create_from_template(schema::MESSAGES_TABLE, &messages).await;
        self.create_from_template(schema::USERS_TABLE, &users).await;
        DynamoDbStore::new(self.client(), name)
            .with_clock(sample_clock())
            .with_memberships(memberships)
            .with_users(users)
            .with_messages(messages, chat_core::limits::MESSAGE_RETENTION)
    }

    /// Creates the table `template.yaml` declares as `logical_id`, named `name`.
    async fn create_from_template(&self, logical_id: &str, name: &str) {
        let template = Template::load(crate::workspace_root().join("template.yaml")).expect("template.yaml reads");
        let table = template.table(logical_id).unwrap_or_else(|error| panic!("template.yaml: {error}"));
        let key = |attribute: &str, kind: KeyType| {
            KeySchemaElement::builder().attribute_name(attribute).key_type(kind).build().expect("key")
        };
        let mut request = self
            .client()
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::from(table.billing_mode.as_deref().unwrap_or("PAY_PER_REQUEST")))
            .key_schema(key(&table.partition_key, KeyType::Hash));
        if let Some(sort_key) = &table.sort_key {
            request = request.key_schema(key(sort_key, KeyType::Range));
        }
        for (attribute, kind) in &table.attributes {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(ScalarAttributeType::from(kind.as_str()))
                    .build()
                    .expect("attribute"),
            );
        }
        for index in &table.indexes {
            let mut schema = vec![key(&index.partition_key, KeyType::Hash)];
            schema.extend(index.sort_key.as_deref().map(|sort_key| key(sort_key, KeyType::Range)));
            let projection =
                Projection::builder().projection_type(ProjectionType::from(index.projection.as_str())).build();
            request = if index.local {
                request.local_secondary_indexes(
                    LocalSecondaryIndex::builder()
                        .index_name(&index.name)
                        .set_key_schema(Some(schema))
                        .projection(projection)
                        .build()
                        .expect("index"),
                )
            } else {
                request.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(&index.name)
                        .set_key_schema(Some(schema))
                        .projection(projection)
                        .build()
                        .expect("index"),
                )
            };
        }
        request.send().await.unwrap_or_else(|error| panic!("dynalite refused CreateTable: {:?}", error));
    }
}

/// The test binary's server, started on first use. dynalite is one single-threaded Node process
/// and tests run two at a time, so a test may wait for the other's calls. Measured on two cores,
/// the core crate's 217 tests took 73.0 s and 71.7 s on one server, 73.7 s and 76.5 s when each
/// test took one of two in turn: they do not queue behind it measurably, so one it is.
fn shared() -> &'static Dynalite {
    static SERVER: OnceLock<Dynalite> = OnceLock::new();
    SERVER.get_or_init(Dynalite::start_for_this_process)
}

/// Four tables of one test's own on a server the test binary shares: named `chat-{n}` (and
/// `chat-{n}-memberships`, `-users`, `-messages`) with `n` unique in the binary.
pub struct Tables {
    /// The connections table's name, which the other three extend.
    pub name: String,
    /// The server's URL.
    pub endpoint: String,
    /// A store over the four tables, keeping messages for the default retention.
    pub store: DynamoDbStore,
}

impl Tables {
    /// A client of the server the tables are on.
    pub fn client(&self) -> Client {
        client_for(&self.endpoint, 3)
    }

    /// The memberships table's name.
    pub fn memberships(&self) -> String {
        format!("{}-memberships", self.name)
    }

    /// The users table's name.
    pub fn users(&self) -> String {
        format!("{}-users", self.name)
    }

    /// The messages table's name.
    pub fn messages(&self) -> String {
        format!("{}-messages", self.name)
    }
}

/// Fresh tables for one test, on the test binary's shared dynalite.
pub async fn tables() -> Tables {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let server = shared();
    let name = format!("chat-{n}");
    let store = server.create_table(&name).await;
    Tables { name, endpoint: server.endpoint.clone(), store }
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
