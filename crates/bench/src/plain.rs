//! The plain reader of the throughput benchmark's baseline (hidden
//! subcommand `plain-reader`): connects as a client to `<dir>/vm<i>.0`
//! like the daemon and only reads and discards, on a tokio multi-thread
//! runtime like the daemon's, with the daemon's 64 KiB read size. No
//! decoding, no engine, no replies.
//!
//! It exits on its own after [`MAX_LIFETIME`] so that it can never be left
//! behind; the bench kills it as soon as it is done.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::net::UnixStream;

/// The longest the reader lives.
pub const MAX_LIFETIME: Duration = Duration::from_secs(900);
/// Bytes read at once (the daemon's `READ_BUF`).
const READ_BUF: usize = 64 * 1024;

/// Connects to `count` channels in `dir` and drains them.
pub fn run(dir: &Path, count: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for i in 0..count {
            let path = dir.join(format!("{}.0", crate::host::vm_name(i)));
            let stream = UnixStream::connect(&path)
                .await
                .with_context(|| format!("cannot connect to {}", path.display()))?;
            tokio::spawn(async move {
                let mut buf = vec![0u8; READ_BUF];
                loop {
                    if stream.readable().await.is_err() {
                        return;
                    }
                    match stream.try_read(&mut buf) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
            });
        }
        tokio::time::sleep(MAX_LIFETIME).await;
        anyhow::Ok(())
    })
}
