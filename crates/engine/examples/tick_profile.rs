//! Runs a fixed number of engine ticks of the `tick` bench's setup, for
//! instruction counts under callgrind (which criterion's timing loop
//! blurs with its own setup calls):
//!
//! ```text
//! cargo build --release -p vmpower-engine --example tick_profile
//! valgrind --tool=callgrind --toggle-collect='tick_profile::run' \
//!     target/release/examples/tick_profile crossing 1024 20
//! ```
//!
//! Instructions per tick = the collected total / the tick count. Prints
//! the number of actions, never asserts on time.

#[path = "../benches/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Duration;

use vmpower_engine::{Engine, VmId};

/// `ticks` ticks alternating `rates`, from monotonic time `start`;
/// returns the actions asked for.
#[inline(never)]
fn run(e: &mut Engine, ids: &[VmId], rates: [f64; 2], ticks: u32, start: Duration) -> usize {
    let mut actions = 0;
    let mut kept = Vec::new();
    for i in 0..ticks {
        let now = start + Duration::from_millis(100) * (i + 1);
        let rate = rates[usize::from(i % 2 == 1)];
        actions += common::tick(e, ids, black_box(rate), now, &mut kept);
    }
    actions
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (case, pcpus, ticks) = match args.as_slice() {
        [case, pcpus, ticks] => (case.as_str(), pcpus.parse(), ticks.parse()),
        _ => ("", Ok(0), Ok(0)),
    };
    let (Ok(pcpus), Ok(ticks)) = (pcpus, ticks) else {
        eprintln!("usage: tick_profile steady|crossing PCPUS TICKS");
        return ExitCode::FAILURE;
    };
    let (mut e, ids, rates) = match case {
        "steady" => {
            let (e, ids) = common::engine(pcpus, None, 150_000.0);
            (e, ids, [150_000.0, 150_000.0])
        }
        "crossing" => {
            let (e, ids) = common::engine(pcpus, Some(common::no_hysteresis()), 10_000.0);
            (e, ids, [250_000.0, 10_000.0])
        }
        _ => {
            eprintln!("usage: tick_profile steady|crossing PCPUS TICKS");
            return ExitCode::FAILURE;
        }
    };
    let actions = run(&mut e, &ids, rates, ticks, Duration::ZERO);
    println!("{case} {pcpus} pCPUs: {ticks} ticks, {actions} actions");
    ExitCode::SUCCESS
}
