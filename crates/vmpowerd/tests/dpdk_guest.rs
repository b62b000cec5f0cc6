//! DPDK's own guest library against the real `vmpowerd` binary: the C
//! program `tests/dpdk-guest/dpdk_power_guest.c`, linked with Debian's
//! DPDK 22.11 (`librte_power` in its `kvm_vm` environment), runs a whole
//! session — CONNECT, every direct command on each lcore, CPU_POWER with
//! invalid units, queries, a policy of each kind, removal — and judges
//! every reply as DPDK's `guest_cli` reads it (see its README). This test
//! decides what each step expects (DPDK's reply contract, PROTOCOL.md),
//! plays QEMU and checks the host's side: after each direct command the
//! right pCPU's `scaling_setspeed` (librte_power's semantics) and no other.
//!
//! A stale, missing, extra or mis-sized reply fails the test. A reply
//! later than DPDK's 10 ms window is counted (`late=` in the summary the
//! test prints), not failed (`-L`): here the guest and the bridge share two
//! CPUs with every other test, and their own scheduling makes replies late;
//! the daemon's reply time on a busy host is measured by `vmpower-bench
//! dpdk-reply` (BENCHMARKS.md).
//!
//! ## How it plays QEMU
//! QEMU listens on `<channel_dir>/<vm>.<n>` and the daemon connects; here
//! each accepted socket is bridged to a pty whose slave is in raw mode
//! (`cfmakeraw`; the test keeps the slave open so the settings persist).
//! The C program runs in a private mount namespace (`unshare --mount`)
//! where `/dev` is a tmpfs of its own holding `pts`, `null` and the links
//! `/dev/virtio-ports/virtio.serial.port.poweragent.N` → the pty slaves,
//! as udev would make them in a guest.
//!
//! ## Limitations
//! Needs root (the mount namespace): skipped, with a line saying so,
//! otherwise. Needs `cc`, `pkg-config` and `libdpdk-dev`: as root without
//! them it fails and says to run `scripts/install-deps` (CI runs as root and
//! installs them). DPDK 22.11 speaks only the current 464-byte layout.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};

use vmpower_testkit::binary::{Logging, Setup, WAIT};

/// The VM's name (its sockets are `dpdk.0` and `dpdk.1`).
const VM: &str = "dpdk";
/// vCPU (lcore) i runs on `PCPUS[i]`: not the identity, so a request
/// landing on the pCPU numbered like the vCPU is caught.
const PCPUS: [u32; 2] = [3, 1];
/// CPUs of the fake host (`vmpower_testkit::binary::Setup`).
const HOST_CPUS: u32 = 4;

/// Builds the C program with the system's cc and pkg-config into `dir`.
fn build_guest(dir: &Path) -> PathBuf {
    let missing = "DPDK's guest library is missing: run scripts/install-deps \
                   (it installs libdpdk-dev, pkg-config and gcc)";
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("{missing} (pkg-config: {e})"));
    assert!(
        flags.status.success(),
        "{missing} (pkg-config --cflags --libs libdpdk: {})",
        String::from_utf8_lossy(&flags.stderr).trim()
    );
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/dpdk-guest/dpdk_power_guest.c");
    let out = dir.join("dpdk_power_guest");
    let cc = Command::new("cc")
        .args([
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-DALLOW_EXPERIMENTAL_API",
            "-o",
        ])
        .arg(&out)
        .arg(&source)
        .args(String::from_utf8(flags.stdout).unwrap().split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("{missing} (cc: {e})"));
    assert!(
        cc.status.success(),
        "building {}: {}",
        source.display(),
        String::from_utf8_lossy(&cc.stderr)
    );
    out
}

/// One channel as QEMU would serve it: a listening socket the daemon
/// connects to, bridged to a pty the guest program opens.
struct Bridge {
    /// The slave's path (`/dev/pts/N`).
    slave_path: PathBuf,
    /// Held open so the slave keeps its raw settings between opens.
    _slave: File,
    connected: Receiver<()>,
    stop: Arc<AtomicBool>,
}

impl Bridge {
    fn listen(socket: &Path) -> Bridge {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let slave_path =
            PathBuf::from(ptsname(&master, Vec::new()).unwrap().into_string().unwrap());
        let slave = File::options()
            .read(true)
            .write(true)
            .open(&slave_path)
            .unwrap();
        // cfmakeraw: no echo, no line editing, no CR/NL translation.
        let mut termios = tcgetattr(&slave).unwrap();
        termios.make_raw();
        tcsetattr(&slave, OptionalActions::Now, &termios).unwrap();
        let listener = UnixListener::bind(socket).unwrap();
        let (tx, connected) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let Some(sock) = accept(&listener, &flag) else {
                return;
            };
            let _ = tx.send(());
            pump(File::from(master), sock, &flag);
        });
        Bridge {
            slave_path,
            _slave: slave,
            connected,
            stop,
        }
    }

    fn wait_connected(&self) {
        self.connected
            .recv_timeout(WAIT)
            .expect("the daemon did not connect to the channel socket in time");
    }
}

