//! The colours and weights of text output (anstyle's styles; anstream strips them where
//! stdout is no terminal or `--color never` asks).

use anstyle::{AnsiColor, Style};

/// The foreground colour `c`.
pub fn fg(c: AnsiColor) -> Style {
    Style::new().fg_color(Some(c.into()))
}

/// `text` in `style`, reset after it.
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// `text` in bold.
pub fn bold(text: &str) -> String {
    paint(Style::new().bold(), text)
}
