//! Choosing the files of a package with Serverless Framework v3 `package.patterns`.
//!
//! [`select_files`] starts from every file under the service directory, marks them all
//! included, then applies a list of rules in order; the **last rule that matches a file
//! decides**. The rules are, in this order:
//!
//! 1. The default excludes, [`DEFAULT_EXCLUDES`]:
//!    `.git/**`, `.gitignore`, `.DS_Store`, `npm-debug.log`, `yarn-*.log`,
//!    `.serverless/**`, `.serverless_plugins/**` (the Serverless Framework's own list), plus
//!    `.stratus/**` (Stratus's state directory) and `node_modules/.bin/**`,
//!    `**/node_modules/.bin/**` (npm's command shims: nothing in Lambda runs them, and they
//!    are symlinks that would store a second copy of each tool's entry script).
//!    As in Serverless these are matched from the service root, so `.gitignore` excludes the
//!    root `.gitignore` only.
//! 2. The service configuration file ([`SelectOptions::config_file`]; when unknown, every
//!    root `serverless.{yml,yaml,json,js,ts,cjs,mjs}`, see [`CONFIG_FILE_NAMES`]).
//! 3. `.env*` when [`SelectOptions::use_dotenv`] is set (Serverless's `useDotenv`).
//! 4. The package output directory ([`SelectOptions::output_dir`], when it is inside the
//!    service directory). Zip files elsewhere are packaged like any other file: a `*.zip`
//!    may well be data the function reads.
//! 5. [`SelectOptions::extra_excludes`]: layer directories and legacy `package.exclude`.
//! 6. devDependencies, when [`SelectOptions::exclude_dev_dependencies`] is set (the
//!    default, like Serverless's `excludeDevDependencies`): the directory of every package
//!    in `node_modules` reachable only through devDependencies, as computed by
//!    [`crate::node_deps::node_dependencies`]. When `package.json` lists dependencies but
//!    nothing is installed, this step is skipped with
//!    [`SelectWarning::NodeModulesMissing`] (Python services often list their Serverless
//!    plugins that way); [`crate::node_production_files`] makes that an error.
//! 7. The caller's patterns, in order: `pattern` includes, `!pattern` excludes.
//!
//! Because user patterns come last they can re-include anything the defaults excluded
//! (`node_modules/.bin/**` for example).
//!
//! ## Glob syntax
//!
//! Patterns are matched against `/`-separated paths relative to the service directory, as
//! micromatch does for Serverless with `dot: true`: `*` and `?` never cross a `/` but do
//! match a leading dot, `**` matches any number of directories (including none), `{a,b}`
//! alternates, `[abc]`/`[!abc]` are classes, `\` escapes. A leading `./` is ignored. A
//! pattern without any glob character (`node_modules`, `src/lib`) or ending in `/` also
//! matches everything under the directory of that name, the way users expect `!tmp` to
//! drop a `tmp` directory. Extglobs such as `+(a|b)` are not supported and are reported
//! as invalid. Patterns that leave the service directory (`../shared/**`, absolute paths)
//! are ignored with a [`SelectWarning::PatternOutsideService`].
//!
//! ## Symlinks
//!
//! Symlinks to files and directories are followed when their target is inside the service
//! directory (the file's content is stored under the link's name). Links leaving the
//! service directory, dangling links and directory links that would loop are skipped and
//! reported as warnings, never errors.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::node_deps::{self, NodeDepsError};
use crate::walk::{self, WalkError};

// The result types live in `selection` (shared with `walk` and `node_deps` without a
// module cycle); they stay reachable under `select::` as before.
pub use crate::selection::{merge_files, zip_entries, SelectWarning, SelectedFile, Selection};

/// The Serverless Framework's default excludes plus Stratus's own (see the module docs).
pub const DEFAULT_EXCLUDES: &[&str] = &[
    ".git/**",
    ".gitignore",
    ".DS_Store",
    "npm-debug.log",
    "yarn-*.log",
    ".serverless/**",
    ".serverless_plugins/**",
    ".stratus/**",
    "node_modules/.bin/**",
    "**/node_modules/.bin/**",
];

