//! The text of variables: `${source:address, default, …}` inside strings.
//!
//! A `${` starts a variable only when what follows looks like a reference: a
//! name followed by `:` (but not `::`) or `(`, or another `${`. So the
//! CloudFormation placeholders that `Fn::Sub` uses (`${AWS::Region}`,
//! `${MyBucket}`, `${MyBucket.Arn}`) are left as written.

/// A string split into literal text and variables.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template(pub(crate) Vec<Part>);

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Lit(String),
    Var(VarExpr),
}

/// `${primary, fallback, …}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VarExpr {
    /// The variable as written, `${…}` included.
    pub(crate) text: String,
    /// The reference, itself possibly built from variables
    /// (`self:custom.${opt:stage}`).
    pub(crate) primary: Template,
    /// What to use, in order, when the primary has no value.
    pub(crate) fallbacks: Vec<Param>,
}

/// A default after a comma.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    /// `'text'` or `"text"`.
    Str(String),
    /// `12`, `-3`.
    Int(i64),
    /// `1.5`.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// `${…}`.
    Var(VarExpr),
    /// A bare reference, `self:provider.stage` (the older Serverless form).
    Ref(Template),
}

/// A reference after its own variables are substituted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reference {
    /// `name:address`.
    Source { name: String, address: String },
    /// `name(arg, …)` or `name(arg, …):address`.
    Function {
        name: String,
        args: Vec<String>,
        address: Option<String>,
    },
}

impl Template {
    /// Whether any variable is present.
    pub(crate) fn has_vars(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Part::Var(_)))
    }

    /// The variable, when the whole string is exactly one variable (so its
    /// value keeps its type).
    pub(crate) fn single_var(&self) -> Option<&VarExpr> {
        match self.0.as_slice() {
            [Part::Var(v)] => Some(v),
            _ => None,
        }
    }
}

/// Splits `s` into literal text and variables.
pub(crate) fn parse_template(s: &str) -> Result<Template, String> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let mut i = 0;
    let mut lit_start = 0;
    while i < b.len() {
        if b[i] == b'$' && b.get(i + 1) == Some(&b'{') && is_var_start(&s[i + 2..]) {
            let end = find_close(s, i + 2)
                .ok_or_else(|| format!("unterminated variable `{}`: missing `}}`", &s[i..]))?;
            if lit_start < i {
                parts.push(Part::Lit(s[lit_start..i].to_string()));
            }
            parts.push(Part::Var(parse_var(&s[i..=end], &s[i + 2..end])?));
            i = end + 1;
            lit_start = i;
        } else {
            i += 1;
        }
    }
    if lit_start < b.len() {
        parts.push(Part::Lit(s[lit_start..].to_string()));
    }
    Ok(Template(parts))
}

/// Whether the text after `${` starts a variable.
fn is_var_start(rest: &str) -> bool {
    if rest.starts_with("${") {
        return true;
    }
    let n = ident_len(rest);
    if n == 0 {
        return false;
    }
    let after = &rest[n..];
    after.starts_with('(') || (after.starts_with(':') && !after.starts_with("::"))
}

/// Length of a leading `[A-Za-z][A-Za-z0-9]*`.
fn ident_len(s: &str) -> usize {
    let b = s.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        return 0;
    }
    b.iter().take_while(|c| c.is_ascii_alphanumeric()).count()
}

/// Index of the `}` closing a variable whose content starts at `start`,
/// skipping nested variables and quoted text.
fn find_close(s: &str, start: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            q @ (b'\'' | b'"') => {
                if let Some(off) = s[i + 1..].find(q as char) {
                    i += off + 2;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Splits at commas that are not inside a nested variable, parentheses or quotes.
fn split_top_level(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut vars, mut parens) = (0usize, 0usize);
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                vars += 1;
                i += 2;
                continue;
            }
            b'}' if vars > 0 => vars -= 1,
            b'(' => parens += 1,
            b')' if parens > 0 => parens -= 1,
            q @ (b'\'' | b'"') => {
                if let Some(off) = s[i + 1..].find(q as char) {
                    i += off + 2;
                    continue;
                }
            }
            b',' if vars == 0 && parens == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

fn parse_var(text: &str, inner: &str) -> Result<VarExpr, String> {
    let mut pieces = split_top_level(inner).into_iter();
    let primary = pieces.next().unwrap_or_default().trim();
    if primary.is_empty() {
        return Err(format!("`{text}` names no source"));
    }
    let primary = parse_template(primary)?;
    let fallbacks = pieces
        .map(|p| parse_param(p, text))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VarExpr {
        text: text.to_string(),
        primary,
        fallbacks,
    })
}

fn parse_param(raw: &str, text: &str) -> Result<Param, String> {
    let p = raw.trim();
    if p.is_empty() {
        return Err(format!("empty default value in `{text}`"));
    }
    for q in ['\'', '"'] {
        if p.starts_with(q) {
            return match p[1..].strip_suffix(q) {
                Some(inner) if !inner.contains(q) => Ok(Param::Str(inner.to_string())),
                _ => Err(format!("unterminated quoted default {p} in `{text}`")),
            };
        }
    }
    match p {
        "true" => return Ok(Param::Bool(true)),
        "false" => return Ok(Param::Bool(false)),
        "null" => return Ok(Param::Null),
        _ => {}
    }
    if let Some(n) = parse_number(p) {
        return Ok(n);
    }
    if p.starts_with("${") && find_close(p, 2) == Some(p.len() - 1) && is_var_start(&p[2..]) {
        return Ok(Param::Var(parse_var(p, &p[2..p.len() - 1])?));
    }
    if is_var_start(p) {
        return Ok(Param::Ref(parse_template(p)?));
    }
    Err(format!(
        "invalid default value `{p}` in `{text}`: write literal text in quotes, e.g. '{p}'"
    ))
}

fn parse_number(p: &str) -> Option<Param> {
    let digits = p.strip_prefix('-').unwrap_or(p);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) {
        return None;
    }
    match frac {
        None => p.parse().ok().map(Param::Int),
        Some(f) if all_digits(f) => p.parse().ok().map(Param::Float),
        Some(_) => None,
    }
}

