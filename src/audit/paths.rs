//! Path-sensitive symbolic execution of a seccomp program, for decompiling argument
//! conditions (`kakoi import`) and for checking the result.
//!
//! For a known arch and syscall number, every path from the first instruction to a return
//! is followed, keeping the comparisons it made on argument words (`(word & mask) OP k`,
//! taken or not). Each path is then checked for feasibility by finding a witness: concrete
//! arguments that follow it. Arguments are taken as the kernel sees them from a caller that
//! passes C types: the upper half of a 32-bit argument is its sign or zero extension, and
//! on i386 every upper half is zero. A comparison the language cannot express (on the
//! instruction pointer, on computed values, on a pointer) makes the syscall impossible to
//! decompile, and the import says so.

use policy_lang::catalogue::{self, Arch, ArgKind};

use super::machine::{class_of, step, Budget, Class, Domain, Regs, Stop};
use crate::bpf::{self, Insn};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sym {
    Known(u32),
    /// `(data word at offset off) & mask`.
    Word {
        off: u32,
        mask: u32,
    },
    Unknown,
}

impl Domain for Sym {
    fn known(v: u32) -> Self {
        Sym::Known(v)
    }
    fn word(off: u32) -> Self {
        Sym::Word {
            off,
            mask: u32::MAX,
        }
    }
    fn alu(code: u16, a: Self, src: Self) -> Self {
        match (a, src) {
            (Sym::Known(a), Sym::Known(s)) => Sym::Known(bpf::alu(code, a, s)),
            // `word & k`: still a masked argument word.
            (Sym::Word { off, mask }, Sym::Known(s)) if code & 0xf0 == 0x50 => Sym::Word {
                off,
                mask: mask & s,
            },
            _ => Sym::Unknown,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Test {
    Eq,
    Gt,
    Ge,
    Set,
}

impl Test {
    /// The conditional jump's opcode bits.
    fn op(self) -> u16 {
        match self {
            Test::Eq => bpf::JEQ,
            Test::Gt => bpf::JGT,
            Test::Ge => bpf::JGE,
            Test::Set => bpf::JSET,
        }
    }

    fn of(code: u16) -> Test {
        match code & 0xf0 {
            bpf::JEQ => Test::Eq,
            bpf::JGT => Test::Gt,
            bpf::JGE => Test::Ge,
            _ => Test::Set,
        }
    }
}

/// One comparison a path made: `((word & mask) OP k) == holds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Constraint {
    pub off: u32,
    pub mask: u32,
    pub test: Test,
    pub k: u32,
    pub holds: bool,
}

impl Constraint {
    pub fn eval(&self, word: u32) -> bool {
        bpf::jump_taken(self.test.op(), word & self.mask, self.k) == self.holds
    }

    /// The argument this compares (0–5) and whether it is the upper half.
    pub fn arg(&self) -> Option<(usize, bool)> {
        let o = self.off.checked_sub(16)?;
        (o < 48).then_some(((o / 8) as usize, o % 8 == 4))
    }
}

/// A path to a return: the comparisons taken and the value returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub constraints: Vec<Constraint>,
    pub ret: u32,
}

/// Every path for (`audit_arch`, `nr`), at most `limit`. An error names what cannot be
/// followed: a comparison or return on a computed value, too many paths.
pub fn paths(prog: &[Insn], audit_arch: u32, nr: u32, limit: usize) -> Result<Vec<Path>, String> {
    paths_within(prog, audit_arch, nr, limit, &Budget::new(Budget::SYSCALL))
}

/// [`paths`], following at most what `budget` has left.
pub fn paths_within(
    prog: &[Insn],
    audit_arch: u32,
    nr: u32,
    limit: usize,
    budget: &Budget,
) -> Result<Vec<Path>, String> {
    let mut out = Vec::new();
    let mut stack = vec![(0usize, Regs::<Sym>::new(), Vec::new())];
    while let Some((mut pc, mut r, mut cs)) = stack.pop() {
        if out.len() + stack.len() > limit {
            return Err(format!("more than {limit} paths"));
        }
        loop {
            let Some(i) = prog.get(pc).copied() else {
                return Err("a path runs off the end of the program".into());
            };
            if !budget.step() {
                return Err("it is too complex to follow exactly (its paths are too many)".into());
            }
            pc += 1;
            let src = match step(i, &mut pc, &mut r, audit_arch, nr) {
                None => continue,
                Some(Stop::Branch(src)) => src,
                Some(Stop::Return) => {
                    let ret = if i.code & 0x18 == bpf::A {
                        match r.a {
                            Sym::Known(v) => v,
                            _ => return Err("it returns a computed value".into()),
                        }
                    } else {
                        i.k
                    };
                    out.push(Path {
                        constraints: cs,
                        ret,
                    });
                    break;
                }
            };
            let test = Test::of(i.code);
            match (r.a, src) {
                (Sym::Known(av), Sym::Known(s)) => {
                    pc += usize::from(if bpf::jump_taken(i.code, av, s) {
                        i.jt
                    } else {
                        i.jf
                    });
                }
                _ if i.jt == i.jf => pc += usize::from(i.jt),
                (Sym::Word { off, mask }, Sym::Known(k)) => {
                    let c = |holds| Constraint {
                        off,
                        mask,
                        test,
                        k,
                        holds,
                    };
                    // A comparison the path's earlier ones decide is not a branch: only
                    // the side they allow is followed (this keeps libseccomp's repeated
                    // tests of one word from multiplying the paths). It stays on the path,
                    // which the decompiler reads.
                    if let Some(holds) = decided(&cs, c(true)) {
                        cs.push(c(holds));
                        pc += usize::from(if holds { i.jt } else { i.jf });
                        continue;
                    }
                    let mut taken = cs.clone();
                    taken.push(c(true));
                    stack.push((pc + usize::from(i.jt), r, taken));
                    cs.push(c(false));
                    pc += usize::from(i.jf);
                }
                _ => {
                    return Err(
                        "it compares a computed value (not an argument masked by a constant)"
                            .into(),
                    )
                }
            }
        }
    }
    Ok(out)
}

/// Whether the comparisons `cs` already made decide `c` (on the same word): from the word's
/// value when an equality pinned it, else from the bounds that unmasked comparisons set.
fn decided(cs: &[Constraint], c: Constraint) -> Option<bool> {
    let (mut lo, mut hi) = (0u32, u32::MAX);
    for e in cs.iter().filter(|e| e.off == c.off && e.mask == u32::MAX) {
        match (e.test, e.holds) {
            (Test::Eq, true) => return Some(c.eval(e.k)),
            (Test::Gt, true) => lo = lo.max(e.k.saturating_add(1)),
            (Test::Gt, false) => hi = hi.min(e.k),
            (Test::Ge, true) => lo = lo.max(e.k),
            (Test::Ge, false) => hi = hi.min(e.k.checked_sub(1)?),
            _ => {}
        }
    }
    if lo > hi || c.mask != u32::MAX {
        return None;
    }
    let k = c.k;
    match c.test {
        Test::Eq if k < lo || k > hi => Some(false),
        Test::Eq if lo == hi => Some(true),
        Test::Gt if lo > k => Some(true),
        Test::Gt if hi <= k => Some(false),
        Test::Ge if lo >= k => Some(true),
        Test::Ge if hi < k => Some(false),
        _ => None,
    }
}

/// The class of a syscall from the paths arguments of widths `width` can take (a path
/// shown unreachable does not count). `None` when the paths cannot all be followed, or
/// when some path's reachability is unknown.
pub fn reachable_class(
    prog: &[Insn],
    audit_arch: u32,
    nr: u32,
    width: &dyn Fn(usize) -> Width,
) -> Option<Class> {
    reachable_class_within(prog, audit_arch, nr, width, &Budget::new(Budget::SYSCALL))
}

/// [`reachable_class`] within `budget`.
pub fn reachable_class_within(
    prog: &[Insn],
    audit_arch: u32,
    nr: u32,
    width: &dyn Fn(usize) -> Width,
    budget: &Budget,
) -> Option<Class> {
    let mut rets = std::collections::BTreeSet::new();
    for p in paths_within(prog, audit_arch, nr, 4096, budget).ok()? {
        match witness(&p, width) {
            Ok(_) => {
                rets.insert(p.ret);
            }
            Err(NoWitness::Unreachable) => {}
            Err(NoWitness::NotFound) => return None,
        }
    }
    Some(class_of(&rets))
}

/// How an argument's upper half follows from its lower half for a C caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// A full 64-bit argument: both halves are free.
    Full,
    /// Zero-extended (unsigned 32-bit, or any argument on i386).
    Zero,
    /// Sign-extended (`int` on a 64-bit ABI).
    Sign,
}

