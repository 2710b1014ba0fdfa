//! Small helpers that read typed values out of [`Node`]s and record what was
//! wrong (with its position) instead of stopping at the first problem.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Severity};
use crate::spanned::{join_path, Entry, Node, Span, Value};

/// What to do with keys the schema does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnknownKeys {
    Off,
    Warn,
    Error,
}

/// Collects errors, warnings and notes.
#[derive(Debug)]
pub(crate) struct Checker {
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) unknown: UnknownKeys,
}

impl Checker {
    pub(crate) fn new(unknown: UnknownKeys) -> Self {
        Self {
            diagnostics: Vec::new(),
            unknown,
        }
    }

    pub(crate) fn error(&mut self, span: &Span, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, span, path, message);
    }

    pub(crate) fn warn(&mut self, span: &Span, path: &str, message: impl Into<String>) {
        self.push(Severity::Warning, span, path, message);
    }

    pub(crate) fn note(&mut self, span: &Span, path: &str, message: impl Into<String>) {
        self.push(Severity::Note, span, path, message);
    }

    fn push(&mut self, severity: Severity, span: &Span, path: &str, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::new(severity, span.clone(), path, message));
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// "expected X, found Y" at `node`.
    pub(crate) fn expected(&mut self, node: &Node, path: &str, what: &str) {
        self.error(
            &node.span,
            path,
            format!("expected {what}, found {}", node.describe()),
        );
    }

    fn unknown_key(&mut self, entry: &Entry, path: &str, candidates: &[&str]) {
        let severity = match self.unknown {
            UnknownKeys::Off => return,
            UnknownKeys::Warn => Severity::Warning,
            UnknownKeys::Error => Severity::Error,
        };
        let message = match suggest(&entry.key, candidates) {
            Some(s) => format!("unknown key `{}` (did you mean `{s}`?)", entry.key),
            None => format!("unknown key `{}`", entry.key),
        };
        self.push(severity, &entry.key_span, path, message);
    }
}

/// The closest candidate within a small edit distance (case ignored).
fn suggest<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), *c))
        // Close enough to be a typo: one edit per three characters, at most three.
        .filter(|(d, _)| *d <= (key.chars().count() / 3).clamp(1, 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The keys of one map, tracking which were read.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    pub(crate) path: String,
    entries: &'a [Entry],
    used: Vec<bool>,
    asked: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// The map at `node`, or an error saying `what` was expected.
    pub(crate) fn new(c: &mut Checker, node: &'a Node, path: &str, what: &str) -> Option<Self> {
        match &node.value {
            Value::Map(entries) => Some(Self {
                path: path.to_string(),
                entries,
                used: vec![false; entries.len()],
                asked: Vec::new(),
            }),
            _ => {
                c.expected(node, path, what);
                None
            }
        }
    }

    /// The value under `key` (absent when missing or null), marking it read.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'a Node> {
        self.asked.push(key);
        let i = self.entries.iter().position(|e| e.key == key)?;
        self.used[i] = true;
        let node = &self.entries[i].value;
        (node.value != Value::Null).then_some(node)
    }

    /// Where `key` is written (the key itself), when present.
    pub(crate) fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.key_span.clone())
    }

    /// The path of `key` inside this map.
    pub(crate) fn path_of(&self, key: &str) -> String {
        join_path(&self.path, key)
    }

    /// Reports the keys never read: `ignored` ones (valid Serverless settings
    /// that Stratus does not use) as notes, the others as unknown.
    pub(crate) fn finish(self, c: &mut Checker, ignored: &[&str]) {
        let mut candidates: Vec<&str> = self.asked.clone();
        candidates.extend_from_slice(ignored);
        for (entry, used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let path = join_path(&self.path, &entry.key);
            if ignored.contains(&entry.key.as_str()) {
                c.note(&entry.key_span, &path, "accepted but not used by Stratus");
            } else {
                c.unknown_key(entry, &path, &candidates);
            }
        }
    }
}

/// A string (only a string).
pub(crate) fn string(c: &mut Checker, node: &Node, path: &str) -> Option<String> {
    match &node.value {
        Value::String(s) => Some(s.clone()),
        _ => {
            c.expected(node, path, "a string");
            None
        }
    }
}

/// A non-empty string.
pub(crate) fn non_empty_string(c: &mut Checker, node: &Node, path: &str) -> Option<String> {
    let s = string(c, node, path)?;
    if s.trim().is_empty() {
        c.error(&node.span, path, "expected a non-empty string, found \"\"");
        return None;
    }
    Some(s)
}

/// A string, number or boolean, as text.
pub(crate) fn text(c: &mut Checker, node: &Node, path: &str) -> Option<String> {
    match &node.value {
        Value::String(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => node.scalar_text(),
        _ => {
            c.expected(node, path, "a string");
            None
        }
    }
}

/// `true`/`false` (also the strings `"true"`/`"false"`, as variables produce).
pub(crate) fn boolean(c: &mut Checker, node: &Node, path: &str) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => {
            c.expected(node, path, "true or false");
            None
        }
    }
}

/// An inclusive range of whole numbers, for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    pub(crate) min: i64,
    pub(crate) max: Option<i64>,
}

impl Range {
    pub(crate) const fn between(min: i64, max: i64) -> Self {
        Self {
            min,
            max: Some(max),
        }
    }

    pub(crate) const fn at_least(min: i64) -> Self {
        Self { min, max: None }
    }

    fn contains(self, n: i64) -> bool {
        n >= self.min && n <= self.upper()
    }

    /// The largest value: the given maximum, and never more than a `u32` holds (what
    /// every setting is stored as), so an open range cannot let a value wrap or be
    /// dropped.
    fn upper(self) -> i64 {
        self.max
            .unwrap_or(i64::from(u32::MAX))
            .min(i64::from(u32::MAX))
    }

