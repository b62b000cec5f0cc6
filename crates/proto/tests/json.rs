//! DPDK's JSON forms: the guide's examples parsed into exact typed values,
//! every error path named by key and value, `to_json` and its round trip.

use proptest::prelude::*;
use vmpower_proto::json::{JsonError, parse_request, to_json};
use vmpower_proto::{
    CoreType, HourSchedule, HourSet, MacAddr, MacList, Policy, PolicyKind, QueryKind, Request,
    RequestBody, ScalingUnit, TrafficThresholds, VcpuList, VmName, WorkloadLevel,
};

/// The policy example of PROTOCOL.md (DPDK's guide), verbatim.
const POLICY_EXAMPLE: &str = r#"{"policy": {"name": "ubuntu", "command": "create", "policy_type": "TIME",
  "busy_hours": [17, 18, 19, 20, 21, 22, 23], "quiet_hours": [2, 3, 4, 5, 6],
  "core_list": [11]}}"#;

/// The instruction example of PROTOCOL.md (DPDK's guide), verbatim.
const INSTRUCTION_EXAMPLE: &str = r#"{"instruction": {"name": "ubuntu", "command": "power", "unit": "SCALE_MAX",
  "resource_id": 10}}"#;

fn name(s: &str) -> VmName {
    VmName::new(s).expect("valid test name")
}

fn ubuntu_time_policy() -> Request {
    Request {
        vm_name: name("ubuntu"),
        body: RequestBody::SetPolicy(Policy {
            core_type: CoreType::Physical,
            hours: HourSchedule {
                busy: HourSet::from_hours(17..=23).expect("hours"),
                quiet: HourSet::from_hours(2..=6).expect("hours"),
                traffic: HourSet::EMPTY,
            },
            ..Policy::new(
                PolicyKind::Time,
                VcpuList::from_slice(&[11]).expect("one core"),
            )
        }),
    }
}

fn ubuntu_scale_max() -> Request {
    Request {
        vm_name: name("ubuntu"),
        body: RequestBody::Power {
            resource_id: 10,
            core_type: CoreType::Physical,
            unit: ScalingUnit::ScaleMax,
        },
    }
}

/// A policy object with the given extra members after name and command.
fn policy_with(extra: &str) -> String {
    format!(
        r#"{{"policy": {{"name": "vm1", "command": "create", "policy_type": "TRAFFIC"{extra}}}}}"#
    )
}

fn err(text: &str) -> JsonError {
    match parse_request(text) {
        Ok(r) => panic!("accepted {text}: {r:?}"),
        Err(e) => e,
    }
}

#[test]
fn guide_policy_example_parses_to_exact_policy() {
    assert_eq!(parse_request(POLICY_EXAMPLE), Ok(ubuntu_time_policy()));
}

#[test]
fn guide_instruction_example_parses_to_exact_power_request() {
    assert_eq!(parse_request(INSTRUCTION_EXAMPLE), Ok(ubuntu_scale_max()));
}

#[test]
fn command_is_accepted_in_any_case() {
    for create in ["create", "CREATE", "Create"] {
        let text = POLICY_EXAMPLE.replace("\"create\"", &format!("\"{create}\""));
        assert_eq!(parse_request(&text), Ok(ubuntu_time_policy()), "{create}");
    }
    for power in ["power", "POWER", "Power"] {
        let text = INSTRUCTION_EXAMPLE.replace("\"power\"", &format!("\"{power}\""));
        assert_eq!(parse_request(&text), Ok(ubuntu_scale_max()), "{power}");
    }
}

