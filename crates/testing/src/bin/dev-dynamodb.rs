//! Runs dynalite with the chat's four tables (connections, memberships, users, messages), for
//! running the real Lambda binaries on one machine (`make dynalite`, then `make watch`).

use chat_testing::Dynalite;

#[tokio::main]
async fn main() {
    let port: u16 = chat_testing::flag("--port", "4567").parse().expect("--port takes a port number");
    let table = chat_testing::flag("--table", chat_testing::dynalite::TABLE);

    let dynalite = Dynalite::start_on(port);
    dynalite.create_table(&table).await;

    println!(
        "DynamoDB API (dynalite, in memory) at {} with tables {table}, {table}-memberships, {table}-users and {table}-messages; Ctrl-C stops it",
        dynalite.endpoint()
    );
    let _ = tokio::signal::ctrl_c().await;
}
