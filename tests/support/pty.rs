//! A pseudo-terminal for tests that need tether on a terminal (`tether ssh`, `ask`): the
//! test holds the master side, types into it, reads everything written to it, sets its window
//! size (the kernel then sends SIGWINCH to the process on it), and reads the terminal's modes
//! after the process exits.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pseudo-terminal: its master side, one open slave descriptor (so the terminal outlives the
/// process on it, and its modes can be read), and the output read so far.
pub struct Pty {
    master: File,
    slave: File,
    output: Arc<Mutex<Vec<u8>>>,
}

fn check(rc: libc::c_int, what: &str) {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
}

impl Pty {
    /// A new terminal of `cols` x `rows`.
    pub fn new(cols: u16, rows: u16) -> Pty {
        // SAFETY: plain libc calls on descriptors this function owns.
        let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
        check(master, "posix_openpt");
        // SAFETY: as above.
        check(unsafe { libc::grantpt(master) }, "grantpt");
        // SAFETY: as above.
        check(unsafe { libc::unlockpt(master) }, "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: `name` is valid for writes of its length.
        check(
            unsafe { libc::ptsname_r(master, name.as_mut_ptr(), name.len()) },
            "ptsname_r",
        );
        // SAFETY: ptsname_r wrote a NUL-terminated name.
        let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
        // SAFETY: as above.
        let slave = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        };
        check(slave, "open the slave");
        // SAFETY: both descriptors were just opened and are owned here.
        let (master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
        let pty = Pty {
            master,
            slave,
            output: Arc::new(Mutex::new(Vec::new())),
        };
        pty.resize(cols, rows);
        let mut reader = pty.master.try_clone().expect("clone the master");
        let output = pty.output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once no slave descriptor is open any more.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                output.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        pty
    }

    /// Starts `cmd` with the terminal as its stdin, stdout, stderr and controlling terminal
    /// (in a session of its own, so that it is the terminal's foreground process group).
    pub fn spawn(&self, mut cmd: Command) -> Child {
        let io = || Stdio::from(self.slave.try_clone().expect("clone the slave"));
        cmd.stdin(io()).stdout(io()).stderr(io());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().expect("start the command on the terminal")
    }

    /// Sets the window size (what `stty size` then says; SIGWINCH to the foreground group).
    pub fn resize(&self, cols: u16, rows: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: `ws` is a valid winsize.
        check(
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
            "TIOCSWINSZ",
        );
    }

    /// Types `text`.
    pub fn type_text(&self, text: &str) {
        (&self.master).write_all(text.as_bytes()).expect("type");
    }

    /// Everything written to the terminal so far, lossily decoded.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the output contains `text` (panics with the output after `timeout`).
    pub fn wait_for(&self, text: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let out = self.output();
            if out.contains(text) {
                return out;
            }
            assert!(
                started.elapsed() < timeout,
                "no {text:?} on the terminal within {timeout:?}:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the reader has taken what the process wrote before it exited (the output
    /// stops growing for a moment).
    fn settle(&self) {
        let mut seen = self.output.lock().unwrap().len();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.output.lock().unwrap().len();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    /// Whether the terminal is in its usual cooked mode (line editing and echo on), as a
    /// process must leave it.
    pub fn is_cooked(&self) -> bool {
        // SAFETY: an all-zero termios is valid storage for tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is valid for writes.
        check(
            unsafe { libc::tcgetattr(self.slave.as_raw_fd(), &mut t) },
            "tcgetattr",
        );
        t.c_lflag & libc::ICANON != 0 && t.c_lflag & libc::ECHO != 0
    }
}

/// Waits for `child` to exit (killing it and panicking after `timeout`); returns its status.
pub fn wait(child: &mut Child, timeout: Duration, pty: &Pty) -> i32 {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            pty.settle();
            return status.code().unwrap_or(-1);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "not finished within {timeout:?}; terminal:\n{}",
                pty.output()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
