//! Crash chaos: the real binary killed with SIGKILL at random (seeded)
//! moments while two guests (real unix sockets playing QEMU, on the native
//! contract so that removals are ACKed) send policies, removals and direct
//! requests and the operator creates and removes a third VM's policy over
//! the control socket; sometimes killed again during its start-up. After
//! each restart:
//! - no start-up is refused;
//! - every VM's policy is the last one acknowledged (or, for the one
//!   operation in flight when the kill came, that one: it may or may not
//!   have been committed), and it is in force on its pCPU: the frequency
//!   its ACK produced, or the CPU given back when the VM has none;
//!
//! and at the end a clean stop gives every CPU its governor and bounds back.
//! While the daemon runs, every reply is checked too (a valid policy is
//! ACKed; a direct request on a core a policy drives is NACKed).
//!
//! `VMPOWER_CHAOS_CYCLES` (default 50) and `VMPOWER_CHAOS_SEED` set the
//! run; the summary line gives both and the violations found.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vmpower_api::{Client, CtlRequest, CtlResponse, PolicyFile};
use vmpower_proto::layout::decode_verdict;
use vmpower_proto::{
    CoreType, Layout, Policy, PolicyKind, RequestBody, ScalingUnit, VcpuList, Verdict,
    WorkloadLevel,
};

use vmpower_testkit::binary::{Setup, WAIT, record, sigterm, wait_exit};

/// The workload levels a policy asks for, and their names in `policy show`.
const LEVELS: [(WorkloadLevel, &str); 3] = [
    (WorkloadLevel::High, "HIGH"),
    (WorkloadLevel::Medium, "MEDIUM"),
    (WorkloadLevel::Low, "LOW"),
];

/// A VM's policy: none, or a WORKLOAD policy at `LEVELS[i]`.
type State = Option<usize>;

/// A small seeded generator (splitmix64): the same seed, the same run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

/// What the test knows of one VM's policy.
struct Tracked {
    vm: &'static str,
    /// The pCPU its policy (on vCPU 0) drives.
    pcpu: u32,
    /// The last state the daemon acknowledged.
    known: State,
    /// The operation in flight when the daemon died: maybe committed.
    pending: Option<State>,
    rng: Rng,
    acked: u64,
}

/// Shared by the workers of a cycle.
struct Shared<'a> {
    sysfs: &'a Path,
    stop: AtomicBool,
    /// The setspeed each level's ACK produced, learnt on the first.
    freq: Mutex<HashMap<usize, String>>,
    violations: Mutex<Vec<String>>,
}

impl Shared<'_> {
    fn violation(&self, what: String) {
        eprintln!("violation: {what}");
        self.violations.lock().unwrap().push(what);
    }

    /// Checks (or learns) the frequency a policy at `level` sets.
    fn check_freq(&self, vm: &str, pcpu: u32, level: usize) {
        let now = cpu_file(self.sysfs, pcpu, "scaling_setspeed");
        let mut freq = self.freq.lock().unwrap();
        let want = freq.entry(level).or_insert_with(|| now.clone());
        if *want != now {
            let what = format!(
                "{vm}: ACKed {} policy left pCPU {pcpu} at {now}",
                LEVELS[level].1
            );
            drop(freq);
            self.violation(what);
        }
    }
}

