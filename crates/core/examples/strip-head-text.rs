//! The one-off upgrade of the heads an earlier version wrote (see
//! `DynamoDbStore::strip_head_text`): `MESSAGES_TABLE_NAME=<the stack's MessagesTable> cargo run
//! -p chat-core --example strip-head-text`, with AWS credentials for the account, after
//! `sam deploy`. Prints what it changed.

use chat_core::DynamoDbStore;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Ok(table) = std::env::var("MESSAGES_TABLE_NAME") else {
        eprintln!(
            "strip-head-text: set MESSAGES_TABLE_NAME to the stack's messages table (its MessagesTable resource)"
        );
        return std::process::ExitCode::FAILURE;
    };
    let aws = chat_core::aws::load().await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&aws), "unused")
        .with_messages(table, chat_core::limits::MESSAGE_RETENTION);
    match store.strip_head_text().await {
        Ok(done) => {
            println!(
                "moved {} direct conversations' heads to their hashed key; stripped {} rooms' heads",
                done.moved, done.stripped
            );
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("strip-head-text: {}; run it again to finish", chat_core::error::Chain(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
