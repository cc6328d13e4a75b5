//! Escaping, one function per reader: terminals, spreadsheets, XML, HTML.

use std::fmt::Write as _;

/// A bidirectional-text control (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069): it
/// reorders what a terminal or browser shows (`"txt.exe"` shown as `"exe.txt"`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `\u{1b}`: how a character that must not reach the reader is shown.
fn push_visible(out: &mut String, c: char) {
    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
}

/// One line for a terminal: newline, tab and carriage return shown as `\n`, `\t`, `\r`;
/// other control characters (ESC, DEL, C1), the Unicode line and paragraph separators and
/// bidirectional-text controls as `\u{1b}`, so a value can neither start a line, send
/// terminal codes nor reorder the line.
pub(crate) fn line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}') => {
                push_visible(&mut out, c)
            }
            c => out.push(c),
        }
    }
    out
}

/// A cell a spreadsheet shows as text: a value starting with `=`, `+`, `@`, tab, carriage
/// return, or `-` when it is not a plain number (`-1.5`), gets a leading `'` (OWASP's CSV
/// injection guard). Other text, and numbers such as a penalty's `-1`, are unchanged.
pub(crate) fn csv_cell(s: &str) -> String {
    let formula = match s.chars().next() {
        Some('=' | '+' | '@' | '\t' | '\r') => true,
        Some('-') => !is_plain_number(&s[1..]),
        _ => false,
    };
    if formula {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// Digits with at most one `.` between digits (`1`, `0.25`): what [`super::format_points`]
/// prints. Not `inf`, `1e5` or `1+2`, which a spreadsheet may read otherwise.
fn is_plain_number(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    let int = parts.next().unwrap_or_default();
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(int) && parts.next().is_none_or(digits)
}

/// A character XML 1.0 cannot carry at all, not even as a reference (C0 controls other
/// than tab, newline and carriage return; U+FFFE, U+FFFF).
fn xml_forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// Text for XML character data or a quoted attribute value (`"` or `'`): `<&>"'` as
/// entities; tab, newline and carriage return as references (so attribute values keep
/// them); DEL, C1 and bidirectional-text controls as references; characters XML 1.0
/// forbids shown as `\u{1b}`.
pub(crate) fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if xml_forbidden(c) => push_visible(&mut out, c),
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(out, "&#x{:x};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Text for HTML content or a quoted attribute value: `<&>"'` as references; newline and
/// tab kept (a `<pre>` or `white-space: pre-wrap` shows them); every other control
/// character and every bidirectional-text control shown as `\u{1b}`, so a student's
/// name can neither break the markup nor reorder the page.
pub(crate) fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() || is_bidi_control(c) => push_visible(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_cannot_break_send_codes_or_reorder() {
        assert_eq!(line("plain Zoë"), "plain Zoë");
        assert_eq!(
            line("a\nb\tc\rd\u{1b}[31m\u{7f}\u{85}\u{202e}x"),
            "a\\nb\\tc\\rd\\u{1b}[31m\\u{7f}\\u{85}\\u{202e}x"
        );
        assert_eq!(
            line("a\u{2028}b\u{2029}c\u{2067}"),
            "a\\u{2028}b\\u{2029}c\\u{2067}"
        );
    }

    #[test]
    fn spreadsheet_formulas_get_a_quote_and_numbers_do_not() {
        for (cell, want) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("-2+3", "'-2+3"),
            ("-", "'-"),
            ("-inf", "'-inf"),
            ("-1e5", "'-1e5"),
            ("-1.", "'-1."),
            ("-.5", "'-.5"),
            ("-1.2.3", "'-1.2.3"),
            ("-1", "-1"),
            ("-0.25", "-0.25"),
            ("2", "2"),
            ("Zoë = 1", "Zoë = 1"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn xml_escapes_markup_and_controls() {
        assert_eq!(xml("<&>\"'"), "&lt;&amp;&gt;&quot;&apos;");
        assert_eq!(xml("a\nb\tc\rd"), "a&#xa;b&#x9;c&#xd;d");
        assert_eq!(xml("\u{0}\u{1b}\u{fffe}"), "\\u{0}\\u{1b}\\u{fffe}");
        assert_eq!(xml("\u{7f}\u{85}\u{202e}"), "&#x7f;&#x85;&#x202e;");
        assert_eq!(xml("]]> Zoë"), "]]&gt; Zoë");
    }

    #[test]
    fn html_escapes_markup_and_controls_and_keeps_lines() {
        assert_eq!(
            html("<script>alert('x&y')</script>\"\n\t"),
            "&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;/script&gt;&quot;\n\t"
        );
        assert_eq!(
            html("\u{1b}[2J\r\u{202e}Zoë"),
            "\\u{1b}[2J\\u{d}\\u{202e}Zoë"
        );
    }
}
