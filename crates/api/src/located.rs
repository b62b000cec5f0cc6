//! Where a policy file's parse error is: line, column and the key being
//! read, found in the text itself, so that a message names them without
//! quoting a line that may be thousands of characters long.

/// `"{format} parse error at line L, column C, key `K`: {message}"`
/// (without the key when none is found).
pub(crate) fn describe(format: &str, text: &str, at: usize, message: &str) -> String {
    // A parser's position may fall inside a multi-byte character.
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let key = if format == "JSON" {
        json_key(before)
    } else {
        toml_key(text, at)
    };
    match key {
        Some(key) => {
            format!("{format} parse error at line {line}, column {column}, key `{key}`: {message}")
        }
        None => format!("{format} parse error at line {line}, column {column}: {message}"),
    }
}

/// The byte offset of a 1-based line and column (serde_json's), or the
/// end of the text.
pub(crate) fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + column.saturating_sub(1)).min(text.len())
}

/// serde_json's message without its trailing " at line L column C".
pub(crate) fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The dotted path of object keys open at the end of `before` (JSON).
fn json_key(before: &str) -> Option<String> {
    // One entry per open container: the object's current key, or None
    // for an array.
    let mut open: Vec<Option<String>> = Vec::new();
    let mut last_string: Option<String> = None;
    let mut chars = before.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        c => s.push(c),
                    }
                }
                last_string = Some(s);
            }
            ':' => {
                if let Some(slot) = open.last_mut() {
                    *slot = last_string.take();
                }
            }
            '{' => open.push(None),
            '[' => open.push(None),
            '}' | ']' => {
                open.pop();
            }
            _ => {}
        }
    }
    let path: Vec<String> = open.into_iter().flatten().collect();
    (!path.is_empty()).then(|| path.join("."))
}

/// The key of the TOML line holding `at` (or of the nearest line above
/// with one, for a multi-line array), under its `[table]`.
fn toml_key(text: &str, at: usize) -> Option<String> {
    let upto = &text[..text[at..].find('\n').map_or(text.len(), |i| at + i)];
    let mut key = None;
    for line in upto.lines().rev() {
        let line = line.trim();
        if let Some(table) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            let table = table.trim_matches(['[', ' ']);
            return Some(match key {
                Some(k) => format!("{table}.{k}"),
                None => table.to_owned(),
            });
        }
        if key.is_none()
            && let Some((k, _)) = line.split_once('=')
        {
            key = Some(k.trim().trim_matches('"').to_owned());
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_are_the_open_objects_keys() {
        let text = r#"{"vm": "a", "traffic": {"avg_pps": x"#;
        assert_eq!(json_key(text).as_deref(), Some("traffic.avg_pps"));
        assert_eq!(json_key(r#"{"cores": [1, 2, "#).as_deref(), Some("cores"));
        assert_eq!(json_key(r#"{"a": "x\"y", "b": "#).as_deref(), Some("b"));
        assert_eq!(json_key("{"), None);
    }

    #[test]
    fn toml_keys_are_the_lines_under_their_table() {
        let text = "vm = \"a\"\ncores = [0,\n 1, 256]\n[traffic]\navg_pps = \"x\"\n";
        let at = text.find("256").unwrap();
        assert_eq!(toml_key(text, at).as_deref(), Some("cores"));
        let at = text.find("\"x\"").unwrap();
        assert_eq!(toml_key(text, at).as_deref(), Some("traffic.avg_pps"));
    }

    #[test]
    fn any_position_in_any_text_is_described_without_panicking() {
        let texts = [
            "vm = \"é\u{1F600}ü\"\ncores = [\"😀\"]\n[t]\nx = 1",
            "{\"é\": {\"ü\": [\"😀\", \"\\\"\"]}}",
            "",
            "[[[",
            "\"\\",
        ];
        for text in texts {
            for at in 0..=text.len() + 2 {
                for format in ["TOML", "JSON"] {
                    let d = describe(format, text, at, "m");
                    assert!(d.starts_with(format), "{d}");
                }
            }
        }
    }

    #[test]
    fn positions_are_one_based() {
        let text = "ab\ncd";
        assert_eq!(offset_of(text, 2, 2), 4);
        let message = describe("JSON", text, 4, "bad");
        assert_eq!(message, "JSON parse error at line 2, column 2: bad");
    }
}