/// The argument at register `index` of `syscall` on `arch`: its name and width, or why a
/// condition on it cannot be written.
pub fn argument(syscall: &str, arch: Arch, index: usize) -> Result<(&'static str, Width), String> {
    let def = catalogue::syscall(syscall).ok_or("unknown syscall")?;
    if arch == Arch::X86 && def.splits_on_i386() {
        return Err(format!(
            "{syscall} takes a 64-bit argument in two registers on x86"
        ));
    }
    let args = def
        .args(arch)
        .ok_or_else(|| format!("the catalogue has no signature for {syscall}"))?;
    let a = args
        .get(index)
        .ok_or_else(|| format!("{syscall} has no argument {index}"))?;
    if a.kind == ArgKind::Ptr {
        return Err(format!(
            "{syscall}'s `{}` is a pointer; a policy cannot compare it",
            a.name
        ));
    }
    let width = if !arch.is_64bit() || a.kind == ArgKind::U32 {
        Width::Zero
    } else if a.kind == ArgKind::I32 {
        Width::Sign
    } else {
        Width::Full
    };
    Ok((a.name, width))
}

/// The widths of `syscall`'s arguments on `arch`, for [`witness`]: as C callers pass them,
/// and full 64 bits where the catalogue cannot say.
pub fn widths(syscall: &str, arch: Arch) -> impl Fn(usize) -> Width + '_ {
    move |i| argument(syscall, arch, i).map_or(Width::Full, |(_, w)| w)
}

