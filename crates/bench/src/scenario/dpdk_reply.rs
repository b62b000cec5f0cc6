//! Reply time on DPDK's wire (issue 13, "Replies in time"): how long a
//! DPDK guest waits for each reply the daemon owes it under DPDK's reply
//! contract, on an idle host and on a host whose every CPU is busy.
//! DPDK's `guest_cli` reads a reply once, 10 ms after sending: the target
//! is p99.9 ≤ 10 ms on the loaded host.
//!
//! ## Setup
//! A fake host of `2 × vms` CPUs; `vms` VMs with 2 vCPUs each, pinned to
//! distinct pCPUs, `queries = true`, rate limit off; one channel per VM;
//! the real `vmpowerd`. One guest thread (this one) drives every VM's
//! script step by step, round-robin over the VMs, one request in flight
//! at a time: it writes a 464-byte record, waits in `poll(POLLIN)` (as
//! DPDK's guest library does), reads the whole reply; the time is write
//! → whole reply. Each VM's script, per round:
//! - (a) **first touch**: the first CPU_POWER on each of its vCPUs
//!   (SCALE_MAX on vCPU 0, SCALE_MIN on vCPU 1): the daemon takes the
//!   untouched pCPU over (governor, takeover record) on this path;
//! - (b) **steady** CPU_POWER, alternating min and max on each vCPU, and
//!   (e) **QUERY_FREQ_LIST** (88-byte reply), interleaved;
//! - (c) **policy set**: PKT_POLICY WORKLOAD LOW, then TIME with every
//!   hour busy (each ACKed; cores go to min, then max);
//! - (d) **after remove**: PKT_POLICY_REMOVE (no reply on DPDK's wire),
//!   then at once a CPU_POWER, timed from its own write: a removal must
//!   not delay the next reply (and must not leave a reply of its own).
//!
//! (b)–(d) repeat `cycles` times. First touches need untouched pCPUs, so
//! each round is a fresh host and daemon. A phase is `rounds` rounds,
//! then the two echo baselines of [`super::latency`] (no daemon: the
//! floor of a socket round trip on this machine at that moment). The
//! loaded phase does all of that with one busy-spinning thread per online
//! CPU running ([`crate::load::Spinners`]).
//!
//! ## Checked outside the timing
//! Every ACK echoes its request byte for byte except `command`; every
//! CPU_POWER left the pCPU's `scaling_setspeed` at the value its unit
//! asks (first touch: also the `userspace` governor); WORKLOAD LOW left
//! both pCPUs at min and TIME at max; every FREQ_LIST names the VM and
//! its 2 vCPUs; and at the end of a round no channel holds a stray byte
//! (a reply to REMOVE would show there). Any miss stops the benchmark.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use vmpower_proto::layout::offsets::{command, header};
use vmpower_proto::layout::{decode_freq_list, encode_request_record};
use vmpower_proto::{
    HourSchedule, HourSet, Layout, Policy, PolicyKind, QueryKind, Request, RequestBody,
    ScalingUnit, VcpuList, VmName, WorkloadLevel,
};

use super::latency::echo_baseline;
use super::{Ctx, launch};
use crate::guest::{GuestWait, RECORD, exchange, power_record};
use crate::host::{Host, HostSpec, RateLimitSetting, vm_name};
use crate::load::Spinners;
use crate::report::{Percentiles, Report, Target};

/// Sizes of the benchmark.
#[derive(Debug, Clone, Copy)]
pub struct DpdkReplyArgs {
    /// VMs of 2 vCPUs each (the host has twice as many CPUs).
    pub vms: usize,
    /// Fresh hosts per phase.
    pub rounds: usize,
    /// Steady CPU_POWER requests per VM per round.
    pub steady: usize,
    /// QUERY_FREQ_LIST requests per VM per round.
    pub queries: usize,
    /// Policy cycles (set LOW, set TIME, remove + CPU_POWER) per VM per round.
    pub cycles: usize,
    /// Timed round trips of each echo baseline per phase.
    pub echo: usize,
    /// How the guest waits for its reply.
    pub wait: GuestWait,
    /// Which phases to run.
    pub phases: Phases,
    /// Wait after the daemon connected every channel, before the first
    /// request: its start-up (inventory, placing the VMs) is over.
    pub settle: Duration,
    /// Nice value of the guest thread (diagnosis: with the guest raised,
    /// what is left of the tail is the daemon's); `None`: unchanged.
    pub guest_nice: Option<i32>,
}

