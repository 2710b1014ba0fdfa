//! Variable resolution: every `${…}` in the configuration is replaced by its
//! value before the schema is read.
//!
//! Sources (Serverless Framework v3):
//!
//! | written | value |
//! | --- | --- |
//! | `${self:custom.key}`, `${self:a.0.b}`, `${self:}` | another part of the configuration (list items by index; empty address = the whole configuration) |
//! | `${opt:stage}`, `${opt:name}`, `${opt:}` | `--stage` (else the effective stage, see below), `--region`, any other CLI option, or all of them |
//! | `${env:NAME}` | an environment variable ([`crate::Options::env`]) |
//! | `${file(./x.yml):a.b}`, `${file(./x.json)}` | a value from, or the whole of, a YAML or JSON file, relative to the service directory (other extensions: the text) |
//! | `${sls:stage}` | the effective stage: `--stage`, else `provider.stage`, else `dev` |
//! | `${sls:instanceId}` | a random id, the same for the whole load ([`crate::Options::instance_id`] fixes it) |
//! | `${param:name}` | `--param name=…`, else `params.<stage>.name`, else `params.default.name` |
//! | `${strToBool(x)}` | `true` for `true`/`1`, `false` for `false`/`0` (trimmed, any case) |
//!
//! Defaults follow commas and are tried in order when a value is missing (`null`
//! counts as missing): `'text'`, `"text"`, numbers, `true`, `false`, `null`,
//! another variable `${…}`, or a bare reference `self:provider.stage`.
//! Variables nest (`${self:custom.${opt:stage}}`), may sit inside longer text
//! (`svc-${sls:stage}` is a string) and inside keys, and a value that is exactly
//! one variable keeps its type (numbers, booleans, maps and lists stay what they
//! are). A value that depends on itself is an error naming the chain.
//!
//! Other sources (`ssm`, `cf`, `s3`, `aws`, plugin sources, …) are not supported
//! by Stratus. Decision: when such a variable has a default that yields a value,
//! the default is used and a warning says so; when nothing yields a value the
//! load fails with an error naming the key. Every section is resolved (Stratus
//! carries `custom` and `resources` in its model), except `params` of other
//! stages, which are never needed.
//!
//! Values read from the environment, CLI options and included files' raw text
//! are data: `${…}` inside them is not resolved again.

mod syntax;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{Diagnostic, Severity};
use crate::spanned::{self, Entry, Node, ParseError, Span, Value};
use crate::Options;

use syntax::{parse_reference, parse_template, Param, Part, Reference, Template, VarExpr};

/// Sources this resolver answers.
const SUPPORTED_SOURCES: &str = "self, opt, env, file, sls, param, strToBool";

/// How deep references may chain before we call it runaway.
const MAX_DEPTH: usize = 64;

/// Why a variable could not be resolved. Each displays as
/// `file:line:col: path: message`.
#[derive(Debug, thiserror::Error)]
pub enum VarError {
    /// The `${…}` text itself is malformed.
    #[error("{span}: {path}: invalid variable: {message}")]
    Syntax {
        /// Where the value is written.
        span: Span,
        /// Key path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Neither the reference nor any default has a value.
    #[error("{span}: {path}: cannot resolve {expr}: {reason}")]
    NotFound {
        /// Where the value is written.
        span: Span,
        /// Key path.
        path: String,
        /// The variable as written.
        expr: String,
        /// Why there is no value, and that no default helped.
        reason: String,
    },
    /// The variable's source is not supported by Stratus and no default has a value.
    #[error("{span}: {path}: cannot resolve {expr}: the variable source `{source_name}` is not supported by Stratus (supported: {SUPPORTED_SOURCES}); give a default, e.g. {example}")]
    Unsupported {
        /// Where the value is written.
        span: Span,
        /// Key path.
        path: String,
        /// The variable as written.
        expr: String,
        /// The source (`ssm`, `cf`, …).
        source_name: String,
        /// The variable with a default added.
        example: String,
    },
    /// A value that depends on itself.
    #[error("{span}: {path}: variable cycle: {chain}")]
    Cycle {
        /// Where the value is written.
        span: Span,
        /// Key path.
        path: String,
        /// `self:custom.a -> self:custom.b -> self:custom.a`.
        chain: String,
    },
    /// A map, list or null used inside a longer string or a key.
    #[error("{span}: {path}: {expr} resolves to {found}, which cannot be part of a string")]
    NotEmbeddable {
        /// Where the value is written.
        span: Span,
        /// Key path.
        path: String,
        /// The variable as written.
        expr: String,
        /// "a map", "a list", "null".
        found: &'static str,
    },
    /// A source given an address or argument it does not take.
    #[error("{span}: {path}: {expr}: {message}")]
    BadArgument {
        /// Where the value is written.
        span: Span,
        /// Key path.
        path: String,
        /// The variable as written.
        expr: String,
        /// What is wrong.
        message: String,
    },
    /// A file named by `${file(…)}` exists but cannot be read or parsed.
    #[error("{span}: {path}: {expr}: {message}")]
    File {
        /// Where the value is written.
        span: Span,
        /// Key path.
        path: String,
        /// The variable as written.
        expr: String,
        /// What went wrong.
        message: String,
    },
    /// A file named by `${file(…)}` is not valid YAML/JSON.
    #[error("{span}: {path}: in {expr}: {source}")]
    FileParse {
        /// Where the value is written.
        span: Span,
        /// Key path.
        path: String,
        /// The variable as written.
        expr: String,
        /// The parse error, with the included file's own position.
        source: Box<ParseError>,
    },
    /// Two keys of one map are equal once their variables are resolved.
    #[error("{span}: {path}: key `{key}` appears twice once variables are resolved")]
    DuplicateKey {
        /// Where the second key is written.
        span: Span,
        /// Path of the map.
        path: String,
        /// The resolved key.
        key: String,
    },
    /// References chain deeper than any sane configuration does.
    #[error("{span}: {path}: variables nest more than {MAX_DEPTH} levels deep")]
    TooDeep {
        /// Where the value is written.
        span: Span,
        /// Key path.
        path: String,
    },
}

/// The outcome of resolving a configuration.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The configuration with every variable replaced.
    pub(crate) root: Node,
    /// Defaults used in place of unsupported sources.
    pub(crate) warnings: Vec<Diagnostic>,
    /// The effective stage.
    pub(crate) stage: String,
}

