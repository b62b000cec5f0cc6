//! vmpowerd as an operator runs it, on a fake host: a fake sysfs tree
//! (acpi-cpufreq with turbo, one CPU per host CPU or more) in the
//! scenario's directory, the real /proc, and its channel directory, state
//! and control socket in temp dirs; vmpowerctl to talk to it; and reads of
//! the fake tree's files, which is where the daemon's decisions land.
//!
//! ## Behavior
//! - The daemon re-reads vCPU placement every 200 ms (the default 5 s
//!   would only slow the re-pin scenarios down).
//! - [`Daemon::stop`] sends SIGTERM and then checks that every CPU's
//!   governor is back to what the tree started with (the daemon's promise
//!   to leave the host as found).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use vmpower_cpufreq::Driver;
use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_testkit::HostDirs;

use crate::proc::Proc;
use crate::wait;
use crate::work::Work;

/// Bound on waiting for a decision to reach the fake sysfs tree.
pub const EFFECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The governor the fake tree starts with.
const INITIAL_GOVERNOR: &str = "schedutil";

/// How to start the daemon.
#[derive(Debug, Clone, Default)]
pub struct DaemonSpec {
    /// CPUs of the fake host.
    pub cpus: u32,
    /// TOML appended to the generated configuration (e.g. `[vm.x]` tables).
    pub extra_config: String,
    /// `--libvirt-uri`.
    pub libvirt_uri: Option<String>,
    /// How often the daemon re-reads vCPU placement (default 200 ms).
    pub placement_refresh_ms: Option<u64>,
}

/// A running vmpowerd.
#[derive(Debug)]
pub struct Daemon {
    /// The fake sysfs root.
    pub sysfs: PathBuf,
    /// The channel directory.
    pub channel_dir: PathBuf,
    /// The control socket.
    pub control_socket: PathBuf,
    vmpowerctl: PathBuf,
    cpus: u32,
    proc: Proc,
}

impl Daemon {
    /// Builds the fake host under `dir` and starts the daemon on it.
    pub fn start(work: &Work, dir: &Path, spec: &DaemonSpec) -> anyhow::Result<Daemon> {
        let mut dirs = HostDirs::under(dir);
        // The real /proc: the guests are real QEMU processes.
        dirs.proc = PathBuf::from("/proc");
        for d in [&dirs.sysfs, &dirs.channels, &dirs.state] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        FakeSysfs::builder(spec.cpus)
            .driver(Driver::AcpiCpufreq)
            .governor(INITIAL_GOVERNOR)
            .in_dir(&dirs.sysfs)
            .build()
            .context("building the fake sysfs tree")?;
        let config = dirs.config_file();
        let text = format!(
            "placement_refresh_ms = {}\ntraffic_interval_ms = 100\npolicy_dir = {:?}\n{}\n",
            spec.placement_refresh_ms.unwrap_or(200),
            dirs.policies.display().to_string(),
            spec.extra_config
        );
        fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        let (sysfs, channel_dir, control_socket) = (
            dirs.sysfs.clone(),
            dirs.channels.clone(),
            dirs.control.clone(),
        );
        let mut command = Command::new(&work.vmpowerd);
        command
            .arg("--config")
            .arg(&config)
            .args(dirs.daemon_args())
            .arg("--log")
            .arg("info,vmpowerd=debug")
            .env("NO_COLOR", "1");
        if let Some(uri) = &spec.libvirt_uri {
            command.arg("--libvirt-uri").arg(uri);
        }
        let proc = Proc::spawn(work, "vmpowerd", command, &dir.join("vmpowerd.log"))?;
        let mut daemon = Daemon {
            sysfs,
            channel_dir,
            control_socket,
            vmpowerctl: work.vmpowerctl.clone(),
            cpus: spec.cpus,
            proc,
        };
        // Up when vmpowerctl gets an answer (the socket file appears a
        // moment before the daemon listens on it).
        let mut daemon_exit = None;
        let up = wait::until(
            "vmpowerd to answer vmpowerctl",
            Duration::from_secs(20),
            || {
                if let Some(status) = daemon.proc.exited()? {
                    daemon_exit = Some(status);
                    return Ok(Some(()));
                }
                Ok(
                    (daemon.control_socket.exists() && daemon.ctl_status(&["status"])?.0 == 0)
                        .then_some(()),
                )
            },
        );
        if let Err(e) = up {
            bail!("{e:#}\n{}", daemon.log_tail());
        }
        if let Some(status) = daemon_exit {
            bail!("vmpowerd exited at start ({status})\n{}", daemon.log_tail());
        }
        Ok(daemon)
    }

