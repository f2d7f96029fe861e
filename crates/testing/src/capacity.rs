//! What DynamoDB would charge for the calls a client makes, on demand, computed from the items
//! each call read and wrote: a proxy in front of dynalite that sizes them by DynamoDB's rules
//! (dynalite's own `ConsumedCapacity` leaves out index writes and the larger-of-before-and-after
//! rule, so it is no measure).
//!
//! The rules applied, from the DynamoDB Developer Guide's "Read/write capacity mode" and "Item
//! sizes and formats" (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>):
//! - an item's size is the sum of its attribute names' and values' lengths: a string its UTF-8
//!   bytes, a number 1 byte plus 1 per two significant digits, a binary its bytes, a boolean or
//!   null 1, a set the sum of its elements, a list or map 3 plus 1 per element plus the elements;
//! - a write costs one write unit per 1 KB, rounded up, of the larger of the item before and after
//!   (a PutItem, UpdateItem or DeleteItem alike), at least one; a conditional write whose condition
//!   fails is charged as well;
//! - a local secondary index costs one more write per 1 KB of the item it holds when an item is
//!   added to it, removed from it or changed in it, and two when the index's sort key changes (a
//!   delete and a put);
//! - a strongly consistent read costs one read unit per 4 KB, rounded up (half for an eventually
//!   consistent one): a GetItem of its item, a BatchGetItem of each item on its own, a missing
//!   item still one unit; a Query of the summed size of every item it evaluated, including those
//!   a filter drops (projections reduce nothing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// One call as the meter saw it: what it was, what it cost, and when it ran.
#[derive(Clone, Debug)]
pub struct Metered {
    /// The DynamoDB API operation (`PutItem`).
    pub operation: String,
    /// The table's name (the first, for a batch).
    pub table: String,
    /// The index's name, for a Query of one.
    pub index: Option<String>,
    /// Read request units, on demand.
    pub read_units: f64,
    /// Write request units, on demand.
    pub write_units: f64,
    /// When the proxy received it.
    pub started: Instant,
    /// When the proxy answered it.
    pub ended: Instant,
}

/// A metering proxy in front of a DynamoDB API server; point a client at [`Self::endpoint`].
pub struct CapacityMeter {
    endpoint: String,
    record: Arc<Mutex<Vec<Metered>>>,
    races: Arc<std::sync::atomic::AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for CapacityMeter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What the proxy needs to know of a table: its key attributes and its local indexes' sort keys.
#[derive(Clone, Debug, Default)]
struct Layout {
    keys: Vec<String>,
    index_keys: Vec<String>,
}

/// The signature headers of the call being metered, which the meter's own calls copy (dynalite
/// wants them present; it checks no signature).
struct Auth {
    authorization: String,
    date: String,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: HttpClient<HttpConnector, Full<Bytes>>,
    record: Arc<Mutex<Vec<Metered>>>,
    layouts: Arc<Mutex<HashMap<String, Layout>>>,
    races: Arc<std::sync::atomic::AtomicUsize>,
}

impl CapacityMeter {
    /// Starts a proxy to `upstream` (dynalite's URL) on a free local port.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start(upstream: &str) -> Self {
        let record = Arc::new(Mutex::new(Vec::new()));
        let races = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let proxy = Proxy {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: HttpClient::builder(TokioExecutor::new()).build_http(),
            record: record.clone(),
            layouts: Arc::default(),
            races: races.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let proxy = proxy.clone();
            async move { proxy.handle(headers, body).await }
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { endpoint, record, races, server }
    }

    /// Makes the next `count` conditional PutItems of a new message (an item with a `seq` above 0)
    /// lose their race: just before each is forwarded, the meter itself (unmetered) writes an item at its key, as another
    /// writer would have a moment earlier, so that its condition fails as DynamoDB's would.
    pub fn lose_races(&self, count: usize) {
        self.races.store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// The proxy's URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A DynamoDB client of the proxy.
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        crate::dynalite::client_for(&self.endpoint, 3)
    }

