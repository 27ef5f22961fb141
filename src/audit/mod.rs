//! The auditor: read a profile in any supported format into one model
//! ([`model::Subject`]), run the rule catalogue ([`rules`]) and report findings with an
//! exposure score, as text, JSON or SARIF 2.1.0 ([`report`]); compare two profiles
//! semantically ([`diff`]).
//!
//! Seccomp is judged from decision tables: every input's filter is compiled (policies,
//! JSON) or taken as is (raw BPF, bundles, live processes) and executed symbolically per
//! ABI ([`sym`]), so all formats are judged by the same code.

pub mod diff;
pub mod error;
pub mod explain;
pub mod import;
#[allow(unsafe_code)]
pub mod live;
pub mod load;
pub mod machine;
pub mod model;
pub mod paths;
pub mod report;
pub mod rules;
pub mod sym;

use serde::Serialize;

pub use error::Error;
pub use model::{InputFormat, Location, Subject};
pub use rules::{Finding, Severity};

/// The result of auditing one input.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub input: String,
    pub format: InputFormat,
    /// Exposure, 0.0 (nothing found) to 10.0.
    pub score: f64,
    pub band: &'static str,
    pub findings: Vec<Finding>,
    /// Findings accepted by the baseline file, not counted.
    pub baselined: usize,
    pub notes: Vec<String>,
}

/// A baseline: findings accepted as known (matched by rule id, location and message).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Baseline {
    pub accepted: Vec<BaselineEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BaselineEntry {
    pub id: String,
    pub location: String,
    pub message: String,
}

impl Baseline {
    pub fn of(reports: &[Report]) -> Baseline {
        Baseline {
            accepted: reports
                .iter()
                .flat_map(|r| r.findings.iter())
                .map(|f| BaselineEntry {
                    id: f.id.to_string(),
                    location: f.location.to_string(),
                    message: f.message.clone(),
                })
                .collect(),
        }
    }

    fn accepts(&self, f: &Finding) -> bool {
        self.accepted.iter().any(|e| {
            e.id == f.id.as_str() && e.location == f.location.to_string() && e.message == f.message
        })
    }
}

/// Audit a subject; findings the baseline accepts are left out (and counted).
pub fn audit(s: &Subject, baseline: Option<&Baseline>) -> Report {
    let all = rules::check(s);
    let (kept, dropped): (Vec<Finding>, Vec<Finding>) = all
        .into_iter()
        .partition(|f| !baseline.is_some_and(|b| b.accepts(f)));
    let score = rules::score(s, &kept);
    Report {
        input: s.name.clone(),
        format: s.format,
        score,
        band: rules::band(score),
        findings: kept,
        baselined: dropped.len(),
        notes: s.notes.clone(),
    }
}
