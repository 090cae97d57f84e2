//! The devices controller: which device nodes a container may create (`m`), read and write.
//!
//! Docker's model: everything denied, then an allow list (mknod of any node, the standard
//! devices, ptys, tun) plus the service's `devices` and `device_cgroup_rules`. Without it a
//! container keeps `CAP_MKNOD` (a default capability) and could create and open the host's
//! disks. v1 has `devices.deny`/`devices.allow`; v2 has no files for it: a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the cgroup answers each access, as runc
//! and crun do.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{io_err, write_file, Result};

/// A device's type in a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    All,
    Char,
    Block,
}

/// One allow rule, in the kernel's v1 terms (`c 1:3 rwm`); `None` is `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// A bit set of [`READ`], [`WRITE`], [`MKNOD`].
    pub access: u8,
}

pub const MKNOD: u8 = 1;
pub const READ: u8 = 2;
pub const WRITE: u8 = 4;
const ALL_ACCESS: u8 = MKNOD | READ | WRITE;

impl DeviceRule {
    pub fn new(kind: DeviceKind, major: Option<u32>, minor: Option<u32>, access: u8) -> Self {
        DeviceRule {
            kind,
            major,
            minor,
            access,
        }
    }

    /// Every device, every access (`privileged`).
    pub fn all() -> Self {
        DeviceRule::new(DeviceKind::All, None, None, ALL_ACCESS)
    }

    /// `device_cgroup_rules` syntax, the kernel's: `a`, or `TYPE MAJOR:MINOR ACCESS` with `*`
    /// wildcards (`c 1:3 mr`, `b *:* m`).
    pub fn parse(rule: &str) -> std::result::Result<DeviceRule, String> {
        let fields: Vec<&str> = rule.split_whitespace().collect();
        let kind = match fields.first().copied() {
            Some("a") => DeviceKind::All,
            Some("c") => DeviceKind::Char,
            Some("b") => DeviceKind::Block,
            _ => return Err("the type must be a, b or c".into()),
        };
        if fields == ["a"] {
            return Ok(DeviceRule::all());
        }
        let [_, numbers, access] = fields[..] else {
            return Err("expected TYPE MAJOR:MINOR ACCESS".into());
        };
        let (major, minor) = numbers
            .split_once(':')
            .ok_or("expected MAJOR:MINOR, with * for any")?;
        let number = |n: &str| match n {
            "*" => Ok(None),
            n => n
                .parse::<u32>()
                .map(Some)
                .map_err(|_| format!("{n:?} is not a device number or *")),
        };
        Ok(DeviceRule::new(
            kind,
            number(major)?,
            number(minor)?,
            parse_access(access)?,
        ))
    }

    /// The line for `devices.allow`.
    fn v1_line(&self) -> String {
        self.to_string()
    }
}

/// `rwm`, any subset, in any order.
pub fn parse_access(text: &str) -> std::result::Result<u8, String> {
    let mut access = 0;
    for c in text.chars() {
        access |= match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => {
                return Err(format!(
                    "access {text:?} is not a combination of r, w and m"
                ))
            }
        };
    }
    if access == 0 {
        return Err("the access is empty".into());
    }
    Ok(access)
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = match self.kind {
            DeviceKind::All => 'a',
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        write!(
            f,
            "{kind} {}:{} {access}",
            number(self.major),
            number(self.minor)
        )
    }
}

/// Docker's (and runc's) defaults: mknod of anything; null, zero, full, random, urandom, tty,
/// console, ptmx, the pty slaves and tun.
pub fn default_rules() -> Vec<DeviceRule> {
    let c = |major, minor: Option<u32>, access| {
        DeviceRule::new(DeviceKind::Char, Some(major), minor, access)
    };
    vec![
        DeviceRule::new(DeviceKind::Char, None, None, MKNOD),
        DeviceRule::new(DeviceKind::Block, None, None, MKNOD),
        c(1, Some(3), ALL_ACCESS),
        c(1, Some(5), ALL_ACCESS),
        c(1, Some(7), ALL_ACCESS),
        c(1, Some(8), ALL_ACCESS),
        c(1, Some(9), ALL_ACCESS),
        c(5, Some(0), ALL_ACCESS),
        c(5, Some(1), ALL_ACCESS),
        c(5, Some(2), ALL_ACCESS),
        c(136, None, ALL_ACCESS),
        c(10, Some(200), ALL_ACCESS),
    ]
}

