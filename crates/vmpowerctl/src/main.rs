//! `vmpowerctl`: the host operator's CLI over vmpowerd's control socket.
//!
//! Exit codes: 0 done; 1 the daemon could not be reached; 2 usage error;
//! 3 no such VM, channel or CPU; 4 refused by the daemon.

use vmpowerctl::cli;
mod render;
mod top;

use std::process::ExitCode;

use clap::Parser;
use rustyline::error::ReadlineError;
use vmpower_api::{Client, CtlResponse, ErrorKind};

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Shell) {
        return shell(&cli);
    }
    if let Command::Top(args) = &cli.command {
        return top::run(&cli, args);
    }
    run(&cli, &cli.command)
}

/// Runs one command and prints its result.
fn run(cli: &Cli, command: &Command) -> ExitCode {
    let request = match command.request() {
        Ok(Some(r)) => r,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmpowerctl: {e}");
            return ExitCode::from(2);
        }
    };
    let answer = Client::connect(&cli.control_socket).and_then(|mut c| c.call(&request));
    match answer {
        Err(e) => {
            eprintln!("vmpowerctl: {:#}", anyhow::Error::from(e));
            ExitCode::from(1)
        }
        Ok(CtlResponse::Ok(value)) => {
            if cli.json {
                println!("{value}");
            } else {
                print!("{}", render::render(command, &value));
            }
            ExitCode::SUCCESS
        }
        Ok(CtlResponse::Error(e)) => {
            if cli.json {
                println!("{}", serde_json::json!({ "error": e }));
            }
            eprintln!("vmpowerctl: {}", e.message);
            ExitCode::from(match e.kind {
                ErrorKind::Invalid => 2,
                ErrorKind::NotFound => 3,
                ErrorKind::Refused => 4,
            })
        }
    }
}

/// The interactive shell: DPDK's `vm_power>` prompt, with history.
fn shell(cli: &Cli) -> ExitCode {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("vmpowerctl: cannot start the shell: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        let line = match editor.readline("vm_power> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vmpowerctl: {e}");
                return ExitCode::FAILURE;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        if matches!(line, "quit" | "exit") {
            return ExitCode::SUCCESS;
        }
        let Some(words) = shlex::split(line) else {
            eprintln!("unbalanced quotes");
            continue;
        };
        let argv = std::iter::once("vmpowerctl".to_owned()).chain(words);
        match Cli::try_parse_from(argv) {
            Ok(parsed) if matches!(parsed.command, Command::Shell) => {
                eprintln!("already in the shell");
            }
            Ok(parsed) => {
                let merged = Cli {
                    control_socket: cli.control_socket.clone(),
                    json: parsed.json || cli.json,
                    command: parsed.command,
                };
                let _ = run(&merged, &merged.command);
            }
            Err(e) => {
                let _ = e.print();
            }
        }
    }
}