    /// The range for a message about `value`: an open range reads "0 or more",
    /// unless the value is past what it can hold.
    fn describe(self, value: &Value) -> String {
        let past = match value {
            Value::Int(n) => *n > self.upper(),
            Value::Float(f) => *f > self.upper() as f64,
            _ => false,
        };
        match self.max {
            None if !past => format!("{} or more", self.min),
            _ => format!("{}-{}", self.min, self.upper()),
        }
    }
}

/// A whole number in `range`: an integer, an integral float, or a string of
/// digits (as variables from the environment produce). `what` names the unit:
/// "a whole number of seconds" → `expected a whole number of seconds (1-900), found "ten"`.
pub(crate) fn whole(
    c: &mut Checker,
    node: &Node,
    path: &str,
    what: &str,
    range: Range,
) -> Option<u32> {
    let n = match &node.value {
        Value::Int(i) => Some(*i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Some(*f as i64),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n.filter(|&n| range.contains(n)).map(u32::try_from) {
        Some(Ok(n)) => Some(n),
        _ => {
            c.expected(
                node,
                path,
                &format!("{what} ({})", range.describe(&node.value)),
            );
            None
        }
    }
}

/// A list of strings.
pub(crate) fn string_list(c: &mut Checker, node: &Node, path: &str) -> Option<Vec<String>> {
    let Value::Seq(items) = &node.value else {
        c.expected(node, path, "a list of strings");
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match text(c, item, &format!("{path}[{i}]")) {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A list of strings, or one string read as a list of one (`allowedOrigins:
/// https://app.example.com`).
pub(crate) fn string_or_list(c: &mut Checker, node: &Node, path: &str) -> Option<Vec<String>> {
    match &node.value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Seq(_) => string_list(c, node, path),
        _ => {
            c.expected(node, path, "a string or a list of strings");
            None
        }
    }
}

/// A map of strings (numbers and booleans become text), e.g. `tags`.
pub(crate) fn string_map(
    c: &mut Checker,
    node: &Node,
    path: &str,
) -> Option<BTreeMap<String, String>> {
    let Value::Map(entries) = &node.value else {
        c.expected(node, path, "a map of strings");
        return None;
    };
    let mut out = BTreeMap::new();
    for e in entries {
        let p = join_path(path, &e.key);
        if let Some(v) = text(c, &e.value, &p) {
            out.insert(e.key.clone(), v);
        }
    }
    Some(out)
}

/// Whether `node` is a CloudFormation intrinsic: a one-key map `Ref` /
/// `Fn::…` / `Condition`.
pub(crate) fn is_intrinsic(node: &Node) -> bool {
    match node.as_map() {
        Some([e]) => e.key == "Ref" || e.key == "Condition" || e.key.starts_with("Fn::"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let c = ["memorySize", "timeout", "handler"];
        assert_eq!(suggest("memorySise", &c), Some("memorySize"));
        assert_eq!(suggest("memorysize", &c), Some("memorySize"));
        assert_eq!(suggest("timeuot", &c), Some("timeout"));
        assert_eq!(suggest("zzz", &c), None);
    }

    #[test]
    fn whole_numbers_accept_digit_strings() {
        let mut c = Checker::new(UnknownKeys::Warn);
        let n = crate::spanned::parse_yaml("a: '30'\nb: ten\nc: 30.0\nd: 901\n", "t.yml".into())
            .unwrap();
        let r = Range::between(1, 900);
        assert_eq!(
            whole(
                &mut c,
                n.get("a").unwrap(),
                "a",
                "a whole number of seconds",
                r
            ),
            Some(30)
        );
        assert_eq!(
            whole(
                &mut c,
                n.get("c").unwrap(),
                "c",
                "a whole number of seconds",
                r
            ),
            Some(30)
        );
        assert_eq!(
            whole(
                &mut c,
                n.get("b").unwrap(),
                "b",
                "a whole number of seconds",
                r
            ),
            None
        );
        assert_eq!(
            whole(
                &mut c,
                n.get("d").unwrap(),
                "d",
                "a whole number of seconds",
                r
            ),
            None
        );
        let msgs: Vec<String> = c.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "t.yml:2:4: b: expected a whole number of seconds (1-900), found \"ten\"",
                "t.yml:4:4: d: expected a whole number of seconds (1-900), found 901",
            ]
        );
    }

    #[test]
    fn open_ranges_never_wrap_or_drop_a_number() {
        // `reservedConcurrency: 4294967296` used to be dropped without a word (it fits
        // the open range but not a u32), deploying with no reservation at all.
        let text = "a: 4294967296\nb: 9223372036854775808\nc: 1e400\nd: -1\ne: 1.5\nf: '12abc'\ng: 4294967295\n";
        let n = crate::spanned::parse_yaml(text, "t.yml".into()).unwrap();
        let mut c = Checker::new(UnknownKeys::Warn);
        let r = Range::at_least(0);
        for key in ["a", "b", "c", "d", "e", "f"] {
            assert_eq!(
                whole(&mut c, n.get(key).unwrap(), key, "a number", r),
                None,
                "{key}"
            );
        }
        assert_eq!(c.diagnostics.len(), 6, "{:?}", c.diagnostics);
        assert!(
            c.diagnostics[0]
                .to_string()
                .starts_with("t.yml:1:4: a: expected a number (0-4294967295), found 4294967296"),
            "{}",
            c.diagnostics[0]
        );
        assert_eq!(
            whole(&mut c, n.get("g").unwrap(), "g", "a number", r),
            Some(u32::MAX)
        );
    }
}
