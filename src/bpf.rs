//! Classic BPF as seccomp uses it: instruction model, decoder, validator, interpreter and
//! disassembler. Shared by the compiler's verification and (later) the auditor.
//!
//! Architecture invariant: the interpreter is written from the kernel's documented
//! semantics (`Documentation/networking/filter.rst`, `kernel/seccomp.c`), never from a
//! backend's output, so it can check every backend.

use std::fmt;

use policy_lang::ir::Action;

/// One `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Instruction classes and fields (linux/bpf_common.h).
pub const LD: u16 = 0x00;
pub const LDX: u16 = 0x01;
pub const ST: u16 = 0x02;
pub const STX: u16 = 0x03;
pub const ALU: u16 = 0x04;
pub const JMP: u16 = 0x05;
pub const RET: u16 = 0x06;
pub const MISC: u16 = 0x07;
pub const W: u16 = 0x00;
pub const ABS: u16 = 0x20;
pub const IMM: u16 = 0x00;
pub const MEM: u16 = 0x60;
pub const LEN: u16 = 0x80;
pub const K: u16 = 0x00;
pub const X: u16 = 0x08;
pub const A: u16 = 0x10;
pub const JA: u16 = 0x00;
pub const JEQ: u16 = 0x10;
pub const JGT: u16 = 0x20;
pub const JGE: u16 = 0x30;
pub const JSET: u16 = 0x40;

/// Size of `struct seccomp_data`.
pub const DATA_LEN: u32 = 64;
/// Most instructions the kernel accepts in one filter (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

// SECCOMP_RET_* (linux/seccomp.h).
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0x0000_0000;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ACTION_FULL: u32 = 0xffff_0000;
const RET_DATA: u32 = 0x0000_ffff;

/// The return value seccomp expects for an action.
pub fn action_ret(a: Action) -> u32 {
    match a {
        Action::Allow => RET_ALLOW,
        Action::Errno(e) => RET_ERRNO | u32::from(e),
        Action::KillProcess => RET_KILL_PROCESS,
        Action::KillThread => RET_KILL_THREAD,
        Action::Trap => RET_TRAP,
        Action::Log => RET_LOG,
        Action::Trace(n) => RET_TRACE | u32::from(n),
        Action::Notify => RET_USER_NOTIF,
    }
}

/// The action a return value means, as the kernel reads it (unknown actions kill).
pub fn ret_action(r: u32) -> Action {
    let data = (r & RET_DATA) as u16;
    match r & RET_ACTION_FULL {
        RET_KILL_PROCESS => Action::KillProcess,
        RET_KILL_THREAD => Action::KillThread,
        RET_TRAP => Action::Trap,
        RET_ERRNO => Action::Errno(data.min(4095)),
        RET_USER_NOTIF => Action::Notify,
        RET_TRACE => Action::Trace(data),
        RET_LOG => Action::Log,
        RET_ALLOW => Action::Allow,
        _ => Action::KillProcess,
    }
}

/// `struct seccomp_data`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Data {
    pub nr: u32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