    /// Every call metered since the last take, in the order they were answered.
    ///
    /// # Panics
    /// When a metering task panicked.
    pub fn take(&self) -> Vec<Metered> {
        std::mem::take(&mut *self.record.lock().expect("the record"))
    }
}

/// The summed units of some calls: (read, write).
pub fn units(calls: &[Metered]) -> (f64, f64) {
    calls.iter().fold((0.0, 0.0), |(read, write), call| (read + call.read_units, write + call.write_units))
}

/// The longest chain of calls each of which started after the one before it ended: how many
/// round trips the calls cost one after another, whatever ran beside them.
pub fn one_after_another(calls: &[Metered]) -> usize {
    let mut sorted: Vec<&Metered> = calls.iter().collect();
    sorted.sort_by_key(|call| call.ended);
    let mut depth: Vec<usize> = Vec::with_capacity(sorted.len());
    for (n, call) in sorted.iter().enumerate() {
        let before = (0..n).filter(|&m| sorted[m].ended <= call.started).map(|m| depth[m]).max().unwrap_or(0);
        depth.push(before + 1);
    }
    depth.into_iter().max().unwrap_or(0)
}

impl Proxy {
    async fn handle(&self, headers: HeaderMap, body: Bytes) -> (StatusCode, HeaderMap, Bytes) {
        let started = Instant::now();
        let target = headers.get("x-amz-target").and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
        let operation = target.rsplit('.').next().unwrap_or("").to_owned();
        let request: Value = serde_json::from_slice(&body).unwrap_or_default();
        let header = |name| headers.get(name).and_then(|value: &axum::http::HeaderValue| value.to_str().ok());
        let auth = Auth {
            authorization: header("authorization").unwrap_or("none").to_owned(),
            date: header("x-amz-date").unwrap_or("20260101T000000Z").to_owned(),
        };

        if operation == "PutItem"
            && request["ConditionExpression"]
                .as_str()
                .is_some_and(|condition| condition.starts_with("attribute_not_exists"))
            && request["Item"]["seq"]["N"].as_str().is_some_and(|seq| seq != "0")
            && self
                .races
                .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok()
        {
            let mut rival = request.clone();
            if let Some(object) = rival.as_object_mut() {
                object.retain(|name, _| name == "TableName" || name == "Item");
            }
            // Another writer's item: not this request's.
            if let Some(item) = rival.get_mut("Item").and_then(Value::as_object_mut) {
                item.remove("requestKey");
            }
            self.call("PutItem", &rival, &auth).await;
        }
        let writes = self.writes_of(&operation, &request, &auth).await;
        let mut before = Vec::with_capacity(writes.len());
        for (table, key) in &writes {
            before.push(self.item(table, key, &auth).await);
        }
        let (status, answer_headers, answer) = self.forward(&headers, body).await;
        let response: Value = serde_json::from_slice(&answer).unwrap_or_default();
        let mut write_units = 0.0;
        for ((table, key), old) in writes.iter().zip(before) {
            let new = self.item(table, key, &auth).await;
            write_units += self.write_cost(table, old.as_ref(), new.as_ref(), &auth).await;
        }
        let read_units =
            if status.is_success() { self.read_cost(&operation, &request, &response, &auth).await } else { 0.0 };
        let table = request["TableName"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| request["RequestItems"].as_object().and_then(|items| items.keys().next().cloned()))
            .unwrap_or_default();
        let metered = Metered {
            operation,
            table,
            index: request["IndexName"].as_str().map(str::to_owned),
            read_units,
            write_units,
            started,
            ended: Instant::now(),
        };
        self.record.lock().expect("the record").push(metered);
        (status, answer_headers, answer)
    }