/// The rule for the device node at `path` on the host (`devices: - /dev/x:/dev/y:r`).
pub fn rule_for_node(path: &Path, access: u8) -> io::Result<DeviceRule> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path)?;
    let kind = if meta.file_type().is_char_device() {
        DeviceKind::Char
    } else if meta.file_type().is_block_device() {
        DeviceKind::Block
    } else {
        return Err(io::Error::other("not a device node"));
    };
    let rdev = meta.rdev();
    Ok(DeviceRule::new(
        kind,
        Some(libc::major(rdev)),
        Some(libc::minor(rdev)),
        access,
    ))
}

/// v1: deny everything, then allow `rules` (a fresh cgroup, which has no children yet).
pub(super) fn apply_v1(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    if rules.contains(&DeviceRule::all()) {
        return write_file(&dir.join("devices.allow"), "a");
    }
    write_file(&dir.join("devices.deny"), "a")?;
    for rule in rules {
        write_file(&dir.join("devices.allow"), &rule.v1_line())?;
    }
    Ok(())
}

/// v2: attach a device program allowing `rules` (nothing when everything is allowed).
pub(super) fn apply_v2(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    if rules.contains(&DeviceRule::all()) {
        return Ok(());
    }
    let program = program(rules);
    let prog =
        bpf::load_device_program(&program).map_err(io_err("load the device filter of", dir))?;
    let cgroup = std::fs::File::open(dir).map_err(io_err("open", dir))?;
    bpf::attach_device_program(&cgroup, &prog).map_err(io_err("attach the device filter to", dir))
}

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV64_REG: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const AND64_IMM: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH64_IMM: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const JNE_IMM: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

// `struct bpf_cgroup_dev_ctx`: access_type (type | access << 16), major, minor.
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

/// The program: the context's fields into registers, then one block per rule that returns 1
/// (allowed) when every field matches, else falls through to the next; 0 at the end.
///
/// r2 = type, r3 = access, r4 = major, r5 = minor.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut out = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(AND64_IMM, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(RSH64_IMM, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules {
        // Jumps to "next" carry offset 0 here, fixed once the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        match rule.kind {
            DeviceKind::All => {}
            DeviceKind::Char => block.push(insn(JNE_IMM, 2, 0, 0, BPF_DEVCG_DEV_CHAR)),
            DeviceKind::Block => block.push(insn(JNE_IMM, 2, 0, 0, BPF_DEVCG_DEV_BLOCK)),
        }
        if rule.access & ALL_ACCESS != ALL_ACCESS {
            // Any requested bit outside the allowed ones: no match.
            block.push(insn(MOV64_REG, 0, 3, 0, 0));
            block.push(insn(
                AND64_IMM,
                0,
                0,
                0,
                i32::from(!rule.access & ALL_ACCESS),
            ));
            block.push(insn(JNE_IMM, 0, 0, 0, 0));
        }
        if let Some(major) = rule.major {
            block.push(insn(JNE_IMM, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            block.push(insn(JNE_IMM, 5, 0, 0, minor as i32));
        }
        block.push(insn(MOV64_IMM, 0, 0, 0, 1));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_IMM {
                // To the first instruction after the block.
                ins.off = (len - i - 1) as i16;
            }
        }
        out.extend(block);
    }
    out.push(insn(MOV64_IMM, 0, 0, 0, 0));
    out.push(insn(EXIT, 0, 0, 0, 0));
    out
}

/// The `bpf(2)` calls, with the few fields of `union bpf_attr` they use.
mod bpf {
    use super::*;

    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    const BPF_CGROUP_DEVICE: u32 = 6;
    const BPF_F_ALLOW_MULTI: u32 = 2;

    #[repr(C)]
    #[derive(Default)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }

