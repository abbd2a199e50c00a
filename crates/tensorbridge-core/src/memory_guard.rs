//! The host-memory guard: every host allocation of tensor size goes through [`try_alloc`] (or asks
//! [`check_host_alloc`] first when someone else allocates), so that a result too large for this
//! process is an [`Error::TooLarge`] — a Python `MemoryError` — and never a Rust abort or a visit
//! from the kernel's OOM killer.
//!
//! Three limits are checked, and the error names the one that was hit, with its true figures:
//!
//! 1. **Address space**: the byte count overflows or exceeds `isize::MAX` (what one Rust
//!    allocation may span). Pure arithmetic, checked for every allocation.
//! 2. **Available memory** ([`HostMemory`]), for allocations of [`GUARD_MIN_BYTES`] or more: the
//!    smaller of the host's `MemAvailable` (`/proc/meminfo`) and, inside a container, the memory
//!    cgroup's limit minus its usage, taken at the tightest level of the cgroup tree (cgroup v2
//!    `memory.max`/`memory.current`, v1 `memory.limit_in_bytes`/`memory.usage_in_bytes`). Linux
//!    overcommits: without this check a too-large allocation succeeds and the process is killed
//!    when the pages are first written, and inside a container `MemAvailable` shows the host's
//!    memory, not the container's.
//! 3. **The allocator**: `try_reserve` fails (a process limit such as `ulimit -v` / `prlimit
//!    --as`, or the kernel's overcommit policy). Reported instead of aborting.
//!
//! The cgroup usage counts the group's page cache; like the kubelet's "working set", the
//! reclaimable part of it (`inactive_file` in `memory.stat`) is not counted as used.
//!
//! Everything is read through a root directory ([`HostMemory::probe_at`]), so tests point it at a
//! fake `/proc` + `/sys/fs/cgroup` tree.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::backend::Device;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::layout::checked_elem_count;

/// Allocations of at least this many bytes are checked against the available memory (RAM and
/// container); smaller ones only against the allocator. Reading `/proc/meminfo` and the cgroup
/// files costs tens of microseconds, under 1 % of the time to fill 64 MiB (see
/// `probe_costs_under_one_percent_of_filling_the_threshold`); below that an overcommitted
/// allocation is also too small to matter to the OOM killer on its own.
pub const GUARD_MIN_BYTES: usize = 64 << 20;

/// cgroup v1 reports "no limit" as the largest page-aligned `i64`; anything at or above 2^62 bytes
/// is treated as unlimited.
const V1_UNLIMITED: u64 = 1 << 62;

/// The limit an allocation ran into, with its figures, as [`Error::TooLarge`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryLimit {
    /// The element count overflows, or the bytes exceed `isize::MAX`, the most one allocation can
    /// span.
    AddressSpace,
    /// The allocator refused the request: a process limit (`ulimit -v`, `prlimit --as`) or the
    /// kernel's overcommit policy.
    Allocator,
    /// The host's RAM available now (`MemAvailable`), in bytes.
    Ram {
        /// Bytes available.
        available: u64,
    },
    /// A memory cgroup's limit (the container's), minus what the group uses.
    Container {
        /// The group's limit in bytes.
        limit: u64,
        /// Bytes the group uses, reclaimable page cache not counted.
        usage: u64,
        /// The group's directory.
        cgroup: PathBuf,
    },
}

impl MemoryLimit {
    /// Bytes this limit leaves for an allocation, when it is a byte figure.
    pub fn available(&self) -> Option<u64> {
        match self {
            MemoryLimit::Ram { available } => Some(*available),
            MemoryLimit::Container { limit, usage, .. } => Some(limit.saturating_sub(*usage)),
            MemoryLimit::AddressSpace | MemoryLimit::Allocator => None,
        }
    }
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryLimit::AddressSpace => write!(
                f,
                "more than one allocation can address ({} bytes)",
                isize::MAX
            ),
            MemoryLimit::Allocator => f.write_str(
                "the allocator refused it (a process memory limit such as `ulimit -v`, or the \
                 kernel's overcommit policy)",
            ),
            MemoryLimit::Ram { available } => write!(
                f,
                "host RAM has {} ({available} bytes) available (MemAvailable)",
                human(*available as u128)
            ),
            MemoryLimit::Container {
                limit,
                usage,
                cgroup,
            } => write!(
                f,
                "the container's memory limit leaves {} ({} bytes) free: limit {} ({limit} \
                 bytes), {} in use (cgroup {})",
                human(limit.saturating_sub(*usage) as u128),
                limit.saturating_sub(*usage),
                human(*limit as u128),
                human(*usage as u128),
                cgroup.display()
            ),
        }
    }
}

