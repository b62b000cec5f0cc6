//! What the telemetry commands the agent uses answer, typed: the
//! greeting, `/eal/lcore/usage`, `/eal/lcore/info,N`, `/ethdev/list` and
//! `/ethdev/stats,N`, as DPDK's source writes them. Pure parsing; every
//! error says which field was wrong. Fields DPDK added later or that the
//! agent does not use are ignored.

use serde_json::{Map, Value};

use super::client::{MAX_OUTPUT_LIMIT, excerpt};

/// The most lcores or ports a reply may list (DPDK's `RTE_MAX_LCORE`
/// is 128 by default, `RTE_MAX_ETHPORTS` 32; both are build options).
pub const MAX_ENTRIES: usize = 1024;

/// The greeting DPDK sends on accept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Greeting {
    /// DPDK's version string, e.g. `DPDK 22.11.11`.
    pub version: String,
    /// The application's process id.
    pub pid: u32,
    /// The longest reply the application writes.
    pub max_output_len: usize,
}

impl Greeting {
    /// Parses `{"version":"...","pid":N,"max_output_len":N}`.
    pub fn parse(bytes: &[u8]) -> Result<Greeting, String> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("not JSON ({e}): {}", excerpt(bytes)))?;
        let map = value
            .as_object()
            .ok_or_else(|| format!("not a JSON object: {}", excerpt(bytes)))?;
        let version = map
            .get("version")
            .and_then(Value::as_str)
            .ok_or("no \"version\" string")?
            .to_owned();
        let pid = uint(map, "pid")?;
        let pid = u32::try_from(pid).map_err(|_| format!("pid {pid} is not a process id"))?;
        let max = uint(map, "max_output_len")?;
        let max_output_len = usize::try_from(max)
            .ok()
            .filter(|m| (64..=MAX_OUTPUT_LIMIT).contains(m))
            .ok_or_else(|| {
                format!("max_output_len {max} is outside 64..={MAX_OUTPUT_LIMIT} bytes")
            })?;
        Ok(Greeting {
            version,
            pid,
            max_output_len,
        })
    }
}

/// One lcore's cycle counters from `/eal/lcore/usage` (cumulative since
/// the application registered its usage callback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LcoreCycles {
    /// The lcore id.
    pub lcore: u32,
    /// Cycles spent doing work.
    pub busy: u64,
    /// All cycles counted.
    pub total: u64,
}

/// Parses `/eal/lcore/usage` (DPDK ≥ 23.03): a dict of equally long
/// arrays `lcore_ids`, `total_cycles`, `busy_cycles` (and, since 23.11,
/// `usage_ratio` strings, ignored). Empty arrays mean the application
/// registered no usage callback.
pub fn lcore_usage(value: &Value) -> Result<Vec<LcoreCycles>, String> {
    let map = value.as_object().ok_or("not a dict")?;
    let ids = uint_array(map, "lcore_ids")?;
    let total = uint_array(map, "total_cycles")?;
    let busy = uint_array(map, "busy_cycles")?;
    if ids.len() != total.len() || ids.len() != busy.len() {
        return Err(format!(
            "lcore_ids, total_cycles and busy_cycles differ in length ({}, {}, {})",
            ids.len(),
            total.len(),
            busy.len()
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    for ((id, total), busy) in ids.into_iter().zip(total).zip(busy) {
        let lcore = u32::try_from(id).map_err(|_| format!("lcore id {id} is out of range"))?;
        if out.iter().any(|c: &LcoreCycles| c.lcore == lcore) {
            return Err(format!("lcore {lcore} is listed twice"));
        }
        out.push(LcoreCycles { lcore, busy, total });
    }
    Ok(out)
}

/// The CPUs an lcore may run on, from `/eal/lcore/info,N` (DPDK ≥
/// 23.03): a dict with `lcore_id` and `cpuset` (an array of CPU numbers).
pub fn lcore_cpus(value: &Value, lcore: u32) -> Result<Vec<u32>, String> {
    let map = value.as_object().ok_or("not a dict")?;
    let id = uint(map, "lcore_id")?;
    if id != u64::from(lcore) {
        return Err(format!("lcore_id {id} where {lcore} was asked"));
    }
    uint_array(map, "cpuset")?
        .into_iter()
        .map(|c| u32::try_from(c).map_err(|_| format!("CPU {c} is out of range")))
        .collect()
}

/// The port ids of `/ethdev/list`.
pub fn port_list(value: &Value) -> Result<Vec<u16>, String> {
    let Value::Array(items) = value else {
        return Err("not an array".to_owned());
    };
    if items.len() > MAX_ENTRIES {
        return Err(format!("{} ports, more than {MAX_ENTRIES}", items.len()));
    }
    items
        .iter()
        .map(|v| {
            v.as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| format!("{v} is not a port id"))
        })
        .collect()
}

/// The counters of `/ethdev/stats,N` the agent reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets the hardware dropped because the application did not
    /// take them in time (rx queue full).
    pub imissed: u64,
}

/// Parses `/ethdev/stats,N`.
pub fn port_stats(value: &Value) -> Result<PortStats, String> {
    let map = value.as_object().ok_or("not a dict")?;
    Ok(PortStats {
        ipackets: uint(map, "ipackets")?,
        imissed: uint(map, "imissed")?,
    })
}

fn uint(map: &Map<String, Value>, key: &str) -> Result<u64, String> {
    match map.get(key) {
        None => Err(format!("no \"{key}\"")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("\"{key}\" is {v}, not an unsigned integer")),
    }
}

fn uint_array(map: &Map<String, Value>, key: &str) -> Result<Vec<u64>, String> {
    let items = match map.get(key) {
        None => return Err(format!("no \"{key}\"")),
        Some(Value::Array(items)) => items,
        Some(v) => return Err(format!("\"{key}\" is {}, not an array", short(v))),
    };
    if items.len() > MAX_ENTRIES {
        return Err(format!(
            "\"{key}\" has {} entries, more than {MAX_ENTRIES}",
            items.len()
        ));
    }
    items
        .iter()
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| format!("\"{key}\" holds {}, not an unsigned integer", short(v)))
        })
        .collect()
}

