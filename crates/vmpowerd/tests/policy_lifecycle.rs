//! One policy's life through every door: the same policy, sent by a guest
//! on its channel, written into DPDK's JSON FIFO, created through the
//! control API and dropped into the policy directory, must leave the same
//! engine state, the same row in the state database (read by reopening
//! it, and restored by a restart) and the same answer, each door
//! answering its way: accepted, refused by the engine, for a VM not
//! known (added, or refused when undeclared VMs are not served), and in
//! force although its frequency write failed.

#![allow(clippy::unwrap_used)]

use std::io::Write;

use serde_json::Value;
use vmpower_api::{CtlRequest, CtlResponse, PolicyFile};
use vmpower_cpufreq::fake::FailKind;
use vmpower_engine::{ChannelId, VmId};
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{
    Layout, Policy, PolicyKind, Request, RequestBody, VcpuList, Verdict, VmName, WorkloadLevel,
};
use vmpower_testkit::prelude::*;
use vmpowerd::store::{PolicySource, Store, StoreOptions};

/// Where a policy comes in. The restore at start is the fifth door: every
/// case restarts the daemon and checks what the restore put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    Guest,
    Fifo,
    Control,
    PolicyDir,
}

const DOORS: [Door; 4] = [Door::Guest, Door::Fifo, Door::Control, Door::PolicyDir];

/// The host CPU the declared VM's vCPU 0 runs on; a FIFO's policy names
/// it directly (the FIFO is the operator's, its cores are host CPUs).
const PCPU: u32 = 2;
/// The FIFO written: `fifo<PCPU>`.
const FIFO: u32 = PCPU;
/// The host CPU a FIFO's policy for an undeclared VM names: one no VM
/// shares (vm1's default max would win pCPU 2's arbitration).
const FREE_PCPU: u32 = 3;
/// The policy file's name.
const FILE: &str = "policy.toml";
/// Where pCPU 2's frequency is written (acpi-cpufreq).
const SETSPEED: &str = "devices/system/cpu/cpu2/cpufreq/scaling_setspeed";
/// The fake host's medium frequency: a WORKLOAD MEDIUM policy's.
const MEDIUM_KHZ: &str = "1600000";

/// What the door was told, in its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// ACK, an `ok` answer, a file applied, a FIFO message not refused.
    Accepted,
    /// NACK, an error answer, a file listed as refused, a FIFO message
    /// counted as refused.
    Refused,
}

/// One row of the table.
struct Case {
    name: &'static str,
    /// The VM the policy names.
    vm: &'static str,
    /// Undeclared VMs are served.
    auto_add_vms: bool,
    /// Out of range: vCPU 5 for a VM with one; host CPU 9 for a FIFO.
    out_of_range: bool,
    /// Every write of pCPU 2's frequency fails.
    writes_fail: bool,
    /// What every door answers.
    answer: Answer,
    /// The policy is in force (`policy show`), now and after a restart.
    in_force: bool,
    /// pCPU 2 is at the policy's frequency once a VM's policy is in force
    /// (and the writes work); a FIFO's policy drives the host CPU it names.
    drives_pcpu: bool,
}

const CASES: [Case; 5] = [
    Case {
        name: "accepted",
        vm: "vm1",
        auto_add_vms: true,
        out_of_range: false,
        writes_fail: false,
        answer: Answer::Accepted,
        in_force: true,
        drives_pcpu: true,
    },
    Case {
        name: "refused by the engine",
        vm: "vm1",
        auto_add_vms: true,
        out_of_range: true,
        writes_fail: false,
        answer: Answer::Refused,
        in_force: false,
        drives_pcpu: false,
    },
    Case {
        // Added as its channel socket would add it; a VM's policy then
        // waits for its placement (a FIFO's names host CPUs and acts).
        name: "unknown VM, added",
        vm: "vm7",
        auto_add_vms: true,
        out_of_range: false,
        writes_fail: false,
        answer: Answer::Accepted,
        in_force: true,
        drives_pcpu: false,
    },
    Case {
        name: "unknown VM, not served",
        vm: "vm7",
        auto_add_vms: false,
        out_of_range: false,
        writes_fail: false,
        answer: Answer::Refused,
        in_force: false,
        drives_pcpu: false,
    },
    Case {
        // In force and persisted; the failure is reported as the door
        // reports errors (the policy directory and the FIFO: a warning in
        // the log, and the failed write in `status`).
        name: "frequency write fails",
        vm: "vm1",
        auto_add_vms: true,
        out_of_range: false,
        writes_fail: true,
        answer: Answer::Refused,
        in_force: true,
        drives_pcpu: true,
    },
];