/// Resolves every variable of `root`; `file(…)` paths start at `service_dir`.
pub(crate) fn resolve(
    root: Node,
    service_dir: &Path,
    opts: &Options,
) -> Result<Resolved, VarError> {
    resolve_with(root, service_dir, opts, false)
}

/// [`resolve`], or with `for_print` as the Serverless Framework v3 resolves
/// the configuration it prints: `${…}` in map keys kept as written, and the
/// `params` of every stage resolved.
pub(crate) fn resolve_with(
    root: Node,
    service_dir: &Path,
    opts: &Options,
    for_print: bool,
) -> Result<Resolved, VarError> {
    let mut r = Resolver {
        for_print,
        opts,
        dir: service_dir.to_path_buf(),
        main: root,
        files: HashMap::new(),
        done: HashSet::new(),
        keys_done: HashSet::new(),
        stack: Vec::new(),
        warnings: Vec::new(),
        stage: None,
        resolving_stage: false,
        instance_id: opts.instance_id.clone().unwrap_or_else(random_instance_id),
    };
    let stage = r.stage()?;
    // Everything but `params` of other stages.
    let root_path: Vec<Seg> = Vec::new();
    r.ensure_shallow(&DocId::Main, &root_path)?;
    let top_keys: Vec<String> = match &r.main.value {
        Value::Map(entries) => entries.iter().map(|e| e.key.clone()).collect(),
        _ => Vec::new(),
    };
    for key in top_keys {
        let path = vec![Seg::Key(key.clone())];
        if key == "params" && !for_print {
            r.ensure_shallow(&DocId::Main, &path)?;
            for group in [stage.as_str(), "default"] {
                let group_path = vec![Seg::Key(key.clone()), Seg::Key(group.to_string())];
                if r.node_at(&DocId::Main, &group_path).is_some() {
                    r.resolve_subtree(&DocId::Main, &group_path)?;
                }
            }
        } else {
            r.resolve_subtree(&DocId::Main, &path)?;
        }
    }
    Ok(Resolved {
        root: r.main,
        warnings: r.warnings,
        stage,
    })
}

fn random_instance_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Which document a path is in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DocId {
    Main,
    /// An included file, by its normalized absolute path.
    File(PathBuf),
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A file read by `${file(…)}`.
#[derive(Debug)]
struct FileDoc {
    /// Name shown to users, relative to the service directory.
    display: String,
    root: Node,
}

/// The result of looking up one reference.
enum Lookup {
    Found(Node),
    /// No value; why.
    Missing(String),
    /// The source is not one we resolve.
    Unsupported(String),
}

/// Where the value being resolved is written.
struct Ctx {
    span: Span,
    path: String,
}

struct Resolver<'a> {
    /// Resolving as v3 does for `print` (see [`resolve_with`]).
    for_print: bool,
    opts: &'a Options,
    dir: PathBuf,
    main: Node,
    /// `None`: the file does not exist.
    files: HashMap<PathBuf, Option<FileDoc>>,
    /// Subtrees with no variable left.
    done: HashSet<(DocId, Vec<Seg>)>,
    /// Maps whose keys are resolved.
    keys_done: HashSet<(DocId, Vec<Seg>)>,
    /// Values being resolved, outermost first (for cycle detection).
    stack: Vec<(DocId, Vec<Seg>)>,
    warnings: Vec<Diagnostic>,
    stage: Option<String>,
    /// True while `provider.stage` is being resolved to find the stage, when
    /// `${opt:stage}` can only mean the CLI option.
    resolving_stage: bool,
    instance_id: String,
}

