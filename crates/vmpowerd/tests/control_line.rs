//! The real binary's control socket against a client that sends 8 MiB
//! without a newline: answered with an error at 64 KiB and disconnected,
//! its memory stays bounded, and the next client is served.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

use vmpower_api::{Client, CtlRequest, CtlResponse};

use vmpower_testkit::binary::{Setup, WAIT, rss_kib};

#[test]
fn a_line_without_end_is_cut_at_64_kib_answered_and_disconnected() {
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let daemon = s.spawn_logging();
    let pid = daemon.child.id();
    let before = rss_kib(pid);
    let client = UnixStream::connect(s.control()).unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    let mut writer = client.try_clone().unwrap();
    // The daemon stops reading at the cap: the rest of the write fails
    // (EPIPE, reset) once it has disconnected, or stays unread.
    let flood = std::thread::spawn(move || {
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 8 * 1024 * 1024 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
    });
    let mut reader = BufReader::new(client);
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .expect("no answer to an over-long line in time");
    let answer: CtlResponse = serde_json::from_str(&answer).unwrap();
    let CtlResponse::Error(e) = answer else {
        panic!("{answer:?}")
    };
    assert!(e.message.contains("longer than 65536 bytes"), "{e:?}");
    let mut rest = Vec::new();
    // Disconnected: end of file (or a reset), never more answers.
    let _ = reader.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    flood.join().unwrap();
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown < 4 * 1024, "RSS grew by {grown} KiB");
    let status = Client::connect(&s.control())
        .unwrap()
        .call(&CtlRequest::Status)
        .unwrap();
    assert!(matches!(status, CtlResponse::Ok(_)), "{status:?}");
    daemon.stop();
}
