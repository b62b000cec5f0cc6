//! Man pages from the clap definitions: one page per program (section 8
//! for the daemon, 1 for the CLIs) and one per visible subcommand, named
//! as git names its own (`vmpowerctl-policy-create.1`). The program's page
//! lists its subcommands; each page ends with FILES (the program's page
//! only) and SEE ALSO. The configuration file's page, vmpowerd.toml(5),
//! is made from docs/configuration.md ([`crate::config_page`]).

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::GeneratedFile;
use crate::programs::{self, Program};

/// One generated page.
#[derive(Debug, Clone)]
pub struct ManPage {
    /// The program it belongs to.
    pub program: &'static str,
    /// Its section (1 or 8).
    pub section: u8,
    /// `NAME.SECTION` and its roff source.
    pub file: GeneratedFile,
}

/// Every page of every program, then vmpowerd.toml(5).
pub fn pages() -> Vec<ManPage> {
    let mut out: Vec<ManPage> = programs::all().iter().flat_map(pages_of).collect();
    out.push(crate::config_page::page(env!("CARGO_PKG_VERSION")));
    out
}

/// The pages of one program: its own, then one per subcommand.
pub fn pages_of(program: &Program) -> Vec<ManPage> {
    let mut root = program.command().disable_help_subcommand(true);
    root.build();
    let version = root.get_version().unwrap_or_default().to_owned();
    let mut out = Vec::new();
    let page = render(program, &root, &version, true);
    out.push(page);
    subcommand_pages(program, &root, &version, &mut out);
    out
}

fn subcommand_pages(program: &Program, cmd: &clap::Command, version: &str, out: &mut Vec<ManPage>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out.push(render(program, sub, version, false));
        subcommand_pages(program, sub, version, out);
    }
}

fn render(program: &Program, cmd: &clap::Command, version: &str, is_root: bool) -> ManPage {
    let man = Man::new(cmd.clone())
        .section(program.section.to_string())
        .source(format!("vmpower {version}"))
        .manual("vmpower");
    let mut contents = Vec::new();
    man.render(&mut contents)
        .expect("writing to a Vec cannot fail");
    let mut extra = Roff::new();
    if is_root && !program.files.is_empty() {
        extra.control("SH", ["FILES"]);
        for (path, what) in program.files {
            extra.control("TP", []);
            extra.text([bold(*path)]);
            extra.text([roman(*what)]);
        }
    }
    if is_root {
        for (title, text) in program.sections {
            extra.control("SH", [*title]);
            extra.text([roman(*text)]);
        }
    }
    extra.control("SH", ["SEE ALSO"]);
    extra.text([roman(see_also(program, is_root))]);
    contents.extend_from_slice(extra.render().as_bytes());
    ManPage {
        program: program.name,
        section: program.section,
        file: GeneratedFile {
            name: man.get_filename().into(),
            contents,
        },
    }
}

/// The other programs' pages (and, for a subcommand, its program's).
fn see_also(program: &Program, is_root: bool) -> String {
    let mut refs: Vec<String> = Vec::new();
    if !is_root {
        refs.push(format!("{}({})", program.name, program.section));
    }
    refs.extend(
        programs::all()
            .iter()
            .filter(|p| p.name != program.name)
            .map(|p| format!("{}({})", p.name, p.section)),
    );
    if program.name == "vmpowerd" {
        refs.push("vmpowerd.toml(5)".to_owned());
        refs.push("systemd.exec(5)".to_owned());
    }
    refs.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_names() {
        let pages = pages();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file.name.display().to_string())
            .collect();
        for expected in [
            "vmpowerd.8",
            "vmpowerctl.1",
            "vmpower-guest.1",
            "vmpowerctl-status.1",
            "vmpowerctl-policy-create.1",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        let daemon = &pages[0].file.text();
        assert!(daemon.contains(".TH vmpowerd 8"), "{daemon}");
        assert!(daemon.contains(".SH FILES"), "{daemon}");
        assert!(daemon.contains("/etc/vmpower/vmpowerd.toml"), "{daemon}");
        for section in [".SH SIGNALS", ".SH \"EXIT STATUS\"", "vmpowerd.toml(5)"] {
            assert!(daemon.contains(section), "{section} in {daemon}");
        }
        for file in [
            "vmpower.db",
            "vmpowerd.lock",
            "control.sock",
            "fifo",
            "policies.d",
        ] {
            assert!(daemon.contains(file), "{file} in FILES: {daemon}");
        }
        assert!(names.iter().any(|n| n == "vmpowerd.toml.5"), "{names:?}");
    }
}
