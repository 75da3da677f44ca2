//! The open-files limit. Each host costs tether three file descriptors (its socket and the
//! worker's wake-up socket pair), so the common soft limit of 1024 would end a run at about
//! 340 hosts with "Too many open files". As Go's runtime and many servers do, tether raises its
//! soft `RLIMIT_NOFILE` to the hard limit at start; the hard limit is the administrator's word.

/// Raises the soft open-files limit to the hard limit and returns the limit now in force;
/// `None` when it cannot be read (the limit is then left as it was).
pub fn raise() -> Option<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit we own; a soft limit up to the hard one is allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    Some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn soft_limit_becomes_the_hard_limit() {
        let now = super::raise().expect("RLIMIT_NOFILE readable");
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert_eq!(now, lim.rlim_cur);
    }
}