/// Which phases run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phases {
    /// Idle host only.
    Idle,
    /// Loaded host only.
    Loaded,
    /// Idle, then loaded.
    Both,
}

/// DPDK's `guest_cli` reads its reply 10 ms after sending.
const WINDOW: Duration = Duration::from_millis(10);
/// vCPUs per VM.
const VCPUS: u32 = 2;
const SETSPEED: &str = "scaling_setspeed";

/// What is timed, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    FirstTouch,
    Steady,
    PolicySet,
    AfterRemove,
    Query,
}

impl Category {
    const ALL: [Category; 5] = [
        Category::FirstTouch,
        Category::Steady,
        Category::PolicySet,
        Category::AfterRemove,
        Category::Query,
    ];

    fn label(self) -> &'static str {
        match self {
            Category::FirstTouch => "first touch",
            Category::Steady => "steady CPU_POWER",
            Category::PolicySet => "PKT_POLICY set",
            Category::AfterRemove => "CPU_POWER after REMOVE",
            Category::Query => "QUERY_FREQ_LIST",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where a pCPU's frequency should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Min,
    Max,
}

impl Level {
    fn other(self) -> Level {
        match self {
            Level::Min => Level::Max,
            Level::Max => Level::Min,
        }
    }
}

/// One step of a VM's script.
#[derive(Debug, Clone, Copy)]
enum Step {
    FirstTouch { vcpu: u32, level: Level },
    Steady { vcpu: u32 },
    Query,
    SetLow,
    SetTime,
    RemoveThenPower { vcpu: u32 },
}

/// The script every VM runs in a round.
fn script(args: &DpdkReplyArgs) -> Vec<Step> {
    let mut steps = vec![
        Step::FirstTouch {
            vcpu: 0,
            level: Level::Max,
        },
        Step::FirstTouch {
            vcpu: 1,
            level: Level::Min,
        },
    ];
    let cycles = args.cycles.max(1);
    let steady = args.steady.div_ceil(cycles);
    let queries = args.queries.div_ceil(cycles);
    for c in 0..cycles {
        for k in 0..steady.max(queries) {
            if k < steady {
                steps.push(Step::Steady {
                    vcpu: u32::try_from(k % 2).unwrap_or(0),
                });
            }
            if k < queries {
                steps.push(Step::Query);
            }
        }
        if args.cycles > 0 {
            steps.push(Step::SetLow);
            steps.push(Step::SetTime);
            steps.push(Step::RemoveThenPower {
                vcpu: u32::try_from(c % 2).unwrap_or(0),
            });
        }
    }
    steps
}

/// The records of one VM.
struct VmRecords {
    name: String,
    /// `power[vcpu][0]` SCALE_MIN, `[1]` SCALE_MAX.
    power: Vec<[Vec<u8>; 2]>,
    query: Vec<u8>,
    low: Vec<u8>,
    time: Vec<u8>,
    remove: Vec<u8>,
}

impl VmRecords {
    fn new(vm: usize) -> anyhow::Result<Self> {
        let name = vm_name(vm);
        let power = (0..VCPUS)
            .map(|v| {
                Ok([
                    power_record(&name, v.into(), ScalingUnit::ScaleMin)?,
                    power_record(&name, v.into(), ScalingUnit::ScaleMax)?,
                ])
            })
            .collect::<anyhow::Result<_>>()?;
        let cores = VcpuList::from_slice(&[0, 1])?;
        let low = Policy {
            workload: WorkloadLevel::Low,
            ..Policy::new(PolicyKind::Workload, cores)
        };
        let time = Policy {
            hours: HourSchedule {
                busy: HourSet::from_hours(0..24)?,
                ..HourSchedule::default()
            },
            ..Policy::new(PolicyKind::Time, cores)
        };
        let rec = |body| -> anyhow::Result<Vec<u8>> {
            let req = Request {
                vm_name: VmName::new(&name).context("VM name")?,
                body,
            };
            Ok(encode_request_record(&req, Layout::Current)?
                .as_slice()
                .to_vec())
        };
        Ok(VmRecords {
            query: rec(RequestBody::Query {
                kind: QueryKind::FreqList,
                resource_id: 0,
            })?,
            low: rec(RequestBody::SetPolicy(low))?,
            time: rec(RequestBody::SetPolicy(time))?,
            remove: rec(RequestBody::RemovePolicy)?,
            power,
            name,
        })
    }

