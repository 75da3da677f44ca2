//! Recipe errors as `file:line:col`, the source line and a caret, for the recipe, imported
//! local modules and embedded stdlib modules alike.

use rhai::{EvalAltResult, ParseError, Position};

use super::runaway::OutOfMemory;
use super::sources::Sources;
use crate::failure::Failure;

/// Where an error happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Source name (a path, or `stdlib/deploy.rhai`).
    pub source: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.source, self.line, self.column)
    }
}

impl Location {
    /// `pos` in `source`; `None` for a position Rhai does not know (`Position::NONE`).
    pub fn at(source: &str, pos: Position) -> Option<Location> {
        Some(Location {
            source: source.to_string(),
            line: pos.line()?,
            column: pos.position().unwrap_or(1),
        })
    }
}

/// The innermost error of a chain, where it happened, and the call sites that led there
/// (outermost first). A function that Rhai gives no source is placed in the file `sources`
/// recorded it from (a stage file's closure), else in the caller's.
pub fn innermost<'a>(
    err: &'a EvalAltResult,
    main: &str,
    sources: &Sources,
) -> (&'a EvalAltResult, Option<Location>, Vec<Location>) {
    let mut source = main.to_string();
    let mut err = err;
    let mut trail = Vec::new();
    loop {
        match err {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                trail.extend(Location::at(&source, *pos));
                if !src.is_empty() {
                    source = src.clone();
                } else if let Some(defined) = sources.function_source(name) {
                    source = defined;
                }
                err = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                trail.extend(Location::at(&source, *pos));
                source = crate::recipe::stdlib::source_name(path).unwrap_or_else(|| path.clone());
                err = inner;
            }
            leaf => return (leaf, Location::at(&source, leaf.position()), trail),
        }
    }
}

/// The message of an error without Rhai's position suffix.
pub fn message(err: &EvalAltResult) -> String {
    message_folded(err, false)
}

/// [`message`], a failure's hosts that failed the same way folded where `fold` (see
/// `Failure::folded_message`).
fn message_folded(err: &EvalAltResult, fold: bool) -> String {
    match err {
        // A failure thrown by a host-bound function is a value of tether's own type, whose
        // text Rhai knows only as the type's name.
        EvalAltResult::ErrorRuntime(value, _) => match value.read_lock::<Failure>() {
            Some(failure) if fold => failure.folded_message(),
            Some(failure) => failure.message(),
            // Said, where its text is nothing (stop 44 tester t54: `throw;` gave an error of
            // a position alone).
            None if value.is_unit() => "the recipe threw () (a `throw` without a value)".into(),
            None => match value.to_string() {
                text if text.trim().is_empty() => {
                    format!("the recipe threw {:?}, a blank string", text)
                }
                text => text,
            },
        },
        EvalAltResult::ErrorParsing(p, _) => format!("syntax error: {p}"),
        EvalAltResult::ErrorTerminated(token, _) if token.is::<OutOfMemory>() => {
            OutOfMemory::words()
        }
        other => {
            let text = other.to_string();
            // Rhai appends " (line N, position M)"; the location is shown separately.
            match text.rfind(" (line ") {
                Some(i) if text.ends_with(')') => text[..i].to_string(),
                _ => text,
            }
        }
    }
}

/// Renders a message with its location, the source line and a caret.
pub fn render(
    message: &str,
    at: Option<&Location>,
    trail: &[Location],
    sources: &Sources,
) -> String {
    let Some(at) = at else {
        return message.to_string();
    };
    let mut out = format!("{at}: {message}");
    if let Some(text) = sources.line(&at.source, at.line) {
        let number = at.line.to_string();
        let pad = " ".repeat(number.len());
        let caret_pad: String = text
            .chars()
            .take(at.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!(
            "\n{pad} |\n{number} | {text}\n{pad} | {caret_pad}^"
        ));
    }
    for call in trail.iter().rev() {
        out.push_str(&format!("\n  called from {call}"));
    }
    out
}

/// A parse error of `source` rendered with its line.
pub fn parse_error(err: &ParseError, source: &str, sources: &Sources) -> String {
    let at = Location::at(source, err.position());
    let message = format!("syntax error: {}", err.err_type());
    render(&message, at.as_ref(), &[], sources)
}

/// An evaluation error rendered at its innermost location.
pub fn eval_error(err: &EvalAltResult, main: &str, sources: &Sources) -> String {
    eval_error_folded(err, main, sources, false)
}

/// [`eval_error`], a failure's hosts that failed the same way folded where `fold` (text
/// output without `--no-fold`: see `Runtime::fold`).
pub fn eval_error_folded(err: &EvalAltResult, main: &str, sources: &Sources, fold: bool) -> String {
    let (leaf, at, trail) = innermost(err, main, sources);
    if let EvalAltResult::ErrorParsing(p, pos) = leaf {
        let at = Location::at(at.as_ref().map_or(main, |l| l.source.as_str()), *pos);
        return render(&format!("syntax error: {p}"), at.as_ref(), &trail, sources);
    }
    render(&message_folded(leaf, fold), at.as_ref(), &trail, sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_the_column() {
        let sources = Sources::default();
        sources.insert("deploy.rhai", "let a = 1;\n  boom();\n");
        let at = Location {
            source: "deploy.rhai".into(),
            line: 2,
            column: 3,
        };
        assert_eq!(
            render("Function not found: boom ()", Some(&at), &[], &sources),
            "deploy.rhai:2:3: Function not found: boom ()\n  |\n2 |   boom();\n  |   ^"
        );
    }

    #[test]
    fn an_error_at_the_end_of_the_file_shows_its_empty_line() {
        let engine = rhai::Engine::new();
        let source = "task(\"a\", || { on(\"x\", \"y\") \r\n";
        let err = engine.compile(source).unwrap_err();
        let sources = Sources::default();
        sources.insert("deploy.rhai", source);
        let text = parse_error(&err, "deploy.rhai", &sources);
        assert!(text.starts_with("deploy.rhai:2:1: syntax error"), "{text}");
        assert!(text.ends_with("\n2 | \n  | ^"), "{text}");
        // A line before it keeps its own text, without the carriage return.
        assert_eq!(
            sources.line("deploy.rhai", 1).as_deref(),
            Some("task(\"a\", || { on(\"x\", \"y\") ")
        );
    }

    #[test]
    fn parse_errors_name_the_file() {
        let engine = rhai::Engine::new();
        let err = engine.compile("let x = ;").unwrap_err();
        let sources = Sources::default();
        sources.insert("r.rhai", "let x = ;");
        let text = parse_error(&err, "r.rhai", &sources);
        assert!(text.starts_with("r.rhai:1:9: syntax error"), "{text}");
        assert!(text.ends_with("|         ^"), "{text}");
    }
}
