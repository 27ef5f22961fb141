//! kakoi's own seccomp code generator.
//!
//! Layout of a program for one host (x86_64 shown; aarch64 has a single ABI):
//!
//! ```text
//!   ld arch ; jeq AUDIT_ARCH_X86_64 -> native, else -> compat
//! native:
//!   ld nr ; <search tree over number ranges>        (x32 numbers are ranges too)
//! compat:
//!   jeq AUDIT_ARCH_I386 -> i386, else -> bad-arch
//! i386:
//!   ld nr ; <search tree>
//! leaves:   argument checks of the syscalls that have conditions
//! returns:  one RET per action, shared
//! ```
//!
//! Why this shape:
//! - Syscall numbers with the same argument-independent decision are coalesced into
//!   ranges, and the ranges are searched with an *optimal alphabetic tree* of `JGE`
//!   weighted by the number of allowed syscalls in each range, so the common allowed
//!   calls sit near the root (minijail's idea, with kakoi's weights).
//! - Only `ld nr`, `ld arch`, constant jumps and `ret` lie on the path of an
//!   argument-independent decision, so the kernel's seccomp action cache (Linux >= 5.11)
//!   serves every such ALLOW without running the filter. Argument loads live only in the
//!   per-syscall leaves.
//! - The x32 guard costs nothing extra: numbers `0x40000000..=0xfffffffe` are one more
//!   range of the native tree (the x32 tree when x32 is targeted, bad-arch otherwise), and
//!   `-1` (a tracer's skip) another.
//! - 32-bit arguments compare only the low word (libc may leave garbage in the high
//!   half); 64-bit arguments compare both words.
//! - Conditional jumps reach 255 instructions; farther targets go through `JA`
//!   trampolines inserted after layout.

use std::collections::BTreeMap;

use policy_lang::catalogue::{self, Arch};
use policy_lang::ir::{Action, CmpOpOrd, ConcreteCmp, ConcreteCond, Seccomp};

use super::{Host, Program};
use crate::bpf::{self, Insn};

type Label = usize;

/// An instruction before layout: jumps name labels.
#[derive(Clone, Debug)]
enum Item {
    Label(Label),
    Ld(u32),
    AndK(u32),
    /// Conditional jump: `op` is one of `bpf::JEQ/JGT/JGE/JSET`.
    Jmp {
        op: u16,
        k: u32,
        t: Label,
        f: Label,
    },
    Ja(Label),
    Ret(u32),
}

/// A first-match chain of conditions and their actions.
type Chain = Vec<(ConcreteCond, Action)>;

/// What a number range decides: an action, or the argument checks of one syscall.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Action(Action),
    /// First-match chain of (condition, action), then the fall-through action.
    Leaf(Chain, Action),
    /// x32 numbers seen on the native x86_64 path: continue in the x32 tree.
    X32,
}

#[derive(Clone, Debug)]
struct Range {
    lo: u32,
    target: Target,
    /// Allowed syscalls in the range: the search-tree weight.
    weight: u64,
}

struct Emitter {
    items: Vec<Item>,
    next_label: Label,
    rets: BTreeMap<u32, Label>,
}

impl Emitter {
    /// A conditional jump with constant `k`.
    fn jmp(&mut self, op: u16, k: u32, t: Label, f: Label) {
        self.items.push(Item::Jmp { op, k, t, f });
    }

    fn label(&mut self) -> Label {
        self.next_label += 1;
        self.next_label
    }

    fn ret(&mut self, a: Action) -> Label {
        let next = self.next_label + 1;
        let l = *self.rets.entry(bpf::action_ret(a)).or_insert(next);
        if l == next {
            self.next_label = next;
        }
        l
    }

    fn place(&mut self, l: Label) {
        self.items.push(Item::Label(l));
    }
}

