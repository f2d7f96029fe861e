//! Runs dynalite with the connections and memberships tables, for running the real Lambda binaries on one
//! machine (`make dynalite`, then `make watch`).

use chat_testing::Dynalite;

fn flag(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|arg| arg == name).and_then(|at| args.get(at + 1)).cloned().unwrap_or_else(|| default.into())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = flag(&args, "--port", "4567").parse().expect("--port takes a port number");
    let table = flag(&args, "--table", "chat-connections");

    let dynalite = Dynalite::start_on(port);
    dynalite.create_table(&table).await;

    println!(
        "DynamoDB API (dynalite, in memory) at {} with tables {table} and {table}-memberships; Ctrl-C stops it",
        dynalite.endpoint()
    );
    let _ = tokio::signal::ctrl_c().await;
}