/// `1.5 GiB`-style size.
pub(crate) fn human(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// NumPy's spelling of a shape: `(2, 3)`, `(5,)`, `()`.
pub(crate) fn shape_text(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// The message of [`Error::TooLarge`].
pub(crate) fn too_large_message(
    op: &str,
    shape: &[usize],
    dtype: DType,
    bytes: u128,
    limit: &MemoryLimit,
) -> String {
    let own = checked_elem_count(shape).map(|n| n as u128 * dtype.size_in_bytes() as u128);
    let size = if bytes == u128::MAX {
        "its element count overflows".to_string()
    } else if own.is_some_and(|own| bytes > own) {
        format!(
            "with the temporaries the operation makes it needs {bytes} bytes ({})",
            human(bytes)
        )
    } else {
        format!("it needs {bytes} bytes ({})", human(bytes))
    };
    let remedy = if matches!(limit, MemoryLimit::AddressSpace) {
        "use a smaller shape"
    } else {
        "free memory, or work in smaller pieces; a conversion to the host can stream into a \
         preallocated buffer instead (Rust: to_host_into; Python: t.numpy(out=...), e.g. an \
         np.memmap file)"
    };
    format!(
        "{op}: a {dtype} tensor of shape {} is too large: {size}, and {limit}; {remedy}",
        shape_text(shape)
    )
}

/// Bytes of a new array of `shape` × `dtype`, or [`Error::ShapeTooLarge`] when the element
/// count or the size in bytes exceeds `isize::MAX` (no array can have that shape; NumPy's
/// ValueError). Arithmetic only: valid for any device.
pub fn alloc_bytes(op: &'static str, shape: &[usize], dtype: DType) -> Result<usize> {
    crate::layout::checked_shape_bytes(op, shape, Some(dtype))
}

fn too_large(
    op: &'static str,
    shape: &[usize],
    dtype: DType,
    bytes: u128,
    limit: MemoryLimit,
) -> Error {
    Error::TooLarge {
        op,
        shape: shape.to_vec(),
        dtype,
        bytes,
        limit,
    }
}

/// Checks that a new host array of `shape` × `dtype` fits: in the address space, and (from
/// [`GUARD_MIN_BYTES`] on) in the memory available now, RAM and container, and the allocator
/// grants that much (asked with a reservation given back at once: `ulimit -v` and overcommit
/// refusals become an error here rather than an abort inside code that cannot report one).
/// Returns its bytes. For allocations made by someone else (NumPy, libtorch, candle);
/// [`try_alloc`] when Rust allocates.
#[inline]
pub fn check_host_alloc(op: &'static str, shape: &[usize], dtype: DType) -> Result<usize> {
    let bytes = alloc_bytes(op, shape, dtype)?;
    // Below the bound only the address-space check above applies (`check_host_bytes` would do
    // nothing): small conversions skip the call.
    if bytes >= GUARD_MIN_BYTES {
        check_host_bytes(op, shape, dtype, bytes)?;
    }
    Ok(bytes)
}

/// [`check_host_alloc`] for an operation that needs `bytes` in all (its result and the
/// temporaries it makes), reported against the result's `shape` and `dtype`.
pub fn check_host_bytes(
    op: &'static str,
    shape: &[usize],
    dtype: DType,
    bytes: usize,
) -> Result<()> {
    check_available(op, shape, dtype, bytes)?;
    if bytes >= GUARD_MIN_BYTES {
        let mut probe: Vec<u8> = Vec::new();
        // Untouched, the reservation costs an mmap/munmap pair, no page faults.
        probe
            .try_reserve_exact(bytes)
            .map_err(|_| too_large(op, shape, dtype, bytes as u128, MemoryLimit::Allocator))?;
    }
    Ok(())
}

/// For backends whose host memory another library allocates (libtorch, candle): before an op on
/// `device` whose result of `shape` × `dtype` and temporaries need `copies` such buffers, the
/// checks of [`check_host_alloc`]. Nothing to check for device memory.
pub fn check_host_op(
    device: &Device,
    op: &'static str,
    shape: &[usize],
    dtype: DType,
    copies: usize,
) -> Result<()> {
    if *device != Device::Cpu {
        return Ok(());
    }
    let bytes = alloc_bytes(op, shape, dtype)?;
    let total = bytes
        .checked_mul(copies)
        .filter(|&t| t <= isize::MAX as usize);
    let total = total.ok_or_else(|| {
        too_large(
            op,
            shape,
            dtype,
            bytes as u128 * copies as u128,
            MemoryLimit::AddressSpace,
        )
    })?;
    check_host_bytes(op, shape, dtype, total)
}

/// The RAM and container check of [`check_host_alloc`], from [`GUARD_MIN_BYTES`] on.
fn check_available(op: &'static str, shape: &[usize], dtype: DType, bytes: usize) -> Result<()> {
    if bytes < GUARD_MIN_BYTES {
        return Ok(());
    }
    match HostMemory::probe().tightest() {
        Some(limit) if limit.available().is_some_and(|a| (bytes as u64) > a) => {
            Err(too_large(op, shape, dtype, bytes as u128, limit))
        }
        _ => Ok(()),
    }
}

/// An empty vector with capacity for exactly the elements of `shape`, after the checks of
/// [`check_host_alloc`]; [`Error::TooLarge`] instead of an abort when the allocator refuses.
pub fn try_alloc<T: Element>(op: &'static str, shape: &[usize]) -> Result<Vec<T>> {
    let bytes = alloc_bytes(op, shape, T::DTYPE)?;
    check_available(op, shape, T::DTYPE, bytes)?;
    // `check_host_alloc` proved the count does not overflow.
    let n = checked_elem_count(shape).unwrap_or(0);
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| too_large(op, shape, T::DTYPE, bytes as u128, MemoryLimit::Allocator))?;
    Ok(v)
}

/// [`try_alloc`], filled with copies of `value`.
pub fn try_filled<T: Element>(op: &'static str, shape: &[usize], value: T) -> Result<Vec<T>> {
    let mut v = try_alloc::<T>(op, shape)?;
    v.resize(checked_elem_count(shape).unwrap_or(0), value);
    Ok(v)
}

/// The memory a new host allocation can use now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostMemory {
    /// `MemAvailable` in bytes; `None` where the platform does not say.
    pub ram_available: Option<u64>,
    /// The tightest memory cgroup limit over this process's groups (v1 and v2) and their
    /// ancestors; `None` when no group has a limit (or there are no cgroups).
    pub container: Option<MemoryLimit>,
}