/// The decision of every syscall number of `arch`, as ranges covering `0..=u32::MAX`.
fn ranges(s: &Seccomp, arch: Arch, native_x86_64: bool) -> Vec<Range> {
    let rules = s.for_arch(arch);
    let mut by_nr: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        for nr in &r.nrs {
            by_nr.entry(*nr).or_default().push(i);
        }
    }
    let known: std::collections::BTreeSet<u32> = catalogue::syscalls()
        .iter()
        .filter_map(|d| d.nr(arch))
        .collect();
    let decide = |nr: u32| -> Target {
        if !known.contains(&nr) {
            return Target::Action(s.unknown_action);
        }
        let mut chain = Vec::new();
        for &i in by_nr.get(&nr).map(Vec::as_slice).unwrap_or(&[]) {
            let r = &rules[i];
            match &r.cond {
                None => {
                    if chain.is_empty() {
                        return Target::Action(r.action);
                    }
                    return Target::Leaf(chain, r.action);
                }
                Some(c) => chain.push((c.clone(), r.action)),
            }
        }
        if chain.is_empty() {
            Target::Action(s.default_action)
        } else {
            Target::Leaf(chain, s.default_action)
        }
    };
    let mut out: Vec<Range> = Vec::new();
    let base = arch.nr_offset();
    if base > 0 {
        // Below the x32 numbers: never reached (the native tree sends only x32 numbers).
        out.push(Range {
            lo: 0,
            target: Target::Action(s.bad_arch_action),
            weight: 0,
        });
    }
    let top = catalogue::max_nr(arch);
    if native_x86_64 && !s.arches.contains(&Arch::X86_64) {
        // x32 targeted alone: native numbers are a foreign ABI.
        out.push(Range {
            lo: 0,
            target: Target::Action(s.bad_arch_action),
            weight: 0,
        });
    } else {
        for nr in base..=top {
            let t = decide(nr);
            let w = u64::from(matches!(
                t,
                Target::Action(Action::Allow) | Target::Leaf(..)
            ));
            out.push(Range {
                lo: nr,
                target: t,
                weight: w,
            });
        }
        out.push(Range {
            lo: top + 1,
            target: Target::Action(s.unknown_action),
            weight: 0,
        });
    }
    if native_x86_64 {
        // On the native x86_64 path the x32 bit marks another ABI, and -1 is a tracer's
        // skip, which stays native (and so gets the default, or bad-arch when x86_64 is
        // not targeted): the same split as `Seccomp::decide`.
        out.retain(|r| r.lo < 0x4000_0000);
        let x32 = if s.arches.contains(&Arch::X32) {
            Target::X32
        } else {
            Target::Action(s.bad_arch_action)
        };
        out.push(Range {
            lo: 0x4000_0000,
            target: x32,
            weight: 0,
        });
        let minus_one = if s.arches.contains(&Arch::X86_64) {
            s.unknown_action
        } else {
            s.bad_arch_action
        };
        out.push(Range {
            lo: u32::MAX,
            target: Target::Action(minus_one),
            weight: 0,
        });
    }
    merge_equal(out)
}

fn merge_equal(v: Vec<Range>) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for r in v {
        match out.last_mut() {
            Some(last) if last.target == r.target && matches!(r.target, Target::Action(_)) => {
                last.weight += r.weight
            }
            _ => out.push(r),
        }
    }
    out
}

/// Optimal alphabetic search tree over `ranges` (minimising the weighted depth), as a
/// table `root[i][j]` = split point for the sub-list `i..=j`.
fn optimal_splits(w: &[u64]) -> Vec<Vec<usize>> {
    let n = w.len();
    let mut prefix = vec![0u64; n + 1];
    for i in 0..n {
        // A small weight for every range keeps zero-weight (denied) ranges balanced.
        prefix[i + 1] = prefix[i] + w[i] * 64 + 1;
    }
    let sum = |i: usize, j: usize| prefix[j + 1] - prefix[i];
    let mut cost = vec![vec![0u64; n]; n];
    let mut root = vec![vec![0usize; n]; n];
    for len in 2..=n {
        for i in 0..=n - len {
            let j = i + len - 1;
            let mut best = (u64::MAX, i + 1);
            // Knuth's bound keeps this near-quadratic.
            let lo = if len > 2 {
                root[i][j - 1].max(i + 1)
            } else {
                i + 1
            };
            let hi = if len > 2 { root[i + 1][j].min(j) } else { j };
            for k in lo..=hi {
                let c = cost[i][k - 1] + cost[k][j];
                if c < best.0 {
                    best = (c, k);
                }
            }
            cost[i][j] = best.0 + sum(i, j);
            root[i][j] = best.1;
        }
    }
    root
}

