//! The answers about host CPUs' frequency: `show-cpu-freq` and
//! `set-cpu-freq`.

use serde::{Deserialize, Serialize};

/// One row of the answer to [`crate::CtlRequest::ShowCpuFreq`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFreq {
    /// The CPU.
    pub cpu: u32,
    /// Its frequency (read from the hardware, else as last set), in kHz.
    pub khz: Option<u32>,
    /// The daemon holds it.
    pub managed: bool,
    /// The operator holds it.
    pub operator: bool,
    /// Its frequency table, highest first, when it can be read.
    pub table_khz: Option<Vec<u32>>,
}

/// One row of the answer to [`crate::CtlRequest::SetCpuFreq`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFreqSet {
    /// The CPU.
    pub cpu: u32,
    /// Its frequency as last set, in kHz.
    pub khz: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::pin;

    #[test]
    fn cpu_rows_keep_their_wire_form() {
        pin(
            &vec![
                CpuFreq {
                    cpu: 1,
                    khz: Some(2_000_000),
                    managed: true,
                    operator: false,
                    table_khz: Some(vec![2_000_000, 1_000_000]),
                },
                CpuFreq {
                    cpu: 2,
                    khz: None,
                    managed: false,
                    operator: false,
                    table_khz: None,
                },
            ],
            concat!(
                r#"[{"cpu":1,"khz":2000000,"managed":true,"operator":false,"#,
                r#""table_khz":[2000000,1000000]},"#,
                r#"{"cpu":2,"khz":null,"managed":false,"operator":false,"table_khz":null}]"#
            ),
        );
        pin(
            &vec![CpuFreqSet {
                cpu: 1,
                khz: Some(800_000),
            }],
            r#"[{"cpu":1,"khz":800000}]"#,
        );
    }
}