impl HostMemory {
    /// The live figures of this process (`/`).
    pub fn probe() -> HostMemory {
        static GROUPS: OnceLock<Vec<CgroupDir>> = OnceLock::new();
        // Which groups this process is in is read once (moving a running process between groups
        // is rare); their limits and usage are read on every probe.
        let groups = GROUPS.get_or_init(|| cgroup_dirs(Path::new("/")));
        HostMemory {
            ram_available: ram_available(Path::new("/")),
            container: tightest_cgroup(groups),
        }
    }

    /// The figures read under `root` instead of `/` (`root/proc/meminfo`,
    /// `root/proc/self/cgroup`, `root/proc/self/mountinfo`, and the mount points it names).
    pub fn probe_at(root: &Path) -> HostMemory {
        HostMemory {
            ram_available: ram_available(root),
            container: tightest_cgroup(&cgroup_dirs(root)),
        }
    }

    /// Bytes available to a new allocation: the smaller of RAM and the container's room.
    pub fn available(&self) -> Option<u64> {
        self.tightest().and_then(|l| l.available())
    }

    /// The limit with the least room.
    pub fn tightest(&self) -> Option<MemoryLimit> {
        let ram = self
            .ram_available
            .map(|available| MemoryLimit::Ram { available });
        match (ram, self.container.clone()) {
            (Some(r), Some(c)) => Some(if c.available() < r.available() { c } else { r }),
            (r, c) => r.or(c),
        }
    }
}