impl Emitter {
    /// Emit the search tree over `r[i..=j]`; returns the label to jump to.
    fn tree(
        &mut self,
        r: &[Range],
        i: usize,
        j: usize,
        root: &[Vec<usize>],
        leaf_of: &mut dyn FnMut(&mut Self, usize) -> Label,
    ) -> Label {
        if i == j {
            return leaf_of(self, i);
        }
        let k = root[i][j];
        let l = self.label();
        self.place(l);
        let at = self.items.len();
        self.items.push(Item::Ja(0)); // patched below
        let left = self.tree(r, i, k - 1, root, leaf_of);
        let right = self.tree(r, k, j, root, leaf_of);
        self.items[at] = Item::Jmp {
            op: bpf::JGE,
            k: r[k].lo,
            t: right,
            f: left,
        };
        l
    }

    /// Emit code that jumps to `t` when `c` holds and to `f` otherwise.
    fn cond(&mut self, c: &ConcreteCond, t: Label, f: Label) {
        match c {
            ConcreteCond::Const(b) => self.items.push(Item::Ja(if *b { t } else { f })),
            ConcreteCond::Not(c) => self.cond(c, f, t),
            ConcreteCond::And(v) | ConcreteCond::Or(v) => {
                let and = matches!(c, ConcreteCond::And(_));
                for (n, c) in v.iter().enumerate() {
                    if n + 1 == v.len() {
                        self.cond(c, t, f);
                    } else {
                        let next = self.label();
                        if and {
                            self.cond(c, next, f);
                        } else {
                            self.cond(c, t, next);
                        }
                        self.place(next);
                    }
                }
                if v.is_empty() {
                    self.items.push(Item::Ja(if and { t } else { f }));
                }
            }
            ConcreteCond::Cmp(c) => self.cmp(c, t, f),
        }
    }

    fn cmp(&mut self, c: &ConcreteCmp, t: Label, f: Label) {
        let lo_off = 16 + 8 * u32::from(c.index);
        let hi_off = lo_off + 4;
        let width = if c.low32 { 0xffff_ffff } else { u64::MAX };
        let mask = c.mask.unwrap_or(u64::MAX) & width;
        // `(a & m) == v` can never hold when `v` has bits outside `m` (the value is cut
        // to the argument's width first, as `ConcreteCmp::eval` does).
        if matches!(c.op, CmpOpOrd::Eq | CmpOpOrd::Ne) && (c.value & width) & !mask != 0 {
            let never = if c.op == CmpOpOrd::Eq { f } else { t };
            self.items.push(Item::Ja(never));
            return;
        }
        let v = c.value & mask;
        let (vh, vl) = ((v >> 32) as u32, v as u32);
        let (mh, ml) = ((mask >> 32) as u32, mask as u32);
        let wide = mh != 0;
        // Load a word, masked when the mask is partial.
        let load = |e: &mut Self, off: u32, m: u32| {
            e.items.push(Item::Ld(off));
            if m != u32::MAX {
                e.items.push(Item::AndK(m));
            }
        };
        match c.op {
            CmpOpOrd::Eq | CmpOpOrd::Ne => {
                let (t, f) = if c.op == CmpOpOrd::Eq { (t, f) } else { (f, t) };
                // A single-bit mask tests with JSET, without an AND.
                if c.mask.is_some() && !wide && ml.count_ones() == 1 {
                    self.items.push(Item::Ld(lo_off));
                    let (set, clear) = if vl == ml { (t, f) } else { (f, t) };
                    self.jmp(bpf::JSET, ml, set, clear);
                    return;
                }
                if wide {
                    let next = self.label();
                    load(self, hi_off, mh);
                    self.jmp(bpf::JEQ, vh, next, f);
                    self.place(next);
                }
                load(self, lo_off, ml);
                self.jmp(bpf::JEQ, vl, t, f);
            }
            op => {
                // Ordered comparisons of `a & mask` with the value cut to the argument's
                // width: Gt/Ge directly, Lt/Le as their negation.
                let v = c.value & width;
                let (vh, vl) = ((v >> 32) as u32, v as u32);
                let (strict, t, f) = match op {
                    CmpOpOrd::Gt => (true, t, f),
                    CmpOpOrd::Ge => (false, t, f),
                    CmpOpOrd::Lt => (false, f, t),
                    _ => (true, f, t),
                };
                let jop = if strict { bpf::JGT } else { bpf::JGE };
                if wide {
                    let eq = self.label();
                    let ne = self.label();
                    load(self, hi_off, mh);
                    self.jmp(bpf::JGT, vh, t, ne);
                    self.place(ne);
                    self.jmp(bpf::JEQ, vh, eq, f);
                    self.place(eq);
                } else if !c.low32 && vh != 0 {
                    // The masked high word is zero, below any value with high bits.
                    self.items.push(Item::Ja(f));
                    return;
                }
                load(self, lo_off, ml);
                self.jmp(jop, vl, t, f);
            }
        }
    }
}

