//! `vmpower-e2e`: the end-to-end harness run by tests/e2e/run.
//!
//! - `vmpower-e2e payloads DIR`: writes the hostile guest's raw payloads
//!   (packed into the initramfs by the run script).
//! - `vmpower-e2e run --work DIR --kernel K --initrd I --vmpowerd D
//!   --vmpowerctl C [SCENARIO...]`: runs the scenarios (all if none given),
//!   prints one line per scenario (PASS/FAIL, wall time), and exits 1 if
//!   any failed.
//!
//! The scenarios boot real guests and need QEMU, the kernel and initramfs
//! the run script prepares: they never run under `cargo test`.

mod daemon;
mod guest_ctl;
mod libvirt;
mod payloads;
mod proc;
mod qemu;
mod qmp;
mod scenarios;
mod traffic;
mod wait;
mod work;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use work::{Accel, Work};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("vmpower-e2e: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Parsed `run` arguments.
struct RunArgs {
    work: Work,
    scenarios: Vec<u32>,
}

fn parse_run(args: &[String]) -> anyhow::Result<RunArgs> {
    let mut paths: [Option<PathBuf>; 5] = Default::default();
    let mut scenarios = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let slot = match arg.as_str() {
            "--work" => 0,
            "--kernel" => 1,
            "--initrd" => 2,
            "--vmpowerd" => 3,
            "--vmpowerctl" => 4,
            n => {
                scenarios.push(n.parse().with_context(|| format!("not a scenario: {n}"))?);
                continue;
            }
        };
        let value = it.next().with_context(|| format!("{arg} needs a value"))?;
        paths[slot] = Some(PathBuf::from(value));
    }
    let [
        Some(dir),
        Some(kernel),
        Some(initrd),
        Some(vmpowerd),
        Some(vmpowerctl),
    ] = paths
    else {
        bail!("run needs --work, --kernel, --initrd, --vmpowerd and --vmpowerctl");
    };
    Ok(RunArgs {
        work: Work {
            dir,
            kernel,
            initrd,
            vmpowerd,
            vmpowerctl,
            accel: Accel::detect(),
        },
        scenarios,
    })
}

fn run(args: &[String]) -> anyhow::Result<bool> {
    match args.first().map(String::as_str) {
        Some("payloads") => {
            let dir = args.get(1).context("payloads needs a directory")?;
            payloads::write_all(&PathBuf::from(dir))?;
            Ok(true)
        }
        Some("run") => run_scenarios(parse_run(&args[1..])?),
        _ => bail!(
            "usage: vmpower-e2e payloads DIR | vmpower-e2e run --work DIR --kernel K --initrd I --vmpowerd D --vmpowerctl C [SCENARIO...]"
        ),
    }
}

fn run_scenarios(args: RunArgs) -> anyhow::Result<bool> {
    let chosen: Vec<&scenarios::Scenario> = if args.scenarios.is_empty() {
        scenarios::ALL.iter().collect()
    } else {
        args.scenarios
            .iter()
            .map(|n| {
                scenarios::ALL
                    .iter()
                    .find(|s| s.number == *n)
                    .with_context(|| format!("no scenario {n}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    println!("e2e: accelerator {:?}", args.work.accel);
    let mut results = Vec::new();
    for scenario in chosen {
        let start = Instant::now();
        let result = (scenario.run)(&args.work);
        let secs = start.elapsed().as_secs_f64();
        let verdict = if result.is_ok() { "PASS" } else { "FAIL" };
        if let Err(e) = &result {
            println!("e2e: scenario {} failed: {e:#}", scenario.number);
        }
        let line = format!(
            "scenario {} {:<45} {verdict} {secs:>6.1} s",
            scenario.number, scenario.name
        );
        println!("{line}");
        results.push((line, result.is_ok()));
    }
    println!("== e2e summary");
    for (line, _) in &results {
        println!("{line}");
    }
    Ok(results.iter().all(|(_, ok)| *ok))
}
