//! vmpowerd.toml(5), made from `docs/configuration.md`: the one list of
//! every setting, its flag, default and meaning is that file, so the man
//! page cannot say otherwise. The Markdown is the small subset that file
//! uses: a `#` title (dropped: the page has its own NAME), `##` sections,
//! paragraphs, pipe tables whose first column is the setting, and fenced
//! code blocks. Inline code, bold and links lose their markup (a link
//! keeps its text).
//!
//! A table row becomes a tagged paragraph: the setting in bold, its flag
//! and default, then its meaning.

use clap_mangen::roff::{Roff, bold, roman};

use crate::GeneratedFile;
use crate::man::ManPage;

/// The source: vmpowerd's configuration reference.
pub const CONFIGURATION_MD: &str = include_str!("../../../docs/configuration.md");

/// The page's name and section.
pub const NAME: &str = "vmpowerd.toml";
/// Its section: file formats.
pub const SECTION: u8 = 5;

/// vmpowerd.toml(5) for the release `version`.
pub fn page(version: &str) -> ManPage {
    let mut roff = Roff::new();
    let source = format!("vmpower {version}");
    roff.control("TH", [NAME, "5", "", source.as_str(), "vmpower"]);
    roff.control("SH", ["NAME"]);
    roff.text([roman("vmpowerd.toml - vmpowerd configuration file")]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([bold(crate::install::CONFIG_PATH)]);
    roff.control("SH", ["DESCRIPTION"]);
    render_markdown(&mut roff, CONFIGURATION_MD);
    roff.control("SH", ["FILES"]);
    roff.control("TP", []);
    roff.text([bold(crate::install::CONFIG_PATH)]);
    roff.text([roman(
        "the file the systemd unit passes with --config; installed with every setting \
         commented at its default (never over an existing one)",
    )]);
    roff.control("TP", []);
    roff.text([bold("/usr/share/doc/vmpower/vmpowerd.toml")]);
    roff.text([roman("the example as shipped")]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman("vmpowerd(8), vmpowerctl(1), systemd.exec(5)")]);
    ManPage {
        program: "vmpowerd",
        section: SECTION,
        file: GeneratedFile {
            name: format!("{NAME}.{SECTION}").into(),
            contents: roff.render().into_bytes(),
        },
    }
}

/// Appends `markdown` (the subset above) to `roff`.
fn render_markdown(roff: &mut Roff, markdown: &str) {
    let mut paragraph: Vec<&str> = Vec::new();
    let mut in_code = false;
    let flush = |roff: &mut Roff, paragraph: &mut Vec<&str>| {
        if !paragraph.is_empty() {
            roff.control("PP", []);
            roff.text([roman(plain(&paragraph.join(" ")))]);
            paragraph.clear();
        }
    };
    for line in markdown.lines() {
        if line.starts_with("```") {
            flush(roff, &mut paragraph);
            in_code = !in_code;
            roff.control(if in_code { "nf" } else { "fi" }, []);
            continue;
        }
        if in_code {
            roff.text([roman(line)]);
            continue;
        }
        if let Some(title) = line.strip_prefix("## ") {
            flush(roff, &mut paragraph);
            roff.control("SH", [title.to_uppercase().as_str()]);
        } else if line.starts_with("# ") {
            // The page's own NAME says it.
        } else if line.starts_with('|') {
            flush(roff, &mut paragraph);
            table_row(roff, line);
        } else if line.trim().is_empty() {
            flush(roff, &mut paragraph);
        } else {
            paragraph.push(line.trim());
        }
    }
    flush(roff, &mut paragraph);
}