/// Reads `source:address`, `fn(args)` or `fn(args):address`.
pub(crate) fn parse_reference(r: &str) -> Result<Reference, String> {
    let r = r.trim();
    let n = ident_len(r);
    if n == 0 {
        return Err(format!(
            "`{r}` is not a variable reference; expected `source:address` such as `self:custom.key`"
        ));
    }
    let name = r[..n].to_string();
    let rest = &r[n..];
    if let Some(address) = rest.strip_prefix(':') {
        return Ok(Reference::Source {
            name,
            address: address.trim().to_string(),
        });
    }
    if let Some(args_and_more) = rest.strip_prefix('(') {
        let close = matching_paren(args_and_more)
            .ok_or_else(|| format!("`{r}`: missing `)` after the arguments of `{name}`"))?;
        let args_text = &args_and_more[..close];
        let after = &args_and_more[close + 1..];
        let args = if args_text.trim().is_empty() {
            Vec::new()
        } else {
            split_top_level(args_text)
                .into_iter()
                .map(|a| unquote(a.trim()).to_string())
                .collect()
        };
        let address = match after.strip_prefix(':') {
            Some(a) => Some(a.trim().to_string()),
            None if after.trim().is_empty() => None,
            None => {
                return Err(format!(
                    "`{r}`: unexpected `{after}` after `{name}(…)`; an address follows a `:`"
                ))
            }
        };
        return Ok(Reference::Function {
            name,
            args,
            address,
        });
    }
    Err(format!(
        "`{r}` is not a variable reference; expected `source:address` such as `self:custom.key`"
    ))
}

fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(s: &str) -> VarExpr {
        parse_template(s).unwrap().single_var().unwrap().clone()
    }

    #[test]
    fn literal_text_is_kept() {
        let t = parse_template("plain text").unwrap();
        assert!(!t.has_vars());
        assert_eq!(t.0, vec![Part::Lit("plain text".into())]);
    }

    #[test]
    fn cloudformation_placeholders_are_not_variables() {
        for s in [
            "${AWS::Region}",
            "${MyBucket}",
            "arn:${AWS::Partition}:s3:::${Bucket.Arn}/*",
            "${ x}",
        ] {
            assert!(!parse_template(s).unwrap().has_vars(), "{s}");
        }
    }

    #[test]
    fn variables_inside_strings() {
        let t = parse_template("pre-${opt:stage}-post").unwrap();
        assert_eq!(t.0.len(), 3);
        assert!(t.single_var().is_none());
        assert!(matches!(&t.0[1], Part::Var(v) if v.text == "${opt:stage}"));
    }

    #[test]
    fn defaults_of_every_kind() {
        let v = var("${env:X, 'a, b', \"c\", 3, -1.5, true, null, ${self:y}, self:z}");
        assert_eq!(v.fallbacks.len(), 8);
        assert_eq!(v.fallbacks[0], Param::Str("a, b".into()));
        assert_eq!(v.fallbacks[1], Param::Str("c".into()));
        assert_eq!(v.fallbacks[2], Param::Int(3));
        assert_eq!(v.fallbacks[3], Param::Float(-1.5));
        assert_eq!(v.fallbacks[4], Param::Bool(true));
        assert_eq!(v.fallbacks[5], Param::Null);
        assert!(matches!(&v.fallbacks[6], Param::Var(inner) if inner.text == "${self:y}"));
        assert!(matches!(&v.fallbacks[7], Param::Ref(_)));
    }

    #[test]
    fn nested_variables_in_the_reference() {
        let v = var("${self:custom.${opt:stage}}");
        assert_eq!(v.primary.0.len(), 2);
        assert!(v.fallbacks.is_empty());
        let v = var("${strToBool(${env:X, 'false'})}");
        assert!(
            v.fallbacks.is_empty(),
            "the comma belongs to the nested variable"
        );
    }

    #[test]
    fn bare_word_default_is_an_error() {
        let e = parse_template("${opt:stage, dev}").unwrap_err();
        assert_eq!(
            e,
            "invalid default value `dev` in `${opt:stage, dev}`: write literal text in quotes, e.g. 'dev'"
        );
    }

    #[test]
    fn unterminated_variable_is_an_error() {
        assert!(parse_template("x ${self:a")
            .unwrap_err()
            .starts_with("unterminated variable"));
    }

    #[test]
    fn references() {
        assert_eq!(
            parse_reference("self:custom.a").unwrap(),
            Reference::Source {
                name: "self".into(),
                address: "custom.a".into()
            }
        );
        assert_eq!(
            parse_reference("file(./a.yml):x.y").unwrap(),
            Reference::Function {
                name: "file".into(),
                args: vec!["./a.yml".into()],
                address: Some("x.y".into())
            }
        );
        assert_eq!(
            parse_reference("file('./a.json')").unwrap(),
            Reference::Function {
                name: "file".into(),
                args: vec!["./a.json".into()],
                address: None
            }
        );
        assert!(parse_reference("file(./a.yml)x").is_err());
        assert!(parse_reference("9abc").is_err());
    }
}
