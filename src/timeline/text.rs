//! Text inside the page: escaped for HTML and SVG alike, and shortened to fit a width.

use std::borrow::Cow;

/// `text` safe inside an element or a quoted attribute: `&`, `<`, `>`, `"` and `'` as
/// entities, so a command such as `</svg><script>` stays text. Control characters (not
/// allowed in XML, and invisible) become their visible pictures (`\u{1b}` as `␛`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('?')),
            '\u{7f}' => out.push('␡'),
            c => out.push(c),
        }
    }
    out
}

/// How many characters of a proportional font of `font` px fit in `width` px (an estimate
/// from an average glyph of 0.6 em, generous for DejaVu Sans and Liberation Sans).
pub fn fits(width: f64, font: f64) -> usize {
    if width <= 0.0 || font <= 0.0 {
        return 0;
    }
    (width / (font * 0.6)).floor() as usize
}

/// `text` in at most `max` characters, its end replaced by `…` when it is longer.
pub fn elide_end(text: &str, max: usize) -> Cow<'_, str> {
    if text.chars().count() <= max {
        return Cow::Borrowed(text);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let kept: String = text.chars().take(max - 1).collect();
    Cow::Owned(format!("{kept}…"))
}

/// `text` in at most `max` characters, its middle replaced by `…` when it is longer: host
/// names differ at their ends (`app-eu-042.example.com`).
pub fn elide_middle(text: &str, max: usize) -> Cow<'_, str> {
    let n = text.chars().count();
    if n <= max {
        return Cow::Borrowed(text);
    }
    if max < 3 {
        return elide_end(text, max);
    }
    let tail = (max - 1) / 2;
    let head = max - 1 - tail;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(n - tail).collect();
    Cow::Owned(format!("{start}…{end}"))
}

/// `text` cut to `max` characters for a tooltip, saying how much was left out.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    let n = text.chars().count();
    if n <= max {
        return Cow::Borrowed(text);
    }
    let kept: String = text.chars().take(max).collect();
    Cow::Owned(format!("{kept}… ({} more characters)", n - max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape(r#"</svg><script>alert("x" & 'y')</script>"#),
            "&lt;/svg&gt;&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("a\u{1b}[31mb\u{0}\u{7f}\n"), "a␛[31mb␀␡\n");
        assert_eq!(escape("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn eliding() {
        assert_eq!(elide_end("deploy:assets", 20), "deploy:assets");
        assert_eq!(elide_end("deploy:assets", 7), "deploy…");
        assert_eq!(elide_end("ab", 0), "");
        assert_eq!(elide_middle("app-eu-042.example.com", 11), "app-e…e.com");
        assert_eq!(elide_middle("ééééé", 4), "ée…é".replace('e', "é"));
        assert_eq!(clip("abcdef", 4), "abcd… (2 more characters)");
        assert_eq!(fits(60.0, 10.0), 10);
    }
}
