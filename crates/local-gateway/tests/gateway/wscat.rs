//! The README's transcript, run with wscat itself (pinned in tools/package.json) against the
//! local gateway: user 1 says "hello there!" and user 2 sees it.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{eventually, gateway};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

fn wscat(url: &str) -> Child {
    Command::new(chat_testing::tool("node/node_modules/.bin/wscat"))
        .args(["-c", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("wscat starts")
}

#[tokio::test]
async fn the_readme_transcript_works_with_wscat() {
    let gateway = gateway().await;
    let store = gateway.store().unwrap();
    // wscat drops lines typed before its socket opens, so wait for each to connect.
    let mut two = wscat(&format!("{}?userId=2", gateway.url()));
    eventually("wscat connected as user 2", || gateway.open_connections() == 1).await;
    let mut one = wscat(&format!("{}?userId=1", gateway.url()));
    eventually("wscat connected as user 1", || gateway.open_connections() == 2).await;

    let mut input = one.stdin.take().unwrap();
    input
        .write_all(b"{\"action\":\"sendMessage\",\"destinationUserId\":\"2\",\"body\":\"hello there!\"}\n")
        .await
        .unwrap();
    input.flush().await.unwrap();

    let mut lines = BufReader::new(two.stdout.take().unwrap()).lines();
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("senderId") {
                return line;
            }
        }
        panic!("wscat for user 2 ended without receiving the message");
    })
    .await
    .expect("user 2 receives the message within 10 s");
    // The README's line, `{"senderId":"1","body":"hello there!",…}`: the seed fields first, then
    // what storing the message added.
    let frame = received.trim_start_matches(|c: char| c != '{');
    assert!(
        frame.starts_with(r#"{"senderId":"1","body":"hello there!","destinationUserId":"2","seq":1,"sentAt":"#),
        "{received}"
    );

    drop(input);
    drop(two.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = one.wait().await;
        let _ = two.wait().await;
    })
    .await;
    eventually("both connections are forgotten", || store.is_empty()).await;
}