    fn power(&self, vcpu: u32, level: Level) -> &[u8] {
        let v = usize::try_from(vcpu).unwrap_or(0);
        &self.power[v][usize::from(level == Level::Max)]
    }
}

/// Samples of one phase, by category.
#[derive(Debug, Default)]
struct PhaseSamples {
    by_category: [Vec<Duration>; 5],
    echo: Option<Percentiles>,
    blocking: Option<Percentiles>,
    spinners: usize,
}

/// Runs it.
pub fn run(ctx: &Ctx, args: DpdkReplyArgs) -> anyhow::Result<Report> {
    let records = (0..args.vms)
        .map(VmRecords::new)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let steps = script(&args);
    if let Some(nice) = args.guest_nice {
        let tid = rustix::thread::gettid();
        rustix::process::setpriority_process(Some(tid), nice)
            .with_context(|| format!("cannot set the guest thread's nice value to {nice}"))?;
    }
    let mut phases: Vec<(&str, PhaseSamples)> = Vec::new();
    if args.phases != Phases::Loaded {
        phases.push(("idle", run_phase(ctx, &args, &records, &steps, false)?));
    }
    if args.phases != Phases::Idle {
        phases.push(("loaded", run_phase(ctx, &args, &records, &steps, true)?));
    }

    let mut r = Report::default();
    r.note(format!(
        "dpdk-reply: {} VMs x {VCPUS} vCPUs on {} pCPUs, 1 channel each, queries granted; {} fresh host(s) per phase; per VM and round: {} first touches, {} steady CPU_POWER, {} QUERY_FREQ_LIST, {} x (PKT_POLICY LOW, PKT_POLICY TIME, REMOVE + CPU_POWER)",
        args.vms,
        args.vms * 2,
        args.rounds,
        VCPUS,
        args.steady,
        args.queries,
        args.cycles
    ));
    r.note(RateLimitSetting::Off.describe());
    r.note(args.wait.describe());
    r.note("one guest thread, one request in flight; time = write -> whole reply; us");
    if let Some(setting) = ctx.daemon.describe() {
        r.note(setting);
    }
    if let Some(nice) = args.guest_nice {
        r.note(format!("guest thread at nice {nice}"));
    }
    r.note("checked: every ACK echoes its request, every change reached scaling_setspeed, FREQ_LIST names the VM's 2 vCPUs, no stray reply bytes");
    let mut alls = Vec::new();
    for (phase, samples) in &mut phases {
        if *phase == "loaded" {
            r.note(format!(
                "loaded: {} busy-spinning threads (one per online CPU), normal priority",
                samples.spinners
            ));
        }
        let mut all: Vec<Duration> = samples.by_category.iter().flatten().copied().collect();
        let late = all.iter().filter(|d| **d > WINDOW).count();
        let mut cats = Vec::new();
        for c in Category::ALL {
            let s = &mut samples.by_category[c.index()];
            let count = s.len();
            if let Some(p) = Percentiles::of(s) {
                add_percentiles(&mut r, &format!("{phase} {}", c.label()), &p, count, None);
                cats.push((c, p));
            }
        }
        let count = all.len();
        let p = Percentiles::of(&mut all).context("no samples")?;
        let target = (*phase == "loaded").then_some(Target::AtMost(micros(WINDOW)));
        add_percentiles(&mut r, &format!("{phase} all"), &p, count, target);
        r.add(
            format!("{phase} replies > 10 ms"),
            100.0 * late as f64 / count.max(1) as f64,
            "%",
        );
        if let (Some(echo), Some(blocking)) = (samples.echo, samples.blocking) {
            r.add(format!("{phase} tokio echo p50"), echo.p50, "us");
            r.add(format!("{phase} tokio echo p99.9"), echo.p999, "us");
            r.add(
                format!("{phase} blocking echo p50 (floor)"),
                blocking.p50,
                "us",
            );
            r.add(
                format!("{phase} blocking echo p99 (floor)"),
                blocking.p99,
                "us",
            );
            r.add(
                format!("{phase} blocking echo p99.9 (floor)"),
                blocking.p999,
                "us",
            );
            r.add(
                format!("{phase} blocking echo max (floor)"),
                blocking.max,
                "us",
            );
            r.add(
                format!("{phase} all p99.9 minus blocking echo p99.9"),
                p.p999 - blocking.p999,
                "us",
            );
        }
        alls.push((p, cats));
    }
    if let [(idle, idle_cats), (loaded, loaded_cats)] = &alls[..] {
        let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
        r.add("loaded/idle all p50", ratio(loaded.p50, idle.p50), "x");
        r.add("loaded/idle all p99", ratio(loaded.p99, idle.p99), "x");
        r.add("loaded/idle all p99.9", ratio(loaded.p999, idle.p999), "x");
        r.add("loaded/idle all max", ratio(loaded.max, idle.max), "x");
        for ((c, i), (_, l)) in idle_cats.iter().zip(loaded_cats) {
            r.add(
                format!("loaded/idle {} p99.9", c.label()),
                ratio(l.p999, i.p999),
                "x",
            );
        }
    }
    Ok(r)
}

fn micros(d: Duration) -> f64 {
    crate::report::micros(d)
}

fn add_percentiles(
    r: &mut Report,
    name: &str,
    p: &Percentiles,
    count: usize,
    p999: Option<Target>,
) {
    r.add(format!("{name} p50"), p.p50, "us");
    r.add(format!("{name} p99"), p.p99, "us");
    match p999 {
        Some(t) => r.add_target(format!("{name} p99.9"), p.p999, "us", t),
        None => r.add(format!("{name} p99.9"), p.p999, "us"),
    }
    r.add(format!("{name} max"), p.max, "us");
    r.add(format!("{name} count"), count as f64, "");
}

/// One phase: `rounds` fresh hosts, then the echo baselines; with
/// `loaded`, all of it with every CPU busy.
fn run_phase(
    ctx: &Ctx,
    args: &DpdkReplyArgs,
    records: &[VmRecords],
    steps: &[Step],
    loaded: bool,
) -> anyhow::Result<PhaseSamples> {
    let spinners = if loaded {
        Some(Spinners::per_cpu()?)
    } else {
        None
    };
    let mut samples = PhaseSamples {
        spinners: spinners.as_ref().map_or(0, Spinners::count),
        ..PhaseSamples::default()
    };
    for _ in 0..args.rounds {
        run_round(ctx, args, records, steps, &mut samples)?;
    }
    if args.echo > 0 {
        let record = records.first().context("no VM")?.power(0, Level::Min);
        let warmup = args.echo / 10;
        samples.echo = Some(echo_baseline(args.echo, warmup, record, false, args.wait)?);
        samples.blocking = Some(echo_baseline(args.echo, warmup, record, true, args.wait)?);
    }
    drop(spinners);
    Ok(samples)
}

/// What the guest knows of one round's host.
struct RoundState<'a> {
    host: &'a Host,
    spec: &'a HostSpec,
    /// The `scaling_setspeed` values of min and max, learnt from the
    /// first pCPU that reached each.
    khz: [Option<String>; 2],
    /// Where each pCPU should be (by pCPU), once known.
    level: Vec<Option<Level>>,
}

