//! Discovery of uncore (mesh/L3) frequency domains under
//! `devices/system/cpu/intel_uncore_frequency/`.
//!
//! ## Behavior
//! - Directories named `package_PP_die_DD` give their package and die in
//!   the name; newer kernels' `uncoreNN` directories give them in
//!   `package_id` and `domain_id` files. Other entries are ignored.
//! - No `intel_uncore_frequency` directory means no domains, not an error.
//! - `current_freq_khz` is optional (older kernels lack it).
//!
//! Reading only: changing the bounds is `uncore_control`'s job.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::discovery::{paths, read};
use crate::sysfs::{SysfsError, SysfsIo};
use crate::types::Khz;

/// One uncore frequency domain (a package's die).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UncoreDomain {
    /// The directory name (`package_00_die_00` or `uncore00`), which names
    /// the domain for control and takeover.
    pub name: String,
    /// The package.
    pub package: u32,
    /// The die within the package.
    pub die: u32,
    /// `initial_min_freq_khz`: the lowest bound allowed.
    pub initial_min: Khz,
    /// `initial_max_freq_khz`: the highest bound allowed.
    pub initial_max: Khz,
    /// `min_freq_khz`: the current lower bound.
    pub min: Khz,
    /// `max_freq_khz`: the current upper bound.
    pub max: Khz,
    /// `current_freq_khz`, where the kernel has it.
    pub current: Option<Khz>,
}

impl UncoreDomain {
    /// The domain's directory, relative to the root.
    pub fn dir(&self) -> PathBuf {
        paths::uncore_root().join(&self.name)
    }
}

/// Parses `package_PP_die_DD`.
fn parse_name(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("package_")?;
    let (package, die) = rest.split_once("_die_")?;
    Some((package.parse().ok()?, die.parse().ok()?))
}

/// Reads one domain directory (by name), e.g. to read back after a write.
pub fn read_uncore_domain(io: &dyn SysfsIo, name: &str) -> Result<UncoreDomain, SysfsError> {
    let dir = paths::uncore_root().join(name);
    let file = |f: &str| dir.join(f);
    let (package, die) = match parse_name(name) {
        Some(ids) => ids,
        None => (
            read::number_opt(io, &file("package_id"))?.unwrap_or(0),
            read::number_opt(io, &file("domain_id"))?.unwrap_or(0),
        ),
    };
    Ok(UncoreDomain {
        name: name.to_owned(),
        package,
        die,
        initial_min: read::khz(io, &file("initial_min_freq_khz"))?,
        initial_max: read::khz(io, &file("initial_max_freq_khz"))?,
        min: read::khz(io, &file("min_freq_khz"))?,
        max: read::khz(io, &file("max_freq_khz"))?,
        current: read::khz_opt(io, &file("current_freq_khz"))?,
    })
}

/// Every uncore domain of the host, sorted by directory name.
pub fn discover_uncore(io: &dyn SysfsIo) -> Result<Vec<UncoreDomain>, SysfsError> {
    let root = paths::uncore_root();
    if !io.exists(&root) {
        return Ok(Vec::new());
    }
    io.list_dir(&root)?
        .into_iter()
        .filter(|name| {
            parse_name(name).is_some()
                || name
                    .strip_prefix("uncore")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|name| read_uncore_domain(io, &name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_domain_names() {
        assert_eq!(parse_name("package_01_die_02"), Some((1, 2)));
        assert_eq!(parse_name("package_01"), None);
        assert_eq!(parse_name("uncore00"), None);
        assert_eq!(parse_name("package_xx_die_00"), None);
    }

    #[test]
    fn uncore_nn_directories_read_ids_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let io = crate::sysfs::Sysfs::new(dir.path());
        let base = dir.path().join(paths::uncore_root());
        let d = base.join("uncore03");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::create_dir_all(base.join("something_else")).unwrap();
        for (f, v) in [
            ("package_id", "1"),
            ("domain_id", "2"),
            ("initial_min_freq_khz", "800000"),
            ("initial_max_freq_khz", "2400000"),
            ("min_freq_khz", "900000"),
            ("max_freq_khz", "2000000"),
        ] {
            std::fs::write(d.join(f), format!("{v}\n")).unwrap();
        }
        let domains = discover_uncore(&io).unwrap();
        assert_eq!(domains.len(), 1);
        let u = &domains[0];
        assert_eq!(
            (u.package, u.die, u.min, u.current),
            (1, 2, Khz(900_000), None)
        );
        assert_eq!(u.dir(), paths::uncore_root().join("uncore03"));
    }
}