/// Emit the ABI dispatch and trees of one ABI family into `e`, returning the entry label.
fn emit_program(s: &Seccomp, host: Host, e: &mut Emitter) {
    let bad = e.ret(s.bad_arch_action);
    let targeted = |a: Arch| s.arches.contains(&a);
    let mut leaves: Vec<(Label, Chain, Action)> = Vec::new();
    let mut emit_tree = |e: &mut Emitter, arch: Arch, native: bool, x32_entry: Option<Label>| {
        let r = ranges(s, arch, native && arch == Arch::X86_64);
        let w: Vec<u64> = r.iter().map(|r| r.weight).collect();
        let root = optimal_splits(&w);
        let mut leaf_of = |e: &mut Emitter, i: usize| -> Label {
            match &r[i].target {
                Target::X32 => x32_entry.expect("an x32 range only when x32 is targeted"),
                Target::Action(a) => e.ret(*a),
                Target::Leaf(chain, fall) => {
                    let l = e.label();
                    leaves.push((l, chain.clone(), *fall));
                    l
                }
            }
        };
        e.items.push(Item::Ld(0));
        let entry = e.tree(&r, 0, r.len() - 1, &root, &mut leaf_of);
        // A one-range tree emits no instruction: jump straight to its target.
        if !matches!(e.items.last(), Some(Item::Jmp { .. })) && r.len() == 1 {
            e.items.push(Item::Ja(entry));
        }
    };
    e.items.push(Item::Ld(4));
    match host {
        Host::X86_64 => {
            let native = e.label();
            let compat = e.label();
            e.jmp(bpf::JEQ, Arch::X86_64.audit_arch(), native, compat);
            e.place(native);
            let x32_label = targeted(Arch::X32).then(|| e.label());
            if targeted(Arch::X86_64) || x32_label.is_some() {
                emit_tree(e, Arch::X86_64, true, x32_label);
            } else {
                e.items.push(Item::Ja(bad));
            }
            if let Some(x32) = x32_label {
                e.place(x32);
                emit_tree(e, Arch::X32, false, None);
            }
            e.place(compat);
            if targeted(Arch::X86) {
                let i386 = e.label();
                e.jmp(bpf::JEQ, Arch::X86.audit_arch(), i386, bad);
                e.place(i386);
                emit_tree(e, Arch::X86, false, None);
            } else {
                e.items.push(Item::Ja(bad));
            }
        }
        Host::Aarch64 => {
            let native = e.label();
            e.jmp(bpf::JEQ, Arch::Aarch64.audit_arch(), native, bad);
            e.place(native);
            emit_tree(e, Arch::Aarch64, false, None);
        }
    }
    for (l, chain, fall) in leaves {
        e.place(l);
        for (c, a) in chain {
            let t = e.ret(a);
            let next = e.label();
            e.cond(&c, t, next);
            e.place(next);
        }
        let fl = e.ret(fall);
        e.items.push(Item::Ja(fl));
    }
    let rets: Vec<(u32, Label)> = e.rets.iter().map(|(k, l)| (*k, *l)).collect();
    for (k, l) in rets {
        e.place(l);
        e.items.push(Item::Ret(k));
    }
}

/// Remove jumps to the next instruction, send jumps that land on a `JA` or a `RET`
/// straight to where those go, and drop code that nothing reaches.
fn peephole(items: Vec<Item>) -> Vec<Item> {
    let items = thread_jumps(items);
    let items = drop_jumps_to_next(items);
    drop_unreachable(items)
}

