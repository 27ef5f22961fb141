//! Backends: pure functions from the resolved policy to one artifact each. (Checks that
//! the layers agree live in the language crate, `policy_lang::coherence`, where spans are.)
//!
//! Architecture invariant: nothing here touches the system. Validation by the real
//! consumers (`apparmor_parser`, `secilc`) lives in [`validate`], which runs them on the
//! generated text; applying artifacts is the launcher's job.

pub mod apparmor;
pub mod caps;
pub mod landlock;
pub mod selinux;
pub mod validate;
