//! The local terminal for an interactive session (`tether ssh`): raw mode that is always put
//! back, the window size, and the signals that must reach the session's loop (SIGWINCH for a
//! resize, SIGTERM and SIGHUP to end it) as bytes on a pipe it polls, as OpenSSH's client
//! does (`clientloop.c`: `received_window_change_signal`, `enter_raw_mode`/`leave_raw_mode`).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// A terminal's size: columns and rows in characters, width and height in pixels (0 when the
/// terminal does not say), as `TIOCGWINSZ` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    /// Characters per line.
    pub cols: u16,
    /// Lines.
    pub rows: u16,
    /// Width in pixels (0: unknown).
    pub width: u16,
    /// Height in pixels (0: unknown).
    pub height: u16,
}

impl WindowSize {
    /// What a pseudo-terminal gets when tether's own stdin is not a terminal: 80x24, ssh's
    /// default.
    pub const DEFAULT: WindowSize = WindowSize {
        cols: 80,
        rows: 24,
        width: 0,
        height: 0,
    };
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The size of the terminal on `fd`; `None` when it is not a terminal or gives 0x0 (a
/// pseudo-terminal nobody sized).
pub fn window_size(fd: RawFd) -> Option<WindowSize> {
    // SAFETY: an all-zero winsize is valid; TIOCGWINSZ writes one into it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: `ws` is a valid, exclusively borrowed winsize for the call.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0 && ws.ws_row > 0).then_some(WindowSize {
        cols: ws.ws_col,
        rows: ws.ws_row,
        width: ws.ws_xpixel,
        height: ws.ws_ypixel,
    })
}

/// The terminal on a descriptor in raw mode (no echo, no line editing, no signals from
/// Ctrl-C: every key goes to the remote side) until dropped; dropping puts back the modes it
/// found, on every way out of the session (return, error, panic unwinding).
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Puts the terminal on `fd` in raw mode. Errors: `fd` is not a terminal, or its modes
    /// cannot be read or set.
    pub fn enter(fd: RawFd) -> io::Result<RawMode> {
        // SAFETY: an all-zero termios is valid storage for tcgetattr to fill.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is valid for writes.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: `raw` is a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: `saved` is the termios read from this descriptor.
        unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved) };
    }
}

/// The write end of the signal pipe, for the handler (-1: none installed).
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe already holds a wake-up.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// SIGWINCH, SIGTERM, SIGHUP and SIGINT delivered as bytes (the signal number) on a non-blocking
/// pipe, for a loop that polls it; the previous handlers come back when dropped. One at a
/// time per process.
pub struct Signals {
    read: RawFd,
    write: RawFd,
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

/// The signals [`Signals`] catches.
/// SIGINT among them: the raw terminal sends Ctrl-C to the session as a byte, so one comes
/// from elsewhere (`kill -INT`, a terminal not in raw mode), and ends the session as SIGTERM
/// does (the handler `interrupt::install` set for connecting would only note it).
const CAUGHT: [libc::c_int; 4] = [libc::SIGWINCH, libc::SIGTERM, libc::SIGHUP, libc::SIGINT];

impl Signals {
    /// Installs the handlers. Errors: the pipe cannot be made or a handler cannot be set.
    pub fn install() -> io::Result<Signals> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut signals = Signals {
            read: fds[0],
            write: fds[1],
            previous: Vec::new(),
        };
        SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
        for signal in CAUGHT {
            // SAFETY: an all-zero sigaction is valid storage; the handler only writes a byte.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            // SAFETY: as above.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: both pointers are valid sigaction structs.
            if unsafe { libc::sigaction(signal, &action, &mut old) } != 0 {
                return Err(io::Error::last_os_error());
            }
            signals.previous.push((signal, old));
        }
        Ok(signals)
    }

    /// The descriptor to poll for reading.
    pub fn fd(&self) -> RawFd {
        self.read
    }

    /// The signals received since the last call, in order.
    pub fn take(&self) -> Vec<libc::c_int> {
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::read(self.read, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return got;
            }
            got.extend(buf[..n as usize].iter().map(|&b| libc::c_int::from(b)));
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: `old` is the action sigaction returned for this signal.
            unsafe { libc::sigaction(*signal, old, std::ptr::null_mut()) };
        }
        SIGNAL_PIPE.store(-1, Ordering::Relaxed);
        // SAFETY: both descriptors were opened by `install` and are closed once.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}
