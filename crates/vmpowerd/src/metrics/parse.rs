//! A strict parser of the OpenMetrics 1.0 text format, written from the
//! format's grammar for the tests (feature `test-utils`): it checks what
//! a scraper relies on, independently of the encoder that wrote the text.
//!
//! ## Behavior
//! - The text must end with `# EOF`; nothing may follow it.
//! - Each family's `# TYPE` comes before its samples; a family appears
//!   once, its samples contiguous; a sample's name is the family's name
//!   plus the suffix its type allows (`_total`/`_created` for counters,
//!   `_info` for info, none for gauges and unknown).
//! - Label names are valid and unique within a sample; values are
//!   quoted with `\\`, `\"` and `\n` escapes; a (name, labels) pair
//!   appears once. Counters are non-negative; info samples are 1.
//!
//! ## Limitations
//! Histograms, summaries, state sets, exemplars and timestamps are not
//! accepted: vmpowerd writes none.

use std::collections::BTreeMap;

/// Why a text is not valid OpenMetrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpositionError {
    /// A line breaks the grammar or a rule.
    #[error("line {line}: {reason}: {text:?}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
        /// The line.
        text: String,
    },
    /// The text does not end with `# EOF`.
    #[error("no `# EOF` at the end")]
    NoEof,
}

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (with its suffix, e.g. `_total`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// One metric family.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedFamily {
    /// Its type (`counter`, `gauge`, `info`, `unknown`).
    pub kind: String,
    /// Its help text, if any.
    pub help: Option<String>,
    /// Its samples, in order.
    pub samples: Vec<Sample>,
}

/// A parsed exposition: the families by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Families by name.
    pub families: BTreeMap<String, ParsedFamily>,
}

impl Exposition {
    /// The value of the sample `name` whose labels include `labels`
    /// (the first such sample).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples(name, labels).next().map(|s| s.value)
    }

    /// Every sample named `name` whose labels include `labels`.
    pub fn samples<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .filter(move |s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
    }
}

