//! `vmpowerctl`: the host operator's CLI over vmpowerd's control socket.
//!
//! Exit codes: 0 done; 1 the daemon could not be reached; 2 usage error;
//! 3 no such VM, channel or CPU; 4 refused by the daemon.
//!
//! With `--json`, every failure also prints one object on stdout, the shape
//! of the daemon's refusals: `{"error": {"kind": K, "message": M}}`, where K
//! is `unreachable` (exit 1), `invalid` (2), `not-found` (3) or `refused`
//! (4), whether the daemon or vmpowerctl itself found the problem. The
//! message also goes to stderr.

use vmpowerctl::cli;
mod render;
mod top;

use std::process::ExitCode;

use clap::Parser;
use rustyline::error::ReadlineError;
use serde_json::{Value, json};
use vmpower_api::{Client, CtlResponse, ErrorKind};

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            print_clap_error(&e, std::env::args().any(|a| a == "--json"));
            e.exit();
        }
    };
    if matches!(cli.command, Command::Shell) {
        return shell(&cli);
    }
    if let Command::Top(args) = &cli.command {
        return top::run(&cli, args);
    }
    if let Command::Traffic(cli::TrafficCommand::Export(args)) = &cli.command {
        return export(&cli, args);
    }
    run(&cli, &cli.command)
}

/// Runs one command and prints its result.
fn run(cli: &Cli, command: &Command) -> ExitCode {
    let request = match command.request() {
        Ok(Some(r)) => r,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => return fail(cli.json, json!(ErrorKind::Invalid), &e.to_string(), 2),
    };
    let answer = Client::connect(&cli.control_socket).and_then(|mut c| c.call(&request));
    match answer {
        Err(e) => unreachable_daemon(cli.json, e),
        Ok(CtlResponse::Ok(value)) => {
            if cli.json {
                println!("{value}");
            } else {
                match render::render(command, value) {
                    Ok(text) => print!("{text}"),
                    Err(e) => {
                        let e = vmpower_api::ClientError::BadAnswer(e.to_string());
                        return unreachable_daemon(cli.json, e);
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Ok(CtlResponse::Error(e)) => {
            let code = match e.kind {
                ErrorKind::Invalid => 2,
                ErrorKind::NotFound => 3,
                ErrorKind::Refused => 4,
            };
            fail(cli.json, json!(e.kind), &e.message, code)
        }
    }
}

/// `traffic export`: the trace on standard output, or in `--output`
/// (written beside it and renamed into place once complete, so a failed
/// export leaves no partial file).
fn export(cli: &Cli, args: &cli::ExportArgs) -> ExitCode {
    use vmpowerctl::export::{ExportFailure, run};
    let result = match &args.output {
        None => run(
            &cli.control_socket,
            args,
            &mut std::io::stdout().lock(),
            "standard output",
        ),
        Some(path) => {
            let name = path.display().to_string();
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            tempfile::NamedTempFile::new_in(dir)
                .map_err(|source| ExportFailure::Write {
                    path: name.clone(),
                    source,
                })
                .and_then(|mut tmp| {
                    let mut buffered = std::io::BufWriter::new(tmp.as_file_mut());
                    run(&cli.control_socket, args, &mut buffered, &name)?;
                    std::io::Write::flush(&mut buffered).map_err(|source| {
                        ExportFailure::Write {
                            path: name.clone(),
                            source,
                        }
                    })?;
                    drop(buffered);
                    tmp.persist(path)
                        .map(drop)
                        .map_err(|e| ExportFailure::Write {
                            path: name.clone(),
                            source: e.error,
                        })
                })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(ExportFailure::Client(e)) => unreachable_daemon(cli.json, e),
        Err(ExportFailure::Daemon(e)) => {
            let code = match e.kind {
                ErrorKind::Invalid => 2,
                ErrorKind::NotFound => 3,
                ErrorKind::Refused => 4,
            };
            fail(cli.json, json!(e.kind), &e.message, code)
        }
        Err(e @ ExportFailure::Usage(_)) => {
            fail(cli.json, json!(ErrorKind::Invalid), &e.to_string(), 2)
        }
        Err(e @ ExportFailure::Empty(_)) => {
            fail(cli.json, json!(ErrorKind::NotFound), &e.to_string(), 3)
        }
        Err(e) => fail(cli.json, json!(ErrorKind::Refused), &e.to_string(), 4),
    }
}

/// Reports a failure: the message on stderr and, with `--json`, the error
/// object on stdout (see the module doc); returns exit `code`.
pub(crate) fn fail(json: bool, kind: Value, message: &str, code: u8) -> ExitCode {
    if json {
        print_error(kind, message);
    }
    eprintln!("vmpowerctl: {message}");
    ExitCode::from(code)
}

/// Reports that the daemon could not be reached (exit 1).
pub(crate) fn unreachable_daemon(json: bool, error: vmpower_api::ClientError) -> ExitCode {
    let message = format!("{:#}", anyhow::Error::from(error));
    fail(json, json!("unreachable"), &message, 1)
}

/// With `json`, prints a bad command line's first line as an `invalid`
/// error object (help and version are not failures: nothing is printed).
fn print_clap_error(error: &clap::Error, json: bool) {
    if json && error.use_stderr() {
        let text = error.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        print_error(
            json!(ErrorKind::Invalid),
            first.trim_start_matches("error: "),
        );
    }
}

/// Prints `{"error": {"kind": kind, "message": message}}` on stdout.
fn print_error(kind: Value, message: &str) {
    println!(
        "{}",
        json!({ "error": { "kind": kind, "message": message } })
    );
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
        let json = cli.json || words.iter().any(|w| w == "--json");
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
                print_clap_error(&e, json);
                let _ = e.print();
            }
        }
    }
}
