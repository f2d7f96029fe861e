//! One behavioural suite for every `ConnectionStore`: the in-memory store, and the DynamoDB
//! store against a real DynamoDB API server (dynalite) with the table `template.yaml` declares.

use chat_core::protocol::UserId;
use chat_core::store::{ConnectionStore, MemoryStore};
use chat_testing::{Dynalite, events};

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

async fn sorted_connections_of(store: &dyn ConnectionStore, user_id: &str) -> Vec<String> {
    let mut ids = store.connections_of(&user(user_id)).await.unwrap();
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
    assert!(store.connections_of(&user("nobody")).await.unwrap().is_empty());
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

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&super::MemoryStore::new()).await;
                }
            )*
        }

        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    let dynalite = super::Dynalite::start();
                    // Small Query pages, so every lookup of more than a few connections reads
                    // several pages, as a large room or a busy user does at DynamoDB's 1 MB.
                    use super::PAGE_SIZE;
                    let store = dynalite.create_table("chat-connections").await.with_page_size(PAGE_SIZE);
                    super::$case(&store).await;
                }
            )*
        }
    };
}

const PAGE_SIZE: i32 = 7;

contract!(
    a_gone_connection_is_removed_only_if_it_was_opened_by_the_cutoff,
    a_saved_connection_can_be_found_with_every_field,
    an_unknown_connection_is_not_found,
    a_users_connections_are_all_of_theirs_and_only_theirs,
    a_removed_connection_is_gone_from_both_lookups,
    removing_an_unknown_connection_succeeds,
    saving_a_connection_again_moves_it_to_its_new_user,
    many_connections_of_one_user_come_back_from_one_lookup,
);

#[tokio::test]
async fn the_dynamodb_store_writes_the_attributes_the_template_declares() {
    let dynalite = Dynalite::start();
    let store = dynalite.create_table("chat-connections").await;

    store.save(&events::connection("c1", "alice")).await.unwrap();

    let item = dynalite
        .client()
        .get_item()
        .table_name("chat-connections")
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
async fn a_missing_table_is_reported_with_the_operation_and_what_to_check() {
    let dynalite = Dynalite::start();
    let store = chat_core::DynamoDbStore::new(dynalite.client(), "no-such-table");

    let error = store.find("c1").await.unwrap_err();

    let chain = chat_core::error::Chain(&error).to_string();
    assert!(chain.contains("GetItem"), "{chain}");
    assert!(chain.contains("check that the table exists"), "{chain}");
    assert!(chain.contains("ResourceNotFoundException") || chain.contains("resource not found"), "{chain}");
}