fn ram_available(root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(root.join("proc/meminfo")).ok()?;
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// One memory cgroup of this process: its directory, the mount point above which the walk to
/// the ancestors stops, and the file names of its version.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CgroupDir {
    dir: PathBuf,
    mount: PathBuf,
    v2: bool,
}

impl CgroupDir {
    /// (limit, usage) of one level; `None` when it has no limit.
    fn level(&self, dir: &Path) -> Option<(u64, u64)> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        let (limit_file, usage_file, inactive_key) = if self.v2 {
            ("memory.max", "memory.current", "inactive_file")
        } else {
            (
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            )
        };
        let limit = read(limit_file)?;
        let limit = match limit.trim() {
            "max" => return None,
            v => v.parse::<u64>().ok()?,
        };
        if !self.v2 && limit >= V1_UNLIMITED {
            return None;
        }
        let usage = read(usage_file)
            .and_then(|u| u.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let inactive = read("memory.stat")
            .and_then(|s| {
                s.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == inactive_key).then(|| v.trim().parse::<u64>().ok())?
                })
            })
            .unwrap_or(0);
        Some((limit, usage.saturating_sub(inactive)))
    }
}

/// The limited level with the least room over every group and its ancestors up to its mount.
fn tightest_cgroup(groups: &[CgroupDir]) -> Option<MemoryLimit> {
    let mut best: Option<MemoryLimit> = None;
    for g in groups {
        let mut dir = g.dir.clone();
        loop {
            if let Some((limit, usage)) = g.level(&dir) {
                let here = MemoryLimit::Container {
                    limit,
                    usage,
                    cgroup: dir.clone(),
                };
                if best
                    .as_ref()
                    .is_none_or(|b| here.available() < b.available())
                {
                    best = Some(here);
                }
            }
            if dir == g.mount || !dir.pop() || !dir.starts_with(&g.mount) {
                break;
            }
        }
    }
    best
}

/// This process's memory cgroup directories under `root`, from `/proc/self/cgroup` (which group)
/// and `/proc/self/mountinfo` (where that hierarchy is mounted, and which of its paths the mount
/// shows).
fn cgroup_dirs(root: &Path) -> Vec<CgroupDir> {
    let (Ok(cgroup), Ok(mountinfo)) = (
        std::fs::read_to_string(root.join("proc/self/cgroup")),
        std::fs::read_to_string(root.join("proc/self/mountinfo")),
    ) else {
        return Vec::new();
    };
    let mounts: Vec<Mount> = mountinfo.lines().filter_map(Mount::parse).collect();
    let mut dirs = Vec::new();
    for line in cgroup.lines() {
        // "hierarchy-id:controllers:path"; v2 is "0::/path".
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let v2 = id == "0" && controllers.is_empty();
        if !v2 && !controllers.split(',').any(|c| c == "memory") {
            continue;
        }
        let found = mounts.iter().find_map(|m| {
            let right_kind = if v2 {
                m.fstype == "cgroup2"
            } else {
                m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "memory")
            };
            if !right_kind {
                return None;
            }
            // The mount shows the hierarchy from `m.root` down: the group must be inside it.
            let rel = Path::new(path).strip_prefix(&m.root).ok()?;
            let mount = root.join(m.mount_point.strip_prefix("/").unwrap_or(&m.mount_point));
            Some(CgroupDir {
                dir: mount.join(rel),
                mount,
                v2,
            })
        });
        dirs.extend(found);
    }
    dirs
}

/// The fields of one `/proc/self/mountinfo` line that matter here.
struct Mount {
    root: PathBuf,
    mount_point: PathBuf,
    fstype: String,
    super_options: String,
}

