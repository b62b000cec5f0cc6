//! Scenario 7, DPDK's own guest library in a real guest: the C program
//! `tests/dpdk-guest/dpdk_power_guest.c`, linked with Debian's DPDK 22.11
//! (`librte_power`, `kvm_vm` environment; its shared libraries are in the
//! initramfs), runs inside the QEMU guest on the real virtio-serial ports
//! of a 2-vCPU VM pinned to host CPUs A and B. It reads every reply as
//! DPDK's `guest_cli` does and fails a step on a stale, missing, late
//! (past DPDK's 10 ms window) or unexpected reply (see its README).
//!
//! The program reads its steps from a FIFO in the guest, so this scenario
//! sends one step at a time and checks the fake sysfs between steps: after
//! each direct command the right host CPU is where librte_power's
//! semantics put it and the other one has not moved. Queries are refused
//! (no reply on DPDK's wire) until `vmpowerctl set-query vm7 enable`, then
//! answered with the frequencies the fake sysfs holds. Then a policy of
//! each kind, its removal (no reply), and a direct command still answered
//! as its own; at the end the ports hold no leftover bytes.

use anyhow::{Context, bail};

use super::{boot_pinned, two_cpus_and_daemon};
use crate::daemon::Daemon;
use crate::guest_ctl::GuestCtl;
use crate::qemu::VmSpec;
use crate::work::Work;

/// The program's input and output in the guest.
const FIFO: &str = "/tmp/dpdk.in";
const OUT: &str = "/tmp/dpdk.out";

/// The DPDK guest program running in the background in the guest.
struct DpdkGuest {
    ctl: GuestCtl,
    /// Lines the program has printed so far (the first is `start ...`).
    lines: usize,
    /// Every step whose verdict was not ok, with its line.
    failures: Vec<String>,
}

impl DpdkGuest {
    /// Starts the program on a FIFO held open by a `sleep` (whose pid is
    /// kept, so closing the input is killing it) and waits for its first line.
    fn start(ctl: GuestCtl) -> anyhow::Result<DpdkGuest> {
        let mut g = DpdkGuest {
            ctl,
            lines: 0,
            failures: Vec::new(),
        };
        g.ctl.run_ok(&format!(
            "mkfifo {FIFO} && {{ sleep 100000 >{FIFO} & echo $! >/tmp/dpdk.holder; }} && \
             {{ dpdk_power_guest -n vm7 -L <{FIFO} >{OUT} 2>/tmp/dpdk.err; echo \"exit $?\" >>{OUT}; }} &"
        ))?;
        let first = g.next_line()?;
        if !first.starts_with("start ") {
            bail!("the DPDK guest did not start: {first}");
        }
        Ok(g)
    }

    /// Waits (at most 20 s) for the program's next line and returns it.
    fn next_line(&mut self) -> anyhow::Result<String> {
        self.lines += 1;
        let n = self.lines;
        let out = self.ctl.run_ok(&format!(
            "i=0; while [ $(wc -l <{OUT}) -lt {n} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; \
             sed -n {n}p {OUT}"
        ))?;
        let line = out.trim().to_owned();
        if line.is_empty() {
            let err = self.ctl.run("cat /tmp/dpdk.err")?.text;
            bail!("the DPDK guest printed no line {n} within 20 s; its stderr:\n{err}");
        }
        Ok(line)
    }

    /// Sends one step and returns its line; a verdict other than ok is
    /// recorded as a failure of this step.
    fn step(&mut self, step: &str) -> anyhow::Result<String> {
        self.ctl.run_ok(&format!("echo '{step}' >{FIFO}"))?;
        let line = self.next_line()?;
        if !line.contains(" result=ok") {
            self.failures.push(format!("step `{step}`: {line}"));
        }
        Ok(line)
    }

    /// Waits for a policy's effect on `cpus`; a timeout is recorded.
    fn wait_speeds(&mut self, daemon: &Daemon, step: &str, cpus: &[u32], khz: u32) {
        for &cpu in cpus {
            if let Err(e) = daemon.wait_speed(cpu, khz) {
                self.failures.push(format!("step `{step}`: {e:#}"));
            }
        }
    }

    /// Closes the program's input: it drains every port (any leftover byte
    /// fails) and exits; each line it prints then must be ok.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.ctl.run_ok("kill $(cat /tmp/dpdk.holder)")?;
        loop {
            let line = self.next_line()?;
            if line.starts_with("exit ") {
                if line != "exit 0" && self.failures.is_empty() {
                    self.failures
                        .push(format!("the DPDK guest ended with `{line}`"));
                }
                return Ok(());
            }
            if line.starts_with("summary ") {
                // The reply times, for the run's log.
                println!("e2e: scenario 7: {line}");
            } else if !line.contains(" result=ok") {
                self.failures.push(format!("end of session: {line}"));
            }
        }
    }
}