impl Door {
    /// What the state database records as the policy's source.
    fn source(self, vm: &str) -> PolicySource {
        match self {
            Door::Guest => PolicySource::GuestChannel(ChannelId {
                vm: VmId::new(vm),
                index: 0,
            }),
            Door::Fifo => PolicySource::Fifo(FIFO),
            Door::Control => PolicySource::Operator,
            Door::PolicyDir => PolicySource::PolicyDir(FILE.into()),
        }
    }

    /// Whether the door can carry a policy for `case` at all: a guest's
    /// socket of an undeclared VM is not served when such VMs are not.
    fn reaches(self, case: &Case) -> bool {
        !(self == Door::Guest && !case.auto_add_vms && case.vm != "vm1")
    }

    /// Sends the case's WORKLOAD MEDIUM policy through the door; what the
    /// door answered.
    async fn send(self, host: &Host, case: &Case) -> Answer {
        let vcpu = if case.out_of_range { 5 } else { 0 };
        let file = format!(
            "vm = \"{}\"\nkind = \"WORKLOAD\"\ncores = [{vcpu}]\nworkload = \"MEDIUM\"\n",
            case.vm
        );
        match self {
            Door::Guest => {
                let qemu = host.qemu(case.vm, 0);
                let mut guest = accept(&qemu).await;
                let mut policy =
                    Policy::new(PolicyKind::Workload, VcpuList::from_slice(&[vcpu]).unwrap());
                policy.workload = WorkloadLevel::Medium;
                let request = Request {
                    vm_name: VmName::new(case.vm).unwrap(),
                    body: RequestBody::SetPolicy(policy),
                };
                let record = encode_request_record(&request, Layout::Current).unwrap();
                match call(&mut guest, record.as_slice()).await {
                    Verdict::Ack => Answer::Accepted,
                    Verdict::Nack => Answer::Refused,
                }
            }
            Door::Control => {
                let policy = Box::new(PolicyFile::parse(&file).unwrap());
                match host.ctl(&CtlRequest::PolicyCreate { policy }) {
                    CtlResponse::Ok(_) => Answer::Accepted,
                    CtlResponse::Error(_) => Answer::Refused,
                }
            }
            Door::PolicyDir => {
                std::fs::write(host.config.policy_dir.join(FILE), file).unwrap();
                // The file is settled once its policy is in force or it
                // is listed as refused.
                wait_for(|| show(host, case.vm).is_some() || !files_refused(host).is_empty()).await;
                if files_refused(host).is_empty() {
                    Answer::Accepted
                } else {
                    Answer::Refused
                }
            }
            Door::Fifo => {
                let core = if case.out_of_range {
                    9
                } else {
                    fifo_core(case)
                };
                let message = format!(
                    r#"{{"policy": {{"name": "{}", "command": "create", "policy_type": "WORKLOAD", "workload": "MEDIUM", "core_list": [{core}]}}}}"#,
                    case.vm
                );
                let path = host.config.channel_dir.join(format!("fifo{FIFO}"));
                let mut writer = tokio::time::timeout(
                    WAIT,
                    tokio::task::spawn_blocking(move || {
                        std::fs::OpenOptions::new().write(true).open(path)
                    }),
                )
                .await
                .unwrap()
                .unwrap()
                .unwrap();
                writer.write_all(message.as_bytes()).unwrap();
                wait_for(|| show(host, case.vm).is_some() || fifo_refused(host) > 0).await;
                if fifo_refused(host) > 0 {
                    Answer::Refused
                } else {
                    Answer::Accepted
                }
            }
        }
    }

