//! YAML and JSON text → a small tree of values that remember where they were
//! written ([`Node`]), so that every later error can say file, line and column.
//!
//! YAML is read with `saphyr-parser`'s event stream (which carries positions);
//! this module only assembles the events into a tree and applies the YAML 1.2
//! core schema to plain scalars, the way js-yaml (which the Serverless Framework
//! uses) does: `true`/`false`, `null`/`~`/empty, decimal, octal (`0o`) and hex
//! (`0x`) integers, floats, `.inf` and `.nan`. `yes`/`no`/`on`/`off` stay strings.
//!
//! Also handled as the Serverless Framework does: anchors and aliases
//! (`&name`/`*name`), merge keys (`<<: *base`), duplicate keys (an error), and
//! CloudFormation short-form tags (`!Ref X` → `{"Ref": "X"}`, `!GetAtt A.Arn` →
//! `{"Fn::GetAtt": ["A", "Arn"]}`, `!Sub …` → `{"Fn::Sub": …}`, …).
//!
//! JSON files are checked with `serde_json` first (so JSON syntax errors carry
//! serde_json's line and column), then read through the same YAML event stream
//! (JSON is YAML 1.2) to get a position for every value.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Tag};
use serde::{Deserialize, Serialize};

/// Where something was written: a file (as shown to the user, relative to the
/// service directory), a 1-based line and a 1-based column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    /// File name as shown to the user, e.g. `serverless.yml` or `config/dev.yml`.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
}

impl Span {
    /// A span at `line`:`column` of `file`.
    pub fn new(file: Arc<str>, line: u32, column: u32) -> Self {
        Self { file, line, column }
    }

    /// The first character of `file`.
    pub fn start_of(file: Arc<str>) -> Self {
        Self::new(file, 1, 1)
    }

    fn from_marker(file: &Arc<str>, marker: &saphyr_parser::Marker) -> Self {
        Self::new(
            file.clone(),
            u32::try_from(marker.line()).unwrap_or(u32::MAX).max(1),
            u32::try_from(marker.col() + 1).unwrap_or(u32::MAX),
        )
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub span: Span,
    /// The value.
    pub value: Value,
}

/// A YAML/JSON value whose children are [`Node`]s.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A whole number that fits in 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string.
    String(String),
    /// A list.
    Seq(Vec<Node>),
    /// A map, in the order written.
    Map(Vec<Entry>),
}

/// One `key: value` of a map.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key, as text.
    pub key: String,
    /// Where the key was written.
    pub key_span: Span,
    /// The value.
    pub value: Node,
}

impl Node {
    /// A node at `span`.
    pub fn new(span: Span, value: Value) -> Self {
        Self { span, value }
    }