#[test]
fn destroy_removes_the_policy_and_needs_no_policy_type() {
    for destroy in ["destroy", "DESTROY"] {
        let text = format!(r#"{{"policy": {{"name": "ubuntu", "command": "{destroy}"}}}}"#);
        let expected = Request {
            vm_name: name("ubuntu"),
            body: RequestBody::RemovePolicy,
        };
        assert_eq!(parse_request(&text), Ok(expected));
    }
    // The whole object is still checked.
    let text = r#"{"policy": {"name": "u", "command": "destroy", "busy_hours": [24]}}"#;
    assert!(matches!(err(text), JsonError::BadValue { key, .. } if key == "policy.busy_hours[0]"));
}

#[test]
fn every_policy_type_workload_and_unit_word_is_understood() {
    let kinds = [
        ("TIME", PolicyKind::Time),
        ("traffic", PolicyKind::Traffic),
        ("WORKLOAD", PolicyKind::Workload),
        ("Branch_Ratio", PolicyKind::BranchRatio),
    ];
    for (word, kind) in kinds {
        let text = format!(
            r#"{{"policy": {{"name": "a", "command": "create", "policy_type": "{word}"}}}}"#
        );
        let Ok(Request {
            body: RequestBody::SetPolicy(p),
            ..
        }) = parse_request(&text)
        else {
            panic!("{word} refused");
        };
        assert_eq!(p.kind, kind);
    }
    for (word, level) in [
        ("HIGH", WorkloadLevel::High),
        ("MEDIUM", WorkloadLevel::Medium),
        ("low", WorkloadLevel::Low),
    ] {
        let text = policy_with(&format!(r#", "workload": "{word}""#));
        let Ok(Request {
            body: RequestBody::SetPolicy(p),
            ..
        }) = parse_request(&text)
        else {
            panic!("{word} refused");
        };
        assert_eq!(p.workload, level);
    }
    let units = [
        ("SCALE_UP", ScalingUnit::ScaleUp),
        ("SCALE_DOWN", ScalingUnit::ScaleDown),
        ("SCALE_MAX", ScalingUnit::ScaleMax),
        ("SCALE_MIN", ScalingUnit::ScaleMin),
        ("ENABLE_TURBO", ScalingUnit::EnableTurbo),
        ("disable_turbo", ScalingUnit::DisableTurbo),
    ];
    for (word, unit) in units {
        let text = format!(
            r#"{{"instruction": {{"name": "a", "command": "power", "unit": "{word}", "resource_id": 3}}}}"#
        );
        let Ok(Request {
            body: RequestBody::Power { unit: got, .. },
            ..
        }) = parse_request(&text)
        else {
            panic!("{word} refused");
        };
        assert_eq!(got, unit);
    }
}

#[test]
fn traffic_policy_fields_land_in_the_model() {
    let text = policy_with(
        r#", "mac_list": ["de:ad:be:ef:01:02", "00-11-22-33-44-55"], "avg_packet_thresh": 100000,
           "max_packet_thresh": 4294967295, "core_list": [3, 1, 2], "quiet_hours": [0, 0, 5]"#,
    );
    let Ok(Request {
        body: RequestBody::SetPolicy(p),
        ..
    }) = parse_request(&text)
    else {
        panic!("refused {text}");
    };
    let macs: Vec<MacAddr> = ["de:ad:be:ef:01:02", "00:11:22:33:44:55"]
        .iter()
        .map(|s| s.parse().expect("mac"))
        .collect();
    assert_eq!(p.macs.as_slice(), &macs[..]);
    assert_eq!(
        p.traffic,
        TrafficThresholds {
            min_pps: 0,
            avg_pps: 100_000,
            max_pps: u32::MAX
        }
    );
    assert_eq!(p.cores.as_slice(), &[3, 1, 2]);
    assert_eq!(p.core_type, CoreType::Physical);
    // Hour 0 is an explicit hour here; repeats collapse.
    assert_eq!(p.hours.quiet, HourSet::from_hours([0, 5]).expect("hours"));
    assert!(p.hours.busy.is_empty());
}

#[test]
fn hour_outside_the_day_is_named_by_index() {
    let e = err(&policy_with(r#", "busy_hours": [1, 2, 3, 24]"#));
    assert_eq!(
        e.to_string(),
        "policy.busy_hours[3]: 24 is not an hour (0..=23)"
    );
    for bad in ["-1", "1.5", "300", "1e40"] {
        let e = err(&policy_with(&format!(r#", "quiet_hours": [{bad}]"#)));
        assert!(
            matches!(&e, JsonError::BadValue { key, .. } if key == "policy.quiet_hours[0]"),
            "{bad}: {e}"
        );
    }
    let e = err(&policy_with(r#", "quiet_hours": ["5"]"#));
    assert_eq!(
        e.to_string(),
        "policy.quiet_hours[0]: expected an integer hour (0..=23), got a string"
    );
    let e = err(&policy_with(r#", "busy_hours": 5"#));
    assert!(
        matches!(e, JsonError::WrongType { key, got: "an integer", .. } if key == "policy.busy_hours")
    );
}

#[test]
fn core_list_limits() {
    let e = err(&policy_with(
        r#", "core_list": [0, 1, 2, 3, 4, 5, 6, 7, 8]"#,
    ));
    assert_eq!(
        e.to_string(),
        "policy.core_list: [0,1,2,3,4,5,6,7,8] has 9 entries, at most 8 allowed"
    );
    let e = err(&policy_with(r#", "core_list": [256]"#));
    assert_eq!(
        e.to_string(),
        "policy.core_list[0]: 256 is too large (allowed: 0..=255)"
    );
    let e = err(&policy_with(r#", "core_list": [4, 5, 4]"#));
    assert_eq!(e.to_string(), "policy.core_list[2]: 4 is listed twice");
    let e = err(&policy_with(r#", "core_list": [null]"#));
    assert!(
        matches!(e, JsonError::WrongType { key, got: "null", .. } if key == "policy.core_list[0]")
    );
}

#[test]
fn mac_list_limits() {
    let e = err(&policy_with(
        r#", "mac_list": ["00:11:22:33:44:55", "00:11:22:33:44"]"#,
    ));
    assert_eq!(
        e.to_string(),
        "policy.mac_list[1]: \"00:11:22:33:44\" is not a MAC address (xx:xx:xx:xx:xx:xx)"
    );
    let eleven: Vec<String> = (0..11)
        .map(|i| format!("\"00:00:00:00:00:{i:02x}\""))
        .collect();
    let e = err(&policy_with(&format!(
        r#", "mac_list": [{}]"#,
        eleven.join(",")
    )));
    assert!(
        matches!(&e, JsonError::BadValue { key, reason, .. }
        if key == "policy.mac_list" && reason == "has 11 entries, at most 10 allowed"),
        "{e}"
    );
    let e = err(&policy_with(
        r#", "mac_list": ["00:11:22:33:44:55", "00:11:22:33:44:55"]"#,
    ));
    assert!(
        matches!(&e, JsonError::BadValue { key, reason, .. }
        if key == "policy.mac_list[1]" && reason == "is listed twice"),
        "{e}"
    );
    let e = err(&policy_with(r#", "mac_list": [17]"#));
    assert!(matches!(e, JsonError::WrongType { key, .. } if key == "policy.mac_list[0]"));
}

#[test]
fn unknown_words_are_refused_with_the_choices() {
    let e = err(r#"{"policy": {"name": "a", "command": "create", "policy_type": "SOMETIMES"}}"#);
    assert_eq!(
        e.to_string(),
        "policy.policy_type: \"SOMETIMES\" is not a policy type (TIME, TRAFFIC, WORKLOAD, BRANCH_RATIO)"
    );
    let e = err(
        r#"{"instruction": {"name": "a", "command": "power", "unit": "SCALE_SIDEWAYS", "resource_id": 1}}"#,
    );
    assert!(
        matches!(&e, JsonError::BadValue { key, value, .. }
        if key == "instruction.unit" && value == "\"SCALE_SIDEWAYS\""),
        "{e}"
    );
    let e = err(&policy_with(r#", "workload": "EXTREME""#));
    assert!(matches!(e, JsonError::BadValue { key, .. } if key == "policy.workload"));
    let e = err(r#"{"policy": {"name": "a", "command": "explode"}}"#);
    assert!(matches!(e, JsonError::BadValue { key, .. } if key == "policy.command"));
    let e = err(r#"{"policy": {"name": "a", "command": "create", "policy_type": 1}}"#);
    assert!(
        matches!(e, JsonError::WrongType { key, expected: "a string", .. } if key == "policy.policy_type")
    );
}

#[test]
fn command_must_belong_to_its_object() {
    let e = err(r#"{"policy": {"name": "a", "command": "POWER", "policy_type": "TIME"}}"#);
    assert_eq!(
        e.to_string(),
        "policy.command: \"POWER\" is an instruction command; a policy takes create or destroy"
    );
    let e = err(
        r#"{"instruction": {"name": "a", "command": "create", "unit": "SCALE_UP", "resource_id": 1}}"#,
    );
    assert!(matches!(e, JsonError::BadValue { key, .. } if key == "instruction.command"));
}

#[test]
fn thresholds_must_fit_u32() {
    let e = err(&policy_with(r#", "avg_packet_thresh": -1"#));
    assert_eq!(
        e.to_string(),
        "policy.avg_packet_thresh: -1 is negative (allowed: 0..=4294967295)"
    );
    let e = err(&policy_with(r#", "max_packet_thresh": 4294967296"#));
    assert_eq!(
        e.to_string(),
        "policy.max_packet_thresh: 4294967296 is too large (allowed: 0..=4294967295)"
    );
    let e = err(&policy_with(r#", "max_packet_thresh": 2.5"#));
    assert!(matches!(e, JsonError::BadValue { key, .. } if key == "policy.max_packet_thresh"));
    let e = err(&policy_with(r#", "avg_packet_thresh": "100""#));
    assert!(matches!(e, JsonError::WrongType { key, .. } if key == "policy.avg_packet_thresh"));
}

#[test]
fn resource_id_must_be_a_non_negative_integer() {
    let power = |id: &str| {
        format!(
            r#"{{"instruction": {{"name": "a", "command": "power", "unit": "SCALE_UP", "resource_id": {id}}}}}"#
        )
    };
    let e = err(&power("-1"));
    assert!(matches!(e, JsonError::BadValue { key, .. } if key == "instruction.resource_id"));
    let e = err(&power("\"10\""));
    assert!(matches!(e, JsonError::WrongType { key, .. } if key == "instruction.resource_id"));
    let e = err(&power("18446744073709551616"));
    assert!(matches!(e, JsonError::BadValue { key, .. } if key == "instruction.resource_id"));
    let Ok(Request {
        body: RequestBody::Power { resource_id, .. },
        ..
    }) = parse_request(power("18446744073709551615"))
    else {
        panic!("u64::MAX refused");
    };
    assert_eq!(resource_id, u64::MAX);
}

#[test]
fn name_must_be_a_short_non_empty_string() {
    let with_name = |n: &str| format!(r#"{{"policy": {{"name": {n}, "command": "destroy"}}}}"#);
    let e = err(&with_name(&format!("\"{}\"", "x".repeat(32))));
    assert!(
        matches!(&e, JsonError::BadValue { key, reason, .. }
        if key == "policy.name" && reason == "is longer than 31 bytes"),
        "{e}"
    );
    assert!(parse_request(with_name(&format!("\"{}\"", "x".repeat(31)))).is_ok());
    let e = err(&with_name("\"\""));
    assert_eq!(e.to_string(), "policy.name: \"\" is empty");
    let e = err(&with_name("\"a\\u0000b\""));
    assert!(matches!(e, JsonError::BadValue { reason, .. } if reason == "contains a NUL byte"));
    let e = err(&with_name("7"));
    assert!(matches!(e, JsonError::WrongType { key, .. } if key == "policy.name"));
}

#[test]
fn missing_keys_are_named() {
    let cases = [
        (
            r#"{"policy": {"command": "create", "policy_type": "TIME"}}"#,
            "policy",
            "name",
        ),
        (r#"{"policy": {"name": "a"}}"#, "policy", "command"),
        (
            r#"{"policy": {"name": "a", "command": "create"}}"#,
            "policy",
            "policy_type",
        ),
        (
            r#"{"instruction": {"name": "a", "command": "power", "resource_id": 1}}"#,
            "instruction",
            "unit",
        ),
        (
            r#"{"instruction": {"name": "a", "command": "power", "unit": "SCALE_UP"}}"#,
            "instruction",
            "resource_id",
        ),
        (
            r#"{"instruction": {"command": "power", "unit": "SCALE_UP", "resource_id": 1}}"#,
            "instruction",
            "name",
        ),
    ];
    for (text, object, key) in cases {
        assert_eq!(err(text), JsonError::MissingKey { object, key }, "{text}");
    }
    assert_eq!(
        err(cases[0].0).to_string(),
        "policy: missing required key \"name\""
    );
}

#[test]
fn unknown_and_repeated_keys_are_named() {
    let e = err(&policy_with(r#", "unit": "SCALE_UP""#));
    assert_eq!(
        e,
        JsonError::UnknownKey {
            object: "policy",
            key: "unit".into()
        }
    );
    let e = err(
        r#"{"instruction": {"name": "a", "command": "power", "unit": "SCALE_UP", "resource_id": 1, "speed": 9}}"#,
    );
    assert_eq!(
        e,
        JsonError::UnknownKey {
            object: "instruction",
            key: "speed".into()
        }
    );
    let e = err(&policy_with(r#", "name": "other""#));
    assert_eq!(
        e,
        JsonError::DuplicateKey {
            object: "policy",
            key: "name".into()
        }
    );
    let e = err(r#"{"policy": {}, "policy": {}}"#);
    assert_eq!(
        e,
        JsonError::DuplicateKey {
            object: "top level",
            key: "policy".into()
        }
    );
}

#[test]
fn top_level_shape_errors() {
    assert_eq!(
        err(r#"{"polcy": {}}"#),
        JsonError::UnknownTopLevel("polcy".into())
    );
    assert_eq!(err("{}"), JsonError::NotOneMessage { keys: vec![] });
    let both = r#"{"policy": {}, "instruction": {}}"#;
    assert_eq!(
        err(both),
        JsonError::NotOneMessage {
            keys: vec!["policy".into(), "instruction".into()]
        }
    );
    assert_eq!(err("[1, 2]"), JsonError::NotAnObject { got: "an array" });
    assert_eq!(
        err("\"policy\""),
        JsonError::NotAnObject { got: "a string" }
    );
    let e = err(r#"{"policy": [1]}"#);
    assert_eq!(
        e,
        JsonError::WrongType {
            key: "policy".into(),
            expected: "an object",
            got: "an array"
        }
    );
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = err("{\"policy\":\n  {\"name\" \"a\"}}");
    assert!(
        matches!(
            &e,
            JsonError::Syntax {
                line: 2,
                column: 11,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "invalid JSON at line 2, column 11: expected `:`"
    );
    assert!(matches!(err(""), JsonError::Syntax { .. }));
    assert!(matches!(
        err(&format!("{INSTRUCTION_EXAMPLE} x")),
        JsonError::Syntax { .. }
    ));
    assert!(matches!(
        err(&format!("{INSTRUCTION_EXAMPLE}{INSTRUCTION_EXAMPLE}")),
        JsonError::Syntax { .. }
    ));
    assert!(matches!(
        parse_request(b"{\"policy\": {\"name\": \"\xff\"}}"),
        Err(JsonError::Syntax { .. })
    ));
    // Whitespace around one object is fine.
    assert_eq!(
        parse_request(format!("\n {INSTRUCTION_EXAMPLE}\n")),
        Ok(ubuntu_scale_max())
    );
}

#[test]
fn bad_values_are_quoted_escaped_and_bounded() {
    let long = "\\n".repeat(100);
    let e = err(&policy_with(&format!(r#", "workload": "{long}""#)));
    let JsonError::BadValue { value, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(value.starts_with("\"\\n\\n"));
    assert!(value.ends_with('…'));
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn to_json_writes_dpdk_objects() {
    assert_eq!(
        to_json(&ubuntu_scale_max()),
        Ok(r#"{"instruction":{"name":"ubuntu","command":"power","unit":"SCALE_MAX","resource_id":10}}"#.to_owned())
    );
    assert_eq!(
        to_json(&ubuntu_time_policy()),
        Ok(concat!(
            r#"{"policy":{"name":"ubuntu","command":"create","policy_type":"TIME","#,
            r#""busy_hours":[17,18,19,20,21,22,23],"quiet_hours":[2,3,4,5,6],"core_list":[11]}}"#
        )
        .to_owned())
    );
    let remove = Request {
        vm_name: name("ubuntu"),
        body: RequestBody::RemovePolicy,
    };
    assert_eq!(
        to_json(&remove),
        Ok(r#"{"policy":{"name":"ubuntu","command":"destroy"}}"#.to_owned())
    );
}

#[test]
fn to_json_refuses_what_json_cannot_say() {
    let RequestBody::SetPolicy(base) = ubuntu_time_policy().body else {
        unreachable!()
    };
    let policy = |p: Policy| Request {
        vm_name: name("a"),
        body: RequestBody::SetPolicy(p),
    };
    let cases = [
        Request {
            vm_name: name("a"),
            body: RequestBody::Connect { resource_id: 0 },
        },
        Request {
            vm_name: name("a"),
            body: RequestBody::Query {
                kind: QueryKind::Freq,
                resource_id: 0,
            },
        },
        Request {
            vm_name: name("a"),
            body: RequestBody::Power {
                resource_id: 1,
                core_type: CoreType::Virtual,
                unit: ScalingUnit::ScaleUp,
            },
        },
        Request {
            vm_name: name(""),
            body: RequestBody::RemovePolicy,
        },
        policy(Policy {
            core_type: CoreType::Virtual,
            ..base
        }),
        policy(Policy {
            turbo_boost: true,
            ..base
        }),
        policy(Policy {
            traffic: TrafficThresholds {
                min_pps: 1,
                ..base.traffic
            },
            ..base
        }),
        policy(Policy {
            hours: HourSchedule {
                traffic: HourSet::from_hours([3]).expect("hour"),
                ..base.hours
            },
            ..base
        }),
        policy(Policy {
            cores: VcpuList::from_slice(&[1, 1]).expect("cores"),
            ..base
        }),
    ];
    for r in cases {
        assert!(
            matches!(to_json(&r), Err(JsonError::NotExpressible { .. })),
            "{r:?}"
        );
    }
}

fn distinct<T: PartialEq>(mut v: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    for x in v.drain(..) {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn hour_set() -> impl Strategy<Value = HourSet> {
    (0u32..1 << 24).prop_map(|bits| {
        HourSet::from_hours((0u8..24).filter(|h| bits & (1 << h) != 0)).expect("hours below 24")
    })
}

fn expressible_request() -> impl Strategy<Value = Request> {
    let vm_name =
        "[^\u{0}]{1,31}".prop_filter_map("fits 31 bytes", |s: String| VmName::new(&s).ok());
    let kind = prop_oneof![
        Just(PolicyKind::Time),
        Just(PolicyKind::Traffic),
        Just(PolicyKind::Workload),
        Just(PolicyKind::BranchRatio)
    ];
    let workload = prop_oneof![
        Just(WorkloadLevel::High),
        Just(WorkloadLevel::Medium),
        Just(WorkloadLevel::Low)
    ];
    let cores = prop::collection::vec(any::<u8>(), 0..=8)
        .prop_map(|v| VcpuList::from_slice(&distinct(v)).expect("at most 8"));
    let macs = prop::collection::vec(any::<[u8; 6]>(), 0..=10).prop_map(|v| {
        MacList::from_slice(&distinct(v.into_iter().map(MacAddr).collect())).expect("at most 10")
    });
    let policy = (
        kind,
        cores,
        macs,
        any::<(u32, u32)>(),
        hour_set(),
        hour_set(),
        workload,
    )
        .prop_map(
            |(kind, cores, macs, (avg_pps, max_pps), busy, quiet, workload)| {
                RequestBody::SetPolicy(Policy {
                    core_type: CoreType::Physical,
                    macs,
                    traffic: TrafficThresholds {
                        min_pps: 0,
                        avg_pps,
                        max_pps,
                    },
                    hours: HourSchedule {
                        busy,
                        quiet,
                        traffic: HourSet::EMPTY,
                    },
                    workload,
                    ..Policy::new(kind, cores)
                })
            },
        );
    let unit = (1u32..=6).prop_map(|c| ScalingUnit::from_code(c).expect("codes 1..=6"));
    let power = (any::<u64>(), unit).prop_map(|(resource_id, unit)| RequestBody::Power {
        resource_id,
        core_type: CoreType::Physical,
        unit,
    });
    let body = prop_oneof![policy, power, Just(RequestBody::RemovePolicy)];
    (vm_name, body).prop_map(|(vm_name, body)| Request { vm_name, body })
}

/// Any JSON value, with keys drawn mostly from the protocol's own.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "policy",
            "instruction",
            "name",
            "command",
            "policy_type",
            "busy_hours",
            "quiet_hours",
            "core_list",
            "mac_list",
            "avg_packet_thresh",
            "max_packet_thresh",
            "workload",
            "unit",
            "resource_id",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,6}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        (-1e20f64..1e20).prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "create",
            "POWER",
            "TIME",
            "SCALE_UP",
            "HIGH",
            "00:11:22:33:44:55"
        ])
        .prop_map(serde_json::Value::from),
        "\\PC{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_expressible_request_round_trips(req in expressible_request()) {
        let text = to_json(&req).expect("expressible");
        prop_assert_eq!(parse_request(&text), Ok(req));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_request(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics_and_errors_render(value in json_value()) {
        let text = value.to_string();
        match parse_request(&text) {
            Ok(req) => {
                // Whatever is accepted is expressible and stable.
                let again = to_json(&req).expect("a parsed request is expressible");
                prop_assert_eq!(parse_request(&again), Ok(req));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