impl RoundState<'_> {
    fn pcpu(&self, vm: usize, vcpu: u32) -> u32 {
        self.spec.pcpu(vm, vcpu)
    }

    /// Checks that `pcpu` is at `level` (learning the value the first time).
    fn check(&mut self, pcpu: u32, level: Level, why: &str) -> anyhow::Result<()> {
        let value = self.host.cpu_file(pcpu, SETSPEED)?;
        let slot = &mut self.khz[usize::from(level == Level::Max)];
        match slot {
            None => *slot = Some(value),
            Some(want) if *want == value => {}
            Some(want) => {
                bail!("after {why}, {SETSPEED} of pCPU {pcpu} is {value}, not {level:?} ({want})")
            }
        }
        if let [Some(min), Some(max)] = &self.khz {
            ensure!(min != max, "SCALE_MIN and SCALE_MAX both leave {min}");
        }
        self.level[usize::try_from(pcpu).unwrap_or(0)] = Some(level);
        Ok(())
    }

    /// Reads back where `pcpu` is, when the guest cannot know (after a
    /// policy's removal).
    fn relearn(&mut self, pcpu: u32) -> anyhow::Result<()> {
        let value = self.host.cpu_file(pcpu, SETSPEED)?;
        let level = match &self.khz {
            [Some(min), _] if *min == value => Level::Min,
            [_, Some(max)] if *max == value => Level::Max,
            _ => bail!("{SETSPEED} of pCPU {pcpu} is {value}, neither min nor max"),
        };
        self.level[usize::try_from(pcpu).unwrap_or(0)] = Some(level);
        Ok(())
    }

    fn level(&self, pcpu: u32) -> anyhow::Result<Level> {
        self.level[usize::try_from(pcpu).unwrap_or(0)]
            .with_context(|| format!("pCPU {pcpu}'s level is unknown"))
    }
}

