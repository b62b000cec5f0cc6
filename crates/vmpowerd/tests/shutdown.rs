//! The daemon's stop, in-process: one signal ends every task, the control
//! socket's clients included, before every CPU is given back.

#![allow(clippy::unwrap_used)]

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use vmpower_testkit::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_client_still_connected_is_disconnected_at_stop() {
    let mut host = Host::start(&[("vm1", vm(&[1]))]).await;
    let stream = UnixStream::connect(&host.config.control_socket)
        .await
        .unwrap();
    let mut client = BufReader::new(stream);
    // Served: its task runs.
    let mut line = serde_json::to_string(&vmpower_api::CtlRequest::Status).unwrap();
    line.push('\n');
    client.get_mut().write_all(line.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, client.read_line(&mut answer))
        .await
        .expect("status answered")
        .unwrap();
    let answer: vmpower_api::CtlResponse = serde_json::from_str(&answer).unwrap();
    assert!(
        matches!(answer, vmpower_api::CtlResponse::Ok(_)),
        "{answer:?}"
    );
    host.stop().await.unwrap();
    // Its task ended with the daemon: the connection is closed, so no
    // request of it can act after every CPU was given back.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
        .await
        .expect("the connection was closed at stop");
    assert_eq!(read.unwrap(), 0, "{rest:?}");
}