impl Data {
    /// The 32-bit word at byte offset `off` (little-endian layout of x86_64 and aarch64).
    fn word(&self, off: u32) -> u32 {
        match off {
            0 => self.nr,
            4 => self.arch,
            8 => self.ip as u32,
            12 => (self.ip >> 32) as u32,
            o => {
                let i = ((o - 16) / 8) as usize;
                let v = self.args[i];
                if (o - 16) % 8 == 0 {
                    v as u32
                } else {
                    (v >> 32) as u32
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error("program length {0} bytes is not a multiple of 8")]
    Length(usize),
    #[error("program is empty")]
    Empty,
    #[error("program has {0} instructions, more than the kernel's 4096")]
    TooLong(usize),
    #[error("instruction {at}: {why}")]
    Invalid { at: usize, why: String },
}

/// Decode a raw little-endian `sock_filter` array.
pub fn decode(bytes: &[u8]) -> Result<Vec<Insn>, Error> {
    if bytes.len() % 8 != 0 {
        return Err(Error::Length(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Insn {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// Encode instructions as a raw little-endian `sock_filter` array.
pub fn encode(prog: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for i in prog {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    out
}

/// Check a program the way the kernel's `seccomp_check_filter` and `bpf_check_classic`
/// do: known opcodes, loads inside aligned `seccomp_data` words, forward jumps in range,
/// no division by a zero constant, and a final return.
pub fn validate(prog: &[Insn]) -> Result<(), Error> {
    if prog.is_empty() {
        return Err(Error::Empty);
    }
    if prog.len() > MAX_INSNS {
        return Err(Error::TooLong(prog.len()));
    }
    let bad = |at: usize, why: &str| {
        Err(Error::Invalid {
            at,
            why: why.into(),
        })
    };
    for (at, i) in prog.iter().enumerate() {
        let class = i.code & 0x07;
        let target_ok = |off: u32| at + 1 + (off as usize) < prog.len();
        match class {
            LD => match i.code {
                c if c == LD | W | ABS => {
                    if i.k >= DATA_LEN || i.k % 4 != 0 {
                        return bad(at, "load outside seccomp_data or unaligned");
                    }
                }
                c if c == LD | W | LEN || c == LD | IMM || c == LD | MEM => {
                    if c == LD | MEM && i.k >= 16 {
                        return bad(at, "scratch memory index out of range");
                    }
                }
                _ => return bad(at, "load mode not allowed in seccomp"),
            },
            LDX => match i.code {
                c if c == LDX | W | IMM || c == LDX | W | LEN => {}
                c if c == LDX | MEM => {
                    if i.k >= 16 {
                        return bad(at, "scratch memory index out of range");
                    }
                }
                _ => return bad(at, "load mode not allowed in seccomp"),
            },
            ST | STX => {
                if i.code & !0x07 != 0 || i.k >= 16 {
                    return bad(at, "bad store");
                }
            }
            ALU => {
                let op = i.code & 0xf0;
                if op > 0xa0 {
                    return bad(at, "unknown ALU operation");
                }
                if (op == 0x30 || op == 0x90) && i.code & X == 0 && i.k == 0 {
                    return bad(at, "division by zero");
                }
            }
            JMP => {
                let op = i.code & 0xf0;
                if op == JA {
                    if !target_ok(i.k) {
                        return bad(at, "jump past the end");
                    }
                } else if op <= JSET {
                    if !target_ok(u32::from(i.jt)) || !target_ok(u32::from(i.jf)) {
                        return bad(at, "jump past the end");
                    }
                } else {
                    return bad(at, "unknown jump");
                }
            }
            RET => {
                if i.code != RET | K && i.code != RET | A {
                    return bad(at, "bad return");
                }
            }
            MISC => {
                if i.code != MISC && i.code != MISC | 0x80 {
                    return bad(at, "unknown misc instruction");
                }
            }
            _ => unreachable!("class is three bits"),
        }
    }
    let last = prog.last().expect("non-empty");
    if last.code & 0x07 != RET {
        return bad(prog.len() - 1, "program does not end in a return");
    }
    Ok(())
}

/// The outcome of running a program, with the instructions it executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub ret: u32,
    pub steps: usize,
}

/// The result of ALU instruction `code` on the accumulator `a` and operand `src`.
pub fn alu(code: u16, a: u32, src: u32) -> u32 {
    match code & 0xf0 {
        0x00 => a.wrapping_add(src),
        0x10 => a.wrapping_sub(src),
        0x20 => a.wrapping_mul(src),
        0x30 => a.checked_div(src).unwrap_or(0),
        0x40 => a | src,
        0x50 => a & src,
        0x60 => a.checked_shl(src).unwrap_or(0),
        0x70 => a.checked_shr(src).unwrap_or(0),
        0x80 => a.wrapping_neg(),
        0x90 => a.checked_rem(src).unwrap_or(0),
        _ => a ^ src,
    }
}

/// Whether conditional jump `op` (`JEQ`, `JGT`, `JGE`, `JSET`) is taken for `a` and `src`.
pub fn jump_taken(op: u16, a: u32, src: u32) -> bool {
    match op & 0xf0 {
        JEQ => a == src,
        JGT => a > src,
        JGE => a >= src,
        _ => a & src != 0,
    }
}

/// Run a validated program on `data`.
pub fn run(prog: &[Insn], data: &Data) -> Run {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    let mut steps = 0;
    loop {
        let i = prog[pc];
        steps += 1;
        pc += 1;
        match i.code & 0x07 {
            LD => {
                a = match i.code & 0xe0 {
                    ABS => data.word(i.k),
                    LEN => DATA_LEN,
                    MEM => mem[i.k as usize],
                    _ => i.k,
                }
            }
            LDX => {
                x = match i.code & 0xe0 {
                    LEN => DATA_LEN,
                    MEM => mem[i.k as usize],
                    _ => i.k,
                }
            }
            ST => mem[i.k as usize] = a,
            STX => mem[i.k as usize] = x,
            ALU => {
                let src = if i.code & X != 0 { x } else { i.k };
                a = alu(i.code, a, src);
            }
            JMP => {
                let src = if i.code & X != 0 { x } else { i.k };
                let op = i.code & 0xf0;
                if op == JA {
                    pc += i.k as usize;
                } else {
                    pc += usize::from(if jump_taken(op, a, src) { i.jt } else { i.jf });
                }
            }
            RET => {
                let ret = if i.code & 0x18 == A { a } else { i.k };
                return Run { ret, steps };
            }
            _ => {
                if i.code & 0x80 != 0 {
                    a = x;
                } else {
                    x = a;
                }
            }
        }
    }
}

/// One instruction in the style of `bpf_dbg` / seccomp-tools.
pub struct Disasm<'a>(pub &'a [Insn]);

fn field(k: u32) -> String {
    match k {
        0 => "nr".into(),
        4 => "arch".into(),
        8 => "ip_lo".into(),
        12 => "ip_hi".into(),
        o if (16..64).contains(&o) => {
            let i = (o - 16) / 8;
            format!("args[{i}].{}", if (o - 16) % 8 == 0 { "lo" } else { "hi" })
        }
        o => format!("[{o}]"),
    }
}

fn ret_text(r: u32) -> String {
    match ret_action(r) {
        Action::Errno(e) => format!("ERRNO({e})"),
        Action::Trace(n) => format!("TRACE({n})"),
        a => a.to_source().to_uppercase().replace('-', "_"),
    }
}

impl fmt::Display for Disasm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (pc, i) in self.0.iter().enumerate() {
            let src = if i.code & X != 0 {
                "x".to_string()
            } else {
                format!("{:#x}", i.k)
            };
            let text = match i.code & 0x07 {
                LD => match i.code & 0xe0 {
                    ABS => format!("ld  {}", field(i.k)),
                    LEN => "ld  #len".into(),
                    MEM => format!("ld  M[{}]", i.k),
                    _ => format!("ld  #{:#x}", i.k),
                },
                LDX => match i.code & 0xe0 {
                    MEM => format!("ldx M[{}]", i.k),
                    _ => format!("ldx #{:#x}", i.k),
                },
                ST => format!("st  M[{}]", i.k),
                STX => format!("stx M[{}]", i.k),
                ALU => {
                    let op = [
                        "add", "sub", "mul", "div", "or", "and", "lsh", "rsh", "neg", "mod", "xor",
                    ]
                    .get(usize::from((i.code & 0xf0) >> 4))
                    .copied()
                    .unwrap_or("alu?");
                    format!("{op} {src}")
                }
                JMP => {
                    let op = i.code & 0xf0;
                    if op == JA {
                        format!("ja  {}", pc + 1 + i.k as usize)
                    } else {
                        let name = match op {
                            JEQ => "jeq",
                            JGT => "jgt",
                            JGE => "jge",
                            _ => "jset",
                        };
                        format!(
                            "{name} {src}, {}, {}",
                            pc + 1 + usize::from(i.jt),
                            pc + 1 + usize::from(i.jf)
                        )
                    }
                }
                RET => {
                    if i.code & 0x18 == A {
                        "ret a".into()
                    } else {
                        format!("ret {}", ret_text(i.k))
                    }
                }
                _ => (if i.code & 0x80 != 0 { "txa" } else { "tax" }).into(),
            };
            writeln!(f, "{pc:04}: {text}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    #[test]
    fn runs_a_small_filter() {
        // if nr == 39 allow else errno(1)
        let p = vec![
            ins(LD | W | ABS, 0, 0, 0),
            ins(JMP | JEQ | K, 0, 1, 39),
            ins(RET | K, 0, 0, RET_ALLOW),
            ins(RET | K, 0, 0, RET_ERRNO | 1),
        ];
        validate(&p).unwrap();
        let d = |nr| Data {
            nr,
            ..Data::default()
        };
        assert_eq!(
            run(&p, &d(39)),
            Run {
                ret: RET_ALLOW,
                steps: 3
            }
        );
        assert_eq!(ret_action(run(&p, &d(40)).ret), Action::Errno(1));
        assert_eq!(decode(&encode(&p)).unwrap(), p);
    }

    #[test]
    fn rejects_what_the_kernel_rejects() {
        let r = ins(RET | K, 0, 0, 0);
        assert_eq!(validate(&[]), Err(Error::Empty));
        assert!(validate(&[ins(LD | W | ABS, 0, 0, 64), r]).is_err());
        assert!(validate(&[ins(LD | W | ABS, 0, 0, 2), r]).is_err());
        assert!(validate(&[ins(JMP | JEQ | K, 5, 0, 0), r]).is_err());
        assert!(validate(&[ins(LD | W | ABS, 0, 0, 0)]).is_err());
        assert!(validate(&[ins(ALU | 0x30 | K, 0, 0, 0), r]).is_err());
        assert!(decode(&[0; 7]).is_err());
    }

    #[test]
    fn reads_argument_words_little_endian() {
        let d = Data {
            args: [0, 0x1122_3344_5566_7788, 0, 0, 0, 0],
            ..Data::default()
        };
        assert_eq!(d.word(24), 0x5566_7788);
        assert_eq!(d.word(28), 0x1122_3344);
    }
}
