//! Fuzzes the control API's request line as the daemon decodes it
//! (`CtlRequest::from_line`, at most 64 KiB + 1 bytes, as the daemon cuts
//! it). Must never panic; a request it accepts, encoded again as
//! `vmpowerctl` sends it, decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmpower_api::CtlRequest;

fuzz_target!(|data: &[u8]| {
    let line = &data[..data.len().min(64 * 1024 + 1)];
    if let Ok(request) = CtlRequest::from_line(line) {
        let mut again = serde_json::to_vec(&request).expect("a request encodes");
        again.push(b'\n');
        assert_eq!(CtlRequest::from_line(&again).ok(), Some(request));
    }
});
