//! Maps a path through a RON document (`body[3].out`) back to its line and column, and to
//! the span of text its value occupies.
//!
//! `ron` deserializes without spans, so after it has accepted a file, this module scans the
//! same text once for the structure of its values: where each value starts and ends, and
//! which field, map key or list index leads to it. Semantic errors found later (an unknown block, channels
//! that do not add up) then point at the statement or field that caused them. The scanner
//! only runs on text `ron` has already parsed, so it may be lenient about malformed input.

use std::ops::Range;
use std::sync::Arc;

use crate::Location;

/// One step of a path: a struct field or map key, or a position in a list or tuple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A named field (`out:`) or a string map key (`"unit":`).
    Key(String),
    /// The i-th element of a list, or the i-th positional item in parentheses.
    Index(usize),
}

/// Where every value of a document starts and ends (byte offsets, the end exclusive).
#[derive(Debug)]
struct Node {
    start: usize,
    end: usize,
    kids: Vec<(Seg, Node)>,
}

/// A scanned document, ready to answer "where is this path".
#[derive(Debug)]
pub struct SourceMap {
    file: Arc<str>,
    text: Arc<str>,
    root: Node,
}

impl SourceMap {
    /// Scans `text`, which `ron` has accepted.
    pub fn new(file: Arc<str>, text: &str) -> SourceMap {
        let mut scanner = Scanner { bytes: text.as_bytes(), pos: 0 };
        let root = scanner.value();
        SourceMap { file, text: text.into(), root }
    }

    /// The location of the value at `path`, or of its deepest ancestor that exists.
    pub fn locate(&self, path: &[Seg]) -> Location {
        let mut node = &self.root;
        for seg in path {
            match node.kids.iter().find(|(s, _)| s == seg) {
                Some((_, kid)) => node = kid,
                None => break,
            }
        }
        location_of(&self.file, &self.text, node.start)
    }

    /// The byte range of the value at `path` (comments around it excluded), if it exists.
    pub fn span(&self, path: &[Seg]) -> Option<Range<usize>> {
        let mut node = &self.root;
        for seg in path {
            node = &node.kids.iter().find(|(s, _)| s == seg)?.1;
        }
        Some(node.start..node.end)
    }
}

/// The 1-based line and column (in characters) of a byte offset.
pub fn location_of(file: &Arc<str>, text: &str, offset: usize) -> Location {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    Location { file: file.clone(), line, col }
}

/// The byte offset of a 1-based line and column (in characters), clamped to the text.
pub fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let line_start = match line.checked_sub(2) {
        None => 0,
        Some(skip) => text.match_indices('\n').nth(skip).map_or(text.len(), |(i, _)| i + 1),
    };
    let rest = &text[line_start..];
    let end = rest.find('\n').unwrap_or(rest.len());
    line_start + rest[..end].char_indices().nth(col.saturating_sub(1)).map_or(end, |(i, _)| i)
}

