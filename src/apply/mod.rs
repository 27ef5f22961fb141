//! Applying compiled artifacts to the calling process. The launcher runs these in the
//! sandboxed child, in the order ARCHITECTURE.md gives; tests run them in forked children.

pub mod landlock;