/// The upper half a C caller passes with lower half `lo`.
pub fn upper(width: Width, lo: u32) -> Option<u32> {
    match width {
        Width::Full => None,
        Width::Zero => Some(0),
        Width::Sign => Some(if lo & 0x8000_0000 != 0 { u32::MAX } else { 0 }),
    }
}

/// Values worth trying for a word constrained by `cs`: the constants, their neighbours,
/// the masks' bits, and the edges.
fn candidates(cs: &[&Constraint]) -> Vec<u32> {
    let mut v = vec![0, 1, u32::MAX, 0x7fff_ffff, 0x8000_0000];
    for c in cs {
        let k = c.k;
        v.extend([
            k,
            k.wrapping_add(1),
            k.wrapping_sub(1),
            !k,
            c.mask,
            k | !c.mask,
        ]);
        for bit in 0..32 {
            if (c.mask | k) >> bit & 1 == 1 {
                v.push(1 << bit);
            }
        }
    }
    // Make the equalities that must hold hold, on top of each candidate.
    let eqs: Vec<(u32, u32)> = cs
        .iter()
        .filter(|c| c.test == Test::Eq && c.holds)
        .map(|c| (c.mask, c.k))
        .collect();
    let forced: Vec<u32> = v
        .iter()
        .map(|&x| eqs.iter().fold(x, |x, (m, k)| (x & !m) | k))
        .collect();
    v.extend(forced);
    v.sort_unstable();
    v.dedup();
    v
}

/// A word value meeting every constraint in `cs`. Exact (a failure is
/// [`NoWitness::Unreachable`]) when every comparison is on the whole word, or when every
/// one is an equality under a mask (single-bit `&` tests count as such); otherwise the
/// candidates are tried, and a failure proves nothing.
fn solve(cs: &[&Constraint]) -> Result<u32, NoWitness> {
    // A comparison of `word & 0` does not depend on the word.
    if cs.iter().any(|c| c.mask == 0 && !c.eval(0)) {
        return Err(NoWitness::Unreachable);
    }
    let cs: Vec<Constraint> = cs
        .iter()
        .filter(|c| c.mask != 0)
        .map(|c| normalise(**c))
        .collect();
    if cs.is_empty() {
        return Ok(0);
    }
    if cs.iter().all(|c| c.mask == u32::MAX && c.test != Test::Set) {
        return interval(&cs).ok_or(NoWitness::Unreachable);
    }
    if cs.iter().all(|c| c.test == Test::Eq) {
        if let Some(r) = bits(&cs) {
            return r.ok_or(NoWitness::Unreachable);
        }
    }
    let refs: Vec<&Constraint> = cs.iter().collect();
    candidates(&refs)
        .into_iter()
        .find(|&w| cs.iter().all(|c| c.eval(w)))
        .ok_or(NoWitness::NotFound)
}

