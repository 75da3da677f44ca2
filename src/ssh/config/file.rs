//! Config files parsed into lines, with their `Include`s: what readconf.c checks for every
//! line whether or not it applies to the host (syntax, values, Match criteria), so a mistake
//! anywhere is an error for the whole config, as it is for ssh.
//!
//! An `Include` without tokens is read here, once: relative to `~/.ssh` in a user config
//! (also one given with `-F`) and to the system config's directory in the system config,
//! globbed, at most 16 files deep, a file that includes itself refused by name. An `Include`
//! with `%` tokens or `${VAR}` (OpenSSH 9.9) depends on the host and is read when a host is
//! resolved, by the same code.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::ConfigError;
use super::keyword::{self, Keyword, Lookup};
use super::lexer;
use super::value::{self, Value};
use crate::ssh_syntax::pattern::{parse_cidr_list, Cidr};

/// readconf.c `READCONF_MAX_DEPTH`.
pub const MAX_DEPTH: usize = 16;

/// One parsed file.
#[derive(Debug)]
pub struct File {
    /// Its path as found (from the command line or an Include glob).
    pub path: Arc<Path>,
    /// Read as a user config (`~` allowed and relative Includes under `~/.ssh`).
    pub user_conf: bool,
    /// Its meaningful lines.
    pub lines: Vec<Line>,
}

/// One meaningful line.
#[derive(Debug)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// What it says.
    pub kind: LineKind,
}

/// What a line says.
#[derive(Debug)]
pub enum LineKind {
    /// `Host` patterns.
    Host(Vec<String>),
    /// `Match` criteria.
    Match(Vec<Criterion>),
    /// `Include` patterns.
    Include(Vec<Include>),
    /// A keyword and its checked value.
    Set(&'static Keyword, Value),
    /// A keyword ssh skips.
    Obsolete,
    /// A keyword nobody knows (fine only where `IgnoreUnknown` names it).
    Unknown(String),
}

/// One `Include` argument.
#[derive(Debug)]
pub struct Include {
    /// As written.
    pub pattern: String,
    /// The files it named when the config was loaded; `None` when the pattern has tokens and
    /// is globbed per host.
    pub files: Option<Vec<Arc<File>>>,
}

/// One `Match` criterion, `!` included.
#[derive(Debug, Clone)]
pub struct Criterion {
    /// Written with `!`.
    pub negate: bool,
    /// What it tests.
    pub test: Test,
}

/// The `Match` tests.
#[derive(Debug, Clone)]
pub enum Test {
    /// `all`.
    All,
    /// `canonical`: true in the final pass.
    Canonical,
    /// `final`: true in the final pass, and asks for one.
    Final,
    /// `host` patterns against the (HostName-expanded) host.
    Host(String),
    /// `originalhost` patterns against the name as given.
    OriginalHost(String),
    /// `user` patterns against the remote user.
    User(String),
    /// `localuser` patterns against the local user.
    LocalUser(String),
    /// `localnetwork` CIDR list against the local interfaces' addresses.
    LocalNetwork(Vec<Cidr>),
    /// `tagged` patterns against `Tag`.
    Tagged(String),
    /// `sessiontype` patterns: tether's sessions are `exec`, a jump host's `none` (`ssh -W`).
    SessionType(String),
    /// `exec` command, run through the user's shell.
    Exec(String),
}

/// Where to anchor relative Includes and how to expand `~`.
#[derive(Debug, Clone)]
pub struct Anchors {
    /// `~`.
    pub home: PathBuf,
    /// The system config's directory (`/etc/ssh`).
    pub system_dir: PathBuf,
}

/// Reads files and their static Includes.
pub struct Reader<'a> {
    /// Anchors for relative Includes.
    pub anchors: &'a Anchors,
    /// Whether any `IgnoreUnknown` line was seen (so unknown keywords are judged per host).
    pub ignore_unknown_seen: bool,
}