    async fn forward(&self, headers: &HeaderMap, body: Bytes) -> (StatusCode, HeaderMap, Bytes) {
        let mut request = hyper::Request::post(format!("{}/", self.upstream));
        for (name, value) in headers {
            if name != "host" && name != "content-length" {
                request = request.header(name, value);
            }
        }
        let request = request.body(Full::new(body)).expect("a request");
        match self.client.request(request).await {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let bytes = body.collect().await.map(|body| body.to_bytes()).unwrap_or_default();
                let mut headers = parts.headers;
                headers.remove("content-length");
                headers.remove("transfer-encoding");
                (parts.status, headers, bytes)
            }
            Err(_) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), Bytes::new()),
        }
    }

    /// Calls dynalite directly, as the meter's own reads do.
    async fn call(&self, operation: &str, body: &Value, auth: &Auth) -> Value {
        let request = hyper::Request::post(format!("{}/", self.upstream))
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header("authorization", &auth.authorization)
            .header("x-amz-date", &auth.date)
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a request");
        let Ok(response) = self.client.request(request).await else { return Value::Null };
        let bytes = response.into_body().collect().await.map(|body| body.to_bytes()).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    async fn layout(&self, table: &str, auth: &Auth) -> Layout {
        if let Some(layout) = self.layouts.lock().expect("layouts").get(table) {
            return layout.clone();
        }
        let described = self.call("DescribeTable", &json!({"TableName": table}), auth).await;
        let names = |schema: &Value| -> Vec<String> {
            schema
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|key| key["AttributeName"].as_str())
                .map(str::to_owned)
                .collect()
        };
        let layout = Layout {
            keys: names(&described["Table"]["KeySchema"]),
            index_keys: described["Table"]["LocalSecondaryIndexes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|index| {
                    index["KeySchema"].as_array()?.iter().find(|key| key["KeyType"] == "RANGE")?["AttributeName"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect(),
        };
        self.layouts.lock().expect("layouts").insert(table.to_owned(), layout.clone());
        layout
    }

    /// The items a call may write, as (table, key).
    async fn writes_of(&self, operation: &str, request: &Value, auth: &Auth) -> Vec<(String, Value)> {
        let table = request["TableName"].as_str().unwrap_or_default().to_owned();
        match operation {
            "UpdateItem" | "DeleteItem" => vec![(table, request["Key"].clone())],
            "PutItem" => {
                let layout = self.layout(&table, auth).await;
                vec![(table, key_of(&request["Item"], &layout.keys))]
            }
            "BatchWriteItem" => {
                let mut writes = Vec::new();
                for (table, requests) in request["RequestItems"].as_object().into_iter().flatten() {
                    let layout = self.layout(table, auth).await;
                    for write in requests.as_array().into_iter().flatten() {
                        let key = if write["PutRequest"].is_object() {
                            key_of(&write["PutRequest"]["Item"], &layout.keys)
                        } else {
                            write["DeleteRequest"]["Key"].clone()
                        };
                        writes.push((table.clone(), key));
                    }
                }
                writes
            }
            _ => Vec::new(),
        }
    }

    async fn item(&self, table: &str, key: &Value, auth: &Auth) -> Option<Value> {
        let answer = self.call("GetItem", &json!({"TableName": table, "Key": key, "ConsistentRead": true}), auth).await;
        answer.get("Item").cloned()
    }

    async fn write_cost(&self, table: &str, old: Option<&Value>, new: Option<&Value>, auth: &Auth) -> f64 {
        let size = |item: Option<&Value>| item.map_or(0, item_size);
        let mut units = kilobytes(size(old).max(size(new))).max(1) as f64;
        for index_key in self.layout(table, auth).await.index_keys {
            let key = |item: Option<&Value>| item.and_then(|item| item.get(&index_key)).cloned();
            units += match (key(old), key(new)) {
                (None, None) => 0,
                (Some(_), None) => kilobytes(size(old)).max(1),
                (None, Some(_)) => kilobytes(size(new)).max(1),
                (Some(a), Some(b)) if a != b => kilobytes(size(old)).max(1) + kilobytes(size(new)).max(1),
                (Some(_), Some(_)) if old != new => kilobytes(size(old).max(size(new))).max(1),
                (Some(_), Some(_)) => 0,
            } as f64;
        }
        units
    }

    async fn read_cost(&self, operation: &str, request: &Value, response: &Value, auth: &Auth) -> f64 {
        let rate = |consistent: &Value| if consistent.as_bool() == Some(true) { 1.0 } else { 0.5 };
        match operation {
            "GetItem" => {
                let size = response.get("Item").map_or(0, item_size);
                rate(&request["ConsistentRead"]) * blocks(size).max(1) as f64
            }
            "BatchGetItem" => {
                let mut units = 0.0;
                for (table, keys) in request["RequestItems"].as_object().into_iter().flatten() {
                    let items = response["Responses"][table].as_array().cloned().unwrap_or_default();
                    let layout = self.layout(table, auth).await;
                    for key in keys["Keys"].as_array().into_iter().flatten() {
                        let found = items.iter().find(|item| &key_of(item, &layout.keys) == key);
                        units += rate(&keys["ConsistentRead"]) * blocks(found.map_or(0, item_size)).max(1) as f64;
                    }
                }
                units
            }
            "Query" | "Scan" => {
                // Every item the call evaluated: the same call without its filter, projection
                // or count, which DynamoDB reads in full before applying them.
                let mut evaluated = request.clone();
                if let Some(object) = evaluated.as_object_mut() {
                    for name in ["FilterExpression", "ProjectionExpression", "Select", "ReturnConsumedCapacity"] {
                        object.remove(name);
                    }
                    // Names and values only the dropped filter used would be refused as unused.
                    let condition = request["KeyConditionExpression"].as_str().unwrap_or_default();
                    let kept: std::collections::HashSet<&str> =
                        condition.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '#' || c == ':')).collect();
                    for field in ["ExpressionAttributeValues", "ExpressionAttributeNames"] {
                        if let Some(map) = object.get_mut(field).and_then(Value::as_object_mut) {
                            map.retain(|name, _| kept.contains(name.as_str()));
                        }
                    }
                }
                let answer = self.call(operation, &evaluated, auth).await;
                let size: usize = answer["Items"].as_array().into_iter().flatten().map(item_size).sum();
                rate(&request["ConsistentRead"]) * blocks(size).max(1) as f64
            }
            _ => 0.0,
        }
    }
}

