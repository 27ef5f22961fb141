//! The abstract machine the auditor runs seccomp programs on: a value [`Domain`], the
//! registers ([`Regs`]), one instruction ([`step`]), the instruction [`Budget`], and the
//! [`Class`] a set of return values makes. [`super::sym`] runs it with unknown
//! arguments, [`super::paths`] with symbolic ones.

use std::collections::BTreeSet;

use policy_lang::ir::Action;

use crate::bpf::{self, Insn};

/// A value domain for symbolic execution: what a load of `seccomp_data` gives, and what
/// an ALU instruction makes of two values. [`step`] runs every instruction but jumps and
/// returns with it, for `super::sym::outcomes` and for the path-sensitive executor
/// (`super::paths`).
pub(crate) trait Domain: Copy {
    fn known(v: u32) -> Self;
    /// A load of the data word at byte offset `off` (neither `nr` nor `arch`).
    fn word(off: u32) -> Self;
    /// ALU instruction `code` on `a` and `src`.
    fn alu(code: u16, a: Self, src: Self) -> Self;
}

/// Registers and scratch memory of a symbolic run.
#[derive(Clone, Copy)]
pub(crate) struct Regs<V> {
    pub a: V,
    pub x: V,
    pub mem: [V; 16],
}

impl<V: Domain> Regs<V> {
    pub fn new() -> Self {
        Regs {
            a: V::known(0),
            x: V::known(0),
            mem: [V::known(0); 16],
        }
    }
}

/// What [`step`] leaves to its caller.
pub(crate) enum Stop<V> {
    /// A conditional jump comparing the accumulator with this operand.
    Branch(V),
    /// A return.
    Return,
}

/// Run instruction `i` (at `pc`, already advanced past it) unless it is a conditional
/// jump or a return, which are the caller's: `None` means "go on".
pub(crate) fn step<V: Domain>(
    i: Insn,
    pc: &mut usize,
    r: &mut Regs<V>,
    audit_arch: u32,
    nr: u32,
) -> Option<Stop<V>> {
    match i.code & 0x07 {
        bpf::LD => {
            r.a = match i.code & 0xe0 {
                bpf::ABS => match i.k {
                    0 => V::known(nr),
                    4 => V::known(audit_arch),
                    k => V::word(k),
                },
                bpf::LEN => V::known(bpf::DATA_LEN),
                bpf::MEM => r.mem[(i.k & 15) as usize],
                _ => V::known(i.k),
            }
        }
        bpf::LDX => {
            r.x = match i.code & 0xe0 {
                bpf::LEN => V::known(bpf::DATA_LEN),
                bpf::MEM => r.mem[(i.k & 15) as usize],
                _ => V::known(i.k),
            }
        }
        bpf::ST => r.mem[(i.k & 15) as usize] = r.a,
        bpf::STX => r.mem[(i.k & 15) as usize] = r.x,
        bpf::ALU => {
            let src = if i.code & bpf::X != 0 {
                r.x
            } else {
                V::known(i.k)
            };
            r.a = V::alu(i.code, r.a, src);
        }
        bpf::JMP if i.code & 0xf0 == bpf::JA => *pc += i.k as usize,
        bpf::JMP => {
            return Some(Stop::Branch(if i.code & bpf::X != 0 {
                r.x
            } else {
                V::known(i.k)
            }))
        }
        bpf::RET => return Some(Stop::Return),
        _ => {
            if i.code & 0x80 != 0 {
                r.a = r.x;
            } else {
                r.x = r.a;
            }
        }
    }
    None
}

/// How a program treats one syscall when its arguments are not known.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "class", content = "action", rename_all = "kebab-case")]
pub enum Class {
    /// Allowed whatever the arguments (or only logged).
    Allow,
    /// Allowed for some arguments, refused for others.
    Conditional,
    /// Never allowed: the action it gets (the first one, if several).
    Deny(Action),
}

impl Class {
    pub fn allows(&self) -> bool {
        !matches!(self, Class::Deny(_))
    }

    /// Short text for reports: `allow`, `conditional`, `errno(EPERM)`.
    pub fn text(&self) -> String {
        match self {
            Class::Allow => "allow".into(),
            Class::Conditional => "conditional".into(),
            Class::Deny(a) => a.to_source(),
        }
    }
}

/// Whether an action lets the syscall run (LOG, TRACE and USER_NOTIF enforce nothing alone).
pub fn lets_through(a: Action) -> bool {
    matches!(
        a,
        Action::Allow | Action::Log | Action::Trace(_) | Action::Notify
    )
}

/// How many instructions the auditor may follow, summed over every path it explores.
///
/// A program is a DAG, but its paths can be exponentially many: 4,096 instructions of
/// nested argument branches take minutes to follow one by one for every syscall. A budget
/// shared by all the syscalls of one program bounds that; once it is spent, every syscall
/// not yet followed is taken as conditional (the cautious reading: neither surely allowed
/// nor surely denied) and the report says the program was too complex to follow exactly.
pub struct Budget {
    left: std::cell::Cell<u64>,
    spent: std::cell::Cell<bool>,
}

impl Budget {
    /// Instructions for the whole of one program: Docker's profile takes about 0.1 % of it.
    pub const PROGRAM: u64 = 20_000_000;
    /// Instructions for one syscall asked about alone.
    pub const SYSCALL: u64 = 2_000_000;

    pub fn new(steps: u64) -> Budget {
        Budget {
            left: std::cell::Cell::new(steps),
            spent: std::cell::Cell::new(false),
        }
    }

    /// Take one step; false once the budget is spent.
    pub fn step(&self) -> bool {
        match self.left.get() {
            0 => {
                self.spent.set(true);
                false
            }
            n => {
                self.left.set(n - 1);
                true
            }
        }
    }

    /// Whether some exploration stopped for want of budget.
    pub fn spent(&self) -> bool {
        self.spent.get()
    }
}

/// The class of a set of return values.
pub fn class_of(rets: &BTreeSet<u32>) -> Class {
    if rets.is_empty() {
        return Class::Conditional;
    }
    let actions: Vec<Action> = rets.iter().map(|r| bpf::ret_action(*r)).collect();
    let through = actions.iter().filter(|a| lets_through(**a)).count();
    if through == actions.len() {
        Class::Allow
    } else if through == 0 {
        // The most restrictive action the kernel would apply is the first by precedence.
        let mut sorted: Vec<u32> = rets.iter().copied().collect();
        sorted.sort_by_key(|r| precedence(*r));
        Class::Deny(bpf::ret_action(sorted[0]))
    } else {
        Class::Conditional
    }
}

/// Lower is more restrictive (the kernel's order of `SECCOMP_RET_*`).
fn precedence(ret: u32) -> u32 {
    match ret & 0xffff_0000 {
        bpf::RET_KILL_PROCESS => 0,
        bpf::RET_KILL_THREAD => 1,
        bpf::RET_TRAP => 2,
        bpf::RET_ERRNO => 3,
        bpf::RET_USER_NOTIF => 4,
        bpf::RET_TRACE => 5,
        bpf::RET_LOG => 6,
        _ => 7,
    }
}