/// Retarget jumps whose target label is followed directly by `JA x` to `x`.
fn thread_jumps(mut items: Vec<Item>) -> Vec<Item> {
    let mut forward: BTreeMap<Label, Label> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        if let Item::Label(l) = it {
            let next = items[i + 1..].iter().find(|x| !matches!(x, Item::Label(_)));
            if let Some(Item::Ja(x)) = next {
                forward.insert(*l, *x);
            }
        }
    }
    let resolve = |mut l: Label| {
        for _ in 0..16 {
            match forward.get(&l) {
                Some(&x) if x != l => l = x,
                _ => break,
            }
        }
        l
    };
    for it in &mut items {
        match it {
            Item::Jmp { t, f, .. } => {
                *t = resolve(*t);
                *f = resolve(*f);
            }
            Item::Ja(l) => *l = resolve(*l),
            _ => {}
        }
    }
    items
}

/// Drop instructions after a jump or return that no label makes reachable.
fn drop_unreachable(items: Vec<Item>) -> Vec<Item> {
    let used: std::collections::BTreeSet<Label> = items
        .iter()
        .flat_map(|it| match it {
            Item::Jmp { t, f, .. } => vec![*t, *f],
            Item::Ja(l) => vec![*l],
            _ => vec![],
        })
        .collect();
    let mut out = Vec::with_capacity(items.len());
    let mut live = true;
    for it in items {
        match &it {
            Item::Label(l) => {
                if used.contains(l) {
                    live = true;
                    out.push(it);
                }
                continue;
            }
            _ if !live => continue,
            Item::Jmp { .. } | Item::Ja(_) | Item::Ret(_) => {
                out.push(it);
                live = false;
                continue;
            }
            _ => {}
        }
        out.push(it);
    }
    out
}

fn drop_jumps_to_next(items: Vec<Item>) -> Vec<Item> {
    // A `Ja` whose target label follows immediately (only labels between) is dropped.
    let mut out = Vec::with_capacity(items.len());
    let mut i = 0;
    while i < items.len() {
        if let Item::Ja(t) = items[i] {
            let mut j = i + 1;
            let mut falls = false;
            while let Some(Item::Label(l)) = items.get(j) {
                if *l == t {
                    falls = true;
                }
                j += 1;
            }
            if falls {
                i += 1;
                continue;
            }
        }
        out.push(items[i].clone());
        i += 1;
    }
    out
}

/// Drop loads of a word the accumulator already holds on every path into them (argument
/// chains such as `personality in {…}` load the same word before each comparison).
/// Jumps only go forward, so one pass in program order sees every predecessor of a label
/// before the label itself.
fn drop_redundant_loads(items: Vec<Item>) -> Vec<Item> {
    // What A holds: Some(offset) for an unmodified load, None when unknown.
    type State = Option<u32>;
    fn meet(a: Option<State>, b: State) -> Option<State> {
        Some(match a {
            None => b,
            Some(x) if x == b => x,
            Some(_) => None,
        })
    }
    let mut at_label: BTreeMap<Label, State> = BTreeMap::new();
    // `cur`: the state falling through into the next item; `None` = unreachable.
    let mut cur: Option<State> = Some(None);
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        match &it {
            Item::Label(l) => {
                let from_jumps = at_label.get(l).copied();
                cur = match (cur, from_jumps) {
                    (Some(c), Some(j)) => meet(Some(c), j),
                    (Some(c), None) => Some(c),
                    (None, j) => j,
                };
            }
            Item::Ld(k) => {
                if cur == Some(Some(*k)) {
                    continue;
                }
                cur = Some(Some(*k));
            }
            Item::AndK(_) => cur = Some(None),
            Item::Jmp { t, f, .. } => {
                let s = cur.flatten();
                for l in [t, f] {
                    let merged = meet(at_label.get(l).copied(), s).flatten();
                    at_label.insert(*l, merged);
                }
                cur = None;
            }
            Item::Ja(l) => {
                let s = cur.flatten();
                let merged = meet(at_label.get(l).copied(), s).flatten();
                at_label.insert(*l, merged);
                cur = None;
            }
            Item::Ret(_) => cur = None,
        }
        out.push(it);
    }
    out
}