/// `(w & m) & bit != 0` for a single bit is `(w & bit) == bit`.
fn normalise(c: Constraint) -> Constraint {
    let k = c.mask & c.k;
    if c.test == Test::Set && k.count_ones() == 1 {
        Constraint {
            mask: k,
            test: Test::Eq,
            k,
            ..c
        }
    } else {
        c
    }
}

/// Whole-word comparisons: the interval left by the orderings, minus the excluded values.
fn interval(cs: &[Constraint]) -> Option<u32> {
    let (mut lo, mut hi) = (0u64, u64::from(u32::MAX));
    let mut not = Vec::new();
    for c in cs {
        let k = u64::from(c.k);
        match (c.test, c.holds) {
            (Test::Eq, true) => {
                lo = lo.max(k);
                hi = hi.min(k);
            }
            (Test::Eq, false) => not.push(k),
            (Test::Gt, true) => lo = lo.max(k + 1),
            (Test::Gt, false) => hi = hi.min(k),
            (Test::Ge, true) => lo = lo.max(k),
            (Test::Ge, false) => hi = hi.min(k.checked_sub(1)?),
            (Test::Set, _) => return None,
        }
    }
    not.sort_unstable();
    let mut v = lo;
    for n in not {
        if n == v {
            v += 1;
        }
    }
    (v <= hi).then_some(v as u32)
}

/// Masked equalities: the bits the true ones fix, then the false ones. `None` when the
/// answer is not known (too many free bits to enumerate and no value found).
fn bits(cs: &[Constraint]) -> Option<Option<u32>> {
    let (mut fixed, mut value) = (0u32, 0u32);
    for c in cs.iter().filter(|c| c.holds) {
        if c.k & !c.mask != 0 || (value ^ c.k) & fixed & c.mask != 0 {
            return Some(None);
        }
        fixed |= c.mask;
        value |= c.k & c.mask;
    }
    // A false one whose value has bits outside its mask always holds; one entirely on
    // fixed bits is decided now.
    let mut nots = Vec::new();
    for c in cs.iter().filter(|c| !c.holds && c.k & !c.mask == 0) {
        if c.mask & !fixed == 0 {
            if !c.eval(value) {
                return Some(None);
            }
        } else {
            nots.push(c);
        }
    }
    let free = nots.iter().fold(0u32, |f, c| f | c.mask) & !fixed;
    let positions: Vec<u32> = (0..32).filter(|b| free >> b & 1 == 1).collect();
    let exhaustive = positions.len() <= 16;
    let tried = &positions[..positions.len().min(16)];
    for rest in [0, free] {
        for n in 0u32..1 << tried.len() {
            let mut w = value | (rest & !tried.iter().fold(0, |m, b| m | 1 << b));
            for (i, b) in tried.iter().enumerate() {
                w |= (n >> i & 1) << b;
            }
            if nots.iter().all(|c| c.eval(w)) {
                return Some(Some(w));
            }
        }
        if exhaustive {
            return Some(None);
        }
    }
    None
}

impl Constraint {
    /// Whether the comparison is on the whole word (or on none of it).
    pub fn exact(&self) -> bool {
        self.mask == 0 || (self.mask == u32::MAX && self.test != Test::Set)
    }
}

/// Why no witness was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoWitness {
    /// The path is unreachable: the comparisons on some argument contradict each other,
    /// and the search there was exact.
    Unreachable,
    /// The search found nothing, which does not prove anything.
    NotFound,
}

/// Arguments (as a C caller passes them) that follow `path`. `width(i)` gives argument
/// `i`'s width.
pub fn witness(path: &Path, width: &dyn Fn(usize) -> Width) -> Result<[u64; 6], NoWitness> {
    // Only argument words may be constrained (not the instruction pointer).
    if path.constraints.iter().any(|c| c.arg().is_none()) {
        return Err(NoWitness::NotFound);
    }
    let mut args = [0u64; 6];
    let mut missed = false;
    for (i, slot) in args.iter_mut().enumerate() {
        let (lo_off, hi_off) = (16 + 8 * i as u32, 20 + 8 * i as u32);
        let on = |off: u32| -> Vec<&Constraint> {
            path.constraints.iter().filter(|c| c.off == off).collect()
        };
        let (lo_cs, hi_cs) = (on(lo_off), on(hi_off));
        let found = match width(i) {
            Width::Full => solve(&lo_cs).and_then(|lo| Ok((lo, solve(&hi_cs)?))),
            w => small(&lo_cs, &hi_cs, w).map(|lo| (lo, upper(w, lo).unwrap_or(0))),
        };
        match found {
            Ok((lo, hi)) => *slot = u64::from(hi) << 32 | u64::from(lo),
            Err(NoWitness::Unreachable) => return Err(NoWitness::Unreachable),
            Err(NoWitness::NotFound) => missed = true,
        }
    }
    if missed {
        Err(NoWitness::NotFound)
    } else {
        Ok(args)
    }
}

