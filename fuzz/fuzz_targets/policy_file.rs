//! Fuzzes the policy-file parser as the daemon calls it on a file of
//! `policy_dir` (`PolicyFile::parse_named`): the first byte picks the
//! file's name (`.toml`, `.json`, or no extension: the format guessed),
//! the rest is its text. Must never panic (a parser's position inside a
//! multi-byte character once did); a file it accepts is a valid policy,
//! and written back as JSON it parses to the same file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vmpower_api::{PolicyFile, PolicyFormat};

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let name = match first % 3 {
        0 => "vm1.toml",
        1 => "vm1.json",
        _ => "vm1",
    };
    let text = String::from_utf8_lossy(bytes);
    let Ok(file) = PolicyFile::parse_named(Path::new(name), &text) else {
        return;
    };
    file.policy().expect("an accepted file is a valid policy");
    // NaN (TOML's `nan`) is not equal to itself, and JSON cannot say it.
    #[allow(clippy::eq_op)]
    let comparable = file == file;
    if comparable && let Ok(json) = serde_json::to_string(&file) {
        assert_eq!(PolicyFile::parse_as(&json, PolicyFormat::Json), Ok(file));
    }
});
