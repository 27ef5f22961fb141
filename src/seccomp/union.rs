//! First-match rules -> an equivalent *union* of rules, as libseccomp and the OCI/Docker
//! JSON formats (which runc and crun feed to libseccomp) understand them.
//!
//! For each syscall, rule k becomes `C_k && !C_j` for every earlier conditional rule j
//! with a *different* action (where an earlier rule of the same action matches first, the
//! outcome is the same), in disjunctive normal form, one union rule per conjunction. Rules
//! whose action is the default are left out: nothing matching is the default. Several
//! comparisons of one argument in a conjunction are rewritten into intervals, since each
//! union rule may compare an argument once.

use policy_lang::catalogue::{self, Arch};
use policy_lang::ir::{Action, CmpOpOrd, ConcreteCmp, ConcreteCond, Seccomp};

/// One rule of the union: a syscall, an action, and comparisons that all must hold
/// (at most one per argument).
#[derive(Clone, Debug, PartialEq)]
pub struct UnionRule {
    pub nr: u32,
    pub name: &'static str,
    pub action: Action,
    pub cmps: Vec<ConcreteCmp>,
    /// Index of the policy rule it comes from.
    pub rule: usize,
}

/// A rule that has no union form.
#[derive(Clone, Debug)]
pub struct Inexpressible {
    pub rule: usize,
    pub why: String,
}