/// The lower half of a 32-bit argument meeting `lo_cs`, whose upper half (a function of
/// it) meets `hi_cs`. The upper half can only be 0, or all ones for a negative `int`:
/// what `hi_cs` says of those two becomes a condition on the lower half's sign bit.
fn small(lo_cs: &[&Constraint], hi_cs: &[&Constraint], w: Width) -> Result<u32, NoWitness> {
    let zero = hi_cs.iter().all(|c| c.eval(0));
    let ones = w == Width::Sign && hi_cs.iter().all(|c| c.eval(u32::MAX));
    let off = lo_cs.first().map_or(16, |c| c.off);
    let whole = lo_cs.iter().all(|c| c.exact());
    // The sign bit as a whole-word comparison where the others are whole-word, else as
    // a masked equality, so the exact solvers still apply.
    let sign = |negative: bool| {
        if whole {
            Constraint {
                off,
                mask: u32::MAX,
                test: Test::Ge,
                k: 0x8000_0000,
                holds: negative,
            }
        } else {
            Constraint {
                off,
                mask: 0x8000_0000,
                test: Test::Eq,
                k: if negative { 0x8000_0000 } else { 0 },
                holds: true,
            }
        }
    };
    let extra = match (w, zero, ones) {
        (Width::Zero, true, _) | (_, true, true) => None,
        (Width::Zero, false, _) | (_, false, false) => return Err(NoWitness::Unreachable),
        (_, true, false) => Some(sign(false)),
        (_, false, true) => Some(sign(true)),
    };
    let mut cs = lo_cs.to_vec();
    if let Some(e) = &extra {
        cs.push(e);
    }
    solve(&cs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(off: u32, mask: u32, test: Test, k: u32, holds: bool) -> Constraint {
        Constraint {
            off,
            mask,
            test,
            k,
            holds,
        }
    }

    #[test]
    fn solving_intervals_and_masks() {
        let a = c(16, u32::MAX, Test::Gt, 5, true);
        let b = c(16, u32::MAX, Test::Ge, 9, false);
        let n = c(16, u32::MAX, Test::Eq, 6, false);
        assert_eq!(solve(&[&a, &b, &n]), Ok(7));
        let e = c(16, u32::MAX, Test::Eq, 3, true);
        assert_eq!(solve(&[&a, &e]), Err(NoWitness::Unreachable));
        let m = c(16, 0xff00, Test::Eq, 0x1200, true);
        let s = c(16, u32::MAX, Test::Set, 1, true);
        let w = solve(&[&m, &s]).unwrap();
        assert!(w & 0xff00 == 0x1200 && w & 1 == 1);
        // Masked equalities are solved exactly: these contradict each other.
        let t = c(16, 1, Test::Set, 1, false);
        assert_eq!(solve(&[&m, &s, &t]), Err(NoWitness::Unreachable));
        let x = c(16, 0x3, Test::Eq, 1, false);
        let y = c(16, 0x3, Test::Eq, 3, false);
        assert_eq!(solve(&[&s, &x, &y]), Err(NoWitness::Unreachable));
    }

    #[test]
    fn upper_halves_follow_the_lower_for_32_bit_arguments() {
        // `int` argument: upper half 0xffffffff only for negative values.
        let p = Path {
            constraints: vec![
                c(20, u32::MAX, Test::Eq, u32::MAX, true),
                c(16, u32::MAX, Test::Gt, 0x8000_0010, true),
            ],
            ret: 0,
        };
        let w = witness(&p, &|_| Width::Sign).unwrap();
        assert!(w[0] >> 32 == 0xffff_ffff);
        assert_eq!(w[0] >> 32, 0xffff_ffff);
        assert!(w[0] as u32 > 0x8000_0010);
        // Unsigned: a non-zero upper half never happens.
        let p = Path {
            constraints: vec![c(20, u32::MAX, Test::Eq, 0, false)],
            ret: 0,
        };
        assert_eq!(witness(&p, &|_| Width::Zero), Err(NoWitness::Unreachable));
    }
}
