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
     pcpus, core_branch_ratio and channel_busy_poll_us change live, and a policy file \
     whose content changed applies; every other setting changed in the file is logged \
     and takes effect at the next restart. A file that does not load changes nothing.",
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

/// vmpowerd, vmpowerctl and vmpower-guest.
pub fn all() -> [Program; 3] {
    [
        Program {
            name: "vmpowerd",
            section: 8,
            files: &[
                (
                    "/etc/vmpower/vmpowerd.toml",
                    "configuration (every setting in the installed example)",
                ),
                (
                    "/etc/vmpower/policies.d",
                    "policy files applied and followed",
                ),
                (
                    "/var/lib/vmpower",
                    "takeover record and state database (policies, history)",
                ),
                ("/run/vmpower/control.sock", "control socket for vmpowerctl"),
                (
                    "/tmp/powermonitor",
                    "the guests' channel sockets <vm>.<n> and DPDK's FIFOs",
                ),
            ],
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