impl Resolver<'_> {
    fn root(&self, doc: &DocId) -> Option<&Node> {
        match doc {
            DocId::Main => Some(&self.main),
            DocId::File(p) => self.files.get(p)?.as_ref().map(|f| &f.root),
        }
    }

    fn root_mut(&mut self, doc: &DocId) -> Option<&mut Node> {
        match doc {
            DocId::Main => Some(&mut self.main),
            DocId::File(p) => self.files.get_mut(p)?.as_mut().map(|f| &mut f.root),
        }
    }

    fn node_at(&self, doc: &DocId, path: &[Seg]) -> Option<&Node> {
        let mut node = self.root(doc)?;
        for seg in path {
            node = child(node, seg)?;
        }
        Some(node)
    }

    fn node_at_mut(&mut self, doc: &DocId, path: &[Seg]) -> Option<&mut Node> {
        let mut node = self.root_mut(doc)?;
        for seg in path {
            node = match (&mut node.value, seg) {
                (Value::Map(entries), Seg::Key(k)) => {
                    &mut entries.iter_mut().find(|e| &e.key == k)?.value
                }
                (Value::Seq(items), Seg::Index(i)) => items.get_mut(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    fn is_done(&self, doc: &DocId, path: &[Seg]) -> bool {
        (0..=path.len()).any(|n| self.done.contains(&(doc.clone(), path[..n].to_vec())))
    }

    /// How a path is shown in messages: `functions.hello.events[0]`.
    fn display_path(&self, path: &[Seg]) -> String {
        let mut s = String::new();
        for seg in path {
            match seg {
                Seg::Key(k) => s = spanned::join_path(&s, k),
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }

    /// How a position in a document is named in a cycle chain.
    fn chain_label(&self, doc: &DocId, path: &[Seg]) -> String {
        let address = path
            .iter()
            .map(|s| match s {
                Seg::Key(k) => k.clone(),
                Seg::Index(i) => i.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".");
        match doc {
            DocId::Main => format!("self:{address}"),
            DocId::File(p) => {
                let display = self
                    .files
                    .get(p)
                    .and_then(Option::as_ref)
                    .map_or_else(|| p.display().to_string(), |f| f.display.clone());
                format!("file({display}):{address}")
            }
        }
    }

    /// Inside an included file the span names that file, and the path is
    /// within it.
    fn ctx(&self, path: &[Seg], span: Span) -> Ctx {
        Ctx {
            span,
            path: self.display_path(path),
        }
    }

    /// Resolves the value at `path` and everything under it.
    fn resolve_subtree(&mut self, doc: &DocId, path: &[Seg]) -> Result<(), VarError> {
        if self.is_done(doc, path) {
            return Ok(());
        }
        self.ensure_shallow(doc, path)?;
        if self.is_done(doc, path) {
            return Ok(());
        }
        let children: Vec<Seg> = match self.node_at(doc, path).map(|n| &n.value) {
            Some(Value::Map(entries)) => entries.iter().map(|e| Seg::Key(e.key.clone())).collect(),
            Some(Value::Seq(items)) => (0..items.len()).map(Seg::Index).collect(),
            _ => Vec::new(),
        };
        let mut child_path = path.to_vec();
        for seg in children {
            child_path.push(seg);
            self.resolve_subtree(doc, &child_path)?;
            child_path.pop();
        }
        self.done.insert((doc.clone(), path.to_vec()));
        Ok(())
    }

    /// Makes the node at `path` itself final: a string with variables is
    /// replaced by its value, a map's keys are resolved. Children are left.
    fn ensure_shallow(&mut self, doc: &DocId, path: &[Seg]) -> Result<(), VarError> {
        if self.is_done(doc, path) {
            return Ok(());
        }
        let Some(node) = self.node_at(doc, path) else {
            return Ok(());
        };
        match &node.value {
            Value::String(s) => {
                let span = node.span.clone();
                let template = parse_template(s).map_err(|message| VarError::Syntax {
                    span,
                    path: self.display_path(path),
                    message,
                })?;
                if template.has_vars() {
                    self.resolve_leaf(doc, path, &template)?;
                } else {
                    self.done.insert((doc.clone(), path.to_vec()));
                }
            }
            Value::Map(_) => {
                let key = (doc.clone(), path.to_vec());
                if !self.keys_done.contains(&key) {
                    if !self.for_print {
                        self.resolve_keys(doc, path)?;
                    }
                    self.keys_done.insert(key);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn enter(&mut self, doc: &DocId, path: &[Seg], span: &Span) -> Result<(), VarError> {
        let frame = (doc.clone(), path.to_vec());
        if let Some(pos) = self.stack.iter().position(|f| *f == frame) {
            let mut chain: Vec<String> = self.stack[pos..]
                .iter()
                .map(|(d, p)| self.chain_label(d, p))
                .collect();
            chain.push(self.chain_label(doc, path));
            let (first_doc, first_path) = &self.stack[pos];
            let first_span = self
                .node_at(first_doc, first_path)
                .map_or_else(|| span.clone(), |n| n.span.clone());
            return Err(VarError::Cycle {
                span: first_span,
                path: self.display_path(first_path),
                chain: chain.join(" -> "),
            });
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(VarError::TooDeep {
                span: span.clone(),
                path: self.display_path(path),
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    fn resolve_leaf(
        &mut self,
        doc: &DocId,
        path: &[Seg],
        template: &Template,
    ) -> Result<(), VarError> {
        let span = self
            .node_at(doc, path)
            .map_or_else(|| Span::start_of("?".into()), |n| n.span.clone());
        self.enter(doc, path, &span)?;
        let cx = self.ctx(path, span.clone());
        let result = self.eval_template(&cx, template);
        self.stack.pop();
        let mut value = result?;
        value.span = span;
        if let Some(slot) = self.node_at_mut(doc, path) {
            *slot = value;
        }
        self.done.insert((doc.clone(), path.to_vec()));
        Ok(())
    }

    fn resolve_keys(&mut self, doc: &DocId, path: &[Seg]) -> Result<(), VarError> {
        let Some(Value::Map(entries)) = self.node_at(doc, path).map(|n| &n.value) else {
            return Ok(());
        };
        let keys: Vec<(String, Span)> = entries
            .iter()
            .map(|e| (e.key.clone(), e.key_span.clone()))
            .collect();
        let mut resolved = Vec::with_capacity(keys.len());
        let mut changed = false;
        for (key, key_span) in &keys {
            let mut key_path = path.to_vec();
            key_path.push(Seg::Key(key.clone()));
            let template = parse_template(key).map_err(|message| VarError::Syntax {
                span: key_span.clone(),
                path: self.display_path(&key_path),
                message,
            })?;
            if !template.has_vars() {
                resolved.push(key.clone());
                continue;
            }
            changed = true;
            self.enter(doc, &key_path, key_span)?;
            let cx = self.ctx(&key_path, key_span.clone());
            let result = self.interpolate(&cx, &template);
            self.stack.pop();
            resolved.push(result?);
        }
        if !changed {
            return Ok(());
        }
        for (i, key) in resolved.iter().enumerate() {
            if resolved[..i].contains(key) {
                return Err(VarError::DuplicateKey {
                    span: keys[i].1.clone(),
                    path: self.display_path(path),
                    key: key.clone(),
                });
            }
        }
        if let Some(Node {
            value: Value::Map(entries),
            ..
        }) = self.node_at_mut(doc, path)
        {
            for (entry, key) in entries.iter_mut().zip(resolved) {
                entry.key = key;
            }
        }
        Ok(())
    }

    /// The value of a whole string: typed when it is exactly one variable.
    fn eval_template(&mut self, cx: &Ctx, template: &Template) -> Result<Node, VarError> {
        match template.single_var() {
            Some(var) => self.eval_required(cx, var),
            None => Ok(Node::new(
                cx.span.clone(),
                Value::String(self.interpolate(cx, template)?),
            )),
        }
    }

    /// Text with every variable's value substituted; values must be scalars.
    fn interpolate(&mut self, cx: &Ctx, template: &Template) -> Result<String, VarError> {
        let mut out = String::new();
        for part in &template.0 {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(var) => {
                    let node = self.eval_required(cx, var)?;
                    match node.scalar_text() {
                        Some(text) => out.push_str(&text),
                        None => {
                            return Err(VarError::NotEmbeddable {
                                span: cx.span.clone(),
                                path: cx.path.clone(),
                                expr: var.text.clone(),
                                found: node.kind(),
                            })
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// A variable that must have a value.
    fn eval_required(&mut self, cx: &Ctx, var: &VarExpr) -> Result<Node, VarError> {
        match self.eval_var(cx, var)? {
            Lookup::Found(node) => Ok(node),
            Lookup::Missing(reason) => Err(VarError::NotFound {
                span: cx.span.clone(),
                path: cx.path.clone(),
                expr: var.text.clone(),
                reason: if var.fallbacks.is_empty() {
                    format!("{reason}, and no default is given")
                } else {
                    format!("{reason}, and no default has a value")
                },
            }),
            Lookup::Unsupported(source_name) => Err(VarError::Unsupported {
                span: cx.span.clone(),
                path: cx.path.clone(),
                example: match var.text.strip_suffix('}') {
                    Some(head) => format!("{head}, 'value'}}"),
                    None => var.text.clone(),
                },
                expr: var.text.clone(),
                source_name,
            }),
        }
    }

    /// Tries the reference, then each default in turn.
    fn eval_var(&mut self, cx: &Ctx, var: &VarExpr) -> Result<Lookup, VarError> {
        let mut first_miss: Option<Lookup> = None;
        let mut unsupported: Vec<String> = Vec::new();
        let mut outcome = self.eval_ref(cx, var, &var.primary)?;
        let mut fallbacks = var.fallbacks.iter();
        loop {
            match outcome {
                Lookup::Found(node) => {
                    for source in unsupported {
                        self.warnings.push(Diagnostic::new(
                            Severity::Warning,
                            cx.span.clone(),
                            cx.path.clone(),
                            format!(
                                "the variable source `{source}` in {} is not supported by Stratus; using the default value",
                                var.text
                            ),
                        ));
                    }
                    return Ok(Lookup::Found(node));
                }
                Lookup::Missing(reason) => {
                    first_miss.get_or_insert(Lookup::Missing(reason));
                }
                Lookup::Unsupported(source) => {
                    unsupported.push(source.clone());
                    first_miss.get_or_insert(Lookup::Unsupported(source));
                }
            }
            let Some(param) = fallbacks.next() else {
                return Ok(first_miss.unwrap_or(Lookup::Missing("no value".into())));
            };
            let literal = |v: Value| Lookup::Found(Node::new(cx.span.clone(), v));
            outcome = match param {
                Param::Str(s) => literal(Value::String(s.clone())),
                Param::Int(i) => literal(Value::Int(*i)),
                Param::Float(f) => literal(Value::Float(*f)),
                Param::Bool(b) => literal(Value::Bool(*b)),
                Param::Null => literal(Value::Null),
                Param::Var(inner) => self.eval_var(cx, inner)?,
                Param::Ref(template) => self.eval_ref(cx, var, template)?,
            };
        }
    }

    /// Looks up one reference (`self:…`, `env:…`, …).
    fn eval_ref(
        &mut self,
        cx: &Ctx,
        var: &VarExpr,
        template: &Template,
    ) -> Result<Lookup, VarError> {
        let text = self.interpolate(cx, template)?;
        let reference = parse_reference(&text).map_err(|message| VarError::Syntax {
            span: cx.span.clone(),
            path: cx.path.clone(),
            message,
        })?;
        let bad = |message: String| VarError::BadArgument {
            span: cx.span.clone(),
            path: cx.path.clone(),
            expr: var.text.clone(),
            message,
        };
        let string =
            |s: &str| Lookup::Found(Node::new(cx.span.clone(), Value::String(s.to_string())));
        let found_or = |node: Option<Node>, missing: String| match node {
            Some(n) if n.value != Value::Null => Lookup::Found(n),
            _ => Lookup::Missing(missing),
        };
        Ok(match reference {
            Reference::Source { name, address } => match name.as_str() {
                "self" => {
                    let segs = split_address(&address);
                    let node = self.lookup(&DocId::Main, &segs)?;
                    found_or(node, format!("`{address}` is not set in the configuration"))
                }
                "env" => {
                    if address.is_empty() {
                        return Err(bad("`env:` needs a variable name, e.g. ${env:HOME}".into()));
                    }
                    match self.opts.env.get(&address) {
                        Some(v) => string(v),
                        None => Lookup::Missing(format!("environment variable `{address}` is not set")),
                    }
                }
                "opt" => self.opt(cx, &address)?,
                "sls" => match address.as_str() {
                    "stage" => string(&self.stage()?),
                    "instanceId" => string(&self.instance_id.clone()),
                    other => {
                        return Err(bad(format!(
                            "unknown `sls` address `{other}` (supported: stage, instanceId)"
                        )))
                    }
                },
                "param" => {
                    if address.is_empty() {
                        return Err(bad("`param:` needs a parameter name, e.g. ${param:domain}".into()));
                    }
                    let node = self.param(cx, &address)?;
                    let stage = self.stage()?;
                    found_or(
                        node,
                        format!("parameter `{address}` is not set by --param, params.{stage} or params.default"),
                    )
                }
                "file" | "strToBool" => {
                    return Err(bad(format!(
                        "`{name}` takes an argument in parentheses, e.g. ${{file(./config.yml):key}} or ${{strToBool(true)}}"
                    )))
                }
                _ => Lookup::Unsupported(name),
            },
            Reference::Function {
                name,
                args,
                address,
            } => match name.as_str() {
                "file" => {
                    let [file] = args.as_slice() else {
                        return Err(bad("`file` takes exactly one path, e.g. ${file(./config.yml)}".into()));
                    };
                    self.file(cx, var, file, address.as_deref())?
                }
                "strToBool" => {
                    if address.is_some() {
                        return Err(bad("`strToBool(…)` takes no address".into()));
                    }
                    let [arg] = args.as_slice() else {
                        return Err(bad("`strToBool` takes exactly one value, e.g. ${strToBool(${env:FLAG})}".into()));
                    };
                    match arg.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" => Lookup::Found(Node::new(cx.span.clone(), Value::Bool(true))),
                        "false" | "0" => Lookup::Found(Node::new(cx.span.clone(), Value::Bool(false))),
                        _ => {
                            return Err(bad(format!(
                                "strToBool expects \"true\", \"false\", \"1\" or \"0\", found {arg:?}"
                            )))
                        }
                    }
                }
                _ => Lookup::Unsupported(name),
            },
        })
    }

    fn opt(&mut self, cx: &Ctx, address: &str) -> Result<Lookup, VarError> {
        let string =
            |s: &str| Lookup::Found(Node::new(cx.span.clone(), Value::String(s.to_string())));
        Ok(match address {
            "" => {
                let mut all: BTreeMap<String, String> = self.opts.cli_options.clone();
                if let Some(s) = &self.opts.stage {
                    all.insert("stage".into(), s.clone());
                }
                if let Some(r) = &self.opts.region {
                    all.insert("region".into(), r.clone());
                }
                let entries = all
                    .into_iter()
                    .map(|(k, v)| Entry {
                        key: k,
                        key_span: cx.span.clone(),
                        value: Node::new(cx.span.clone(), Value::String(v)),
                    })
                    .collect();
                Lookup::Found(Node::new(cx.span.clone(), Value::Map(entries)))
            }
            "stage" => match self.cli_stage() {
                Some(s) => string(&s),
                None if self.resolving_stage => {
                    Lookup::Missing("no --stage option was given".into())
                }
                None => string(&self.stage()?),
            },
            "region" => match self
                .opts
                .region
                .clone()
                .or_else(|| self.opts.cli_options.get("region").cloned())
            {
                Some(r) => string(&r),
                None => Lookup::Missing("no --region option was given".into()),
            },
            other => match self.opts.cli_options.get(other) {
                Some(v) => string(v),
                None => Lookup::Missing(format!("no --{other} option was given")),
            },
        })
    }

    fn cli_stage(&self) -> Option<String> {
        self.opts
            .stage
            .clone()
            .or_else(|| self.opts.cli_options.get("stage").cloned())
    }

    /// The effective stage: `--stage`, else `provider.stage`, else `dev`.
    fn stage(&mut self) -> Result<String, VarError> {
        if let Some(s) = &self.stage {
            return Ok(s.clone());
        }
        if let Some(s) = self.cli_stage() {
            self.stage = Some(s.clone());
            return Ok(s);
        }
        self.resolving_stage = true;
        let found = self.lookup(&DocId::Main, &["provider".into(), "stage".into()]);
        self.resolving_stage = false;
        let stage = found?
            .and_then(|n| n.scalar_text())
            .unwrap_or_else(|| "dev".to_string());
        self.stage = Some(stage.clone());
        Ok(stage)
    }

    fn param(&mut self, cx: &Ctx, name: &str) -> Result<Option<Node>, VarError> {
        if let Some(v) = self.opts.params.get(name) {
            return Ok(Some(Node::new(cx.span.clone(), Value::String(v.clone()))));
        }
        let stage = self.stage()?;
        for group in [stage.as_str(), "default"] {
            let found = self.lookup(
                &DocId::Main,
                &["params".into(), group.to_string(), name.to_string()],
            )?;
            if let Some(node) = found.filter(|n| n.value != Value::Null) {
                return Ok(Some(node));
            }
        }
        Ok(None)
    }

    fn file(
        &mut self,
        cx: &Ctx,
        var: &VarExpr,
        raw: &str,
        address: Option<&str>,
    ) -> Result<Lookup, VarError> {
        let full = normalize(&self.dir.join(raw));
        let display = display_relative(&self.dir, &full, raw);
        if !self.files.contains_key(&full) {
            let loaded = self.read_file(cx, var, &full, &display)?;
            self.files.insert(full.clone(), loaded);
        }
        if !matches!(self.files.get(&full), Some(Some(_))) {
            return Ok(Lookup::Missing(format!("file {display} does not exist")));
        }
        let segs = split_address(address.unwrap_or(""));
        let node = self.lookup(&DocId::File(full), &segs)?;
        Ok(match node {
            Some(n) if n.value != Value::Null => Lookup::Found(n),
            _ => match address {
                Some(a) if !a.is_empty() => {
                    Lookup::Missing(format!("`{a}` is not set in {display}"))
                }
                _ => Lookup::Missing(format!("{display} is empty")),
            },
        })
    }

    fn read_file(
        &mut self,
        cx: &Ctx,
        var: &VarExpr,
        full: &Path,
        display: &str,
    ) -> Result<Option<FileDoc>, VarError> {
        let text = match std::fs::read_to_string(full) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(VarError::File {
                    span: cx.span.clone(),
                    path: cx.path.clone(),
                    expr: var.text.clone(),
                    message: format!("cannot read {display}: {e}"),
                })
            }
        };
        let name: Arc<str> = display.into();
        let ext = full
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let parsed = match ext.as_str() {
            // Included files print as v3 reads them too.
            "yml" | "yaml" => spanned::parse_yaml_with(&text, name, self.for_print),
            "json" => spanned::parse_json(&text, name),
            "js" | "cjs" | "mjs" | "ts" => {
                return Err(VarError::File {
                    span: cx.span.clone(),
                    path: cx.path.clone(),
                    expr: var.text.clone(),
                    message: format!(
                        "{display}: JavaScript files are not supported by Stratus; use a YAML or JSON file"
                    ),
                })
            }
            // Any other file is its text.
            _ => Ok(Node::new(Span::start_of(name), Value::String(text))),
        };
        let root = parsed.map_err(|source| VarError::FileParse {
            span: cx.span.clone(),
            path: cx.path.clone(),
            expr: var.text.clone(),
            source: Box::new(source),
        })?;
        let raw_text = ext != "yml" && ext != "yaml" && ext != "json";
        let doc = DocId::File(full.to_path_buf());
        if raw_text {
            // Plain text is data, never a template.
            self.done.insert((doc, Vec::new()));
        }
        Ok(Some(FileDoc {
            display: display.to_string(),
            root,
        }))
    }

    /// The fully resolved value at `segs` of `doc`, resolving what lies on the
    /// way there; `None` when nothing is there.
    fn lookup(&mut self, doc: &DocId, segs: &[String]) -> Result<Option<Node>, VarError> {
        let mut path: Vec<Seg> = Vec::with_capacity(segs.len());
        self.ensure_shallow(doc, &path)?;
        for seg in segs {
            let Some(node) = self.node_at(doc, &path) else {
                return Ok(None);
            };
            let next = match &node.value {
                Value::Map(entries) => entries
                    .iter()
                    .any(|e| &e.key == seg)
                    .then(|| Seg::Key(seg.clone())),
                Value::Seq(items) => seg
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < items.len())
                    .map(Seg::Index),
                _ => None,
            };
            let Some(next) = next else {
                return Ok(None);
            };
            path.push(next);
            self.ensure_shallow(doc, &path)?;
        }
        self.resolve_subtree(doc, &path)?;
        Ok(self.node_at(doc, &path).cloned())
    }
}

fn child<'n>(node: &'n Node, seg: &Seg) -> Option<&'n Node> {
    match (&node.value, seg) {
        (Value::Map(entries), Seg::Key(k)) => {
            entries.iter().find(|e| &e.key == k).map(|e| &e.value)
        }
        (Value::Seq(items), Seg::Index(i)) => items.get(*i),
        _ => None,
    }
}

/// `a.b.0` → `["a", "b", "0"]`; the empty address is the root.
fn split_address(address: &str) -> Vec<String> {
    if address.is_empty() {
        Vec::new()
    } else {
        address.split('.').map(str::to_string).collect()
    }
}

/// Removes `.` and resolves `..` without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The file's name for messages: relative to the service directory when it is
/// inside it, else as written.
fn display_relative(dir: &Path, full: &Path, raw: &str) -> String {
    match full.strip_prefix(normalize(dir)) {
        Ok(rel) => rel.to_string_lossy().replace('\\', "/"),
        Err(_) => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str, opts: &Options) -> Result<(serde_json::Value, Vec<String>), VarError> {
        let root = spanned::parse_yaml(yaml, "serverless.yml".into()).unwrap();
        let r = resolve(root, Path::new("/nonexistent"), opts)?;
        Ok((
            r.root.to_json(),
            r.warnings.iter().map(ToString::to_string).collect(),
        ))
    }

    fn opts() -> Options {
        Options {
            instance_id: Some("fixed".into()),
            ..Options::default()
        }
    }

    #[test]
    fn self_references_keep_types() {
        let (j, _) = run(
            "custom:\n  n: 5\n  b: true\n  o: {x: 1}\n  l: [1, 2]\nout:\n  n: ${self:custom.n}\n  b: ${self:custom.b}\n  o: ${self:custom.o}\n  l: ${self:custom.l.1}\n  s: n=${self:custom.n}\n",
            &opts(),
        )
        .unwrap();
        assert_eq!(
            j["out"],
            serde_json::json!({"n": 5, "b": true, "o": {"x": 1}, "l": 2, "s": "n=5"})
        );
    }

    #[test]
    fn opt_stage_is_the_effective_stage() {
        let (j, _) = run(
            "provider:\n  stage: qa\na: ${opt:stage}\nb: ${sls:stage}\n",
            &opts(),
        )
        .unwrap();
        assert_eq!((j["a"].as_str(), j["b"].as_str()), (Some("qa"), Some("qa")));
        let o = Options {
            stage: Some("prod".into()),
            ..opts()
        };
        let (j, _) = run("provider:\n  stage: qa\na: ${opt:stage}\n", &o).unwrap();
        assert_eq!(j["a"], "prod");
    }

    #[test]
    fn stage_defaulting_from_opt_inside_provider_stage() {
        let (j, _) = run(
            "provider:\n  stage: ${opt:stage, 'beta'}\na: ${sls:stage}\n",
            &opts(),
        )
        .unwrap();
        assert_eq!(j["a"], "beta");
    }

    #[test]
    fn sls_stage_inside_provider_stage_is_a_cycle() {
        let e = run("provider:\n  stage: ${sls:stage}\n", &opts()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "serverless.yml:2:10: provider.stage: variable cycle: self:provider.stage -> self:provider.stage"
        );
    }

    #[test]
    fn whole_section_self_reference_is_a_cycle() {
        let e = run("custom:\n  a: ${self:custom}\n", &opts()).unwrap_err();
        assert!(matches!(e, VarError::Cycle { .. }), "{e}");
    }

    #[test]
    fn opt_lists_all_options() {
        let mut o = opts();
        o.cli_options.insert("verbose".into(), "1".into());
        o.region = Some("eu-west-1".into());
        let (j, _) = run("a: ${opt:}\nb: ${opt:region}\nc: ${opt:missing, 'd'}\n", &o).unwrap();
        assert_eq!(
            j["a"],
            serde_json::json!({"region": "eu-west-1", "verbose": "1"})
        );
        assert_eq!(j["b"], "eu-west-1");
        assert_eq!(j["c"], "d");
    }

    #[test]
    fn env_values_are_not_resolved_again() {
        let mut o = opts();
        o.env.insert("X".into(), "${self:nope}".into());
        let (j, _) = run("a: ${env:X}\n", &o).unwrap();
        assert_eq!(j["a"], "${self:nope}");
    }

    #[test]
    fn str_to_bool() {
        let mut o = opts();
        o.env.insert("F".into(), " TRUE ".into());
        let (j, _) = run(
            "a: ${strToBool(${env:F})}\nb: ${strToBool(0)}\nc: ${strToBool(${env:G, 'false'})}\n",
            &o,
        )
        .unwrap();
        assert_eq!(j, serde_json::json!({"a": true, "b": false, "c": false}));
        let e = run("a: ${strToBool(yes)}\n", &o).unwrap_err();
        assert_eq!(
            e.to_string(),
            "serverless.yml:1:4: a: ${strToBool(yes)}: strToBool expects \"true\", \"false\", \"1\" or \"0\", found \"yes\""
        );
    }

    #[test]
    fn null_counts_as_missing() {
        let (j, _) = run("custom:\n  n: null\na: ${self:custom.n, 'dflt'}\n", &opts()).unwrap();
        assert_eq!(j["a"], "dflt");
    }

    #[test]
    fn explicit_null_default_is_a_value() {
        let (j, _) = run("a: ${env:NOPE, null}\n", &opts()).unwrap();
        assert!(j["a"].is_null());
    }

    #[test]
    fn embedding_a_map_in_a_string_is_an_error() {
        let e = run("custom:\n  o: {a: 1}\nx: pre-${self:custom.o}\n", &opts()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "serverless.yml:3:4: x: ${self:custom.o} resolves to a map, which cannot be part of a string"
        );
    }

    #[test]
    fn instance_id_is_fixed_per_load() {
        let (j, _) = run(
            "a: ${sls:instanceId}\nb: ${sls:instanceId}\n",
            &Options::default(),
        )
        .unwrap();
        assert_eq!(j["a"], j["b"]);
        assert_eq!(j["a"].as_str().map(str::len), Some(16));
    }

    #[test]
    fn unknown_sls_address() {
        let e = run("a: ${sls:nope}\n", &opts()).unwrap_err();
        assert!(e
            .to_string()
            .ends_with("unknown `sls` address `nope` (supported: stage, instanceId)"));
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(
            display_relative(
                Path::new("/svc"),
                &normalize(Path::new("/svc/./conf/x.yml")),
                "./conf/x.yml"
            ),
            "conf/x.yml"
        );
        assert_eq!(
            display_relative(
                Path::new("/svc"),
                &normalize(Path::new("/svc/../x.yml")),
                "../x.yml"
            ),
            "../x.yml"
        );
    }
}