impl Drop for Bridge {
    /// Stops the bridge within one poll tick. Not joined: a write the
    /// other side never drains must not hang the test (the thread ends
    /// with the process).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Accepts the daemon's connection, until `stop` or [`WAIT`].
fn accept(listener: &UnixListener, stop: &AtomicBool) -> Option<std::os::unix::net::UnixStream> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(false).unwrap();
                return Some(sock);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    None
}

/// Copies bytes both ways until `stop` or either side closes.
fn pump(mut master: File, mut sock: std::os::unix::net::UnixStream, stop: &AtomicBool) {
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    };
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let (from_master, from_sock) = {
            let mut fds = [
                PollFd::new(&master, PollFlags::IN),
                PollFd::new(&sock, PollFlags::IN),
            ];
            if poll(&mut fds, Some(&tick)).is_err() {
                return;
            }
            (!fds[0].revents().is_empty(), !fds[1].revents().is_empty())
        };
        if from_master && !copy(&mut master, &mut sock, &mut buf) {
            return;
        }
        if from_sock && !copy(&mut sock, &mut master, &mut buf) {
            return;
        }
    }
}

/// One read from `from`, all of it written to `to`; false when either
/// side is closed or failed.
fn copy(from: &mut impl Read, to: &mut impl Write, buf: &mut [u8]) -> bool {
    match from.read(buf) {
        Ok(n) if n > 0 => to.write_all(&buf[..n]).is_ok(),
        _ => false,
    }
}

/// Makes the namespace's `/dev` and runs the program: `$1` is where the
/// host's `/dev` is bound, `$2` the program, `$3...` the pty slaves of
/// lcore 0, 1, ...
const NAMESPACE: &str = r#"set -e
hostdev=$1; prog=$2; shift 2
mount --rbind /dev "$hostdev"
mount -t tmpfs -o mode=0755 vmpower-dpdk-dev /dev
mkdir /dev/pts /dev/virtio-ports
mount --bind "$hostdev/pts" /dev/pts
touch /dev/null
mount --bind "$hostdev/null" /dev/null
n=0
for slave in "$@"; do
    ln -s "$slave" "/dev/virtio-ports/virtio.serial.port.poweragent.$n"
    n=$((n + 1))
done
exec "$prog" -n dpdk -L
"#;

/// The C program, fed one step at a time.
struct Guest {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: PathBuf,
}