fn cpu_file(sysfs: &Path, cpu: u32, name: &str) -> String {
    let path = sysfs.join(format!("devices/system/cpu/cpu{cpu}/cpufreq/{name}"));
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

/// Sends a record and reads its verdict; `None` when the connection is
/// gone (the daemon was killed). A live daemon that does not answer in
/// [`WAIT`] is a violation.
fn call(stream: &mut UnixStream, record: &[u8], shared: &Shared<'_>) -> Option<Verdict> {
    stream.write_all(record).ok()?;
    let mut reply = [0u8; 464];
    match stream.read_exact(&mut reply) {
        Ok(()) => Some(decode_verdict(&reply, Layout::Current).unwrap().verdict),
        Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {
            shared.violation(format!("no reply within {WAIT:?}"));
            None
        }
        Err(_) => None,
    }
}

/// Accepts the daemon's connection on a guest's socket and asks for the
/// native contract; `None` once the cycle is stopped.
fn connect(listener: &UnixListener, vm: &str, shared: &Shared<'_>) -> Option<UnixStream> {
    let deadline = Instant::now() + WAIT;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(WAIT)).unwrap();
                let hello = record(vm, RequestBody::Hello { version: 1 });
                // A connection of a run killed before we accepted it is
                // dead: take the next.
                if call(&mut stream, &hello, shared) == Some(Verdict::Ack) {
                    return Some(stream);
                }
            }
            Err(e) if e.kind() == IoKind::WouldBlock => {
                if Instant::now() > deadline {
                    shared.violation(format!("{vm}: the daemon did not connect"));
                    return None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A guest until its connection dies: policies (vCPU 0), removals, and
/// direct requests on `direct_vcpu` (vm1's vCPU 1 is free; vm2's vCPU 0 is
/// its policy's, so a request there is NACKed while a policy holds it).
fn guest(listener: &UnixListener, g: &mut Tracked, direct_vcpu: u64, shared: &Shared<'_>) {
    let Some(mut stream) = connect(listener, g.vm, shared) else {
        return;
    };
    loop {
        let pick = g.rng.below(10);
        let (body, target) = match pick {
            0..=4 => {
                let level = usize::try_from(g.rng.below(3)).unwrap();
                let policy = Policy {
                    workload: LEVELS[level].0,
                    ..Policy::new(PolicyKind::Workload, VcpuList::from_slice(&[0]).unwrap())
                };
                (RequestBody::SetPolicy(policy), Some(Some(level)))
            }
            5 | 6 => (RequestBody::RemovePolicy, Some(None)),
            _ => {
                let units = [
                    ScalingUnit::ScaleUp,
                    ScalingUnit::ScaleDown,
                    ScalingUnit::ScaleMin,
                    ScalingUnit::ScaleMax,
                ];
                let unit = units[usize::try_from(g.rng.below(4)).unwrap()];
                let body = RequestBody::Power {
                    resource_id: direct_vcpu,
                    core_type: CoreType::Virtual,
                    unit,
                };
                (body, None)
            }
        };
        let Some(verdict) = call(&mut stream, &record(g.vm, body), shared) else {
            if target.is_some() {
                g.pending = target;
            }
            return;
        };
        g.acked += u64::from(verdict == Verdict::Ack);
        match target {
            Some(Some(level)) if verdict == Verdict::Ack => {
                g.known = Some(level);
                shared.check_freq(g.vm, g.pcpu, level);
            }
            Some(Some(level)) => shared.violation(format!(
                "{}: a {} policy was refused",
                g.vm, LEVELS[level].1
            )),
            Some(None) if verdict == Verdict::Ack => g.known = None,
            Some(None) => shared.violation(format!("{}: a removal was refused", g.vm)),
            None => {
                let owned = direct_vcpu == 0 && g.known.is_some();
                let want = if owned { Verdict::Nack } else { Verdict::Ack };
                if verdict != want {
                    shared.violation(format!(
                        "{}: vCPU {direct_vcpu} request got {verdict:?}, policy {:?}",
                        g.vm, g.known
                    ));
                }
            }
        }
    }
}

fn workload_file(vm: &str, level: usize) -> Box<PolicyFile> {
    let text = format!(
        "vm = \"{vm}\"\nkind = \"WORKLOAD\"\ncores = [0]\nworkload = \"{}\"\n",
        LEVELS[level].1
    );
    Box::new(PolicyFile::parse(&text).unwrap())
}

/// The operator until the control socket fails: creates and removes the
/// policy of `g.vm` (a VM without guest channels).
fn operator(control: &Path, g: &mut Tracked, shared: &Shared<'_>) {
    let Ok(mut client) = Client::connect(control) else {
        return;
    };
    while !shared.stop.load(Ordering::SeqCst) {
        let (request, target) = if g.rng.below(3) < 2 {
            let level = usize::try_from(g.rng.below(3)).unwrap();
            let policy = workload_file(g.vm, level);
            (CtlRequest::PolicyCreate { policy }, Some(level))
        } else {
            let vm = g.vm.to_owned();
            (CtlRequest::PolicyDestroy { vm }, None)
        };
        match client.call(&request) {
            Ok(CtlResponse::Ok(_)) => {
                g.acked += 1;
                g.known = target;
                if let Some(level) = target {
                    shared.check_freq(g.vm, g.pcpu, level);
                }
            }
            // Removing a policy that is not there is refused: nothing
            // changes. Anything else refused is wrong.
            Ok(CtlResponse::Error(e)) => {
                if target.is_some() || g.known.is_some() {
                    shared.violation(format!("{}: operator {request:?}: {e:?}", g.vm));
                }
            }
            Err(_) => {
                g.pending = Some(target);
                return;
            }
        }
    }
}

/// The policy in force for `vm`, as `policy show` says.
fn shown(control: &Path, vm: &str) -> State {
    let mut client = Client::connect(control).unwrap();
    let request = CtlRequest::PolicyShow { vm: vm.into() };
    match client.call(&request).unwrap() {
        CtlResponse::Ok(v) => {
            let name = v["policy"]["workload"].as_str().unwrap().to_owned();
            Some(LEVELS.iter().position(|(_, n)| *n == name).unwrap())
        }
        CtlResponse::Error(_) => None,
    }
}

/// Starts the daemon (stderr to `log`) and waits until its control socket
/// answers; an exit before that is a refused start-up.
fn start(s: &Setup, log: &Path) -> Result<Child, String> {
    let _ = std::fs::remove_file(s.control());
    let file = std::fs::File::create(log).unwrap();
    let mut child = s.command(Stdio::from(file)).spawn().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("start-up refused: {status}: {text}"));
        }
        if UnixStream::connect(s.control()).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("not ready within {WAIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `cond` holds within [`WAIT`] (the restored policy is applied
/// as the daemon starts, not necessarily before it answers).
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    wait_exit(&mut child);
}

/// Each CPU's governor and bounds.
fn cpu_settings(sysfs: &Path) -> Vec<[String; 3]> {
    (0..4)
        .map(|cpu| {
            ["scaling_governor", "scaling_min_freq", "scaling_max_freq"]
                .map(|name| cpu_file(sysfs, cpu, name))
        })
        .collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.parse().unwrap())
}

