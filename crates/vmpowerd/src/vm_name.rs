//! The one rule for VM names, whatever door a name comes through: the
//! control API (`add-vm`, `policy create`), the config file's `[vm.NAME]`,
//! policy files and DPDK's JSON FIFOs.
//!
//! A VM name becomes part of file names (`<vm>.<n>` sockets) and of the
//! state database's keys, so it must be a plain file name: 1 to
//! [`MAX_LEN`] bytes, no `/`, no NUL or other control character, and not
//! `.` or `..`.

/// The longest VM name, in bytes.
pub const MAX_LEN: usize = 128;

/// The rule, as error messages state it.
pub const RULE: &str = "a VM name is 1 to 128 bytes, without '/', NUL or other control characters, and not \".\" or \"..\"";

/// A VM name the rule refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid VM name {name:?}: {RULE}")]
pub struct VmNameError {
    /// The name refused (cut at 2 × [`MAX_LEN`] characters).
    pub name: String,
}

/// Checks `name` against the rule.
pub fn check(name: &str) -> Result<(), VmNameError> {
    let bad = name.is_empty()
        || name.len() > MAX_LEN
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.chars().any(char::is_control);
    if bad {
        return Err(VmNameError {
            name: name.chars().take(2 * MAX_LEN).collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_file_names_only() {
        for good in ["vm1", "ubuntu.vm", "a-b_c:d", &"x".repeat(MAX_LEN)] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../evil",
            "a/b",
            "nul\0byte",
            "tab\t",
            &"x".repeat(300),
        ] {
            let err = check(bad).unwrap_err().to_string();
            assert!(err.contains("1 to 128 bytes"), "{err}");
        }
        let err = check("../evil").unwrap_err().to_string();
        assert!(err.contains("\"../evil\""), "{err}");
    }
}
