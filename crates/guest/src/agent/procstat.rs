//! The kernel's view of busyness, per CPU, from `/proc/stat`: the share
//! of time not idle (nor waiting for I/O). The agent's source when DPDK's
//! lcore usage is not served (DPDK before 23.03, an application that
//! registers no usage callback, or no application at all). A DPDK poll
//! loop never idles, so its CPUs read as fully busy here: the host then
//! keeps them fast, which is safe, never cheap.

use std::path::Path;

use super::deltas::Counter;

/// Parses the `cpuN` lines of `/proc/stat` into busy and total clock
/// ticks per CPU (`user nice system idle iowait irq softirq steal`; the
/// guest columns are already in `user` and `nice`). The `cpu` total
/// line and other lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Counter>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(name) = fields.next() else { continue };
        let Some(cpu) = name.strip_prefix("cpu").filter(|n| !n.is_empty()) else {
            continue;
        };
        let cpu: u32 = cpu
            .parse()
            .map_err(|_| format!("{name:?} is not a CPU line"))?;
        let ticks: Vec<u64> = fields
            .take(8)
            .map(|f| {
                f.parse()
                    .map_err(|_| format!("{name}: {f:?} is not a tick count"))
            })
            .collect::<Result<_, _>>()?;
        if ticks.len() < 4 {
            return Err(format!(
                "{name}: {} columns, at least 4 expected",
                ticks.len()
            ));
        }
        let total = ticks.iter().fold(0u64, |a, t| a.saturating_add(*t));
        let idle = ticks[3].saturating_add(ticks.get(4).copied().unwrap_or(0));
        out.push(Counter {
            key: cpu,
            busy: total.saturating_sub(idle),
            total,
        });
    }
    if out.is_empty() {
        return Err("no cpuN line".to_owned());
    }
    Ok(out)
}

/// Reads and parses `<proc_root>/stat`.
pub fn read(proc_root: &Path) -> Result<Vec<Counter>, String> {
    let path = proc_root.join("stat");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lines_as_the_kernel_writes_them() {
        let text = "cpu  10 0 10 80 0 0 0 0 0 0\n\
                    cpu0 5 1 4 40 10 0 0 0 0 0\n\
                    cpu1 5 0 5 30 0 0 0 5 0 0\n\
                    intr 12345 0 0\nctxt 99\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                Counter {
                    key: 0,
                    busy: 10,
                    total: 60
                },
                Counter {
                    key: 1,
                    busy: 15,
                    total: 45
                },
            ]
        );
        assert!(parse("cpu 1 2 3 4\n").is_err(), "no per-CPU line");
        assert!(parse("cpu0 1 2 x 4\n").is_err());
        assert!(parse("cpu0 1 2\n").is_err());
        assert!(parse("cpuX 1 2 3 4\n").is_err());
    }
}