/// The value of `key=` in a verdict line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(" why=")
        .next()?
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Runs the scenario.
pub fn run(work: &Work) -> anyhow::Result<()> {
    let dir = work.scenario_dir("s7")?;
    let (a, b, mut daemon) = two_cpus_and_daemon(work, &dir)?;
    let spec = VmSpec::new("vm7", 2, &daemon.channel_dir);
    let (mut vm, ctl) = boot_pinned(work, &dir.join("vm7"), &daemon, &spec, &[a, b])?;
    let t = daemon.table(a)?;
    let last = t.len().checked_sub(1).context("empty frequency table")?;
    let pcpus = [a, b];
    let mut g = DpdkGuest::start(ctl)?;

    // rte_power_init: CONNECT from an uninitialised struct, no reply due.
    g.step("init 0")?;
    g.step("init 1")?;
    // Every direct command, each moving the core (table index after it):
    // enable_turbo moves to max, the turbo entry, as DPDK's acpi backend.
    let units = [
        ("min", last),
        ("up", last - 1),
        ("down", last),
        ("max", 0),
        ("disable_turbo", 1),
        ("min", last),
        ("max", 1),
        ("enable_turbo", 0),
        ("down", 1),
        ("up", 0),
    ];
    for lcore in 0..2 {
        let (mine, other) = (pcpus[lcore], pcpus[1 - lcore]);
        // After the first difference on this CPU the expected indexes no
        // longer hold: its later steps are checked for their verdicts only.
        let mut diverged = false;
        for (unit, index) in units {
            let before = daemon.setspeed(other)?;
            let step = format!("power {lcore} {unit} ack");
            g.step(&step)?;
            let (now, other_now) = (daemon.setspeed(mine)?, daemon.setspeed(other)?);
            if !diverged && now != Some(t[index]) {
                diverged = true;
                g.failures.push(format!(
                    "step `{step}`: CPU {mine} at {now:?} kHz, expected {} \
                     (its later steps: verdicts only)",
                    t[index]
                ));
            }
            if other_now != before {
                g.failures.push(format!(
                    "step `{step}`: CPU {other} moved from {before:?} to {other_now:?} kHz"
                ));
            }
        }
        g.step(&format!("unit {lcore} 0 none"))?;
        g.step(&format!("unit {lcore} 7 none"))?;
    }

    // Queries: nothing on DPDK's wire while refused; then the answers.
    let queries = [(0, "freq_list"), (1, "freq"), (0, "caps_list"), (1, "caps")];
    for (lcore, kind) in queries {
        g.step(&format!("query {lcore} {kind} none"))?;
    }
    daemon.ctl(&["set-query", "vm7", "enable"])?;
    for (lcore, kind) in queries {
        let step = format!("query {lcore} {kind} reply");
        let line = g.step(&step)?;
        let vcpus: &[usize] = if kind.ends_with("_list") {
            &[0, 1]
        } else {
            &[lcore]
        };
        for &vcpu in vcpus {
            let want = if kind.starts_with("caps") {
                "turbo:1,priority:0".to_owned()
            } else {
                let now = daemon.setspeed(pcpus[vcpu])?;
                format!("{}kHz", now.unwrap_or_default())
            };
            let got = field(&line, &format!("vcpu{vcpu}"));
            if line.contains(" result=ok") && got != Some(want.as_str()) {
                g.failures.push(format!(
                    "step `{step}`: vCPU {vcpu} {got:?}, expected {want}: {line}"
                ));
            }
        }
    }

    // A policy of each kind on lcore 1's channel, as guest_cli sends it.
    g.step("policy 1 traffic ack 0,1 mac=52:54:00:dd:00:07 avg=1800000 max=2000000")?;
    let every_hour = (0..24).map(|h| h.to_string()).collect::<Vec<_>>().join(",");
    let step = format!("policy 1 time ack 0,1 busy={every_hour}");
    g.step(&step)?;
    g.wait_speeds(&daemon, &step, &[a, b], t[0]);
    let step = "policy 1 workload ack 0,1 workload=low";
    g.step(step)?;
    g.wait_speeds(&daemon, step, &[a, b], t[last]);
    g.step("policy 1 branch_ratio verdict 0,1")?;
    g.step("remove 1 none")?;
    // Still in step after the removal.
    g.step("power 0 max ack")?;
    g.wait_speeds(&daemon, "power 0 max ack", &[a], t[0]);
    g.finish()?;
    if !g.failures.is_empty() {
        bail!(
            "DPDK's guest library: {} difference(s) from DPDK's reply contract:\n{}\n{}",
            g.failures.len(),
            g.failures.join("\n"),
            daemon.log_tail()
        );
    }
    vm.quit()?;
    daemon.stop()
}