/// Names of the service configuration file, excluded from the service root when
/// [`SelectOptions::config_file`] is not given.
pub const CONFIG_FILE_NAMES: &[&str] = &[
    "serverless.yml",
    "serverless.yaml",
    "serverless.json",
    "serverless.js",
    "serverless.ts",
    "serverless.cjs",
    "serverless.mjs",
];

/// Characters that make a pattern a glob rather than a literal path.
const GLOB_CHARS: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// Inputs to file selection other than the patterns themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectOptions {
    /// The service configuration file in use, relative to the service directory
    /// (`serverless.yml`, `config/serverless.ts`). It is always excluded, like in Serverless.
    /// `None` excludes every root file named in [`CONFIG_FILE_NAMES`].
    pub config_file: Option<String>,
    /// Serverless's `useDotenv`: when true, `.env*` files in the service root are excluded.
    pub use_dotenv: bool,
    /// Where packages are written (`package.path`, `--package`), absolute or relative to the
    /// service directory. Excluded when inside the service directory (`.serverless` always is).
    pub output_dir: Option<PathBuf>,
    /// More exclude globs applied after the defaults and before devDependencies and the
    /// patterns: layer directories (`layers/**`) and legacy `package.exclude` entries
    /// (where, as in Serverless, a leading `!` re-includes).
    pub extra_excludes: Vec<String>,
    /// Serverless's `package.excludeDevDependencies` (default true): leave out packages in
    /// `node_modules` that only devDependencies need.
    pub exclude_dev_dependencies: bool,
}

impl Default for SelectOptions {
    fn default() -> Self {
        Self {
            config_file: None,
            use_dotenv: false,
            output_dir: None,
            extra_excludes: Vec::new(),
            exclude_dev_dependencies: true,
        }
    }
}

/// Errors from [`select_files`] and [`select_function_files`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// A pattern is not a valid glob.
    #[error("invalid package pattern '{pattern}': {source}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What the glob parser reported.
        source: globset::Error,
    },
    /// The service directory could not be listed.
    #[error(transparent)]
    ListFiles(#[from] WalkError),
    /// devDependencies could not be worked out.
    #[error(transparent)]
    NodeDependencies(#[from] NodeDepsError),
    /// Every file was excluded (Serverless fails the same way).
    #[error(
        "no file in {service_dir} matches the package patterns; check `package.patterns` \
         (every file was excluded)"
    )]
    NoFilesMatched {
        /// The service directory.
        service_dir: PathBuf,
    },
}

/// One include or exclude rule, in application order.
#[derive(Debug)]
struct Rule {
    include: bool,
}

/// Compiled rules: one glob set whose matches map back to rules; the highest-numbered
/// matching rule decides.
#[derive(Debug)]
struct Rules {
    rules: Vec<Rule>,
    builder: GlobSetBuilder,
    /// Rule index of each glob added to `builder`, in order.
    owner: Vec<usize>,
}

impl Rules {
    fn new() -> Self {
        Self {
            rules: Vec::new(),
            builder: GlobSetBuilder::new(),
            owner: Vec::new(),
        }
    }

    /// Adds a pattern in Serverless syntax (`!` excludes), ignoring empty ones and warning
    /// about ones outside the service directory.
    fn add_pattern(
        &mut self,
        pattern: &str,
        warnings: &mut Vec<SelectWarning>,
    ) -> Result<(), SelectError> {
        let (include, body) = match pattern.strip_prefix('!') {
            Some(rest) => (false, rest),
            None => (true, pattern),
        };
        match expand_pattern(body) {
            Expanded::Empty => Ok(()),
            Expanded::Outside => {
                warnings.push(SelectWarning::PatternOutsideService {
                    pattern: pattern.to_owned(),
                });
                Ok(())
            }
            Expanded::Globs(globs) => self.add_globs(include, &globs, pattern),
        }
    }

    /// Adds a rule matching a literal path and everything under it.
    fn add_literal(&mut self, include: bool, path: &str) -> Result<(), SelectError> {
        let escaped = globset::escape(path);
        let globs = [escaped.clone(), format!("{escaped}/**")];
        self.add_globs(include, &globs, path)
    }

