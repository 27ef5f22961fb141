//! Report formats: grouped text for people, JSON (schema in `docs/audit.md`), and
//! SARIF 2.1.0 for code-scanning tools.

use std::fmt::Write;

use serde_json::{json, Value};

use super::rules::{Severity, RULES};
use super::Report;

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn sev_color(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::Error => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    }
}

/// The human report: one block per input, findings grouped by severity.
pub fn human(reports: &[Report], color: bool) -> String {
    let mut o = String::new();
    for r in reports {
        let _ = writeln!(
            o,
            "{} ({:?}): exposure {:.1} {}",
            paint(color, "1", &r.input),
            r.format,
            r.score,
            paint(color, if r.score >= 5.0 { "31" } else { "32" }, r.band)
        );
        let mut last = None;
        for f in &r.findings {
            if last != Some(f.severity) {
                let _ = writeln!(
                    o,
                    "  {}",
                    paint(
                        color,
                        sev_color(f.severity),
                        &f.severity.name().to_uppercase()
                    )
                );
                last = Some(f.severity);
            }
            let _ = writeln!(o, "    {} {}", paint(color, "1", f.id.as_str()), f.message);
            let _ = writeln!(o, "      at:  {}", f.location);
            let _ = writeln!(o, "      why: {}", f.rationale);
            let fix = f.fix.replace('\n', "\n           ");
            let _ = writeln!(o, "      fix: {fix}");
        }
        if r.findings.is_empty() {
            let _ = writeln!(o, "  no findings");
        }
        if r.baselined > 0 {
            let _ = writeln!(o, "  ({} finding(s) accepted by the baseline)", r.baselined);
        }
        for n in &r.notes {
            let _ = writeln!(o, "  note: {n}");
        }
    }
    o
}

/// `--format json`: `{"reports": [...]}` (one per input).
pub fn json(reports: &[Report]) -> Value {
    json!({ "kakoi": env!("CARGO_PKG_VERSION"), "reports": reports })
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High | Severity::Error => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub code scanning reads `security-severity` (0.0–10.0) to rank results.
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::Error => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// SARIF 2.1.0: one run, the catalogue as the driver's rules, one result per finding.
pub fn sarif(reports: &[Report]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": { "text": r.title },
                "fullDescription": { "text": r.rationale },
                "help": { "text": r.rationale },
                "defaultConfiguration": { "level": level(r.severity) },
                "properties": { "security-severity": security_severity(r.severity), "tags": ["security"] },
            })
        })
        .collect();
    let mut results = Vec::new();
    for rep in reports {
        for f in &rep.findings {
            let mut physical = json!({ "artifactLocation": { "uri": f.location.file } });
            if let Some(line) = f.location.line {
                physical["region"] = json!({ "startLine": line });
            }
            let mut location = json!({ "physicalLocation": physical });
            if let Some(p) = &f.location.pointer {
                location["logicalLocations"] =
                    json!([{ "fullyQualifiedName": p, "kind": "object" }]);
            }
            let result = json!({
                "ruleId": f.id,
                // The rule's catalogue entry: `RuleId` is its index.
                "ruleIndex": f.id as usize,
                "level": level(f.severity),
                "message": { "text": format!("{} Fix: {}", f.message, f.fix.replace('\n', " ")) },
                "locations": [location],
                "properties": { "severity": f.severity.name(), "exposure": rep.score },
            });
            results.push(result);
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "kakoi",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/kakoi-project/kakoi",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}