    #[repr(C)]
    #[derive(Default)]
    struct ProgAttach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
    }

    fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
        // SAFETY: `attr` is a live, zero-padded `#[repr(C)]` prefix of `union bpf_attr` of the
        // size given; the kernel reads (and for some commands writes) only that much.
        let ret =
            unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ret)
    }

    pub(super) fn load_device_program(program: &[Insn]) -> io::Result<OwnedFd> {
        let license = c"Apache";
        let mut log = vec![0u8; 4096];
        let mut name = [0u8; 16];
        name[..8].copy_from_slice(b"rcompose");
        let mut attr = ProgLoad {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: program.len() as u32,
            insns: program.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            ..ProgLoad::default()
        };
        match bpf(BPF_PROG_LOAD, &mut attr) {
            // SAFETY: the kernel returned a new fd.
            Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // Load again with the verifier's log, for the message.
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
                let _ = bpf(BPF_PROG_LOAD, &mut attr);
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                Err(io::Error::other(format!(
                    "{e}: {}",
                    String::from_utf8_lossy(&log[..end]).trim()
                )))
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn attach_device_program(cgroup: &std::fs::File, prog: &OwnedFd) -> io::Result<()> {
        let mut attr = ProgAttach {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
            ..ProgAttach::default()
        };
        bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print_in_the_kernels_syntax() {
        let r = DeviceRule::parse("c 1:3 mr").expect("parse");
        assert_eq!(
            r,
            DeviceRule::new(DeviceKind::Char, Some(1), Some(3), READ | MKNOD)
        );
        assert_eq!(r.to_string(), "c 1:3 rm");
        let r = DeviceRule::parse("b *:* m").expect("parse");
        assert_eq!(r.to_string(), "b *:* m");
        assert_eq!(DeviceRule::parse("a").expect("all"), DeviceRule::all());
        assert_eq!(DeviceRule::all().to_string(), "a *:* rwm");
        for bad in [
            "",
            "x 1:3 r",
            "c 1 r",
            "c 1:3",
            "c 1:3 rx",
            "c one:3 r",
            "c 1:3 r extra",
        ] {
            assert!(DeviceRule::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn defaults_allow_mknod_and_the_standard_devices_only() {
        let d = default_rules();
        let lines: Vec<String> = d.iter().map(|r| r.to_string()).collect();
        assert!(lines.contains(&"c *:* m".to_string()));
        assert!(lines.contains(&"b *:* m".to_string()));
        assert!(lines.contains(&"c 1:3 rwm".to_string()));
        assert!(lines.contains(&"c 136:* rwm".to_string()));
        assert!(!lines.iter().any(|l| l.starts_with("b ") && l != "b *:* m"));
    }

    /// Runs the program on one access, as the kernel would (a tiny interpreter of the
    /// instructions `program` emits).
    fn allowed(program: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> bool {
        let ctx = [(kind | (access << 16)) as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = program[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
                MOV64_REG => r[dst] = r[src],
                MOV64_IMM => r[dst] = i.imm as u64,
                AND64_IMM => r[dst] &= i.imm as u64,
                RSH64_IMM => r[dst] >>= i.imm as u32,
                JNE_IMM => {
                    if r[dst] != i.imm as u64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0] == 1,
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn the_program_allows_what_the_rules_allow() {
        let c = BPF_DEVCG_DEV_CHAR;
        let b = BPF_DEVCG_DEV_BLOCK;
        let (rd, wr, mk) = (i32::from(READ), i32::from(WRITE), i32::from(MKNOD));
        let mut rules = default_rules();
        rules.push(DeviceRule::new(DeviceKind::Block, Some(8), Some(0), READ));
        let p = program(&rules);
        assert!(allowed(&p, c, rd | wr, 1, 3), "/dev/null");
        assert!(allowed(&p, c, rd, 136, 7), "a pty");
        assert!(allowed(&p, b, mk, 254, 0), "mknod of a disk");
        assert!(!allowed(&p, b, rd, 254, 0), "reading a disk");
        assert!(!allowed(&p, c, rd, 1, 1), "/dev/mem");
        assert!(allowed(&p, b, rd, 8, 0), "the read-only device");
        assert!(
            !allowed(&p, b, rd | wr, 8, 0),
            "writing the read-only device"
        );
        assert!(!allowed(&p, b, rd, 8, 1), "its neighbour");
        let all = program(&[DeviceRule::all()]);
        assert!(allowed(&all, b, rd | wr | mk, 254, 0));
        assert!(!allowed(&program(&[]), c, rd, 1, 3));
    }
}