    fn add_globs(
        &mut self,
        include: bool,
        globs: &[String],
        original: &str,
    ) -> Result<(), SelectError> {
        let index = self.rules.len();
        for g in globs {
            let glob = GlobBuilder::new(g)
                .literal_separator(true)
                .backslash_escape(true)
                .empty_alternates(true)
                .build()
                .map_err(|source| SelectError::InvalidPattern {
                    pattern: original.to_owned(),
                    source,
                })?;
            self.builder.add(glob);
            self.owner.push(index);
        }
        self.rules.push(Rule { include });
        Ok(())
    }

    fn compile(self) -> Result<Compiled, SelectError> {
        let set = self
            .builder
            .build()
            .map_err(|source| SelectError::InvalidPattern {
                pattern: "(combined patterns)".to_owned(),
                source,
            })?;
        Ok(Compiled {
            set,
            owner: self.owner,
            include: self.rules.into_iter().map(|r| r.include).collect(),
        })
    }
}

/// Rules ready for matching.
#[derive(Debug)]
struct Compiled {
    set: GlobSet,
    owner: Vec<usize>,
    include: Vec<bool>,
}

impl Compiled {
    /// Whether `path` ends up included: the last matching rule decides, no match includes.
    fn included(&self, path: &str, scratch: &mut Vec<usize>) -> bool {
        self.set.matches_into(path, scratch);
        scratch
            .iter()
            .map(|&g| self.owner[g])
            .max()
            .is_none_or(|rule| self.include[rule])
    }
}

/// A pattern body after normalization.
#[derive(Debug, PartialEq, Eq)]
enum Expanded {
    /// Nothing to match (empty pattern).
    Empty,
    /// The pattern leaves the service directory.
    Outside,
    /// Globs to match; any of them matching means the pattern matches.
    Globs(Vec<String>),
}

/// Normalizes a pattern body (without its `!`): strips `./`, rejects `..` and absolute
/// paths, and makes literal and `/`-terminated patterns match their directory's contents.
fn expand_pattern(body: &str) -> Expanded {
    let mut p = body;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    if p.is_empty() || p == "." {
        return Expanded::Empty;
    }
    if p.starts_with('/') || p == ".." || p.starts_with("../") || p.contains("/../") {
        return Expanded::Outside;
    }
    if p.ends_with('/') {
        let dir = p.trim_end_matches('/');
        return Expanded::Globs(vec![format!("{dir}/**")]);
    }
    if p.contains(GLOB_CHARS) {
        Expanded::Globs(vec![p.to_owned()])
    } else {
        Expanded::Globs(vec![p.to_owned(), format!("{p}/**")])
    }
}

/// Chooses the files of a service package.
///
/// `patterns` are the service's `package.patterns`, applied after the defaults described
/// in the module docs. Returns the files sorted by zip path (so [`crate::zip_files`] gives
/// byte-identical zips for identical inputs) and any warnings. Fails if a pattern is
/// invalid, the tree cannot be read, devDependencies cannot be worked out, or nothing is
/// left.
pub fn select_files(
    service_dir: &Path,
    patterns: &[String],
    opts: &SelectOptions,
) -> Result<Selection, SelectError> {
    let mut warnings = Vec::new();
    let mut rules = Rules::new();
    add_default_rules(service_dir, opts, &mut rules, &mut warnings)?;
    for p in patterns {
        rules.add_pattern(p, &mut warnings)?;
    }
    let compiled = rules.compile()?;

    let (walked, walk_warnings) = walk::walk(service_dir, "")?;
    let mut scratch = Vec::new();
    let mut files: Vec<SelectedFile> = walked
        .into_iter()
        .filter(|f| compiled.included(&f.rel, &mut scratch))
        .map(|f| SelectedFile {
            zip_path: f.rel,
            source: f.source,
            executable: f.executable,
        })
        .collect();
    if files.is_empty() {
        return Err(SelectError::NoFilesMatched {
            service_dir: service_dir.to_path_buf(),
        });
    }
    files.sort();
    // Warnings about links that the patterns exclude anyway (a `.git` link, say) would
    // only be noise.
    warnings.extend(
        walk_warnings
            .into_iter()
            .filter(|w| warning_relevant(w, &compiled, &mut scratch)),
    );
    Ok(Selection { files, warnings })
}