impl Guest {
    fn start(prog: &Path, dir: &Path, bridges: &[Bridge]) -> Guest {
        let hostdev = dir.join("hostdev");
        std::fs::create_dir_all(&hostdev).unwrap();
        let stderr = dir.join("guest.stderr");
        let mut child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                NAMESPACE,
                "sh",
            ])
            .arg(&hostdev)
            .arg(prog)
            .args(bridges.iter().map(|b| &b.slave_path))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut guest = Guest {
            child,
            stdin,
            lines,
            stderr,
        };
        let first = guest.line();
        assert!(first.starts_with("start "), "{first}");
        guest
    }

    /// The program's next line, within [`WAIT`].
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(e) => panic!(
                "the DPDK guest printed nothing within {WAIT:?} ({e}); its stderr:\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            ),
        }
    }

    /// Runs one step and returns its line.
    fn step(&mut self, step: &str) -> Verdict {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{step}").unwrap();
        stdin.flush().unwrap();
        Verdict::parse(step, self.line())
    }

    /// Ends the input: the program drains every port, exits, and its
    /// remaining lines (one per port, then the summary) are returned.
    fn finish(mut self) -> (Vec<Verdict>, bool) {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        loop {
            let line = self.line();
            if line.starts_with("summary ") {
                // The reply times, for whoever reads the test's output.
                eprintln!("dpdk_guest: {line}");
                break;
            }
            rest.push(Verdict::parse("(end of input)", line));
        }
        let status = vmpower_testkit::binary::wait_exit(&mut self.child);
        (rest, status.success())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One step's line from the program.
struct Verdict {
    step: String,
    line: String,
}

impl Verdict {
    fn parse(step: &str, line: String) -> Verdict {
        Verdict {
            step: step.to_owned(),
            line,
        }
    }

    /// The value of `key=` (before the free-text `why=`).
    fn get(&self, key: &str) -> Option<&str> {
        let fields = self.line.split(" why=").next().unwrap_or_default();
        fields
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    fn ok(&self) -> bool {
        self.get("result") == Some("ok")
    }
}

/// librte_power's view of one core (PROTOCOL.md, "Frequency semantics"):
/// an index into the frequency table (0 the highest, the turbo entry) and
/// the per-core turbo flag, enabled at first as DPDK's acpi backend does.
#[derive(Clone, Copy)]
struct Core {
    index: usize,
    turbo: bool,
}

impl Core {
    fn apply(&mut self, unit: &str, last: usize) {
        let max = if self.turbo { 0 } else { 1 };
        match unit {
            // No-op at 0, and at 1 while turbo is disabled.
            "up" if self.index > max => self.index -= 1,
            "up" => {}
            "down" => self.index = (self.index + 1).min(last),
            "max" => self.index = max,
            "min" => self.index = last,
            // DPDK's acpi backend: turbo on, then to max (the turbo entry).
            "enable_turbo" => {
                self.turbo = true;
                self.index = 0;
            }
            // Turbo off; at index 0 or 1, to max without turbo.
            "disable_turbo" => {
                self.turbo = false;
                if self.index <= 1 {
                    self.index = 1;
                }
            }
            other => panic!("no unit {other}"),
        }
    }
}

/// Every direct command, in an order where each one moves the core
/// (ending at the turbo entry), starting from min so the first expectation
/// does not depend on where the core was: min 16, up 15, down 16, max 0
/// (turbo), disable_turbo 1, min 16, max 1 (no turbo), enable_turbo 0,
/// down 1, up 0 (of a 17-entry table).
const UNITS: &[&str] = &[
    "min",
    "up",
    "down",
    "max",
    "disable_turbo",
    "min",
    "max",
    "enable_turbo",
    "down",
    "up",
];

/// A session: the daemon, the guest, the frequency table and what is
/// expected of each core, and every difference seen.
struct Session {
    setup: Setup,
    guest: Guest,
    table: Vec<String>,
    cores: [Core; 2],
    failures: Vec<String>,
}

impl Session {
    fn speeds(&self) -> Vec<String> {
        (0..HOST_CPUS)
            .map(|cpu| self.setup.file(cpu, "scaling_setspeed"))
            .collect()
    }

    /// Runs a step; a verdict other than ok is recorded.
    fn step(&mut self, step: &str) -> Verdict {
        let v = self.guest.step(step);
        self.judge(&v);
        v
    }

    fn judge(&mut self, v: &Verdict) {
        if !v.ok() {
            self.failures.push(format!("step `{}`: {}", v.step, v.line));
        }
    }

    /// A direct command on `lcore`: ACK due, and only its pCPU moves, to
    /// where librte_power's semantics put it.
    fn power(&mut self, lcore: usize, unit: &str) {
        let before = self.speeds();
        let v = self.step(&format!("power {lcore} {unit} ack"));
        let last = self.table.len() - 1;
        self.cores[lcore].apply(unit, last);
        let after = self.speeds();
        let pcpu = PCPUS[lcore] as usize;
        let want = &self.table[self.cores[lcore].index];
        if after[pcpu] != *want {
            self.failures.push(format!(
                "step `{}`: pCPU {pcpu} (vCPU {lcore}) at {} kHz, expected {want} kHz \
                 (index {} of {:?}, turbo {})",
                v.step, after[pcpu], self.cores[lcore].index, self.table, self.cores[lcore].turbo
            ));
            // Follow the host from here, so one difference is reported once.
            if let Some(i) = self.table.iter().position(|f| *f == after[pcpu]) {
                self.cores[lcore].index = i;
            }
        }
        for cpu in (0..HOST_CPUS as usize).filter(|&c| c != pcpu) {
            if after[cpu] != before[cpu] {
                self.failures.push(format!(
                    "step `{}`: pCPU {cpu} moved from {} to {} kHz; only pCPU {pcpu} should",
                    v.step, before[cpu], after[cpu]
                ));
            }
        }
    }

    /// Waits (bounded) for every pCPU of the VM to reach `khz` after a
    /// policy step.
    fn expect_policy(&mut self, step: &str, khz: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let speeds = self.speeds();
            if PCPUS.iter().all(|&p| speeds[p as usize] == khz) {
                return;
            }
            if Instant::now() > deadline {
                self.failures.push(format!(
                    "step `{step}`: pCPUs {PCPUS:?} never reached {khz} kHz (now {speeds:?})"
                ));
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The expected query answers, as the program prints them.
    fn query(&mut self, lcore: usize, kind: &str, granted: bool) {
        let expect = if granted { "reply" } else { "none" };
        let v = self.step(&format!("query {lcore} {kind} {expect}"));
        if !granted || !v.ok() {
            return;
        }
        let vcpus: Vec<usize> = if kind.ends_with("_list") {
            vec![0, 1]
        } else {
            vec![lcore]
        };
        for vcpu in vcpus {
            let want = if kind.starts_with("caps") {
                // acpi-cpufreq with turbo, no priority cores.
                "turbo:1,priority:0".to_owned()
            } else {
                format!("{}kHz", self.table[self.cores[vcpu].index])
            };
            let got = v.get(&format!("vcpu{vcpu}"));
            if got != Some(want.as_str()) {
                self.failures.push(format!(
                    "step `{}`: vCPU {vcpu} answered {got:?}, expected {want}: {}",
                    v.step, v.line
                ));
            }
        }
    }
}

/// Stops the daemon (SIGTERM, clean exit checked) and returns its log; a
/// panic on the way kills it instead.
struct Daemon(Option<Logging>);

impl Daemon {
    fn stop(mut self) -> String {
        self.0.take().unwrap().stop()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut d) = self.0.take() {
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
    }
}

/// The whole session, with queries granted to the VM or not.
fn session(queries: bool) {
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "dpdk_guest: skipped: needs root (a private mount namespace for /dev/virtio-ports)"
        );
        return;
    }
    let setup = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    let prog = build_guest(setup.dir.path());
    std::fs::write(
        setup.dir.path().join("vmpowerd.toml"),
        format!(
            "[vm.{VM}]\npcpus = [{}, {}]\nqueries = {queries}\n",
            PCPUS[0], PCPUS[1]
        ),
    )
    .unwrap();
    let channels = setup.dir.path().join("channels");
    let bridges: Vec<Bridge> = (0..2)
        .map(|n| Bridge::listen(&channels.join(format!("{VM}.{n}"))))
        .collect();
    let daemon = Daemon(Some(setup.spawn_logging()));
    bridges.iter().for_each(Bridge::wait_connected);
    let table: Vec<String> = setup
        .file(PCPUS[0], "scaling_available_frequencies")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(table.len() > 2, "{table:?}");
    let guest = Guest::start(&prog, setup.dir.path(), &bridges);
    let mut s = Session {
        setup,
        guest,
        table,
        cores: [Core {
            index: 0,
            turbo: true,
        }; 2],
        failures: Vec::new(),
    };

    // rte_power_init: CONNECT, from a struct full of stack garbage.
    s.step("init 0");
    s.step("init 1");
    for lcore in 0..2 {
        for unit in UNITS {
            s.power(lcore, unit);
        }
        // CPU_POWER with a unit DPDK's host does not know: no reply.
        s.step(&format!("unit {lcore} 0 none"));
        s.step(&format!("unit {lcore} 7 none"));
    }
    for (lcore, kind) in [(0, "freq_list"), (1, "freq"), (0, "caps_list"), (1, "caps")] {
        s.query(lcore, kind, queries);
    }

    // A policy of each kind, on lcore 1's channel as guest_cli sends it.
    s.step("policy 1 traffic ack 0,1 mac=52:54:00:dd:00:01 avg=1800000 max=2000000");
    let every_hour = (0..24).map(|h| h.to_string()).collect::<Vec<_>>().join(",");
    let step = format!("policy 1 time ack 0,1 busy={every_hour}");
    s.step(&step);
    let max = s.table[0].clone();
    s.expect_policy(&step, &max);
    let step = "policy 1 workload ack 0,1 workload=low";
    s.step(step);
    let min = s.table[s.table.len() - 1].clone();
    s.expect_policy(step, &min);
    // Refused where the host has no branch counters (a VM): ACK or NACK,
    // but a 464-byte answer either way.
    s.step("policy 1 branch_ratio verdict 0,1");
    s.step("remove 1 none");
    // Still in step after the removal: a direct command is answered as its own.
    s.power(0, "max");

    let (rest, success) = s.guest.finish();
    for v in &rest {
        if !v.ok() {
            s.failures.push(format!("end of session: {}", v.line));
        }
    }
    if s.failures.is_empty() {
        assert!(
            success,
            "the DPDK guest exited non-zero without a failed step"
        );
    }
    let log = daemon.stop();
    assert!(
        s.failures.is_empty(),
        "DPDK's guest library, queries {}: {} difference(s) from DPDK's reply contract:\n{}\n\n\
         vmpowerd's log (last lines):\n{}",
        if queries { "granted" } else { "not granted" },
        s.failures.len(),
        s.failures.join("\n"),
        tail(&log, 30)
    );
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn dpdk_guest_session_with_queries_granted() {
    session(true);
}

#[test]
fn dpdk_guest_session_with_queries_not_granted() {
    session(false);
}