impl Reader<'_> {
    /// Reads `path`: `Ok(None)` if it does not exist. `stack` holds the files including it
    /// (canonical paths), for loop detection; `check_perm` is ssh's `SSHCONF_CHECKPERM`.
    pub fn read(
        &mut self,
        path: &Path,
        user_conf: bool,
        check_perm: bool,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Option<Arc<File>>, ConfigError> {
        let text = match read_bytes(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        if check_perm {
            check_permissions(path)?;
        }
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        stack.push(canonical);
        let result = self.parse(&text, path, user_conf, stack);
        stack.pop();
        result.map(Some)
    }

    /// Parses `text` as the file `path`.
    pub fn parse(
        &mut self,
        text: &str,
        path: &Path,
        user_conf: bool,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Arc<File>, ConfigError> {
        let path: Arc<Path> = Arc::from(path);
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let malformed = |message: String| ConfigError::Malformed {
                path: path.to_path_buf(),
                line: number,
                message,
            };
            let Some(words) = lexer::split(raw).map_err(malformed)? else {
                continue;
            };
            let kind = match keyword::lookup(&words.keyword) {
                Lookup::Known(k) if k.name == "Host" => {
                    if words.args.iter().any(String::is_empty) {
                        return Err(malformed("Host: empty pattern".into()));
                    }
                    LineKind::Host(words.args)
                }
                Lookup::Known(k) if k.name == "Match" => {
                    let args = lexer::match_words(&words.rest).map_err(malformed)?;
                    LineKind::Match(parse_match(&args).map_err(malformed)?)
                }
                Lookup::Known(k) if k.name == "Include" => {
                    let mut includes = Vec::new();
                    for pattern in &words.args {
                        if pattern.is_empty() {
                            return Err(malformed("Include: empty argument".into()));
                        }
                        let files = if has_tokens(pattern) {
                            None
                        } else {
                            let anchored =
                                anchor(pattern, user_conf, self.anchors).map_err(malformed)?;
                            Some(self.include(&anchored, user_conf, stack, &malformed)?)
                        };
                        includes.push(Include {
                            pattern: pattern.clone(),
                            files,
                        });
                    }
                    LineKind::Include(includes)
                }
                Lookup::Known(k) => {
                    if k.name == "IgnoreUnknown" {
                        self.ignore_unknown_seen = true;
                    }
                    LineKind::Set(
                        k,
                        value::check(k, &words.args, &words.rest).map_err(malformed)?,
                    )
                }
                Lookup::Obsolete => LineKind::Obsolete,
                // ssh refuses an unknown keyword unless an IgnoreUnknown read before it names
                // it; whether one applies depends on the host when one was seen.
                Lookup::Unknown if !self.ignore_unknown_seen => {
                    return Err(malformed(format!(
                        "bad configuration option: {}",
                        words.keyword
                    )))
                }
                Lookup::Unknown => LineKind::Unknown(words.keyword),
            };
            lines.push(Line { number, kind });
        }
        Ok(Arc::new(File {
            path,
            user_conf,
            lines,
        }))
    }

    /// The files an anchored Include pattern names, read.
    pub fn include(
        &mut self,
        anchored: &str,
        user_conf: bool,
        stack: &mut Vec<PathBuf>,
        malformed: &dyn Fn(String) -> ConfigError,
    ) -> Result<Vec<Arc<File>>, ConfigError> {
        if stack.len() > MAX_DEPTH {
            return Err(malformed(format!(
                "Include nested more than {MAX_DEPTH} files deep"
            )));
        }
        let mut files = Vec::new();
        for path in super::glob::glob(anchored) {
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if let Some(at) = stack.iter().position(|p| *p == canonical) {
                let chain: Vec<String> = stack[at..]
                    .iter()
                    .chain(std::iter::once(&canonical))
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(malformed(format!("Include loop: {}", chain.join(" -> "))));
            }
            match self.read(&path, user_conf, true, stack) {
                Ok(Some(file)) => files.push(file),
                Ok(None) => {}
                Err(ConfigError::Read { path, source }) => {
                    return Err(malformed(format!(
                        "cannot read included file {}: {source}",
                        path.display()
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(files)
    }
}

/// How long a FIFO (or pipe, `-F <(command)`) may take to deliver the config to its end.
pub const PIPE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// At most this much is read from a device, FIFO or pipe.
pub const PIPE_MAX: usize = 1 << 20;

/// A config file's bytes. ssh fopen()s and reads a file whatever it is: a directory reads as
/// empty (kept: an `Include dir/.*` matches `.` and `..`), but `/dev/zero` would be read
/// until memory runs out and a FIFO nobody writes to would block forever. So what is not a
/// regular file is read without blocking, up to [`PIPE_MAX`] bytes and its end within
/// [`PIPE_WAIT`] (`/dev/null` and a pipe from `-F <(command)` work); otherwise an
/// `InvalidData` error saying what the file is and what it did.
fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    if kind.is_dir() {
        return Ok(Vec::new());
    }
    let what = if kind.is_fifo() {
        "a FIFO or pipe"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    let refuse =
        |why: String| std::io::Error::new(ErrorKind::InvalidData, format!("it is {what} {why}"));
    let deadline = std::time::Instant::now() + PIPE_WAIT;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Poll first: a FIFO that no writer has opened yet reads as ended at once, but is not
        // readable (ssh would block in open() until a writer comes).
        let now = std::time::Instant::now();
        if now >= deadline {
            return Err(refuse(format!(
                "that did not reach its end within {} s (ssh would wait for it forever)",
                PIPE_WAIT.as_secs()
            )));
        }
        let mut fds = [libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&file),
            events: libc::POLLIN,
            revents: 0,
        }];
        crate::ssh::poll::poll_fds(&mut fds, deadline - now)?;
        if fds[0].revents == 0 {
            continue;
        }
        match file.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => {
                bytes.extend_from_slice(&chunk[..n]);
                if bytes.len() > PIPE_MAX {
                    return Err(refuse(format!(
                        "that gave more than {} MiB without ending (ssh would read it until \
                         memory runs out)",
                        PIPE_MAX >> 20
                    )));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether an Include pattern depends on the host (`%` tokens, `${VAR}`).
pub fn has_tokens(pattern: &str) -> bool {
    pattern.contains('%') || pattern.contains("${")
}

/// readconf.c: a relative Include lives in `~/.ssh` (user config) or the system config's
/// directory; `~` is for user configs only. Returns the pattern with `~` expanded (`~user`
/// too, when that user exists).
pub fn anchor(pattern: &str, user_conf: bool, anchors: &Anchors) -> Result<String, String> {
    if pattern.starts_with('~') && !user_conf {
        return Err(format!(
            "bad include path {pattern} (`~` is allowed in user configs only)"
        ));
    }
    let full = if pattern.starts_with('/') || pattern.starts_with('~') {
        pattern.to_string()
    } else if user_conf {
        format!("~/.ssh/{pattern}")
    } else {
        format!("{}/{pattern}", anchors.system_dir.display())
    };
    // glob(3)'s GLOB_TILDE leaves `~nosuchuser/...` as it is (then it matches nothing): not
    // an error, as it is for the paths of other keywords.
    Ok(super::expand::tilde(&full, &anchors.home).unwrap_or(full))
}

/// readconf.c `SSHCONF_CHECKPERM`: owned by root or the user, writable by nobody else.
fn check_permissions(path: &Path) -> Result<(), ConfigError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    if (meta.uid() != 0 && meta.uid() != uid) || meta.mode() & 0o022 != 0 {
        return Err(ConfigError::Permissions {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// readconf.c `match_cfg_line` of ssh 9.2, the checking half: criteria and their arguments,
/// in `args` as [`lexer::match_words`] splits them (an empty word, or one starting with `#`,
/// where an attribute would be ends the line).
fn parse_match(args: &[String]) -> Result<Vec<Criterion>, String> {
    let mut criteria = Vec::new();
    let mut attributes = 0;
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        i += 1;
        if word.is_empty() || word.starts_with('#') {
            break;
        }
        let (negate, attrib) = match word.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, word.as_str()),
        };
        if attrib.eq_ignore_ascii_case("all") {
            let next = args.get(i).filter(|a| !a.is_empty() && !a.starts_with('#'));
            if attributes > 1 || next.is_some() {
                return Err(format!(
                    "Match: '{word}' cannot be combined with other Match attributes"
                ));
            }
            criteria.push(Criterion {
                negate,
                test: Test::All,
            });
            return Ok(criteria);
        }
        attributes += 1;
        if attrib.eq_ignore_ascii_case("canonical") || attrib.eq_ignore_ascii_case("final") {
            let test = if attrib.eq_ignore_ascii_case("final") {
                Test::Final
            } else {
                Test::Canonical
            };
            criteria.push(Criterion { negate, test });
            continue;
        }
        let name = attrib.to_ascii_lowercase();
        let Some(arg) = args.get(i).cloned() else {
            return Err(format!("Match: missing criteria for {name}"));
        };
        i += 1;
        if (arg.is_empty() && name != "tagged" && name != "command") || arg.starts_with('#') {
            return Err(format!("Match: missing criteria for {name}"));
        }
        let test = match name.as_str() {
            "host" => Test::Host(arg),
            "originalhost" => Test::OriginalHost(arg),
            "user" => Test::User(arg),
            "localuser" => Test::LocalUser(arg),
            "localnetwork" => Test::LocalNetwork(
                parse_cidr_list(&arg).map_err(|e| format!("Match localnetwork: {e}"))?,
            ),
            "tagged" => Test::Tagged(arg),
            "sessiontype" => Test::SessionType(arg),
            "exec" => Test::Exec(arg),
            "version" | "command" => {
                return Err(format!(
                    "Match {name} cannot be evaluated by tether (it is not OpenSSH's ssh, and \
                     one session runs many commands)"
                ))
            }
            _ => return Err(format!("Match: unsupported attribute {attrib}")),
        };
        criteria.push(Criterion { negate, test });
    }
    if attributes == 0 {
        return Err("Match: one or more attributes required".into());
    }
    Ok(criteria)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteria(line: &str) -> Result<Vec<Criterion>, String> {
        parse_match(&lexer::match_words(line)?)
    }

    #[test]
    fn match_lines() {
        let c = criteria("host=web1 !user x final").unwrap();
        assert!(matches!(&c[0].test, Test::Host(h) if h == "web1"));
        assert!(c[1].negate && matches!(&c[1].test, Test::User(u) if u == "x"));
        assert!(matches!(c[2].test, Test::Final));
        assert!(matches!(criteria("all").unwrap()[0].test, Test::All));
        assert!(matches!(criteria("HOST a").unwrap()[0].test, Test::Host(_)));
        assert!(criteria("all host x").is_err());
        assert!(criteria("host").is_err());
        assert!(criteria("").is_err());
        assert!(criteria("frob x").is_err());
        assert!(criteria("localnetwork 10.0.0.0/33").is_err());
        assert!(criteria("version OpenSSH*").is_err());
        assert!(criteria("tagged=").is_ok());
        for spaced in ["host =web1", "host = web1", "host= web1", "host=web1"] {
            assert!(matches!(&criteria(spaced).unwrap()[0].test, Test::Host(h) if h == "web1"));
        }
        let c = criteria("!host =a exec =true # comment").unwrap();
        assert!(c[0].negate && matches!(&c[0].test, Test::Host(h) if h == "a"));
        assert!(matches!(&c[1].test, Test::Exec(e) if e == "true"));
        assert_eq!(c.len(), 2);
        assert!(criteria("host q,=x").is_err());
        assert!(criteria("host =").is_err());
        assert!(criteria("\"host=x\"").is_err());
        let c = criteria("exec \"test a = b\" user x").unwrap();
        assert!(matches!(&c[0].test, Test::Exec(e) if e == "test a = b"));
    }
}
