//! `vmpower-sim`: parses the command line and runs the simulator (see the
//! library's docs and `docs/energy.md`).

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmpower-sim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