/// The offset of the first byte at or after `offset` that is not whitespace or a comment.
pub fn skip_trivia(text: &str, offset: usize) -> usize {
    let mut scanner = Scanner { bytes: text.as_bytes(), pos: offset.min(text.len()) };
    scanner.skip_trivia();
    scanner.pos
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips whitespace and comments (`//` to the end of the line, nested `/* */`).
    fn skip_trivia(&mut self) {
        loop {
            match (self.peek(), self.bytes.get(self.pos + 1)) {
                (Some(c), _) if c.is_ascii_whitespace() => self.pos += 1,
                (Some(b'/'), Some(b'/')) => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                (Some(b'/'), Some(b'*')) => {
                    self.pos += 2;
                    let mut depth = 1;
                    while depth > 0 && self.pos < self.bytes.len() {
                        if self.bytes[self.pos..].starts_with(b"/*") {
                            depth += 1;
                            self.pos += 2;
                        } else if self.bytes[self.pos..].starts_with(b"*/") {
                            depth -= 1;
                            self.pos += 2;
                        } else {
                            self.pos += 1;
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn is_ident_byte(c: u8) -> bool {
        c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(Self::is_ident_byte) {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned()
    }

    /// A string literal, returned unescaped for the escapes map keys use in practice.
    fn string(&mut self) -> String {
        if self.peek() == Some(b'r') {
            self.pos += 1;
            let hashes = self.bytes[self.pos..].iter().take_while(|&&c| c == b'#').count();
            self.pos += hashes + 1;
            let start = self.pos;
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            while self.pos < self.bytes.len() && !self.bytes[self.pos..].starts_with(&close) {
                self.pos += 1;
            }
            let s = String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned();
            self.pos = (self.pos + close.len()).min(self.bytes.len());
            return s;
        }
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(e) = self.peek() {
                        out.push(e);
                        self.pos += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn value(&mut self) -> Node {
        self.skip_trivia();
        let start = self.pos;
        let mut kids = Vec::new();
        match self.peek() {
            Some(b'"') => {
                self.string();
            }
            Some(b'r') if matches!(self.bytes.get(self.pos + 1), Some(b'"' | b'#')) => {
                self.string();
            }
            Some(b'\'') => {
                self.pos += 1;
                while self.peek().is_some_and(|c| c != b'\'') {
                    self.pos += if self.peek() == Some(b'\\') { 2 } else { 1 };
                }
                self.pos += 1;
            }
            Some(b'[') => {
                self.pos += 1;
                kids = self.items(b']');
            }
            Some(b'{') => {
                self.pos += 1;
                kids = self.map();
            }
            Some(b'(') => {
                self.pos += 1;
                kids = self.items(b')');
            }
            Some(c) if Self::is_ident_byte(c) || c == b'-' || c == b'+' || c == b'.' => {
                self.pos += 1;
                while self
                    .peek()
                    .is_some_and(|c| Self::is_ident_byte(c) || c == b'.' || c == b'+' || c == b'-')
                {
                    // Numbers like 1e-5 contain signs; identifiers never do, and neither is
                    // followed directly by a sign in valid RON except inside a number.
                    self.pos += 1;
                }
                // A struct or variant name may be followed by its parenthesized fields; a
                // plain value ends before the trivia that follows it.
                let end = self.pos;
                self.skip_trivia();
                if self.peek() == Some(b'(') {
                    self.pos += 1;
                    kids = self.items(b')');
                } else {
                    self.pos = end;
                }
            }
            _ => self.pos += 1,
        }
        Node { start, end: self.pos, kids }
    }

    /// Comma-separated items up to `close`; `name: value` items are fields.
    fn items(&mut self, close: u8) -> Vec<(Seg, Node)> {
        let mut kids = Vec::new();
        let mut index = 0;
        loop {
            self.skip_trivia();
            match self.peek() {
                None => return kids,
                Some(c) if c == close => {
                    self.pos += 1;
                    return kids;
                }
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let before = self.pos;
            if self.peek().is_some_and(|c| Self::is_ident_byte(c) && !c.is_ascii_digit()) {
                let name = self.ident();
                self.skip_trivia();
                if self.peek() == Some(b':') {
                    self.pos += 1;
                    kids.push((Seg::Key(name), self.value()));
                    continue;
                }
                self.pos = before;
            }
            kids.push((Seg::Index(index), self.value()));
            index += 1;
            if self.pos == before {
                self.pos += 1;
            }
        }
    }

    /// `key: value` entries up to `}`; string keys are unquoted into `Seg::Key`.
    fn map(&mut self) -> Vec<(Seg, Node)> {
        let mut kids = Vec::new();
        loop {
            self.skip_trivia();
            match self.peek() {
                None => return kids,
                Some(b'}') => {
                    self.pos += 1;
                    return kids;
                }
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let before = self.pos;
            let key = match self.peek() {
                Some(b'"') => self.string(),
                _ => {
                    self.value();
                    String::from_utf8_lossy(&self.bytes[before..self.pos]).trim().to_string()
                }
            };
            self.skip_trivia();
            if self.peek() == Some(b':') {
                self.pos += 1;
            }
            kids.push((Seg::Key(key), self.value()));
            if self.pos == before {
                self.pos += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_items_and_map_keys() {
        let text = "Network(\n  name: \"n\", // comment (\n  params: {\"c\": [1, 2]},\n  body: [\n    Relu,\n    Conv(out: \"c[0]\"),\n  ],\n)";
        let map = SourceMap::new("f.ron".into(), text);
        let at = |path: &[Seg]| {
            let l = map.locate(path);
            (l.line, l.col)
        };
        let key = |k: &str| Seg::Key(k.to_string());
        assert_eq!(at(&[key("name")]), (2, 9));
        assert_eq!(at(&[key("params"), key("c"), Seg::Index(1)]), (3, 21));
        assert_eq!(at(&[key("body"), Seg::Index(1)]), (6, 5));
        assert_eq!(at(&[key("body"), Seg::Index(1), key("out")]), (6, 15));
        // A missing step falls back to the deepest ancestor.
        assert_eq!(at(&[key("body"), Seg::Index(1), key("kernel")]), (6, 5));
    }

    #[test]
    fn spans_cover_values_without_surrounding_trivia() {
        let text =
            "Network(name: \"n\" /* c */, params: {\"c\": [1, 2] , \"w\": 1e-5}, body: [Relu, Conv(out: 4)])";
        let map = SourceMap::new("f.ron".into(), text);
        let span = |path: &[Seg]| map.span(path).map(|r| &text[r]);
        let key = |k: &str| Seg::Key(k.to_string());
        assert_eq!(span(&[key("name")]), Some("\"n\""));
        assert_eq!(span(&[key("params"), key("c")]), Some("[1, 2]"));
        assert_eq!(span(&[key("params"), key("w")]), Some("1e-5"));
        assert_eq!(span(&[key("body"), Seg::Index(0)]), Some("Relu"));
        assert_eq!(span(&[key("body"), Seg::Index(1)]), Some("Conv(out: 4)"));
        assert_eq!(span(&[key("params"), key("missing")]), None);
    }
}