/// One fresh host: every VM runs the script, step by step, round-robin.
fn run_round(
    ctx: &Ctx,
    args: &DpdkReplyArgs,
    records: &[VmRecords],
    steps: &[Step],
    samples: &mut PhaseSamples,
) -> anyhow::Result<()> {
    let spec = HostSpec {
        cpus: u32::try_from(args.vms)? * VCPUS,
        vms: args.vms,
        rate_limit: RateLimitSetting::Off,
        vcpus: VCPUS,
        queries: true,
    };
    let mut running = launch(ctx, "dpdk-reply", &spec, 1, Duration::from_secs(120))?;
    std::thread::sleep(args.settle);
    let mut state = RoundState {
        host: &running.host,
        spec: &spec,
        khz: [None, None],
        level: vec![None; usize::try_from(spec.cpus)?],
    };
    let mut verdict = [0u8; RECORD];
    let mut list = [0u8; 88];
    for step in steps {
        for (vm, (stream, rec)) in running.streams.iter_mut().zip(records).enumerate() {
            let vm_step = || format!("{} {step:?}", rec.name);
            match *step {
                Step::FirstTouch { vcpu, level } => {
                    let request = rec.power(vcpu, level);
                    let times = &mut samples.by_category[Category::FirstTouch.index()];
                    acked(stream, request, &mut verdict, args.wait, times).with_context(vm_step)?;
                    let pcpu = state.pcpu(vm, vcpu);
                    state.check(pcpu, level, "a first touch")?;
                    let governor = state.host.cpu_file(pcpu, "scaling_governor")?;
                    ensure!(
                        governor == "userspace",
                        "pCPU {pcpu}'s governor is {governor} after a first touch"
                    );
                }
                Step::Steady { vcpu } => {
                    let times = &mut samples.by_category[Category::Steady.index()];
                    let (pcpu, level) = toggle(&state, rec, vm, vcpu, stream, args.wait, times)
                        .with_context(vm_step)?;
                    state.check(pcpu, level, "CPU_POWER")?;
                }
                Step::Query => {
                    let t = timed(stream, &rec.query, &mut list, args.wait)?;
                    samples.by_category[Category::Query.index()].push(t);
                    let reply = decode_freq_list(&list).with_context(vm_step)?;
                    ensure!(
                        reply.vm_name.as_str() == rec.name
                            && reply.num_vcpu == 2
                            && reply.freqs_khz[..2].iter().all(|f| *f > 0),
                        "{}: unexpected FREQ_LIST {reply:?}",
                        rec.name
                    );
                }
                Step::SetLow | Step::SetTime => {
                    let (request, level) = if matches!(step, Step::SetLow) {
                        (&rec.low, Level::Min)
                    } else {
                        (&rec.time, Level::Max)
                    };
                    let times = &mut samples.by_category[Category::PolicySet.index()];
                    acked(stream, request, &mut verdict, args.wait, times).with_context(vm_step)?;
                    for vcpu in 0..VCPUS {
                        state.check(state.pcpu(vm, vcpu), level, "PKT_POLICY")?;
                    }
                }
                Step::RemoveThenPower { vcpu } => {
                    std::io::Write::write_all(stream, &rec.remove).context("write REMOVE")?;
                    let times = &mut samples.by_category[Category::AfterRemove.index()];
                    let (pcpu, level) = toggle(&state, rec, vm, vcpu, stream, args.wait, times)
                        .with_context(vm_step)?;
                    state.check(pcpu, level, "REMOVE + CPU_POWER")?;
                    for other in (0..VCPUS).filter(|v| *v != vcpu) {
                        state.relearn(state.pcpu(vm, other))?;
                    }
                }
            }
        }
    }
    for (stream, rec) in running.streams.iter_mut().zip(records) {
        ensure_drained(stream).with_context(|| rec.name.clone())?;
    }
    running.daemon.stop()?;
    Ok(())
}