fn short(v: &Value) -> String {
    excerpt(v.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn greetings_as_dpdk_writes_them() {
        let g =
            Greeting::parse(br#"{"version":"DPDK 22.11.11","pid":3647,"max_output_len":16384}"#)
                .unwrap();
        assert_eq!(g.version, "DPDK 22.11.11");
        assert_eq!(g.pid, 3647);
        assert_eq!(g.max_output_len, 16384);
        for bad in [
            &br#"{"version":"x","pid":1}"#[..],
            br#"{"version":"x","pid":1,"max_output_len":0}"#,
            br#"{"version":"x","pid":1,"max_output_len":99999999999}"#,
            br#"{"version":"x","pid":-1,"max_output_len":16384}"#,
            br#"{"version":3,"pid":1,"max_output_len":16384}"#,
            br#"hello"#,
        ] {
            assert!(
                Greeting::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn lcore_usage_as_23_11_writes_it() {
        let v = json!({"lcore_ids":[1,2],"total_cycles":[1000,2000],"busy_cycles":[500,0],
                       "usage_ratio":["50.00%","0.00%"]});
        assert_eq!(
            lcore_usage(&v).unwrap(),
            vec![
                LcoreCycles {
                    lcore: 1,
                    busy: 500,
                    total: 1000
                },
                LcoreCycles {
                    lcore: 2,
                    busy: 0,
                    total: 2000
                },
            ]
        );
        let empty = json!({"lcore_ids":[],"total_cycles":[],"busy_cycles":[]});
        assert_eq!(lcore_usage(&empty).unwrap(), vec![]);
        for bad in [
            json!({"lcore_ids":[1],"total_cycles":[1],"busy_cycles":[]}),
            json!({"lcore_ids":[1,1],"total_cycles":[1,1],"busy_cycles":[0,0]}),
            json!({"lcore_ids":[1],"total_cycles":[-1],"busy_cycles":[0]}),
            json!({"lcore_ids":[1],"total_cycles":"1","busy_cycles":[0]}),
            json!({"lcore_ids":[5000000000u64],"total_cycles":[1],"busy_cycles":[0]}),
            json!([1, 2]),
        ] {
            assert!(lcore_usage(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lcore_info_ports_and_stats() {
        let info = json!({"lcore_id":3,"socket":0,"role":"RTE","cpuset":[5]});
        assert_eq!(lcore_cpus(&info, 3).unwrap(), vec![5]);
        assert!(lcore_cpus(&info, 4).is_err());
        assert_eq!(port_list(&json!([0, 1])).unwrap(), vec![0, 1]);
        assert!(port_list(&json!([70000])).is_err());
        let stats = json!({"ipackets":27842944,"opackets":1,"imissed":7,"q_ipackets":[1,0]});
        assert_eq!(
            port_stats(&stats).unwrap(),
            PortStats {
                ipackets: 27842944,
                imissed: 7
            }
        );
        let err = port_stats(&json!({"ipackets":1})).unwrap_err();
        assert_eq!(err, "no \"imissed\"");
    }
}

#[cfg(test)]
mod hostile {
    use super::*;
    use crate::telemetry::parse_reply;
    use proptest::prelude::*;

    /// JSON values of any shape, numbers of any sign and size included.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z_]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            let keys = prop_oneof![
                Just("lcore_ids".to_owned()),
                Just("total_cycles".to_owned()),
                Just("busy_cycles".to_owned()),
                Just("lcore_id".to_owned()),
                Just("cpuset".to_owned()),
                Just("ipackets".to_owned()),
                Just("imissed".to_owned()),
                "[a-z]{1,6}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_bytes_are_a_reply_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_reply(&bytes, "/ethdev/list");
            let _ = Greeting::parse(&bytes);
        }

        #[test]
        fn any_value_is_read_or_refused(v in json(), lcore in 0u32..8) {
            if let Ok(cycles) = lcore_usage(&v) {
                // What is accepted is consistent: distinct lcores.
                let ids: std::collections::BTreeSet<u32> = cycles.iter().map(|c| c.lcore).collect();
                prop_assert_eq!(ids.len(), cycles.len());
            }
            let _ = lcore_cpus(&v, lcore);
            let _ = port_list(&v);
            let _ = port_stats(&v);
        }
    }
}
