//! `vmpower-guest`: DPDK guest_cli's commands as a command-line tool and an
//! interactive shell (`vm_power(guest)>`), over the vmpower guest library;
//! and `vmpower-guest agent`, which reports busyness to the host until
//! stopped.
//!
//! Exit codes: 0 done; 1 the host could not be reached; 2 usage or invalid
//! request (nothing sent); 3 no such port; 4 refused by the host (NACK);
//! 5 the host's reply did not fit the request.

use vmpower_guest::cli;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use rustyline::error::ReadlineError;

use cli::output::{CmdError, report};
use cli::session::Session;
use cli::{Cli, Command, ShellLine};

/// The shell's prompt, as DPDK's guest_cli.
const PROMPT: &str = "vm_power(guest)> ";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut session = match Session::new(&cli) {
        Ok(s) => s,
        Err(e) => return report(Err(e), cli.json),
    };
    match &cli.command {
        Command::Shell { history } => shell(&mut session, history.as_deref(), cli.json),
        Command::Agent(args) => {
            // Runs until the process is stopped (SIGTERM ends it; the agent
            // holds nothing the host needs given back).
            let (_keep, stop) = std::sync::mpsc::channel();
            report(cli::agent::run(&session, args, &stop), cli.json)
        }
        command => report(session.execute(command), cli.json),
    }
}

/// The interactive shell: one channel for the whole session, line editing
/// and history (kept in `history` if given).
fn shell(session: &mut Session, history: Option<&Path>, json: bool) -> ExitCode {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            return report(
                Err(CmdError::Usage(format!("cannot start the shell: {e}"))),
                json,
            );
        }
    };
    if let Some(path) = history {
        // A missing history file is normal on first use.
        let _ = editor.load_history(path);
    }
    loop {
        let line = match editor.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("vmpower-guest: {e}");
                break;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        if matches!(line, "quit" | "exit") {
            break;
        }
        let Some(words) = shlex::split(line) else {
            eprintln!("unbalanced quotes");
            continue;
        };
        match ShellLine::try_parse_from(words) {
            Ok(parsed) => {
                let _ = report(session.execute(&parsed.command), parsed.json || json);
            }
            Err(e) => {
                let _ = e.print();
            }
        }
    }
    if let Some(path) = history
        && let Err(e) = editor.save_history(path)
    {
        eprintln!(
            "vmpower-guest: cannot save the history to {}: {e}",
            path.display()
        );
    }
    ExitCode::SUCCESS
}
