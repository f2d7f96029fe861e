//! The capacity meter charges what DynamoDB's sizing rules say, checked against dynalite.

use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::store::schema::{ACTIVITY, ENTRY, USER_ID};
use chat_testing::capacity::{CapacityMeter, units};
use chat_testing::dynalite::{Dynalite, TABLE, USERS_TABLE};

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

#[tokio::test]
async fn writes_are_charged_per_kilobyte_with_a_local_index_key_change_costing_two_more() {
    let dynalite = Dynalite::start();
    dynalite.create_table(TABLE).await;
    let meter = CapacityMeter::start(dynalite.endpoint()).await;
    let client = meter.client();
    let put = |activity: &str, padding: usize| {
        client
            .put_item()
            .table_name(USERS_TABLE)
            .item(USER_ID, s("alice"))
            .item(ENTRY, s("d#bob"))
            .item(ACTIVITY, s(activity))
            .item("padding", s(&"x".repeat(padding)))
            .send()
    };
    put("1", 10).await.expect("dynalite");
    // A new item in the index: one write for the table, one for the index.
    assert_eq!(units(&meter.take()), (0.0, 2.0));
    put("2", 1500).await.expect("dynalite");
    // 2 KB after: two for the table; the index key changed: a delete (1 KB) and a put (2 KB).
    assert_eq!(units(&meter.take()), (0.0, 5.0));
    client
        .update_item()
        .table_name(USERS_TABLE)
        .key(USER_ID, s("alice"))
        .key(ENTRY, s("d#bob"))
        .update_expression("REMOVE #a, padding")
        .expression_attribute_names("#a", ACTIVITY)
        .send()
        .await
        .expect("dynalite");
    // Charged on the larger item (2 KB), and its removal from the index (2 KB).
    assert_eq!(units(&meter.take()), (0.0, 4.0));
    client
        .update_item()
        .table_name(USERS_TABLE)
        .key(USER_ID, s("alice"))
        .key(ENTRY, s("d#bob"))
        .update_expression("SET readSeq = :n")
        .expression_attribute_values(":n", AttributeValue::N("3".into()))
        .send()
        .await
        .expect("dynalite");
    // Outside the sparse index: one write.
    assert_eq!(units(&meter.take()), (0.0, 1.0));
}

#[tokio::test]
async fn a_query_is_charged_for_every_item_it_evaluated_whatever_its_filter_returns() {
    let dynalite = Dynalite::start();
    dynalite.create_table(TABLE).await;
    let meter = CapacityMeter::start(dynalite.endpoint()).await;
    let client = meter.client();
    for n in 0..10 {
        client
            .put_item()
            .table_name(USERS_TABLE)
            .item(USER_ID, s("alice"))
            .item(ENTRY, s(&format!("r#{n}")))
            .item("padding", s(&"x".repeat(3000)))
            .send()
            .await
            .expect("dynalite");
    }
    meter.take();
    let output = client
        .query()
        .table_name(USERS_TABLE)
        .key_condition_expression("#u = :u")
        .filter_expression("#e = :none")
        .expression_attribute_names("#u", USER_ID)
        .expression_attribute_names("#e", "padding")
        .expression_attribute_values(":u", s("alice"))
        .expression_attribute_values(":none", s("nothing"))
        .consistent_read(true)
        .send()
        .await
        .expect("dynalite");
    assert_eq!(output.count, 0);
    // 10 items of about 3 KB: 30 KB, eight 4 KB units, though none was returned.
    assert_eq!(units(&meter.take()), (8.0, 0.0));
    client
        .get_item()
        .table_name(USERS_TABLE)
        .key(USER_ID, s("nobody"))
        .key(ENTRY, s("r#0"))
        .send()
        .await
        .expect("dynalite");
    // A missing item, eventually consistent: half a unit.
    assert_eq!(units(&meter.take()), (0.5, 0.0));
}

#[tokio::test]
async fn a_lost_race_is_played_by_a_rival_write_and_its_refused_put_is_charged() {
    let dynalite = Dynalite::start();
    dynalite.create_table(TABLE).await;
    let meter = CapacityMeter::start(dynalite.endpoint()).await;
    let client = meter.client();
    let put = || {
        client
            .put_item()
            .table_name(chat_testing::dynalite::MESSAGES_TABLE)
            .item("conversation", s("r#lobby"))
            .item("seq", AttributeValue::N("1".into()))
            .item("body", s("mine"))
            .condition_expression("attribute_not_exists(#s)")
            .expression_attribute_names("#s", "seq")
            .send()
    };
    meter.lose_races(1);

    let lost = put().await;
    let won = put().await;

    assert!(lost.is_err_and(|error| error.into_service_error().is_conditional_check_failed_exception()));
    assert!(won.is_err(), "the rival's item is there");
    // Each refused put is charged a write unit; the rival's own write is not metered.
    assert_eq!(units(&meter.take()), (0.0, 2.0));
}
