//! Watching the channel directory with inotify (never polling): sockets
//! and FIFOs that appear or go away.

use std::io;
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, StreamExt, WatchMask};

/// Something happened to a file of the channel directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirEvent {
    /// A file appeared (created or moved in).
    Appeared(PathBuf),
    /// A file went away (deleted or moved out).
    Gone(PathBuf),
}

/// A stream of [`DirEvent`]s for one directory.
pub struct DirWatch {
    dir: PathBuf,
    stream: inotify::EventStream<Vec<u8>>,
}

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatch").field("dir", &self.dir).finish()
    }
}

impl DirWatch {
    /// Starts watching `dir` (which must exist) for entries created or
    /// removed (sockets and FIFOs appear whole when created).
    pub fn new(dir: &Path) -> io::Result<Self> {
        Self::with_mask(dir, WatchMask::CREATE)
    }

    /// Starts watching `dir` for regular files completely written (a file
    /// "appears" when its writer closes it or it is moved in).
    pub fn files(dir: &Path) -> io::Result<Self> {
        Self::with_mask(dir, WatchMask::CLOSE_WRITE)
    }

    fn with_mask(dir: &Path, appear: WatchMask) -> io::Result<Self> {
        let inotify = Inotify::init()?;
        inotify.watches().add(
            dir,
            appear | WatchMask::DELETE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM,
        )?;
        let stream = inotify.into_event_stream(vec![0u8; 4096])?;
        Ok(DirWatch {
            dir: dir.to_owned(),
            stream,
        })
    }

    /// The next event; `None` if the watch ended.
    pub async fn next(&mut self) -> Option<io::Result<DirEvent>> {
        loop {
            let event = match self.stream.next().await? {
                Ok(e) => e,
                Err(e) => return Some(Err(e)),
            };
            let Some(name) = event.name else { continue };
            let path = self.dir.join(name);
            if event
                .mask
                .intersects(EventMask::CREATE | EventMask::CLOSE_WRITE | EventMask::MOVED_TO)
            {
                return Some(Ok(DirEvent::Appeared(path)));
            }
            if event
                .mask
                .intersects(EventMask::DELETE | EventMask::MOVED_FROM)
            {
                return Some(Ok(DirEvent::Gone(path)));
            }
        }
    }
}

/// The files already in `dir`, sorted.
pub fn scan(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sees_sockets_appear_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirWatch::new(dir.path()).unwrap();
        let path = dir.path().join("vm1.0");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap();
        assert_eq!(ev.unwrap().unwrap(), DirEvent::Appeared(path.clone()));
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap();
        assert_eq!(ev.unwrap().unwrap(), DirEvent::Gone(path));
    }
}
