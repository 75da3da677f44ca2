//! Headless Chromium for looking at pages as a person would: a screenshot of a local file at
//! a window size, read back as pixels.
//!
//! Chromium is Debian's `chromium` package (`scripts/test` installs it). Where it is missing
//! or cannot start, [`Screenshot::take`] says why, and the caller skips with [`skip`]: the
//! reason goes to the real stderr (past the test harness's capture, so it shows in every
//! run), and with `TETHER_REQUIRE_CHROMIUM` set (as `scripts/test` sets it, which installed
//! Chromium) a skip is a failure instead.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one screenshot may take before Chromium is stopped.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A decoded screenshot.
pub struct Screenshot {
    pub width: u32,
    pub height: u32,
    /// RGB, row by row.
    pub rgb: Vec<[u8; 3]>,
}

/// The Chromium binary on PATH.
fn chromium() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err("no chromium on PATH (Debian: apt-get install chromium; scripts/test does)".into())
}

impl Screenshot {
    /// Opens `page` (a local file) at `width`×`height` in headless Chromium, with a fresh
    /// profile in `scratch`, and returns the screenshot, also saved as `png`.
    pub fn take(
        page: &Path,
        png: &Path,
        scratch: &Path,
        width: u32,
        height: u32,
    ) -> Result<Screenshot, String> {
        let chromium = chromium()?;
        let profile = scratch.join("chromium-profile");
        let _ = std::fs::remove_dir_all(&profile);
        let _ = std::fs::remove_file(png);
        let page = std::fs::canonicalize(page).map_err(|e| format!("{}: {e}", page.display()))?;
        let mut child = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("file://{}", page.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: Chromium's helpers are stopped with it on a timeout.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if started.elapsed() > TIMEOUT {
                // SAFETY: kill(2) on the process group of our own child.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(&profile);
                return Err(format!("chromium did not finish within {TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut stderr);
        }
        let _ = std::fs::remove_dir_all(&profile);
        if !status.success() || !png.is_file() {
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            return Err(format!(
                "chromium exited with {status} and no screenshot: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        Self::read(png)
    }

    /// Reads a PNG: its header first (signature, IHDR size), then its pixels.
    pub fn read(png: &Path) -> Result<Screenshot, String> {
        let bytes = std::fs::read(png).map_err(|e| format!("{}: {e}", png.display()))?;
        if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
            return Err(format!("{} is not a PNG", png.display()));
        }
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        let mut decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
        let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
        let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
        assert_eq!(
            (info.width, info.height),
            (width, height),
            "IHDR and frame differ"
        );
        let channels = info.color_type.samples();
        let rgb = buf[..info.buffer_size()]
            .chunks(channels)
            .map(|p| match channels {
                1 | 2 => [p[0], p[0], p[0]],
                _ => [p[0], p[1], p[2]],
            })
            .collect();
        Ok(Screenshot { width, height, rgb })
    }

    /// How many different colours it has.
    pub fn colours(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        for p in &self.rgb {
            seen.insert(*p);
        }
        seen.len()
    }

    /// How many pixels are within `tolerance` (per channel) of `colour`.
    pub fn count_near(&self, colour: [u8; 3], tolerance: u8) -> usize {
        self.rgb
            .iter()
            .filter(|p| (0..3).all(|i| p[i].abs_diff(colour[i]) <= tolerance))
            .count()
    }
}

/// Reports a skipped test where everyone sees it; a failure under `TETHER_REQUIRE_CHROMIUM`.
pub fn skip(test: &str, reason: &str) {
    if std::env::var_os("TETHER_REQUIRE_CHROMIUM").is_some() {
        panic!("{test}: chromium is required here (TETHER_REQUIRE_CHROMIUM) but: {reason}");
    }
    // Written to the process's stderr, not through eprintln!, which the harness captures
    // for a test that passes.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\nSKIPPED {test}: {reason} (not a pass: nothing was rendered)"
    );
}