/// Lay out items as instructions, inserting `JA` trampolines for jumps beyond 255.
fn layout(mut items: Vec<Item>) -> Vec<Insn> {
    loop {
        // Positions of labels.
        let mut pos = BTreeMap::new();
        let mut n = 0usize;
        for it in &items {
            match it {
                Item::Label(l) => {
                    pos.insert(*l, n);
                }
                _ => n += 1,
            }
        }
        // Every conditional jump that is too far gets trampolines (one pass over the
        // program; the insertions can push other jumps out of reach, so repeat until
        // none is).
        let mut pc = 0usize;
        let mut far_jumps = Vec::new();
        for (idx, it) in items.iter().enumerate() {
            match it {
                Item::Label(_) => continue,
                Item::Jmp { t, f, .. } => {
                    let far = |l: &Label| pos[l] - (pc + 1) > 255;
                    if far(t) || far(f) {
                        far_jumps.push((idx, far(t), far(f)));
                    }
                }
                _ => {}
            }
            pc += 1;
        }
        if far_jumps.is_empty() {
            let mut out = Vec::with_capacity(n);
            let mut pc = 0usize;
            for it in &items {
                let off = |l: &Label, pc: usize| pos[l] - (pc + 1);
                let insn = match it {
                    Item::Label(_) => continue,
                    Item::Ld(k) => Insn {
                        code: bpf::LD | bpf::W | bpf::ABS,
                        jt: 0,
                        jf: 0,
                        k: *k,
                    },
                    Item::AndK(k) => Insn {
                        code: bpf::ALU | 0x50 | bpf::K,
                        jt: 0,
                        jf: 0,
                        k: *k,
                    },
                    Item::Jmp { op, k, t, f } => Insn {
                        code: bpf::JMP | op | bpf::K,
                        jt: off(t, pc) as u8,
                        jf: off(f, pc) as u8,
                        k: *k,
                    },
                    Item::Ja(l) => Insn {
                        code: bpf::JMP | bpf::JA,
                        jt: 0,
                        jf: 0,
                        k: off(l, pc) as u32,
                    },
                    Item::Ret(k) => Insn {
                        code: bpf::RET | bpf::K,
                        jt: 0,
                        jf: 0,
                        k: *k,
                    },
                };
                out.push(insn);
                pc += 1;
            }
            return out;
        }
        let mut next_label = items
            .iter()
            .filter_map(|i| {
                if let Item::Label(l) = i {
                    Some(*l)
                } else {
                    None
                }
            })
            .max()
            .unwrap_or(0);
        let mut fixes = far_jumps.into_iter().peekable();
        let mut out = Vec::with_capacity(items.len() + 4);
        for (idx, it) in items.into_iter().enumerate() {
            let Some(&(_, ft, ff)) = fixes.peek().filter(|(i, _, _)| *i == idx) else {
                out.push(it);
                continue;
            };
            fixes.next();
            let Item::Jmp { op, k, t, f } = it else {
                unreachable!("fix is a jump")
            };
            let mut insert = Vec::new();
            let (mut nt, mut nf) = (t, f);
            // The trampolines follow the jump directly: both branches reach them, and
            // they are only reached by jumps, so the fall-through path stays intact.
            if ft {
                next_label += 1;
                nt = next_label;
                insert.push(Item::Label(nt));
                insert.push(Item::Ja(t));
            }
            if ff {
                next_label += 1;
                nf = next_label;
                insert.push(Item::Label(nf));
                insert.push(Item::Ja(f));
            }
            out.push(Item::Jmp {
                op,
                k,
                t: nt,
                f: nf,
            });
            out.extend(insert);
        }
        items = out;
    }
}

/// Compile the policy for one host with kakoi's generator.
pub fn compile(s: &Seccomp, host: Host) -> Program {
    let mut e = Emitter {
        items: Vec::new(),
        next_label: 0,
        rets: BTreeMap::new(),
    };
    emit_program(s, host, &mut e);
    let prog = layout(drop_redundant_loads(peephole(e.items)));
    Program {
        host,
        bpf: bpf::encode(&prog),
        skipped: Vec::new(),
        unknown_as_default: false,
    }
}
