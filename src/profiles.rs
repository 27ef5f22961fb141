//! The shipped policies in `profiles/`, embedded in the binary so `kakoi compile default`
//! and `kakoi run` work with no files on disk.

/// (name, text) of every shipped policy.
pub static SHIPPED: &[(&str, &str)] = &[
    ("default", include_str!("../profiles/default.kakoi")),
    ("strict", include_str!("../profiles/strict.kakoi")),
    ("web-server", include_str!("../profiles/web-server.kakoi")),
    (
        "python-batch",
        include_str!("../profiles/python-batch.kakoi"),
    ),
];

pub fn get(name: &str) -> Option<&'static str> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    SHIPPED.iter().map(|(n, _)| *n)
}