#[test]
fn acknowledged_policies_survive_sigkill_at_random_moments() {
    let cycles = env_u64("VMPOWER_CHAOS_CYCLES", 50);
    let seed = env_u64("VMPOWER_CHAOS_SEED", 17);
    let mut rng = Rng(seed);
    let s = Setup::new(env!("CARGO_BIN_EXE_vmpowerd"));
    std::fs::write(
        s.dir.path().join("vmpowerd.toml"),
        "[vm.vm1]\npcpus = [1, 0]\n[vm.vm2]\npcpus = [2]\n[vm.vm3]\npcpus = [3]\n",
    )
    .unwrap();
    let sysfs: PathBuf = s.fake.path().to_owned();
    let initial = cpu_settings(&sysfs);
    let listen = |vm: &str| {
        let l = UnixListener::bind(s.dir.path().join(format!("channels/{vm}.0"))).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    };
    let (l1, l2) = (listen("vm1"), listen("vm2"));
    let tracked = |vm, pcpu, seed| Tracked {
        vm,
        pcpu,
        known: None,
        pending: None,
        rng: Rng(seed),
        acked: 0,
    };
    let mut vms = [
        tracked("vm1", 1, rng.next()),
        tracked("vm2", 2, rng.next()),
        tracked("vm3", 3, rng.next()),
    ];
    let shared = Shared {
        sysfs: &sysfs,
        stop: AtomicBool::new(false),
        freq: Mutex::new(HashMap::new()),
        violations: Mutex::new(Vec::new()),
    };
    let log = s.dir.path().join("stderr.log");
    let started = Instant::now();
    let mut daemon = start(&s, &log).unwrap();
    let mut startup_kills = 0;
    let mut in_flight_committed = 0;
    for cycle in 0..cycles {
        // Guests and the operator at work, killed at a random moment.
        shared.stop.store(false, Ordering::SeqCst);
        let delay = rng.millis(10, 250);
        std::thread::scope(|scope| {
            let [v1, v2, v3] = &mut vms;
            let shared = &shared;
            let (l1, l2, control) = (&l1, &l2, s.control());
            scope.spawn(move || guest(l1, v1, 1, shared));
            scope.spawn(move || guest(l2, v2, 0, shared));
            scope.spawn(move || operator(&control, v3, shared));
            std::thread::sleep(delay);
            daemon.kill().unwrap();
            wait_exit(&mut daemon);
            shared.stop.store(true, Ordering::SeqCst);
        });
        // Sometimes killed again while it starts (restoring, loading).
        if rng.below(4) == 0 {
            let _ = std::fs::remove_file(s.control());
            let child = s.command(Stdio::null()).spawn().unwrap();
            std::thread::sleep(rng.millis(0, 40));
            kill(child);
            startup_kills += 1;
        }
        daemon = match start(&s, &log) {
            Ok(child) => child,
            Err(e) => panic!("cycle {cycle} (seed {seed}): {e}"),
        };
        for g in &mut vms {
            let now = shown(&s.control(), g.vm);
            let allowed = [Some(g.known), g.pending].contains(&Some(now));
            if !allowed {
                shared.violation(format!(
                    "cycle {cycle}: {} has {now:?} after restart, acknowledged {:?}, in flight {:?}",
                    g.vm, g.known, g.pending
                ));
            }
            in_flight_committed += u64::from(now != g.known && Some(now) == g.pending);
            g.known = now;
            g.pending = None;
            let governor = cpu_file(&sysfs, g.pcpu, "scaling_governor");
            let in_force = match now {
                Some(level) => {
                    let want = shared.freq.lock().unwrap().get(&level).cloned();
                    let speed = || cpu_file(&sysfs, g.pcpu, "scaling_setspeed");
                    governor == "userspace"
                        && want.is_none_or(|want| eventually(|| speed() == want))
                }
                None => governor == initial[usize::try_from(g.pcpu).unwrap()][0],
            };
            if !in_force {
                shared.violation(format!(
                    "cycle {cycle}: {}'s policy {now:?} not in force on pCPU {}: {governor}, {}",
                    g.vm,
                    g.pcpu,
                    cpu_file(&sysfs, g.pcpu, "scaling_setspeed")
                ));
            }
        }
    }
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).success());
    let after = cpu_settings(&sysfs);
    let violations = shared.violations.into_inner().unwrap();
    let acked: u64 = vms.iter().map(|g| g.acked).sum();
    eprintln!(
        "crash chaos: {cycles} kill cycles (+{startup_kills} kills during start-up), seed {seed}, \
         {acked} operations acknowledged, {in_flight_committed} kills between a commit and its \
         answer, {} violations, CPUs restored: {}, {:.1} s",
        violations.len(),
        after == initial,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(after, initial, "every CPU's governor and bounds restored");
    assert!(violations.is_empty(), "{violations:#?}");
}
