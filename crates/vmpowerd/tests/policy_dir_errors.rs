//! What a policy file's refusal says: a `.json` file gets JSON's error
//! (not TOML's), and a parse error names line, column and key without
//! quoting an over-long line.

#![allow(clippy::unwrap_used)]

use vmpower_api::CtlRequest;
use vmpower_testkit::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_speak_the_files_format_and_name_the_key() {
    let mut host = Host::start_adjusted(&[("vm1", vm(&[1]))], |c| {
        std::fs::create_dir_all(&c.policy_dir).unwrap();
    })
    .await;
    let dir = host.config.policy_dir.clone();
    std::fs::write(dir.join("bad.json"), "vm = \"vm1\"\n").unwrap();
    let cores: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let long = format!(
        "vm = \"vm1\"\nkind = \"TIME\"\ncores = [{}]\n",
        cores.join(",")
    );
    std::fs::write(dir.join("long.toml"), long).unwrap();
    let refused = || host.ok(&CtlRequest::Status)["stats"]["policy_files_refused"].clone();
    wait_for(|| refused().as_array().is_some_and(|a| a.len() == 2)).await;
    let refused = refused();
    let error = |name: &str| {
        let file = serde_json::json!(dir.join(name));
        refused
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["file"] == file)
            .map(|r| r["error"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let json = error("bad.json");
    assert!(
        json.starts_with("JSON parse error at line 1, column 1"),
        "{json}"
    );
    let toml = error("long.toml");
    assert!(toml.contains("key `cores`") && toml.len() < 200, "{toml}");
    host.stop().await.unwrap();
}