    /// The last lines of the daemon's log (debug lines left out), for a
    /// failure report.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.proc.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains(" DEBUG ")).collect();
        format!(
            "--- vmpowerd.log (last lines but debug):\n{}",
            lines[lines.len().saturating_sub(25)..].join("\n")
        )
    }

    /// Runs `vmpowerctl ARGS`; returns (exit code, stdout + stderr).
    pub fn ctl_status(&self, args: &[&str]) -> anyhow::Result<(i32, String)> {
        let out = Command::new(&self.vmpowerctl)
            .arg("--control-socket")
            .arg(&self.control_socket)
            .args(args)
            .output()
            .context("running vmpowerctl")?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), text))
    }

    /// Runs `vmpowerctl ARGS`, which must succeed; returns its output.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let (code, text) = self.ctl_status(args)?;
        if code != 0 {
            bail!("vmpowerctl {args:?} exited {code}: {text}");
        }
        Ok(text)
    }

    /// Runs `vmpowerctl --json ARGS` and parses the answer.
    pub fn ctl_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ctl(&all)?;
        serde_json::from_str(&text)
            .with_context(|| format!("vmpowerctl {args:?}: not JSON: {text}"))
    }

    /// A cpufreq file of a host CPU in the fake tree.
    pub fn cpu_file(&self, cpu: u32, name: &str) -> anyhow::Result<String> {
        let path = self
            .sysfs
            .join(format!("devices/system/cpu/cpu{cpu}/cpufreq/{name}"));
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text.trim().to_owned())
    }

    /// The speed the daemon set on `cpu` (`scaling_setspeed`, kHz), if the
    /// CPU is under the userspace governor.
    pub fn setspeed(&self, cpu: u32) -> anyhow::Result<Option<u32>> {
        if self.cpu_file(cpu, "scaling_governor")? != "userspace" {
            return Ok(None);
        }
        let text = self.cpu_file(cpu, "scaling_setspeed")?;
        Ok(text.parse().ok())
    }

    /// The frequency table of `cpu`, highest first (turbo pseudo-entry
    /// included), as the guest's levels index it.
    pub fn table(&self, cpu: u32) -> anyhow::Result<Vec<u32>> {
        let text = self.cpu_file(cpu, "scaling_available_frequencies")?;
        let mut table = text
            .split_whitespace()
            .map(|w| w.parse::<u32>().with_context(|| format!("frequency {w:?}")))
            .collect::<anyhow::Result<Vec<u32>>>()?;
        table.sort_unstable_by(|a, b| b.cmp(a));
        Ok(table)
    }

    /// Waits until the daemon has set `cpu` to `khz`.
    pub fn wait_speed(&self, cpu: u32, khz: u32) -> anyhow::Result<()> {
        let mut last = None;
        let r = wait::until(&format!("CPU {cpu} at {khz} kHz"), EFFECT_TIMEOUT, || {
            last = self.setspeed(cpu)?;
            Ok((last == Some(khz)).then_some(()))
        });
        r.map_err(|e| anyhow::anyhow!("{e:#} (CPU {cpu} is at {last:?})\n{}", self.log_tail()))
    }

    /// Waits until the daemon has given `cpu` back (its own governor again).
    pub fn wait_released(&self, cpu: u32) -> anyhow::Result<()> {
        let r = wait::until(
            &format!("CPU {cpu} to be given back"),
            EFFECT_TIMEOUT,
            || Ok((self.cpu_file(cpu, "scaling_governor")? == INITIAL_GOVERNOR).then_some(())),
        );
        r.map_err(|e| anyhow::anyhow!("{e:#}\n{}", self.log_tail()))
    }

    /// Requires `cpu` to be at `khz` now (a check that nothing else moved).
    pub fn expect_speed(&self, cpu: u32, khz: Option<u32>) -> anyhow::Result<()> {
        let now = self.setspeed(cpu)?;
        if now != khz {
            bail!("CPU {cpu} is at {now:?} kHz, expected {khz:?}");
        }
        Ok(())
    }

    /// Waits until `vmpowerctl show-vm VM` places every vCPU i on
    /// `pcpus[i]` alone.
    pub fn wait_placement(&self, vm: &str, pcpus: &[u32]) -> anyhow::Result<()> {
        let want: Vec<Value> = pcpus
            .iter()
            .enumerate()
            .map(|(v, p)| serde_json::json!({"vcpu": v, "pcpus": [p]}))
            .collect();
        let mut last = Value::Null;
        let r = wait::until(
            &format!("the daemon to place {vm}'s vCPUs on {pcpus:?}"),
            EFFECT_TIMEOUT,
            || {
                let (code, text) = self.ctl_status(&["--json", "show-vm", vm])?;
                if code != 0 {
                    return Ok(None);
                }
                last = serde_json::from_str(&text)?;
                Ok((last.get("vcpus") == Some(&Value::Array(want.clone()))).then_some(()))
            },
        );
        r.map_err(|e| anyhow::anyhow!("{e:#}; last show-vm: {last}\n{}", self.log_tail()))
    }

    /// `vmpowerctl status --json`'s `stats`.
    pub fn stats(&self) -> anyhow::Result<Value> {
        let status = self.ctl_json(&["status"])?;
        status
            .get("stats")
            .cloned()
            .with_context(|| format!("status without stats: {status}"))
    }

    /// Stops the daemon (SIGTERM) and checks that it gave every CPU back.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let status = self.proc.stop(Duration::from_secs(10))?;
        if !status.is_some_and(|s| s.success()) {
            bail!("vmpowerd ended with {status:?}\n{}", self.log_tail());
        }
        for cpu in 0..self.cpus {
            let governor = self.cpu_file(cpu, "scaling_governor")?;
            if governor != INITIAL_GOVERNOR {
                bail!("after stop, CPU {cpu}'s governor is {governor}, not {INITIAL_GOVERNOR}");
            }
        }
        Ok(())
    }
}