impl Mount {
    /// `id parent major:minor root mount-point options [optional...] - fstype source super-options`
    fn parse(line: &str) -> Option<Mount> {
        let (left, right) = line.split_once(" - ")?;
        let mut l = left.split(' ');
        let root = unescape(l.nth(3)?);
        let mount_point = unescape(l.next()?);
        let mut r = right.split(' ');
        let fstype = r.next()?.to_string();
        let super_options = r.nth(1).unwrap_or("").to_string();
        Some(Mount {
            root: PathBuf::from(root),
            mount_point: PathBuf::from(mount_point),
            fstype,
            super_options,
        })
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fake root: `/proc/meminfo`, `/proc/self/{cgroup,mountinfo}` and cgroup files.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(name: &str) -> FakeRoot {
            let dir =
                std::env::temp_dir().join(format!("tb-memory-guard-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("proc/self")).unwrap();
            FakeRoot(dir)
        }
        fn write(&self, rel: &str, text: &str) -> &Self {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
            self
        }
        fn meminfo_kib(&self, kib: u64) -> &Self {
            self.write(
                "proc/meminfo",
                &format!("MemTotal:       99999999 kB\nMemFree:  1 kB\nMemAvailable:   {kib} kB\n"),
            )
        }
        fn probe(&self) -> HostMemory {
            HostMemory::probe_at(&self.0)
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const V2_MOUNT: &str = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
    const GIB: u64 = 1 << 30;

    #[test]
    fn v2_limited_group_is_limit_minus_usage_without_inactive_file() {
        let r = FakeRoot::new("v2-limited");
        r.meminfo_kib(16 * GIB / 1024)
            .write("proc/self/cgroup", "0::/job\n")
            .write("proc/self/mountinfo", V2_MOUNT)
            .write("sys/fs/cgroup/job/memory.max", &format!("{}\n", 4 * GIB))
            .write(
                "sys/fs/cgroup/job/memory.current",
                &format!("{}\n", 3 * GIB),
            )
            .write(
                "sys/fs/cgroup/job/memory.stat",
                &format!("anon 1\nfile 2\ninactive_file {}\nactive_file 5\n", GIB),
            );
        let m = r.probe();
        assert_eq!(m.ram_available, Some(16 * GIB));
        assert_eq!(
            m.container,
            Some(MemoryLimit::Container {
                limit: 4 * GIB,
                usage: 2 * GIB,
                cgroup: r.0.join("sys/fs/cgroup/job"),
            })
        );
        assert_eq!(
            m.available(),
            Some(2 * GIB),
            "the container is tighter than RAM"
        );
    }

    #[test]
    fn v2_max_is_unlimited_and_ram_decides() {
        let r = FakeRoot::new("v2-max");
        r.meminfo_kib(1024)
            .write("proc/self/cgroup", "0::/\n")
            .write("proc/self/mountinfo", V2_MOUNT)
            .write("sys/fs/cgroup/memory.max", "max\n")
            .write("sys/fs/cgroup/memory.current", "123456\n");
        let m = r.probe();
        assert_eq!(m.container, None);
        assert_eq!(m.tightest(), Some(MemoryLimit::Ram { available: 1 << 20 }));
    }

    #[test]
    fn v2_nested_groups_take_the_tightest_ancestor() {
        let r = FakeRoot::new("v2-nested");
        // The leaf is unlimited, its parent leaves 1 GiB, the grandparent 3 GiB.
        r.meminfo_kib(64 * GIB / 1024)
            .write("proc/self/cgroup", "0::/kubepods/pod1/ctr\n")
            .write("proc/self/mountinfo", V2_MOUNT)
            .write("sys/fs/cgroup/kubepods/memory.max", &format!("{}", 8 * GIB))
            .write(
                "sys/fs/cgroup/kubepods/memory.current",
                &format!("{}", 5 * GIB),
            )
            .write(
                "sys/fs/cgroup/kubepods/pod1/memory.max",
                &format!("{}", 2 * GIB),
            )
            .write(
                "sys/fs/cgroup/kubepods/pod1/memory.current",
                &format!("{}", GIB),
            )
            .write("sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "max")
            .write("sys/fs/cgroup/kubepods/pod1/ctr/memory.current", "4096");
        let m = r.probe();
        match &m.container {
            Some(MemoryLimit::Container { limit, cgroup, .. }) => {
                assert_eq!(*limit, 2 * GIB);
                assert!(cgroup.ends_with("kubepods/pod1"), "{cgroup:?}");
            }
            other => panic!("expected the pod's limit, got {other:?}"),
        }
        assert_eq!(m.available(), Some(GIB));
    }

    #[test]
    fn v2_namespaced_mount_maps_the_group_path_below_the_mount_root() {
        // Without a cgroup namespace, a container sees /proc/self/cgroup as the host's path and
        // mounts only its own subtree at /sys/fs/cgroup (mountinfo's root field).
        let r = FakeRoot::new("v2-mount-root");
        r.meminfo_kib(64 * GIB / 1024)
            .write("proc/self/cgroup", "0::/docker/abc\n")
            .write(
                "proc/self/mountinfo",
                "1 0 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            )
            .write("sys/fs/cgroup/memory.max", &format!("{}", 3 * GIB))
            .write("sys/fs/cgroup/memory.current", &format!("{}", GIB));
        assert_eq!(r.probe().available(), Some(2 * GIB));
    }

    #[test]
    fn v1_limited_unlimited_and_nested() {
        let mount = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                     36 31 0:33 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n";
        let cg = "5:cpu:/\n4:memory:/outer/inner\n0::/\n";
        let r = FakeRoot::new("v1");
        r.meminfo_kib(32 * GIB / 1024)
            .write("proc/self/cgroup", cg)
            .write("proc/self/mountinfo", mount)
            .write(
                "sys/fs/cgroup/memory/outer/inner/memory.limit_in_bytes",
                "9223372036854771712\n",
            )
            .write(
                "sys/fs/cgroup/memory/outer/inner/memory.usage_in_bytes",
                "100\n",
            )
            .write(
                "sys/fs/cgroup/memory/outer/memory.limit_in_bytes",
                &format!("{}\n", 6 * GIB),
            )
            .write(
                "sys/fs/cgroup/memory/outer/memory.usage_in_bytes",
                &format!("{}\n", 5 * GIB),
            )
            .write(
                "sys/fs/cgroup/memory/outer/memory.stat",
                &format!(
                    "cache 1\ninactive_file 7\ntotal_inactive_file {}\n",
                    GIB / 2
                ),
            );
        let m = r.probe();
        assert_eq!(
            m.available(),
            Some(GIB + GIB / 2),
            "outer: 6 - (5 - 0.5) GiB"
        );
        // The same tree with the outer limit lifted: nothing limits, RAM decides.
        r.write(
            "sys/fs/cgroup/memory/outer/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        let m = r.probe();
        assert_eq!(m.container, None);
        assert_eq!(m.available(), Some(32 * GIB));
    }

    #[test]
    fn hybrid_hierarchies_take_the_tighter_of_v1_and_v2() {
        let r = FakeRoot::new("hybrid");
        r.meminfo_kib(32 * GIB / 1024)
            .write("proc/self/cgroup", "4:memory:/a\n0::/b\n")
            .write(
                "proc/self/mountinfo",
                "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                 41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
            )
            .write(
                "sys/fs/cgroup/memory/a/memory.limit_in_bytes",
                &format!("{}", 4 * GIB),
            )
            .write("sys/fs/cgroup/memory/a/memory.usage_in_bytes", "0")
            .write(
                "sys/fs/cgroup/unified/b/memory.max",
                &format!("{}", 3 * GIB),
            )
            .write("sys/fs/cgroup/unified/b/memory.current", "0");
        assert_eq!(r.probe().available(), Some(3 * GIB));
    }

    #[test]
    fn missing_files_mean_no_figures_not_zero() {
        let r = FakeRoot::new("empty");
        assert_eq!(r.probe(), HostMemory::default());
        // A group outside the mount's root is not reachable: ignored.
        r.write("proc/self/cgroup", "0::/elsewhere\n").write(
            "proc/self/mountinfo",
            "1 0 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        );
        assert_eq!(r.probe().container, None);
    }

    #[test]
    fn mount_points_with_escaped_spaces() {
        let m =
            Mount::parse(r"1 0 0:26 / /mnt/my\040cgroups rw shared:1 - cgroup2 none rw").unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/mnt/my cgroups"));
        assert_eq!(m.fstype, "cgroup2");
    }

    #[test]
    fn the_live_probe_reads_this_machine() {
        let m = HostMemory::probe();
        if cfg!(target_os = "linux") {
            let ram = m.ram_available.expect("MemAvailable on Linux");
            assert!(ram > 0);
            assert!(m.available().unwrap() <= ram);
        }
    }

    #[test]
    fn too_large_names_shape_bytes_limit_and_remedy() {
        // Beyond isize::MAX bytes no array can have the shape: NumPy's ValueError, not a
        // memory error, and no memory figures.
        let e = alloc_bytes("full", &[1 << 62, 4], DType::F64).unwrap_err();
        assert!(matches!(e, Error::ShapeTooLarge { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("(4611686018427387904, 4)"), "{msg}");
        assert!(msg.contains("array is too big"), "{msg}");
        assert!(!msg.contains("available"), "{msg}");
        let e = too_large(
            "to_host",
            &[1000000, 1000000],
            DType::F64,
            8_000_000_000_000,
            MemoryLimit::Ram {
                available: 20 * GIB,
            },
        );
        let msg = e.to_string();
        assert!(msg.contains("shape (1000000, 1000000)"), "{msg}");
        assert!(msg.contains("8000000000000 bytes (7.3 TiB)"), "{msg}");
        assert!(
            msg.contains("host RAM has 20.0 GiB (21474836480 bytes) available"),
            "{msg}"
        );
        assert!(msg.contains("out="), "{msg}");
        let c = MemoryLimit::Container {
            limit: 4 * GIB,
            usage: 3 * GIB,
            cgroup: "/sys/fs/cgroup/job".into(),
        };
        assert!(c
            .to_string()
            .contains("leaves 1.0 GiB (1073741824 bytes) free: limit 4.0 GiB"));
        assert_eq!(shape_text(&[]), "()");
        assert_eq!(shape_text(&[5]), "(5,)");
    }

    #[test]
    fn overflowing_element_counts_say_so() {
        let e = alloc_bytes("full", &[usize::MAX, 2], DType::F32).unwrap_err();
        assert!(matches!(e, Error::ShapeTooLarge { .. }), "{e}");
        assert!(e.to_string().contains("array is too big"), "{e}");
    }

    #[test]
    fn allocations_beyond_available_memory_are_refused_before_allocating() {
        let Some(avail) = HostMemory::probe().available() else {
            return; // no figures on this platform: nothing to refuse by
        };
        let n = (avail / 8 + (1 << 20)) as usize; // more f64s than fit
        match try_alloc::<f64>("test", &[n]).unwrap_err() {
            Error::TooLarge { limit, bytes, .. } => {
                assert!(
                    limit.available().is_some_and(|a| bytes > a as u128),
                    "{limit}"
                )
            }
            e => panic!("{e}"),
        }
        // Below the threshold only the allocator is asked.
        assert_eq!(try_alloc::<u8>("test", &[1000]).unwrap().capacity(), 1000);
    }

    #[test]
    fn probe_costs_under_one_percent_of_filling_the_threshold() {
        // The claim behind GUARD_MIN_BYTES, measured: many probes against one fill.
        let t = std::time::Instant::now();
        for _ in 0..100 {
            std::hint::black_box(HostMemory::probe());
        }
        let probe = t.elapsed() / 100;
        let mut v = vec![0u8; GUARD_MIN_BYTES];
        let t = std::time::Instant::now();
        v.iter_mut().for_each(|x| *x = 1);
        std::hint::black_box(&v);
        let fill = t.elapsed();
        eprintln!("one probe {probe:?}; filling {GUARD_MIN_BYTES} bytes {fill:?}");
        // Generous (a loaded CI machine): the measured ratio is reported, the bound is 5 %.
        assert!(
            probe * 20 < fill,
            "probe {probe:?} vs filling {GUARD_MIN_BYTES} bytes {fill:?}"
        );
    }
}
