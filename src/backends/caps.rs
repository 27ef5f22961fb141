//! Capability sets, in the shape of OCI's `process.capabilities` (names with `CAP_`), plus
//! the bit masks the launcher hands to `capset(2)` and `PR_CAPBSET_DROP`.

use policy_lang::catalogue;
use policy_lang::ir::Capabilities;
use serde_json::{json, Value};

/// The bit mask of a set of capability names (without `CAP_`).
pub fn mask(names: &[String]) -> u64 {
    names
        .iter()
        .filter_map(|n| catalogue::capability(n))
        .fold(0, |m, c| m | 1 << c)
}

pub fn generate(c: &Capabilities) -> Value {
    let names = |v: &[String]| v.iter().map(|n| format!("CAP_{n}")).collect::<Vec<_>>();
    json!({
        "bounding": names(&c.bounding),
        "effective": names(&c.effective),
        "permitted": names(&c.permitted),
        "inheritable": names(&c.inheritable),
        "ambient": names(&c.ambient),
        "masks": {
            "bounding": format!("{:#018x}", mask(&c.bounding)),
            "effective": format!("{:#018x}", mask(&c.effective)),
            "permitted": format!("{:#018x}", mask(&c.permitted)),
            "inheritable": format!("{:#018x}", mask(&c.inheritable)),
            "ambient": format!("{:#018x}", mask(&c.ambient)),
        },
        "last_cap": catalogue::capabilities().len() - 1,
    })
}
