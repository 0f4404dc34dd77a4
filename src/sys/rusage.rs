//! `getrusage(RUSAGE_SELF)` (rustix has no wrapper): the process' user and
//! system CPU time, so `sealroot-prepare` can report how much of its run
//! was its own work and how much the kernel's (hashing, module loading,
//! signature checks).

/// CPU time consumed by this process so far, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuTime {
    /// Time spent running this process' own code.
    pub user: u64,
    /// Time the kernel spent on its behalf.
    pub system: u64,
}

/// This process' CPU time; zeros if the call fails (it cannot for
/// RUSAGE_SELF with a valid pointer).
pub fn cpu_time() -> CpuTime {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `struct rusage` to the pointer, which is
    // valid and properly aligned for it; the zeroed value is a valid
    // rusage even if the kernel wrote nothing.
    let (ret, usage) = unsafe {
        let ret = libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        (ret, usage.assume_init())
    };
    if ret != 0 {
        return CpuTime::default();
    }
    let us = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000 + t.tv_usec as u64;
    CpuTime {
        user: us(usage.ru_utime),
        system: us(usage.ru_stime),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_grows() {
        let a = super::cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let b = super::cpu_time();
        assert!(b.user + b.system > a.user + a.system);
    }
}