/// Parses an OpenMetrics text exposition.
pub fn parse(text: &str) -> Result<Exposition, ExpositionError> {
    let body = text
        .strip_suffix("# EOF\n")
        .or_else(|| text.strip_suffix("# EOF"))
        .ok_or(ExpositionError::NoEof)?;
    let mut out = Exposition::default();
    let mut current: Option<String> = None;
    let mut seen = std::collections::BTreeSet::new();
    for (i, line) in body.lines().enumerate() {
        let fail = |reason: &str| ExpositionError::Line {
            line: i + 1,
            reason: reason.to_owned(),
            text: line.to_owned(),
        };
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (Some(what), Some(name)) = (parts.next(), parts.next()) else {
                return Err(fail("incomplete metadata line"));
            };
            let rest = parts.next().unwrap_or_default();
            if !valid_name(name) {
                return Err(fail("invalid metric name"));
            }
            if current.as_deref() != Some(name) {
                if out.families.contains_key(name) {
                    return Err(fail("family appears twice"));
                }
                out.families
                    .insert(name.to_owned(), ParsedFamily::default());
                current = Some(name.to_owned());
            }
            let family = out
                .families
                .get_mut(name)
                .ok_or_else(|| fail("no family"))?;
            match what {
                "TYPE" => {
                    if !["counter", "gauge", "info", "unknown"].contains(&rest) {
                        return Err(fail("unsupported type"));
                    }
                    family.kind = rest.to_owned();
                }
                "HELP" => family.help = Some(unescape(rest, false).map_err(|e| fail(&e))?),
                "UNIT" => {}
                _ => return Err(fail("unknown metadata")),
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(fail("comment or empty line"));
        }
        let sample = parse_sample(line).map_err(|e| fail(&e))?;
        let family_name = current
            .as_deref()
            .ok_or_else(|| fail("sample before TYPE"))?;
        let family = out
            .families
            .get_mut(family_name)
            .ok_or_else(|| fail("no family"))?;
        let suffix = sample
            .name
            .strip_prefix(family_name)
            .ok_or_else(|| fail("sample outside its family"))?;
        let allowed: &[&str] = match family.kind.as_str() {
            "counter" => &["_total", "_created"],
            "info" => &["_info"],
            "" => return Err(fail("sample before TYPE")),
            _ => &[""],
        };
        if !allowed.contains(&suffix) {
            return Err(fail("sample name does not fit its family's type"));
        }
        if family.kind == "counter" && (sample.value.is_nan() || sample.value < 0.0) {
            return Err(fail("negative or NaN counter"));
        }
        if family.kind == "info" && sample.value != 1.0 {
            return Err(fail("info value is not 1"));
        }
        if !seen.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(fail("duplicate sample"));
        }
        family.samples.push(sample);
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn valid_label(name: &str) -> bool {
    !name.contains(':') && valid_name(name)
}

/// `name{labels} value`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| "no value".to_owned())?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err("invalid sample name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_owned())?;
    if value.contains(' ') {
        return Err("timestamps and exemplars are not expected".into());
    }
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("invalid number {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Labels up to and including `}`; returns them and what follows.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = &s[..eq];
        if !valid_label(key) {
            return Err(format!("invalid label name {key:?}"));
        }
        let quoted = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut end = None;
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or("unterminated label value")?;
        let value = unescape(&quoted[..end], true)?;
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        s = &quoted[end + 1..];
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

fn unescape(s: &str, quote: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            other => return Err(format!("invalid escape \\{other:?}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# HELP a_requests Requests.\n# TYPE a_requests counter\n\
        a_requests_total{vm=\"v\\\"1\",kind=\"x,y\"} 3\n\
        # TYPE a_up gauge\na_up 0.5\n# TYPE a_build info\na_build_info{v=\"1\"} 1\n# EOF\n";

    #[test]
    fn parses_families_samples_and_escapes() {
        let e = parse(GOOD).unwrap();
        assert_eq!(e.families["a_requests"].kind, "counter");
        assert_eq!(e.families["a_requests"].help.as_deref(), Some("Requests."));
        assert_eq!(
            e.value("a_requests_total", &[("vm", "v\"1"), ("kind", "x,y")]),
            Some(3.0)
        );
        assert_eq!(e.value("a_up", &[]), Some(0.5));
        assert_eq!(e.value("a_build_info", &[("v", "1")]), Some(1.0));
        assert_eq!(e.value("a_up", &[("x", "1")]), None);
    }

    #[test]
    fn rejects_what_breaks_the_format() {
        let bad = [
            ("no eof", "# TYPE a gauge\na 1\n"),
            ("suffix", "# TYPE a counter\na 1\n# EOF\n"),
            ("no type", "a 1\n# EOF\n"),
            (
                "twice",
                "# TYPE a gauge\na 1\n# TYPE b gauge\n# TYPE a gauge\n# EOF\n",
            ),
            ("dup", "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n# EOF\n"),
            ("quote", "# TYPE a gauge\na{x=1} 1\n# EOF\n"),
            ("negative", "# TYPE a counter\na_total -1\n# EOF\n"),
            ("info", "# TYPE a info\na_info 2\n# EOF\n"),
            ("number", "# TYPE a gauge\na one\n# EOF\n"),
            ("blank", "# TYPE a gauge\n\na 1\n# EOF\n"),
            ("after eof", "# TYPE a gauge\na 1\n# EOF\nx\n"),
            ("label", "# TYPE a gauge\na{1x=\"1\"} 1\n# EOF\n"),
            ("escape", "# TYPE a gauge\na{x=\"\\t\"} 1\n# EOF\n"),
        ];
        for (why, text) in bad {
            assert!(parse(text).is_err(), "{why} accepted");
        }
    }
}
