//! Bounded waiting: every wait in the harness goes through [`until`] (or
//! has its own explicit deadline), so a run can never hang.

use std::time::{Duration, Instant};

use anyhow::bail;

/// Poll interval of [`until`].
const POLL: Duration = Duration::from_millis(50);

/// Calls `probe` until it returns `Some`, at most for `timeout`; the error
/// says what was awaited (`what`) and the last state `probe` described.
pub fn until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match probe() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            match last_error {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_or_times_out_with_the_reason() {
        let mut n = 0;
        let v = until("three calls", Duration::from_secs(5), || {
            n += 1;
            Ok((n == 3).then_some(n))
        })
        .unwrap();
        assert_eq!(v, 3);
        let e = until::<()>("never", Duration::from_millis(10), || {
            anyhow::bail!("still 7")
        })
        .unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("never") && text.contains("still 7"), "{text}");
    }
}
