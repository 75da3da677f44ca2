//! The heap tether holds, for the recipe memory limit (README, "Limits"). Each value a recipe
//! makes is bounded on its own (a string, an array, a map), but not how many it keeps: under
//! `ulimit -v` the allocator then failed and Rust aborted (stop 44 tester t54: exit 134, no
//! word), and without a limit the machine swapped. The global allocator counts the bytes it
//! hands out (the `cap` crate: counting allocators are not tether's field), and a recipe is
//! stopped, as a runaway, when tether holds more than [`recipe_limit`].

use std::sync::OnceLock;

use cap::Cap;

#[global_allocator]
static ALLOCATOR: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

/// Bytes of heap tether holds now (every thread's).
pub fn in_use() -> usize {
    ALLOCATOR.allocated()
}

/// The most heap (bytes) tether may hold while a recipe runs: half of what this process may
/// have, the least of physical memory, `ulimit -v` (RLIMIT_AS) and `ulimit -d` (RLIMIT_DATA),
/// and at most 4 GiB. Half, because a value that grows is copied as it grows, and the
/// allocator reserves address space beyond what it hands out.
pub fn recipe_limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let mut may_have = 8 << 30;
        // SAFETY: sysconf only reads system parameters.
        let (pages, page) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && page > 0 {
            may_have =
                may_have.min((pages as u128 * page as u128).min(usize::MAX as u128) as usize);
        }
        for resource in [libc::RLIMIT_AS, libc::RLIMIT_DATA] {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into the struct it is given.
            if unsafe { libc::getrlimit(resource, &mut limit) } == 0
                && limit.rlim_cur != libc::RLIM_INFINITY
            {
                may_have = may_have.min(usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX));
            }
        }
        may_have / 2
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_allocated_is_counted() {
        // 1 GiB of zeroed pages, never touched: counted, and nearly free. (Other tests'
        // threads allocate and free meanwhile, far less than the slack.)
        let before = in_use();
        let held = vec![0u8; 1 << 30];
        assert!(in_use() >= before + (1 << 30) - (128 << 20));
        drop(held);
        assert!(recipe_limit() > 0 && recipe_limit() <= 4 << 30);
    }
}