/// The key attributes of an item.
fn key_of(item: &Value, keys: &[String]) -> Value {
    Value::Object(keys.iter().filter_map(|key| Some((key.clone(), item.get(key)?.clone()))).collect())
}

/// 1 KB blocks, rounded up.
fn kilobytes(size: usize) -> usize {
    size.div_ceil(1024)
}

/// 4 KB blocks, rounded up.
fn blocks(size: usize) -> usize {
    size.div_ceil(4096)
}

/// An item's size in bytes, by DynamoDB's rules (see the module's documentation).
pub fn item_size(item: &Value) -> usize {
    item.as_object().map_or(0, |attributes| attributes.iter().map(|(name, value)| name.len() + value_size(value)).sum())
}

fn value_size(value: &Value) -> usize {
    let Some((kind, value)) = value.as_object().and_then(|object| object.iter().next()) else { return 0 };
    let strings = || value.as_array().into_iter().flatten().filter_map(Value::as_str);
    match kind.as_str() {
        "S" => value.as_str().map_or(0, str::len),
        "N" => value.as_str().map_or(0, number_size),
        "B" => value.as_str().map_or(0, base64_len),
        "BOOL" | "NULL" => 1,
        "SS" => strings().map(str::len).sum(),
        "NS" => strings().map(number_size).sum(),
        "BS" => strings().map(base64_len).sum(),
        "L" => 3 + value.as_array().into_iter().flatten().map(|element| 1 + value_size(element)).sum::<usize>(),
        "M" => {
            3 + value
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, element)| 1 + name.len() + value_size(element))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// A number's size: 1 byte, plus 1 per two significant digits.
fn number_size(number: &str) -> usize {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    1 + significant.div_ceil(2)
}

fn base64_len(text: &str) -> usize {
    text.trim_end_matches('=').len() * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_items_size_counts_names_and_values_by_dynamodbs_rules() {
        let item = json!({"id": {"S": "abc"}, "n": {"N": "12345"}, "ok": {"BOOL": true}, "l": {"L": [{"S": "x"}]}});
        // id 2+3, n 1+(1+3), ok 2+1, l 1+(3+1+1)
        assert_eq!(item_size(&item), 5 + 5 + 3 + 6);
    }

    #[test]
    fn a_chain_counts_only_calls_that_wait_for_each_other() {
        let at = Instant::now();
        let call = |from: u64, to: u64| Metered {
            operation: "GetItem".into(),
            table: "t".into(),
            index: None,
            read_units: 1.0,
            write_units: 0.0,
            started: at + std::time::Duration::from_millis(from),
            ended: at + std::time::Duration::from_millis(to),
        };
        // Two side by side, then one after both: two one after another.
        assert_eq!(one_after_another(&[call(0, 10), call(1, 9), call(11, 20)]), 2);
        assert_eq!(one_after_another(&[call(0, 10), call(11, 20), call(21, 30)]), 3);
        assert_eq!(one_after_another(&[]), 0);
    }
}
