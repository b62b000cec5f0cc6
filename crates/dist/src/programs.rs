//! The programs vmpower installs, with their man section and clap
//! command, read from each crate's library target.

use clap::CommandFactory;

/// One installed program.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The binary's name (and its man page's).
    pub name: &'static str,
    /// Man section: 8 for the daemon, 1 for the CLIs.
    pub section: u8,
    /// Files it uses, for the man page's FILES section: (path, what).
    pub files: &'static [(&'static str, &'static str)],
    /// Further sections of its page (SIGNALS, EXIT STATUS): (title, text).
    pub sections: &'static [(&'static str, &'static str)],
    command: fn() -> clap::Command,
}

impl Program {
    /// Its clap command, named as the binary.
    pub fn command(&self) -> clap::Command {
        (self.command)().name(self.name).bin_name(self.name)
    }
}

/// The daemon's SIGNALS and EXIT STATUS.
const VMPOWERD_SECTIONS: &[(&str, &str)] = &[
    (
        "SIGNALS",
        "SIGTERM, SIGINT and SIGQUIT stop the daemon: every CPU it took over is given back \
     (governor and bounds) before the process ends. SIGHUP (systemctl reload) reads the \
     configuration file again and rescans the policy directory: log, VM settings ([vm.NAME]), \
     pcpus, core_branch_ratio, channel_busy_poll_us and foreign_writer change live, and a \
     policy file whose content changed applies; every other setting changed in the file is \
     logged and takes effect at the next restart. A file that does not load changes nothing. \
     SIGKILL (or a crash) cannot give the CPUs back: the next start restores them from the \
     takeover record before anything else.",
    ),
    (
        "EXIT STATUS",
        "0: stopped by a signal after giving every CPU back, or --check-config found no \
         problem. 1: failed at start or while running (another daemon holds the state \
         directory, the state database cannot be opened, ...). 2: the configuration is \
         invalid, or a path the daemon must write (the cpufreq files under sysfs_root, \
         state_dir, the control socket's directory, channel_dir) is not writable: the start \
         is refused before READY=1, each path named with the ReadWritePaths= to add to the \
         unit; with --check-config, at least one problem was printed (policy files \
         included). The unit does not restart on 2 (RestartPreventExitStatus=2).",
    ),
];

/// The daemon's files, at their default paths (each configurable:
/// vmpowerd.toml(5)).
const VMPOWERD_FILES: &[(&str, &str)] = &[
    (
        "/etc/vmpower/vmpowerd.toml",
        "the configuration (--config; the unit passes this one): every setting, commented at \
         its default, in the installed example; its format is vmpowerd.toml(5)",
    ),
    (
        "/var/lib/vmpower",
        "the state directory (state_dir, --state-dir; the unit's StateDirectory=)",
    ),
    (
        "/var/lib/vmpower/vmpower.db",
        "the state database (SQLite, WAL, with its -wal and -shm files): the takeover record \
         (every CPU's governor and bounds before the daemon first wrote to it, restored at stop \
         and at the next start after a crash), policies, VM settings, vCPU mappings and the \
         decision history",
    ),
    (
        "/var/lib/vmpower/vmpowerd.lock",
        "held (flock) while a daemon runs on the state directory: a second one exits with \
         status 1 naming the first one's pid",
    ),
    (
        "/run/vmpower/control.sock",
        "the control API's socket for vmpowerctl (control_socket, --control-socket; mode \
         control_socket_mode; the unit's RuntimeDirectory=)",
    ),
    (
        "/tmp/powermonitor",
        "the channel directory (channel_dir, --channel-dir), watched with inotify",
    ),
    (
        "/tmp/powermonitor/<vm>.<n>",
        "QEMU's virtio-serial channel sockets, one per guest channel; the daemon connects to them",
    ),
    (
        "/tmp/powermonitor/fifo<N>",
        "DPDK's JSON FIFOs, one per controllable CPU (fifos = true): made at start, removed at \
         a clean stop (a crashed run's at the next one)",
    ),
    (
        "/etc/vmpower/policies.d",
        "policy files *.toml and *.json (policy_dir), applied when written, withdrawn when \
         removed; ignored if the directory does not exist at start",
    ),
    (
        "/sys/devices/system/cpu",
        "cpufreq, topology, turbo and uncore files read and written (under sysfs_root)",
    ),
    (
        "/proc",
        "QEMU's vCPU threads and their affinity, and the daemon's own process_* metrics (proc_root)",
    ),
];

/// vmpowerd, vmpowerctl and vmpower-guest.
pub fn all() -> [Program; 3] {
    [
        Program {
            name: "vmpowerd",
            section: 8,
            files: VMPOWERD_FILES,
            sections: VMPOWERD_SECTIONS,
            command: vmpowerd::config::Args::command,
        },
        Program {
            name: "vmpowerctl",
            section: 1,
            files: &[(
                "/run/vmpower/control.sock",
                "the daemon's control socket (--control-socket)",
            )],
            sections: &[],
            command: vmpowerctl::cli::Cli::command,
        },
        Program {
            name: "vmpower-guest",
            section: 1,
            files: &[(
                "/dev/virtio-ports/virtio.serial.port.poweragent.N",
                "power channel N inside the guest",
            )],
            sections: &[],
            command: vmpower_guest::cli::Cli::command,
        },
    ]
}

/// The names of `cmd`'s visible subcommands, recursively, as paths
/// (`["policy", "create"]`); `help` excluded.
pub fn subcommand_paths(cmd: &clap::Command) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let name = sub.get_name().to_owned();
        paths.push(vec![name.clone()]);
        for mut rest in subcommand_paths(sub) {
            rest.insert(0, name.clone());
            paths.push(rest);
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_valid_and_named_as_its_binary() {
        for p in all() {
            let cmd = p.command();
            cmd.clone().debug_assert();
            assert_eq!(cmd.get_name(), p.name);
        }
    }

    #[test]
    fn nested_subcommands_are_listed_with_their_parents() {
        let ctl = all()[1].command();
        let paths = subcommand_paths(&ctl);
        assert!(paths.contains(&vec!["status".to_owned()]), "{paths:?}");
        assert!(
            paths.contains(&vec!["policy".to_owned(), "create".to_owned()]),
            "{paths:?}"
        );
        assert!(subcommand_paths(&all()[0].command()).is_empty());
    }
}