/// One row of a settings table: `| setting | flag | default | meaning |`
/// or `| setting | default | meaning |` (a cell holds no `|`). The header
/// and the rule are skipped.
fn table_row(roff: &mut Roff, line: &str) {
    let cells: Vec<&str> = line
        .trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    let is_rule = cells.iter().all(|c| c.chars().all(|ch| ch == '-'));
    if is_rule || cells.first() == Some(&"setting") || cells.len() < 3 {
        return;
    }
    let (setting, flag, default, meaning) = match cells.as_slice() {
        [s, f, d, m @ ..] if cells.len() >= 4 => (*s, *f, *d, m.join(" | ")),
        [s, d, m] => (*s, "", *d, (*m).to_owned()),
        _ => return,
    };
    roff.control("TP", []);
    let mut head = vec![bold(plain(setting))];
    if !flag.is_empty() {
        head.push(roman(format!(" ({})", plain(flag))));
    }
    head.push(roman(format!(", default {}", plain(default))));
    roff.text(head);
    roff.text([roman(plain(&meaning))]);
}

/// `text` without Markdown's inline markup: backticks, `**`, and links
/// reduced to their text.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find("](").and_then(|close| {
            after[close + 2..]
                .find(')')
                .map(|end| (close, close + 2 + end))
        }) {
            Some((close, end)) if !after[..close].contains('[') => {
                out.push_str(&rest[..open]);
                out.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let mut out = out.replace('`', "").replace("**", "");
    // groff reads its input as Latin-1 unless preconv runs first: the
    // reference's few other characters in ASCII.
    for (from, to) in ASCII {
        out = out.replace(from, to);
    }
    out
}

/// The non-ASCII characters of the reference and their ASCII spelling.
const ASCII: [(&str, &str); 6] = [
    ("\u{2014}", "--"),
    ("\u{2013}", "-"),
    ("\u{2192}", "->"),
    ("\u{2264}", "<="),
    ("\u{b5}", "u"),
    ("\u{d7}", "x"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of a serialized struct.
    fn keys_of(value: serde_json::Result<serde_json::Value>) -> Vec<String> {
        match value {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            other => panic!("not a struct: {other:?}"),
        }
    }

    /// Every setting vmpowerd reads (top level, `rate_limit`, `[vm.NAME]`)
    /// has its entry: a setting missing from docs/configuration.md fails
    /// here, so the page and the reference cannot lack one.
    #[test]
    fn every_setting_of_vmpowerds_config_has_an_entry() {
        let text = page("0.0.0").file.text();
        let config = vmpowerd::config::Config::default();
        let mut settings = keys_of(serde_json::to_value(&config));
        settings.retain(|k| k != "rate_limit" && k != "vm");
        settings.extend(
            keys_of(serde_json::to_value(config.rate_limit))
                .into_iter()
                .map(|k| format!("rate_limit.{k}")),
        );
        settings.extend(keys_of(serde_json::to_value(
            vmpowerd::config::VmConfig::default(),
        )));
        for setting in settings {
            let entry = format!(".TP\n\\fB{}\\fR", setting.replace('-', "\\-"));
            assert!(text.contains(&entry), "vmpowerd.toml(5) lacks {setting}");
        }
    }

    #[test]
    fn markup_is_dropped_and_links_keep_their_text() {
        assert_eq!(
            plain("`a` **b** [metrics.md](metrics.md) `[vm.NAME]` x"),
            "a b metrics.md [vm.NAME] x"
        );
    }

    #[test]
    fn every_setting_of_the_reference_is_a_tagged_entry() {
        let text = page("0.0.0").file.text();
        assert!(text.contains("\n.TH vmpowerd.toml 5 "), "{text}");
        for setting in ["sysfs_root", "foreign_writer", "rate_limit.burst", "pcpus"] {
            assert!(
                text.contains(&format!(".TP\n\\fB{setting}\\fR")),
                "{setting} in {text}"
            );
        }
        assert!(text.contains(".SH RELOADING"), "{text}");
        assert!(text.is_ascii(), "groff reads Latin-1: {text}");
        assert!(
            text.contains("\\fBcontrol_socket_mode\\fR, default 0o600\n"),
            "{text}"
        );
        assert!(
            text.contains("\\fBsysfs_root\\fR (\\-\\-sysfs\\-root), default /sys\n"),
            "{text}"
        );
        assert!(!text.contains('`'), "markup left: {text}");
        // The example keeps its lines.
        assert!(text.contains(".nf\n"), "{text}");
    }
}
