//! vmpowerctl's command line as a library, so that tools can read the clap
//! definitions (`vmpower-dist` generates the man pages and shell
//! completions from [`cli::Cli`]; [`export`] turns the rate record into a
//! trace). The program itself is `src/main.rs`.

pub mod cli;
pub mod export;
