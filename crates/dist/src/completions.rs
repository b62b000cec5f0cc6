//! Shell completion scripts from the clap definitions, for bash, zsh and
//! fish, named as each shell looks them up (`vmpowerctl`, `_vmpowerctl`,
//! `vmpowerctl.fish`) under a directory per shell.

use clap_complete::Shell;

use crate::GeneratedFile;
use crate::programs::{self, Program};

/// The shells completions are made for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// One generated completion script.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The program it completes.
    pub program: &'static str,
    /// For which shell.
    pub shell: Shell,
    /// `<shell>/<file name>` and the script.
    pub file: GeneratedFile,
}

/// Every script of every program.
pub fn scripts() -> Vec<Completion> {
    programs::all()
        .iter()
        .flat_map(|p| SHELLS.map(|shell| script(p, shell)))
        .collect()
}

/// The file name `shell` looks the completions of `program` up by.
pub fn file_name(program: &str, shell: Shell) -> String {
    match shell {
        Shell::Zsh => format!("_{program}"),
        Shell::Fish => format!("{program}.fish"),
        _ => program.to_owned(),
    }
}

/// The script completing `program` in `shell`.
pub fn script(program: &Program, shell: Shell) -> Completion {
    let mut cmd = program.command();
    let mut contents = Vec::new();
    clap_complete::generate(shell, &mut cmd, program.name, &mut contents);
    Completion {
        program: program.name,
        shell,
        file: GeneratedFile {
            name: [shell.to_string(), file_name(program.name, shell)]
                .iter()
                .collect(),
            contents,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_shell() {
        assert_eq!(file_name("vmpowerctl", Shell::Bash), "vmpowerctl");
        assert_eq!(file_name("vmpowerctl", Shell::Zsh), "_vmpowerctl");
        assert_eq!(file_name("vmpowerctl", Shell::Fish), "vmpowerctl.fish");
        let all = scripts();
        assert_eq!(all.len(), 9);
        let zsh = all
            .iter()
            .find(|c| c.program == "vmpowerctl" && c.shell == Shell::Zsh)
            .unwrap();
        assert_eq!(zsh.file.name, std::path::Path::new("zsh/_vmpowerctl"));
        assert!(zsh.file.text().starts_with("#compdef vmpowerctl"));
    }
}
