//! `fake_sysfs DIR CPUS GOVERNOR`: writes a fake sysfs tree (acpi-cpufreq,
//! turbo, every CPU starting under GOVERNOR) into DIR, for the shell
//! proofs that run the installed daemon outside cargo's tests
//! (tests/systemd/run, tests/prometheus/run). DIR is the daemon's
//! `sysfs_root`: it gets `devices/system/cpu/...` as plain files.
//!
//! Built with `cargo build --release -p vmpower-cpufreq --features
//! test-utils --example fake_sysfs`.

use std::path::PathBuf;
use std::process::ExitCode;

use vmpower_cpufreq::fake::FakeSysfs;
use vmpower_cpufreq::types::Driver;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, cpus, governor] = args.as_slice() else {
        eprintln!("usage: fake_sysfs DIR CPUS GOVERNOR");
        return ExitCode::from(2);
    };
    let Ok(cpus) = cpus.parse::<u32>() else {
        eprintln!("fake_sysfs: not a CPU count: {cpus}");
        return ExitCode::from(2);
    };
    let built = FakeSysfs::builder(cpus)
        .driver(Driver::AcpiCpufreq)
        .governor(governor)
        .in_dir(PathBuf::from(dir))
        .build();
    match built {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake_sysfs: {e}");
            ExitCode::FAILURE
        }
    }
}