    /// The entries, when this is a map.
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The string, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key`, when this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// "a map", "a list", "a string", … — for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// What was found, for messages: scalars as written (strings quoted, long
    /// ones shortened), collections by kind.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::String(s) => {
                let short: String = s.chars().take(60).collect();
                if short.len() < s.len() {
                    format!("{:?}…", short)
                } else {
                    format!("{s:?}")
                }
            }
            Value::Seq(_) | Value::Map(_) => self.kind().into(),
        }
    }

    /// The scalar as text (`12`, `true`, `abc`); `None` for null and collections.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(format_float(*f)),
            Value::String(s) => Some(s.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// The tree as JSON (spans dropped). Non-finite floats, which JSON cannot
    /// hold, become `null`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// A tree from JSON, every node at `span`.
    pub fn from_json(value: &serde_json::Value, span: &Span) -> Node {
        use serde_json::Value as J;
        let v = match value {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::String(s.clone()),
            J::Array(items) => Value::Seq(items.iter().map(|i| Node::from_json(i, span)).collect()),
            J::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| Entry {
                        key: k.clone(),
                        key_span: span.clone(),
                        value: Node::from_json(v, span),
                    })
                    .collect(),
            ),
        };
        Node::new(span.clone(), v)
    }
}

/// Formats a float the way YAML/JSON would print it (`1.5`, `2.0`, `.inf`).
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { ".inf" } else { "-.inf" }.into()
    } else if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

/// Why a YAML or JSON document could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The YAML scanner or parser rejected the text.
    #[error("{span}: invalid YAML: {message}")]
    Yaml {
        /// Where.
        span: Span,
        /// What the YAML parser said.
        message: String,
    },
    /// serde_json rejected the text.
    #[error("{span}: invalid JSON: {message}")]
    Json {
        /// Where.
        span: Span,
        /// What serde_json said.
        message: String,
    },
    /// The same key twice in one map.
    #[error("{span}: {path}: duplicate key `{key}` (first written at line {first_line})")]
    DuplicateKey {
        /// Where the second one is.
        span: Span,
        /// Path of the map's value for that key.
        path: String,
        /// The key.
        key: String,
        /// Line of the first one.
        first_line: u32,
    },
    /// A map or list used as a key.
    #[error("{span}: {path}: a key must be a plain string, found {found}")]
    ComplexKey {
        /// Where.
        span: Span,
        /// Path of the map.
        path: String,
        /// "a map" / "a list".
        found: &'static str,
    },
    /// A tag we do not know (`!Foo`).
    #[error("{span}: {path}: unsupported YAML tag `{tag}` (supported: !!str, !!int, !!float, !!bool, !!null and CloudFormation short forms such as !Ref, !GetAtt, !Sub, !Join)")]
    UnknownTag {
        /// Where.
        span: Span,
        /// Path of the tagged value.
        path: String,
        /// The tag as written.
        tag: String,
    },
    /// A core tag whose value does not fit (`!!int abc`).
    #[error("{span}: {path}: `{tag}` expects {expected}, found {found}")]
    BadTaggedValue {
        /// Where.
        span: Span,
        /// Path of the tagged value.
        path: String,
        /// The tag.
        tag: String,
        /// What the tag accepts.
        expected: &'static str,
        /// What was there.
        found: String,
    },
    /// `*name` without a matching `&name`.
    #[error("{span}: {path}: alias refers to an unknown anchor")]
    UnknownAlias {
        /// Where.
        span: Span,
        /// Path of the alias.
        path: String,
    },
    /// A `<<` merge key whose value is not a map or a list of maps.
    #[error("{span}: {path}: a `<<` merge key takes a map or a list of maps, found {found}")]
    BadMerge {
        /// Where.
        span: Span,
        /// Path of the map being merged into.
        path: String,
        /// What was there.
        found: &'static str,
    },
    /// More than one `---` document.
    #[error("{span}: a second YAML document starts here; a configuration file holds exactly one")]
    MultipleDocuments {
        /// Where the second document starts.
        span: Span,
    },
}

/// Reads YAML text. `file` is the name used in spans. An empty document is `null`.
pub fn parse_yaml(text: &str, file: Arc<str>) -> Result<Node, ParseError> {
    parse_yaml_with(text, file, false)
}

/// [`parse_yaml`]; with `js_timestamps`, unquoted YAML timestamps
/// (`2024-01-15`, `2024-01-15T10:20:30+02:00`) become the text JavaScript
/// gives the dates js-yaml reads (`2024-01-15T08:20:30.000Z`), as the
/// Serverless Framework prints them.
pub(crate) fn parse_yaml_with(
    text: &str,
    file: Arc<str>,
    js_timestamps: bool,
) -> Result<Node, ParseError> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        documents: 0,
        js_timestamps,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| scan_error(&file, &e))?;
        let at = Span::from_marker(&file, &span.start);
        builder.event(event, at)?;
    }
    Ok(builder
        .root
        .unwrap_or_else(|| Node::new(Span::start_of(file), Value::Null)))
}

/// Reads JSON text. `file` is the name used in spans.
pub fn parse_json(text: &str, file: Arc<str>) -> Result<Node, ParseError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        let message = match full.rsplit_once(" at line ") {
            Some((m, _)) => m.to_string(),
            None => full,
        };
        ParseError::Json {
            span: Span::new(
                file.clone(),
                u32::try_from(e.line()).unwrap_or(u32::MAX).max(1),
                u32::try_from(e.column()).unwrap_or(u32::MAX).max(1),
            ),
            message,
        }
    })?;
    // Valid JSON is YAML 1.2; reading it again as YAML gives every value a
    // position. Should the YAML reader disagree on some corner, fall back to the
    // serde_json tree with every position at the top of the file.
    match parse_yaml(text, file.clone()) {
        Ok(node) if node.to_json() == value => Ok(node),
        _ => Ok(Node::from_json(&value, &Span::start_of(file))),
    }
}

fn scan_error(file: &Arc<str>, e: &ScanError) -> ParseError {
    ParseError::Yaml {
        span: Span::from_marker(file, e.marker()),
        message: e.info().to_string(),
    }
}

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        tag: Option<Tag>,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        anchor: usize,
        tag: Option<Tag>,
        entries: Vec<Entry>,
        /// The key read, waiting for its value.
        key: Option<(String, Span)>,
        /// Keys copied in by a `<<` merge: a key written later replaces the
        /// value in place (js-yaml's order: merged keys where `<<` is).
        merged: Vec<String>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    /// Plain timestamps as JavaScript dates print (see [`parse_yaml_with`]).
    js_timestamps: bool,
}

const MERGE_KEY: &str = "<<";

impl Builder {
    fn event(&mut self, event: Event<'_>, at: Span) -> Result<(), ParseError> {
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => Ok(()),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(ParseError::MultipleDocuments { span: at });
                }
                Ok(())
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) => n.clone(),
                    None => {
                        return Err(ParseError::UnknownAlias {
                            span: at,
                            path: self.path(),
                        })
                    }
                };
                // An alias in key position stands for its scalar text.
                if self.expects_key() {
                    let key = node.scalar_text().ok_or(ParseError::ComplexKey {
                        span: at.clone(),
                        path: self.path(),
                        found: node.kind(),
                    })?;
                    return self.set_key(key, at);
                }
                self.push_value(node)
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.expects_key() {
                    return self.set_key(text.into_owned(), at);
                }
                let path = self.path();
                let mut value = scalar_value(&text, style, tag.as_deref(), &at, &path)?;
                if self.js_timestamps && style == ScalarStyle::Plain && tag.is_none() {
                    if let Some(iso) = js_timestamp(&text) {
                        value = Value::String(iso);
                    }
                }
                let node = apply_cfn_tag(Node::new(at.clone(), value), tag.as_deref(), &path)?;
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node)
            }
            Event::SequenceStart(anchor, tag) => {
                if self.expects_key() {
                    return Err(ParseError::ComplexKey {
                        span: at,
                        path: self.path(),
                        found: "a list",
                    });
                }
                self.stack.push(Frame::Seq {
                    span: at,
                    anchor,
                    tag: tag.map(|t| t.into_owned()),
                    items: Vec::new(),
                });
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                if self.expects_key() {
                    return Err(ParseError::ComplexKey {
                        span: at,
                        path: self.path(),
                        found: "a map",
                    });
                }
                self.stack.push(Frame::Map {
                    span: at,
                    anchor,
                    tag: tag.map(|t| t.into_owned()),
                    entries: Vec::new(),
                    key: None,
                    merged: Vec::new(),
                });
                Ok(())
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq {
                    span,
                    anchor,
                    tag,
                    items,
                }) => {
                    let path = self.path();
                    let node = Node::new(span, Value::Seq(items));
                    self.finish_collection(node, anchor, tag.as_ref(), &path)
                }
                _ => Ok(()),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map {
                    span,
                    anchor,
                    tag,
                    entries,
                    ..
                }) => {
                    let path = self.path();
                    let node = Node::new(span, Value::Map(entries));
                    self.finish_collection(node, anchor, tag.as_ref(), &path)
                }
                _ => Ok(()),
            },
        }
    }

    fn finish_collection(
        &mut self,
        node: Node,
        anchor: usize,
        tag: Option<&Tag>,
        path: &str,
    ) -> Result<(), ParseError> {
        if let Some(t) = tag {
            if t.is_yaml_core_schema() {
                let ok = matches!(
                    (t.suffix.as_str(), &node.value),
                    ("seq", Value::Seq(_)) | ("map", Value::Map(_))
                );
                if !ok {
                    return Err(ParseError::UnknownTag {
                        span: node.span,
                        path: path.to_string(),
                        tag: tag_text(t),
                    });
                }
            }
        }
        let node = apply_cfn_tag(node, tag, path)?;
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.push_value(node)
    }

    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn set_key(&mut self, key: String, at: Span) -> Result<(), ParseError> {
        let path = self.path();
        if let Some(Frame::Map {
            entries,
            key: slot,
            merged,
            ..
        }) = self.stack.last_mut()
        {
            if key != MERGE_KEY && !merged.contains(&key) {
                if let Some(first) = entries.iter().find(|e| e.key == key) {
                    return Err(ParseError::DuplicateKey {
                        path: join_path(&path, &key),
                        key,
                        first_line: first.key_span.line,
                        span: at,
                    });
                }
            }
            *slot = Some((key, at));
        }
        Ok(())
    }

    fn push_value(&mut self, node: Node) -> Result<(), ParseError> {
        let merging = matches!(self.stack.last(), Some(Frame::Map { key: Some((k, _)), .. }) if k == MERGE_KEY);
        let path = if merging { self.path() } else { String::new() };
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                merged,
                ..
            }) => {
                if let Some((key, key_span)) = key.take() {
                    if key == MERGE_KEY {
                        let before = entries.len();
                        merge_into(entries, node, &path)?;
                        merged.extend(entries[before..].iter().map(|e| e.key.clone()));
                    } else if let Some(i) = merged.iter().position(|k| *k == key) {
                        // A written key replaces a merged one where it stands.
                        merged.remove(i);
                        if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
                            e.value = node;
                            e.key_span = key_span;
                        }
                    } else {
                        entries.push(Entry {
                            key,
                            key_span,
                            value: node,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Dotted path of the value being read, for messages.
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq { items, .. } => path.push_str(&format!("[{}]", items.len())),
                Frame::Map {
                    key: Some((k, _)), ..
                } => path = join_path(&path, k),
                Frame::Map { .. } => {}
            }
        }
        path
    }
}

/// A tag as written: `!!int`, `!Ref`.
fn tag_text(tag: &Tag) -> String {
    if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        tag.to_string()
    }
}

/// `a` + `b` → `a.b`; `"" + b` → `b`.
pub(crate) fn join_path(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// `<<: *base` / `<<: [*a, *b]`: keys not already present are added; the
/// first listed map wins among merged maps, as in YAML 1.1 and js-yaml.
fn merge_into(entries: &mut Vec<Entry>, merge: Node, path: &str) -> Result<(), ParseError> {
    let sources = match merge.value {
        Value::Map(_) => vec![merge],
        Value::Seq(items) => items,
        _ => {
            return Err(ParseError::BadMerge {
                found: merge.kind(),
                span: merge.span,
                path: path.to_string(),
            })
        }
    };
    for source in sources {
        let kind = source.kind();
        match source.value {
            Value::Map(more) => {
                for entry in more {
                    if !entries.iter().any(|e| e.key == entry.key) {
                        entries.push(entry);
                    }
                }
            }
            _ => {
                return Err(ParseError::BadMerge {
                    span: source.span,
                    path: path.to_string(),
                    found: kind,
                })
            }
        }
    }
    Ok(())
}

/// A YAML 1.1 timestamp as JavaScript's `Date.toISOString()` writes it (UTC,
/// milliseconds); `None` when `text` is not a valid timestamp.
fn js_timestamp(text: &str) -> Option<String> {
    fn digits(s: &str, min: usize, max: usize) -> Option<(u32, &str)> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        if n < min || n > max {
            return None;
        }
        Some((s[..n].parse().ok()?, &s[n..]))
    }
    let (year, rest) = digits(text, 4, 4)?;
    let rest = rest.strip_prefix('-')?;
    let date_only = text.len() == 10;
    let (month, rest) = digits(rest, if date_only { 2 } else { 1 }, 2)?;
    let rest = rest.strip_prefix('-')?;
    let (day, rest) = digits(rest, if date_only { 2 } else { 1 }, 2)?;
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?)
            .ok()?;
    let (clock, offset) = if rest.is_empty() {
        if !date_only {
            return None;
        }
        (time::Time::MIDNIGHT, time::UtcOffset::UTC)
    } else {
        let rest = rest.strip_prefix(['T', 't']).or_else(|| {
            (rest.starts_with([' ', '\t'])).then(|| rest.trim_start_matches([' ', '\t']))
        })?;
        let (h, rest) = digits(rest, 1, 2)?;
        let (mi, rest) = digits(rest.strip_prefix(':')?, 2, 2)?;
        let (sec, mut rest) = digits(rest.strip_prefix(':')?, 2, 2)?;
        let mut millis = 0;
        if let Some(frac) = rest.strip_prefix('.') {
            let n = frac.bytes().take_while(u8::is_ascii_digit).count();
            let ms: String = frac[..n].chars().chain("000".chars()).take(3).collect();
            millis = ms.parse().ok()?;
            rest = &frac[n..];
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let offset = match rest {
            "" | "Z" => time::UtcOffset::UTC,
            _ => {
                let sign: i8 = if rest.starts_with('-') { -1 } else { 1 };
                let (oh, more) = digits(rest.strip_prefix(['+', '-'])?, 1, 2)?;
                let om = match more.strip_prefix(':') {
                    Some(m) => {
                        let (om, end) = digits(m, 2, 2)?;
                        if !end.is_empty() {
                            return None;
                        }
                        om
                    }
                    None if more.is_empty() => 0,
                    None => return None,
                };
                time::UtcOffset::from_hms(
                    sign * i8::try_from(oh).ok()?,
                    sign * i8::try_from(om).ok()?,
                    0,
                )
                .ok()?
            }
        };
        let clock = time::Time::from_hms_milli(
            u8::try_from(h).ok()?,
            u8::try_from(mi).ok()?,
            u8::try_from(sec).ok()?,
            millis,
        )
        .ok()?;
        (clock, offset)
    };
    let utc = time::PrimitiveDateTime::new(date, clock)
        .assume_offset(offset)
        .to_offset(time::UtcOffset::UTC);
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.millisecond()
    ))
}

fn scalar_value(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    at: &Span,
    path: &str,
) -> Result<Value, ParseError> {
    let Some(tag) = tag.filter(|t| t.is_yaml_core_schema()) else {
        // Untagged, or a CloudFormation tag applied afterwards (`!Ref 12`
        // follows the usual rules); the non-specific tag `!` means string.
        let non_specific = tag.is_some_and(|t| t.handle == "!" && t.suffix.is_empty());
        return Ok(if style == ScalarStyle::Plain && !non_specific {
            resolve_plain(text)
        } else {
            Value::String(text.to_string())
        });
    };
    let bad = |expected: &'static str| ParseError::BadTaggedValue {
        span: at.clone(),
        path: path.to_string(),
        tag: tag_text(tag),
        expected,
        found: format!("{text:?}"),
    };
    match tag.suffix.as_str() {
        "str" | "binary" => Ok(Value::String(text.to_string())),
        "int" => parse_int(text)
            .map(Value::Int)
            .ok_or_else(|| bad("a whole number")),
        "float" => parse_float(text)
            .or_else(|| parse_int(text).map(|i| i as f64))
            .map(Value::Float)
            .ok_or_else(|| bad("a number")),
        "bool" => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| bad("true or false")),
        "null" => {
            if is_null(text) {
                Ok(Value::Null)
            } else {
                Err(bad("null"))
            }
        }
        _ => Err(ParseError::UnknownTag {
            span: at.clone(),
            path: path.to_string(),
            tag: tag_text(tag),
        }),
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x") {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        if oct.is_empty() || !oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        i64::from_str_radix(oct, 8).ok()?
    } else {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok()?
    };
    Some(if neg { -magnitude } else { magnitude })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    // [-+]? ( \.[0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let b = text.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - s;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    text.parse::<f64>().ok()
}

/// The YAML 1.2 core schema for an untagged plain scalar.
fn resolve_plain(text: &str) -> Value {
    if is_null(text) {
        return Value::Null;
    }
    if let Some(b) = parse_bool(text) {
        return Value::Bool(b);
    }
    if let Some(i) = parse_int(text) {
        return Value::Int(i);
    }
    if let Some(f) = parse_float(text) {
        return Value::Float(f);
    }
    Value::String(text.to_string())
}

/// CloudFormation intrinsic functions with a YAML short form.
const CFN_FUNCTIONS: &[&str] = &[
    "And",
    "Base64",
    "Cidr",
    "Contains",
    "EachMemberEquals",
    "EachMemberIn",
    "Equals",
    "FindInMap",
    "GetAtt",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "RefAll",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
    "ValueOf",
    "ValueOfAll",
];

/// `!Ref x` → `{"Ref": x}`, `!Condition x` → `{"Condition": x}`,
/// `!GetAtt a.b` → `{"Fn::GetAtt": ["a", "b"]}`, `!Name x` → `{"Fn::Name": x}`.
fn apply_cfn_tag(node: Node, tag: Option<&Tag>, path: &str) -> Result<Node, ParseError> {
    let Some(tag) = tag else {
        return Ok(node);
    };
    if tag.is_yaml_core_schema() || (tag.handle == "!" && tag.suffix.is_empty()) {
        return Ok(node);
    }
    let name = tag.suffix.as_str();
    let key = match name {
        "Ref" | "Condition" if tag.handle == "!" => name.to_string(),
        _ if tag.handle == "!" && CFN_FUNCTIONS.contains(&name) => format!("Fn::{name}"),
        _ => {
            return Err(ParseError::UnknownTag {
                span: node.span,
                path: path.to_string(),
                tag: tag_text(tag),
            })
        }
    };
    let span = node.span.clone();
    let value = match (name, &node.value) {
        ("GetAtt", Value::String(s)) => {
            let parts = match s.split_once('.') {
                Some((resource, attribute)) => vec![resource.to_string(), attribute.to_string()],
                None => vec![s.clone()],
            };
            Node::new(
                span.clone(),
                Value::Seq(
                    parts
                        .into_iter()
                        .map(|p| Node::new(span.clone(), Value::String(p)))
                        .collect(),
                ),
            )
        }
        _ => node,
    };
    Ok(Node::new(
        span.clone(),
        Value::Map(vec![Entry {
            key,
            key_span: span,
            value,
        }]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Node {
        parse_yaml(text, "t.yml".into()).unwrap()
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let n =
            yaml("a: 1\nb: 1.5\nc: true\nd: ~\ne: yes\nf: '1'\ng: 0x10\nh: \ni: 1e3\nj: .inf\n");
        let j = n.to_json();
        assert_eq!(j["a"], 1);
        assert_eq!(j["b"], 1.5);
        assert_eq!(j["c"], true);
        assert!(j["d"].is_null());
        assert_eq!(j["e"], "yes");
        assert_eq!(j["f"], "1");
        assert_eq!(j["g"], 16);
        assert!(j["h"].is_null());
        assert_eq!(j["i"], 1000.0);
        assert!(matches!(n.get("j").unwrap().value, Value::Float(f) if f.is_infinite()));
    }

    #[test]
    fn positions_are_one_based() {
        let n = yaml("service: x\nprovider:\n  name: aws\n");
        let p = n.get("provider").unwrap();
        let name = p.get("name").unwrap();
        assert_eq!((name.span.line, name.span.column), (3, 9));
        let e = &p.as_map().unwrap()[0];
        assert_eq!((e.key_span.line, e.key_span.column), (3, 3));
        assert_eq!(name.span.to_string(), "t.yml:3:9");
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = yaml("base: &b\n  x: 1\n  y: 2\nother:\n  <<: *b\n  y: 3\nlist: [*b]\n");
        let j = n.to_json();
        assert_eq!(j["other"], serde_json::json!({"y": 3, "x": 1}));
        assert_eq!(j["list"][0]["x"], 1);
    }

    #[test]
    fn cloudformation_short_forms() {
        let n = yaml("a: !Ref Foo\nb: !GetAtt Queue.Arn\nc: !Sub 'x-${AWS::Region}'\nd: !Join ['', [a, b]]\n");
        let j = n.to_json();
        assert_eq!(j["a"], serde_json::json!({"Ref": "Foo"}));
        assert_eq!(j["b"], serde_json::json!({"Fn::GetAtt": ["Queue", "Arn"]}));
        assert_eq!(j["c"], serde_json::json!({"Fn::Sub": "x-${AWS::Region}"}));
        assert_eq!(j["d"], serde_json::json!({"Fn::Join": ["", ["a", "b"]]}));
    }

    #[test]
    fn core_tags_force_types() {
        let j = yaml("a: !!str 12\nb: !!int '7'\n").to_json();
        assert_eq!(j["a"], "12");
        assert_eq!(j["b"], 7);
        let e = parse_yaml("a: !!int abc\n", "t.yml".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yml:1:4: a: `!!int` expects a whole number, found \"abc\""
        );
    }

    #[test]
    fn unknown_tags_are_errors() {
        let e = parse_yaml("x:\n  y: !Nope 1\n", "t.yml".into()).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("t.yml:2:6: x.y: unsupported YAML tag `!Nope`"));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n", "t.yml".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yml:4:3: b.c: duplicate key `c` (first written at line 3)"
        );
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let e = parse_yaml("a: b\n  c: d\n", "t.yml".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yml:2:4: invalid YAML: mapping values are not allowed in this context"
        );
    }

    #[test]
    fn second_document_is_an_error() {
        let e = parse_yaml("a: 1\n---\nb: 2\n", "t.yml".into()).unwrap_err();
        assert!(matches!(e, ParseError::MultipleDocuments { .. }));
    }

    #[test]
    fn empty_text_is_null() {
        assert_eq!(yaml("").value, Value::Null);
        assert_eq!(yaml("# only a comment\n").value, Value::Null);
    }

    #[test]
    fn json_has_positions_and_json_errors() {
        let n = parse_json("{\n  \"a\": {\"b\": [1, 2]}\n}\n", "x.json".into()).unwrap();
        assert_eq!(
            js_timestamp("2024-01-15").as_deref(),
            Some("2024-01-15T00:00:00.000Z")
        );
        assert_eq!(
            js_timestamp("2024-1-5 3:04:05.12345 -02:30").as_deref(),
            Some("2024-01-05T05:34:05.123Z")
        );
        assert_eq!(
            js_timestamp("2024-01-15T10:20:30+01").as_deref(),
            Some("2024-01-15T09:20:30.000Z")
        );
        assert_eq!(js_timestamp("2024-1-15"), None);
        assert_eq!(js_timestamp("2024-13-01"), None);
        assert_eq!(js_timestamp("2024-01-15 nonsense"), None);
        let n2 = parse_yaml_with("a: 2024-01-15\nb: '2024-01-15'\n", "t.yml".into(), true).unwrap();
        assert_eq!(
            n2.to_json(),
            serde_json::json!({"a": "2024-01-15T00:00:00.000Z", "b": "2024-01-15"})
        );
        let b = n.get("a").unwrap().get("b").unwrap();
        assert_eq!((b.span.line, b.span.column), (2, 14));
        let e = parse_json("{\n  \"a\": 1,\n}\n", "x.json".into()).unwrap_err();
        assert_eq!(e.to_string(), "x.json:3:1: invalid JSON: trailing comma");
    }

    #[test]
    fn describe_quotes_strings() {
        let n = yaml("a: ten\nb: 10\nc: [1]\n");
        assert_eq!(n.get("a").unwrap().describe(), "\"ten\"");
        assert_eq!(n.get("b").unwrap().describe(), "10");
        assert_eq!(n.get("c").unwrap().describe(), "a list");
    }
}