    /// Removes `vm`'s policy through the door, and waits until the
    /// daemon has done so.
    async fn remove(self, host: &Host, vm: &str) {
        match self {
            Door::Guest => {
                // A new connection (the first one's socket file is gone
                // with its listener), on the native contract, which
                // answers a removal.
                std::fs::remove_file(host.socket(vm, 0)).unwrap();
                let qemu = host.qemu(vm, 0);
                let mut guest = accept(&qemu).await;
                native(&mut guest).await;
                let remove = record(RequestBody::RemovePolicy);
                assert_eq!(call(&mut guest, &remove).await, Verdict::Ack);
            }
            Door::Control => {
                host.ok(&CtlRequest::PolicyDestroy { vm: vm.into() });
            }
            Door::PolicyDir => {
                std::fs::remove_file(host.config.policy_dir.join(FILE)).unwrap();
            }
            Door::Fifo => {
                let message = format!(r#"{{"policy": {{"name": "{vm}", "command": "destroy"}}}}"#);
                let path = host.config.channel_dir.join(format!("fifo{FIFO}"));
                let mut writer = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                writer.write_all(message.as_bytes()).unwrap();
            }
        }
        wait_for(|| show(host, vm).is_none()).await;
    }

    /// How the door says a write failed under a policy it put in force:
    /// the guest and the control client were told (checked by `send`'s
    /// answer); the policy directory and the FIFO say it in the log, and
    /// every door's failed write is in `status`.
    fn answer_when_writes_fail(self) -> Answer {
        match self {
            Door::Guest | Door::Control => Answer::Refused,
            Door::Fifo | Door::PolicyDir => Answer::Accepted,
        }
    }
}

/// The host CPU a FIFO's policy names for `case`.
fn fifo_core(case: &Case) -> u32 {
    if case.vm == "vm1" { PCPU } else { FREE_PCPU }
}

fn status(host: &Host) -> Value {
    host.ok(&CtlRequest::Status)
}

fn show(host: &Host, vm: &str) -> Option<Value> {
    match host.ctl(&CtlRequest::PolicyShow { vm: vm.into() }) {
        CtlResponse::Ok(v) => Some(v),
        CtlResponse::Error(_) => None,
    }
}

fn files_refused(host: &Host) -> Vec<Value> {
    status(host)["stats"]["policy_files_refused"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn fifo_refused(host: &Host) -> u64 {
    status(host)["stats"]["rejections"]["fifo_refused"]
        .as_u64()
        .unwrap_or(0)
}

/// The policy stored for `vm`, read from the state database while the
/// daemon is stopped.
fn stored(host: &Host, vm: &str) -> Option<PolicySource> {
    let store = Store::open_in_dir(&host.config.state_dir, StoreOptions::default()).unwrap();
    store.policy(&VmId::new(vm)).unwrap().map(|p| p.source)
}

/// Runs one case through one door and checks everything the table says.
async fn run(case: &Case, door: Door) {
    let at = format!("{} through {door:?}", case.name);
    let auto_add = case.auto_add_vms;
    let mut host = Host::start_adjusted(&[("vm1", vm(&[PCPU]))], |c| {
        c.auto_add_vms = auto_add;
        std::fs::create_dir_all(&c.policy_dir).unwrap();
    })
    .await;
    let before = host.cpu_file(PCPU, "scaling_setspeed");
    if case.writes_fail {
        host.fake.fail_all_writes(SETSPEED, FailKind::Busy);
    }
    let answer = door.send(&host, case).await;
    let expected = if case.writes_fail {
        door.answer_when_writes_fail()
    } else {
        case.answer
    };
    assert_eq!(answer, expected, "{at}: answer");
    // The engine's state, the same whichever door.
    let shown = show(&host, case.vm);
    assert_eq!(shown.is_some(), case.in_force, "{at}: in force: {shown:?}");
    if let Some(shown) = &shown {
        assert_eq!(shown["policy"]["kind"], "WORKLOAD", "{at}: {shown}");
    }
    let failures = status(&host)["stats"]["sysfs_failures"].as_u64().unwrap();
    assert_eq!(
        failures > 0,
        case.writes_fail,
        "{at}: failed writes counted"
    );
    // A policy in force drives its cores (a VM's waits for its
    // placement); a failed write leaves the file as the takeover left it.
    let driven = match door {
        Door::Fifo => case.in_force.then(|| fifo_core(case)),
        _ => case.drives_pcpu.then_some(PCPU),
    };
    if let Some(cpu) = driven.filter(|_| !case.writes_fail) {
        wait_for(|| host.cpu_file(cpu, "scaling_setspeed") == MEDIUM_KHZ).await;
    }
    if driven != Some(PCPU) && !case.writes_fail {
        assert_eq!(host.cpu_file(PCPU, "scaling_setspeed"), before, "{at}");
    }
    // The same persistence: what is in force now is in the state
    // database, with its door as its source, and nothing else is.
    host.stop().await.unwrap();
    let expected_source = case.in_force.then(|| door.source(case.vm));
    assert_eq!(stored(&host, case.vm), expected_source, "{at}: stored");
    // The restore at start puts back what was in force, and the writes
    // that failed are made now that they work.
    host.fake.clear_failures();
    host.launch().await;
    if case.in_force {
        wait_for(|| show(&host, case.vm).is_some()).await;
        if let Some(cpu) = driven {
            wait_for(|| host.cpu_file(cpu, "scaling_setspeed") == MEDIUM_KHZ).await;
        }
    } else {
        assert!(show(&host, case.vm).is_none(), "{at}: nothing restored");
    }
    host.stop().await.unwrap();
}

/// Runs one row through every door that can carry it.
async fn row(name: &str) {
    let case = CASES.iter().find(|c| c.name == name).unwrap();
    for door in DOORS.into_iter().filter(|d| d.reaches(case)) {
        run(case, door).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_policy_is_the_same_through_every_door() {
    row("accepted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_policy_is_the_same_through_every_door() {
    row("refused by the engine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_for_an_unknown_vm_adds_it_through_every_door() {
    row("unknown VM, added").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_for_an_unserved_vm_is_refused_through_every_door() {
    row("unknown VM, not served").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_whose_write_fails_stays_in_force_and_persisted_through_every_door() {
    row("frequency write fails").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_removed_is_gone_the_same_way_through_every_door() {
    let case = CASES.iter().find(|c| c.name == "accepted").unwrap();
    for door in DOORS {
        let at = format!("removed through {door:?}");
        let mut host = Host::start_adjusted(&[("vm1", vm(&[PCPU]))], |c| {
            std::fs::create_dir_all(&c.policy_dir).unwrap();
        })
        .await;
        let governor = host.cpu_file(PCPU, "scaling_governor");
        assert_eq!(door.send(&host, case).await, Answer::Accepted, "{at}");
        wait_for(|| host.cpu_file(PCPU, "scaling_setspeed") == MEDIUM_KHZ).await;
        door.remove(&host, case.vm).await;
        // The engine's state: no policy, and pCPU 2 back to its governor
        // (vm1 has no other wish for it).
        wait_for(|| host.cpu_file(PCPU, "scaling_governor") == governor).await;
        // The same persistence: nothing stored, nothing restored.
        host.stop().await.unwrap();
        assert_eq!(stored(&host, case.vm), None, "{at}: stored");
        host.launch().await;
        assert!(show(&host, case.vm).is_none(), "{at}: restored");
        host.stop().await.unwrap();
    }
}

#[test]
fn every_row_is_run() {
    let names = [
        "accepted",
        "refused by the engine",
        "unknown VM, added",
        "unknown VM, not served",
        "frequency write fails",
    ];
    let table: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    assert_eq!(table, names);
}