/// The union form of the policy's rules on one ABI.
pub fn union_rules(s: &Seccomp, arch: Arch) -> Result<Vec<UnionRule>, Inexpressible> {
    let rules = s.for_arch(arch);
    let mut by_nr: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (i, r) in rules.iter().enumerate() {
        for nr in &r.nrs {
            by_nr.entry(*nr).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (nr, idxs) in by_nr {
        let first_of_syscall = out.len();
        let name = catalogue::syscall_by_nr(arch, nr)
            .expect("numbers come from the catalogue")
            .name;
        let mut earlier: Vec<(Action, &ConcreteCond)> = Vec::new();
        for i in idxs {
            let r = &rules[i];
            let err = |why: String| Inexpressible { rule: r.rule, why };
            if r.action != s.default_action {
                let mut parts = vec![r.cond.clone().unwrap_or(ConcreteCond::Const(true))];
                parts.extend(
                    earlier
                        .iter()
                        .filter(|(a, _)| *a != r.action)
                        .map(|(_, c)| ConcreteCond::Not(Box::new((*c).clone()))),
                );
                for conj in dnf(&ConcreteCond::And(parts), false).map_err(err)? {
                    for cmps in
                        one_cmp_per_arg(&conj).map_err(|why| Inexpressible { rule: r.rule, why })?
                    {
                        out.push(UnionRule {
                            nr,
                            name,
                            action: r.action,
                            cmps,
                            rule: r.rule,
                        });
                    }
                }
            }
            match &r.cond {
                None => break, // later rules for this syscall can never match
                Some(c) => earlier.push((r.action, c)),
            }
            // libseccomp 2.5 merges the rules of one syscall in time that grows very fast
            // with their number (it was seen to run for many minutes); keep it bounded.
            if out.len() - first_of_syscall > MAX_RULES_PER_SYSCALL {
                return Err(Inexpressible {
                    rule: r.rule,
                    why: format!("`{name}` needs more than {MAX_RULES_PER_SYSCALL} union rules"),
                });
            }
        }
    }
    Ok(out)
}

/// A literal of a DNF conjunction.
type Conj = Vec<ConcreteCmp>;

const MAX_CONJUNCTIONS: usize = 256;

/// Most union rules one syscall may need (see `union_rules`).
pub const MAX_RULES_PER_SYSCALL: usize = 16;

/// Disjunctive normal form of `c` (or of its negation).
fn dnf(c: &ConcreteCond, negate: bool) -> Result<Vec<Conj>, String> {
    Ok(match (c, negate) {
        (ConcreteCond::Const(b), n) => {
            if *b != n {
                vec![vec![]]
            } else {
                vec![]
            }
        }
        (ConcreteCond::Not(c), n) => dnf(c, !n)?,
        (ConcreteCond::Or(v), false) | (ConcreteCond::And(v), true) => {
            let mut out = Vec::new();
            for c in v {
                out.extend(dnf(c, negate)?);
            }
            out
        }
        (ConcreteCond::And(v), false) | (ConcreteCond::Or(v), true) => {
            let mut acc: Vec<Conj> = vec![vec![]];
            for c in v {
                let d = dnf(c, negate)?;
                let mut next = Vec::new();
                for a in &acc {
                    for b in &d {
                        let mut x = a.clone();
                        x.extend(b.iter().copied());
                        next.push(x);
                    }
                }
                if next.len() > MAX_CONJUNCTIONS {
                    return Err(format!(
                        "the condition expands to more than {MAX_CONJUNCTIONS} libseccomp rules"
                    ));
                }
                acc = next;
            }
            acc
        }
        (ConcreteCond::Cmp(c), negate) => {
            let op = if !negate {
                c.op
            } else {
                match c.op {
                    CmpOpOrd::Eq => CmpOpOrd::Ne,
                    CmpOpOrd::Ne => CmpOpOrd::Eq,
                    CmpOpOrd::Lt => CmpOpOrd::Ge,
                    CmpOpOrd::Le => CmpOpOrd::Gt,
                    CmpOpOrd::Gt => CmpOpOrd::Le,
                    CmpOpOrd::Ge => CmpOpOrd::Lt,
                }
            };
            if c.mask.is_some() && op != CmpOpOrd::Eq {
                return Err(
                    "a masked comparison other than `==` (libseccomp has only masked equality)"
                        .into(),
                );
            }
            vec![vec![ConcreteCmp { op, ..*c }]]
        }
    })
}

/// `lo..=hi` (`0 < lo <= hi < max`) as the fewest aligned blocks `(value, mask)`: `x` lies
/// in a block when `x & mask == value`. At most two blocks per bit of `max`.
fn aligned_blocks(lo: u64, hi: u64, max: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut v = lo;
    loop {
        // The largest block aligned at `v` that stays within `hi`.
        let mut size_bits = v.trailing_zeros().min(63);
        while size_bits > 0
            && v.checked_add((1u64 << size_bits) - 1)
                .is_none_or(|e| e > hi)
        {
            size_bits -= 1;
        }
        let span = (1u64 << size_bits) - 1;
        out.push((v, max & !span));
        match (v + span).checked_add(1) {
            Some(next) if next <= hi => v = next,
            _ => return out,
        }
    }
}

/// Rewrite a conjunction so that each argument is compared at most once, as libseccomp
/// requires: several plain comparisons of one argument become the union of the intervals
/// they leave open (`x != 38 && x != 40` -> `x <= 37 || x == 39 || x >= 41`); masked
/// equalities with disjoint masks merge into one. Returns the equivalent disjunction.
fn one_cmp_per_arg(conj: &Conj) -> Result<Vec<Conj>, String> {
    let mut groups: std::collections::BTreeMap<u8, Vec<ConcreteCmp>> = Default::default();
    for c in conj {
        groups.entry(c.index).or_default().push(*c);
    }
    let mut acc: Vec<Conj> = vec![vec![]];
    for (index, g) in groups {
        // Plain comparisons go through intervals even alone: that also drops impossible
        // ones (`x < 0`), which libseccomp refuses.
        let options: Vec<Option<ConcreteCmp>> = if g.len() == 1 && g[0].mask.is_some() {
            vec![Some(g[0])]
        } else if g.iter().all(|c| c.mask.is_none()) {
            let low32 = g[0].low32;
            let max = if low32 { 0xffff_ffff } else { u64::MAX };
            let mut set: Vec<(u64, u64)> = vec![(0, max)];
            for c in &g {
                let v = c.value & max;
                let allowed: Vec<(u64, u64)> = match c.op {
                    CmpOpOrd::Eq => vec![(v, v)],
                    CmpOpOrd::Ne => [(v > 0).then(|| (0, v - 1)), (v < max).then(|| (v + 1, max))]
                        .into_iter()
                        .flatten()
                        .collect(),
                    CmpOpOrd::Lt => (v > 0).then(|| (0, v - 1)).into_iter().collect(),
                    CmpOpOrd::Le => vec![(0, v)],
                    CmpOpOrd::Gt => (v < max).then(|| (v + 1, max)).into_iter().collect(),
                    CmpOpOrd::Ge => vec![(v, max)],
                };
                let mut next = Vec::new();
                for &(a, b) in &set {
                    for &(c2, d) in &allowed {
                        let (lo, hi) = (a.max(c2), b.min(d));
                        if lo <= hi {
                            next.push((lo, hi));
                        }
                    }
                }
                set = next;
            }
            let mut opts = Vec::new();
            for (lo, hi) in set {
                let mk = |op, value| {
                    Some(ConcreteCmp {
                        index,
                        low32,
                        signed32: g[0].signed32,
                        mask: None,
                        op,
                        value,
                    })
                };
                if lo == 0 && hi == max {
                    opts.push(None);
                } else if lo == hi {
                    opts.push(mk(CmpOpOrd::Eq, lo));
                } else if lo == 0 {
                    opts.push(mk(CmpOpOrd::Le, hi));
                } else if hi == max {
                    opts.push(mk(CmpOpOrd::Ge, lo));
                } else {
                    // A closed interval takes two comparisons; as a union of aligned
                    // power-of-two blocks it takes one masked equality each.
                    for (value, mask) in aligned_blocks(lo, hi, max) {
                        opts.push(Some(ConcreteCmp {
                            index,
                            low32,
                            signed32: g[0].signed32,
                            mask: Some(mask),
                            op: CmpOpOrd::Eq,
                            value,
                        }));
                    }
                }
            }
            opts
        } else if g.iter().all(|c| c.op == CmpOpOrd::Eq && c.mask.is_some()) {
            let (mut mask, mut value) = (0u64, 0u64);
            for c in &g {
                let m = c.mask.expect("checked");
                if mask & m != 0 {
                    return Err(format!(
                        "two masked comparisons of argument {index} with overlapping masks"
                    ));
                }
                mask |= m;
                value |= c.value & m;
            }
            vec![Some(ConcreteCmp {
                index,
                low32: g[0].low32,
                signed32: g[0].signed32,
                mask: Some(mask),
                op: CmpOpOrd::Eq,
                value,
            })]
        } else {
            return Err(format!(
                "a mix of masked and plain comparisons of argument {index}"
            ));
        };
        let mut next = Vec::new();
        for a in &acc {
            for o in &options {
                let mut x = a.clone();
                x.extend(o.iter().copied());
                next.push(x);
            }
        }
        acc = next;
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::aligned_blocks;

    fn covered(blocks: &[(u64, u64)], x: u64) -> bool {
        blocks.iter().any(|&(v, m)| x & m == v)
    }

    #[test]
    fn aligned_blocks_cover_the_interval_exactly() {
        assert_eq!(
            aligned_blocks(17, 37, 0xffff_ffff).len(),
            6,
            "17, 18-19, 20-23, 24-31, 32-35, 36-37"
        );
        for (lo, hi, max) in [
            (17u64, 37u64, 0xffff_ffffu64),
            (1, 0xffff_fffe, 0xffff_ffff),
            (5, 5, u64::MAX),
            (3, u64::MAX - 1, u64::MAX),
            (0x1000, 0x1fff, u64::MAX),
        ] {
            let b = aligned_blocks(lo, hi, max);
            assert!(b.len() <= 128);
            let probes = [lo - 1, lo, lo + 1, (lo / 2) + (hi / 2), hi - 1, hi, hi + 1];
            for x in probes {
                assert_eq!(covered(&b, x), (lo..=hi).contains(&x), "{lo}..={hi}: {x}");
            }
        }
        let b = aligned_blocks(17, 37, 0xffff_ffff);
        for x in 0..64 {
            assert_eq!(covered(&b, x), (17..=37).contains(&x), "{x}");
        }
    }
}