/// Whether a walk warning is about something the rules would have included. A link to a
/// directory is judged by a name inside it (approximate: `dir/*.js` rules are not
/// considered), a link to a file by its own name.
fn warning_relevant(w: &SelectWarning, compiled: &Compiled, scratch: &mut Vec<usize>) -> bool {
    let (path, is_dir) = match w {
        SelectWarning::SymlinkOutsideService { path, target } => (path, target.is_dir()),
        SelectWarning::SymlinkLoop { path, .. } => (path, true),
        SelectWarning::BrokenSymlink { path, .. } => (path, false),
        _ => return true,
    };
    if is_dir {
        compiled.included(&format!("{path}/index"), scratch)
    } else {
        compiled.included(path, scratch)
    }
}

/// Chooses the files of one function's package when the service is packaged
/// `individually`: the function's `package.patterns` are applied after the service's, so
/// they can narrow or widen what the service selects.
pub fn select_function_files(
    service_dir: &Path,
    service_patterns: &[String],
    function_patterns: &[String],
    opts: &SelectOptions,
) -> Result<Selection, SelectError> {
    let all: Vec<String> = service_patterns
        .iter()
        .chain(function_patterns)
        .cloned()
        .collect();
    select_files(service_dir, &all, opts)
}

/// Adds rules 1–6 of the module docs.
fn add_default_rules(
    service_dir: &Path,
    opts: &SelectOptions,
    rules: &mut Rules,
    warnings: &mut Vec<SelectWarning>,
) -> Result<(), SelectError> {
    for p in DEFAULT_EXCLUDES {
        rules.add_pattern(&format!("!{p}"), warnings)?;
    }
    match &opts.config_file {
        Some(config) => {
            if let Some(rel) = relative_inside(service_dir, Path::new(config)) {
                rules.add_literal(false, &rel)?;
            }
        }
        None => {
            for name in CONFIG_FILE_NAMES {
                rules.add_literal(false, name)?;
            }
        }
    }
    if opts.use_dotenv {
        rules.add_pattern("!.env*", warnings)?;
    }
    if let Some(out) = &opts.output_dir {
        if let Some(rel) = relative_inside(service_dir, out) {
            rules.add_literal(false, &rel)?;
        }
    }
    for p in &opts.extra_excludes {
        // Legacy `exclude` semantics: a plain entry excludes, `!entry` re-includes.
        let flipped = match p.strip_prefix('!') {
            Some(rest) => rest.to_owned(),
            None => format!("!{p}"),
        };
        rules.add_pattern(&flipped, warnings)?;
    }
    if opts.exclude_dev_dependencies {
        let deps = match node_deps::node_dependencies(service_dir) {
            Ok(deps) => deps,
            // Not fatal here: a Python service often lists its Serverless plugins as
            // dependencies without installing them. Node packaging should call
            // `node_production_files`, which fails.
            Err(NodeDepsError::NodeModulesMissing { dependencies, .. }) => {
                warnings.push(SelectWarning::NodeModulesMissing { dependencies });
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        for dir in &deps.dev_only {
            rules.add_literal(false, dir)?;
        }
        warnings.extend(
            deps.missing
                .into_iter()
                .map(|name| SelectWarning::MissingNodeDependency { name }),
        );
    }
    Ok(())
}

/// `path` (absolute, or relative to `base`) as a clean `/`-separated path relative to
/// `base`, or `None` when it is outside `base`, is `base` itself, or is not UTF-8.
fn relative_inside(base: &Path, path: &Path) -> Option<String> {
    let rel = if path.is_absolute() {
        let base_abs = base.canonicalize().ok()?;
        let path_abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        path_abs.strip_prefix(&base_abs).ok()?.to_path_buf()
    } else {
        path.to_path_buf()
    };
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_deps::fixtures::{fabricate, write, PROD_FILES};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, rel).unwrap();
    }

    fn names(sel: &Selection) -> Vec<&str> {
        sel.files.iter().map(|f| f.zip_path.as_str()).collect()
    }

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    fn sample() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "handler.js",
            "serverless.yml",
            ".gitignore",
            ".git/HEAD",
            ".git/objects/ab/cdef",
            ".DS_Store",
            "sub/.DS_Store",
            "npm-debug.log",
            "yarn-error.log",
            ".serverless/service.zip",
            ".serverless_plugins/p.js",
            ".stratus/state.json",
            ".env",
            "src/a.js",
            "src/lib/b.js",
            "src/lib/c.txt",
            "tmp/big.bin",
            "data/archive.zip",
        ] {
            touch(root, f);
        }
        dir
    }

    #[test]
    fn default_excludes() {
        let dir = sample();
        let sel = select_files(dir.path(), &[], &SelectOptions::default()).unwrap();
        assert_eq!(
            names(&sel),
            vec![
                ".env",
                "data/archive.zip",
                "handler.js",
                "src/a.js",
                "src/lib/b.js",
                "src/lib/c.txt",
                "sub/.DS_Store",
                "tmp/big.bin",
            ]
        );
        assert!(sel.warnings.is_empty(), "{:?}", sel.warnings);

        let opts = SelectOptions {
            use_dotenv: true,
            output_dir: Some(PathBuf::from("./data")),
            config_file: Some("handler.js".to_owned()),
            ..SelectOptions::default()
        };
        let sel = select_files(dir.path(), &[], &opts).unwrap();
        assert_eq!(
            names(&sel),
            vec![
                "serverless.yml",
                "src/a.js",
                "src/lib/b.js",
                "src/lib/c.txt",
                "sub/.DS_Store",
                "tmp/big.bin",
            ]
        );
    }

    #[test]
    fn patterns_in_order_last_match_wins() {
        let dir = sample();
        let opts = SelectOptions::default();
        // Exclude everything, then re-include handler and src without its .txt files.
        let sel = select_files(
            dir.path(),
            &pats(&["!**", "handler.js", "src/**", "!src/**/*.txt"]),
            &opts,
        )
        .unwrap();
        assert_eq!(names(&sel), vec!["handler.js", "src/a.js", "src/lib/b.js"]);

        // Order matters: the later include wins over the earlier exclude, not vice versa.
        let sel = select_files(dir.path(), &pats(&["!src/**/*.txt", "src/**"]), &opts).unwrap();
        assert!(names(&sel).contains(&"src/lib/c.txt"));

        // A directory name excludes everything under it; `./` is ignored; `*` does not
        // cross `/`.
        let sel = select_files(
            dir.path(),
            &pats(&["!./tmp", "!src/lib/", "!*.js", "!{data,sub}/**"]),
            &opts,
        )
        .unwrap();
        assert_eq!(names(&sel), vec![".env", "src/a.js"]);

        // `?`, classes and re-including a default exclude.
        let sel = select_files(
            dir.path(),
            &pats(&["!**", "src/?.js", ".git/HEAD", "src/lib/[bc].*"]),
            &opts,
        )
        .unwrap();
        assert_eq!(
            names(&sel),
            vec![".git/HEAD", "src/a.js", "src/lib/b.js", "src/lib/c.txt"]
        );
    }

    #[test]
    fn function_patterns_apply_after_service_patterns() {
        let dir = sample();
        let opts = SelectOptions::default();
        let service = pats(&["!tmp/**", "!data/**"]);
        let sel = select_function_files(
            dir.path(),
            &service,
            &pats(&["!**", "src/lib/**", "data/**"]),
            &opts,
        )
        .unwrap();
        assert_eq!(
            names(&sel),
            vec!["data/archive.zip", "src/lib/b.js", "src/lib/c.txt"]
        );
    }

    #[test]
    fn errors_and_pattern_warnings() {
        let dir = sample();
        let opts = SelectOptions::default();
        let err = select_files(dir.path(), &pats(&["!**"]), &opts).unwrap_err();
        assert!(matches!(err, SelectError::NoFilesMatched { .. }), "{err}");
        assert!(err.to_string().contains("no file"), "{err}");

        let err = select_files(dir.path(), &pats(&["src/[a-"]), &opts).unwrap_err();
        assert!(matches!(err, SelectError::InvalidPattern { .. }), "{err}");
        assert!(err.to_string().contains("'src/[a-'"), "{err}");

        let sel = select_files(dir.path(), &pats(&["../other/**", "", "!/etc/**"]), &opts).unwrap();
        assert_eq!(
            sel.warnings,
            vec![
                SelectWarning::PatternOutsideService {
                    pattern: "../other/**".to_owned()
                },
                SelectWarning::PatternOutsideService {
                    pattern: "!/etc/**".to_owned()
                },
            ]
        );
        assert!(sel.warnings[0].to_string().contains("../other/**"));

        let err = select_files(&dir.path().join("missing"), &[], &opts).unwrap_err();
        assert!(matches!(err, SelectError::ListFiles(_)), "{err}");
    }

    #[test]
    fn symlinks_and_executable_bits() {
        let outside = tempfile::tempdir().unwrap();
        touch(outside.path(), "secret.txt");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, "bin/tool");
        fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("bin/tool", root.join("tool-link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("secret.txt"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join(".git")).unwrap();
        let sel = select_files(root, &[], &SelectOptions::default()).unwrap();
        assert_eq!(names(&sel), vec!["bin/tool", "tool-link"]);
        assert!(sel.files.iter().all(|f| f.executable));
        // The escaping `.git` link is excluded by default, so only `secret.txt` is reported.
        assert_eq!(sel.warnings.len(), 1, "{:?}", sel.warnings);
        assert!(
            matches!(&sel.warnings[0], SelectWarning::SymlinkOutsideService { path, .. } if path == "secret.txt")
        );
        assert!(sel.warnings[0]
            .to_string()
            .contains("points outside the service directory"));
    }

    #[test]
    fn deterministic_zip_from_selection() {
        let a = sample();
        let b = sample();
        let za = crate::zip_files(
            &select_files(a.path(), &[], &SelectOptions::default())
                .unwrap()
                .zip_entries(),
        )
        .unwrap();
        let zb = crate::zip_files(
            &select_files(b.path(), &[], &SelectOptions::default())
                .unwrap()
                .zip_entries(),
        )
        .unwrap();
        assert_eq!(za, zb);
    }

    #[test]
    fn dev_dependencies_are_excluded_and_can_be_brought_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fabricate(root);
        // Through select_files with the default excludeDevDependencies.
        let all = select_files(root, &[], &SelectOptions::default()).unwrap();
        let mut expected = vec!["handler.js", "package.json"];
        expected.extend(PROD_FILES);
        expected.sort();
        assert_eq!(
            all.files
                .iter()
                .map(|f| f.zip_path.as_str())
                .collect::<Vec<_>>(),
            expected
        );
        // A pattern can still bring a dev package back.
        let back = select_files(
            root,
            &["node_modules/jest-only/**".to_owned()],
            &SelectOptions::default(),
        )
        .unwrap();
        assert!(back
            .files
            .iter()
            .any(|f| f.zip_path == "node_modules/jest-only/index.js"));
    }

    #[test]
    fn missing_node_modules_only_warns() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "package.json",
            r#"{"dependencies":{"express":"^4"},"devDependencies":{"jest":"29"}}"#,
        );
        // select_files (which also packages Python services) only warns.
        let sel = select_files(root, &[], &SelectOptions::default()).unwrap();
        assert_eq!(
            sel.warnings,
            vec![SelectWarning::NodeModulesMissing {
                dependencies: vec!["express".to_owned()]
            }]
        );
        assert!(sel.warnings[0].to_string().contains("npm ci"));
    }

    #[test]
    fn pattern_expansion() {
        assert_eq!(expand_pattern(""), Expanded::Empty);
        assert_eq!(expand_pattern("./"), Expanded::Empty);
        assert_eq!(expand_pattern("../x"), Expanded::Outside);
        assert_eq!(expand_pattern("a/../../x"), Expanded::Outside);
        assert_eq!(expand_pattern("/abs"), Expanded::Outside);
        assert_eq!(
            expand_pattern("./node_modules"),
            Expanded::Globs(vec!["node_modules".into(), "node_modules/**".into()])
        );
        assert_eq!(
            expand_pattern("tmp//"),
            Expanded::Globs(vec!["tmp/**".into()])
        );
        assert_eq!(expand_pattern("*.js"), Expanded::Globs(vec!["*.js".into()]));
        assert_eq!(
            relative_inside(Path::new("/svc"), Path::new("./a/../b/c")),
            Some("b/c".to_owned())
        );
        assert_eq!(relative_inside(Path::new("/svc"), Path::new("../x")), None);
    }
}