/// Write → whole reply.
fn timed(
    stream: &mut UnixStream,
    request: &[u8],
    reply: &mut [u8],
    wait: GuestWait,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    exchange(stream, request, reply, wait)?;
    Ok(t.elapsed())
}

/// A timed CPU_POWER moving VM `vm`'s `vcpu` to the other end (min ↔
/// max); its pCPU and the level asked, for the caller to check.
fn toggle(
    state: &RoundState<'_>,
    rec: &VmRecords,
    vm: usize,
    vcpu: u32,
    stream: &mut UnixStream,
    wait: GuestWait,
    times: &mut Vec<Duration>,
) -> anyhow::Result<(u32, Level)> {
    let pcpu = state.pcpu(vm, vcpu);
    let level = state.level(pcpu)?.other();
    let mut reply = [0u8; RECORD];
    acked(stream, rec.power(vcpu, level), &mut reply, wait, times)?;
    Ok((pcpu, level))
}

/// Write → whole reply, recorded in `times`; the reply must be an ACK of
/// `request` (checked after the timing).
fn acked(
    stream: &mut UnixStream,
    request: &[u8],
    reply: &mut [u8; RECORD],
    wait: GuestWait,
    times: &mut Vec<Duration>,
) -> anyhow::Result<()> {
    times.push(timed(stream, request, reply, wait)?);
    check_ack(request, reply)
}

/// An ACK echoing `request` byte for byte except `command`.
fn check_ack(request: &[u8], reply: &[u8]) -> anyhow::Result<()> {
    let c = header::COMMAND;
    let code = u32::from_le_bytes(reply[c..c + 4].try_into()?);
    ensure!(
        code == command::ACK,
        "reply command {code}, not ACK ({})",
        command::ACK
    );
    ensure!(
        reply[..c] == request[..c] && reply[c + 4..] == request[c + 4..],
        "the ACK does not echo its request"
    );
    Ok(())
}

/// No byte left in the channel: every reply was read as its own, and
/// nothing answered the removals.
fn ensure_drained(stream: &mut UnixStream) -> anyhow::Result<()> {
    stream.set_nonblocking(true)?;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Ok(0) => bail!("the daemon closed the channel"),
        Ok(_) => bail!("a stray reply byte is left in the channel"),
        Err(e) => Err(e).context("read the channel"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_every_category() {
        let args = DpdkReplyArgs {
            vms: 1,
            rounds: 1,
            steady: 4,
            queries: 2,
            cycles: 2,
            echo: 0,
            wait: GuestWait::Poll,
            phases: Phases::Idle,
            guest_nice: None,
            settle: Duration::ZERO,
        };
        let s = script(&args);
        let count = |f: fn(&Step) -> bool| s.iter().filter(|x| f(x)).count();
        assert_eq!(count(|x| matches!(x, Step::FirstTouch { .. })), 2);
        assert_eq!(count(|x| matches!(x, Step::Steady { .. })), 4);
        assert_eq!(count(|x| matches!(x, Step::Query)), 2);
        assert_eq!(count(|x| matches!(x, Step::SetLow)), 2);
        assert_eq!(count(|x| matches!(x, Step::RemoveThenPower { .. })), 2);
        VmRecords::new(3).unwrap();
    }
}
