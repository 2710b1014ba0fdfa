//! CloudWatch Logs filter patterns for unstructured text, as FilterLogEvents reads
//! them: terms that must all appear (`ERROR timeout`), `"quoted phrases"` matched
//! whole, `-term` exclusions, and `?term` alternatives (at least one must appear).
//! Matching is case-sensitive, as in CloudWatch. JSON (`{ $.x = 1 }`),
//! space-delimited (`[ip, user, ...]`) and regular-expression (`%...%`) patterns
//! are refused with an error naming them.

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterPattern {
    required: Vec<String>,
    optional: Vec<String>,
    excluded: Vec<String>,
}

impl FilterPattern {
    /// Parses `text`; the error says what is wrong and at which character.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        match trimmed.chars().next() {
            Some('{') => {
                return Err(
                    "JSON filter patterns ({ $.field = ... }) are not supported by this server; use terms, \"quoted phrases\", -exclusions and ?alternatives"
                        .into(),
                )
            }
            Some('[') => {
                return Err(
                    "space-delimited filter patterns ([field, ...]) are not supported by this server; use terms, \"quoted phrases\", -exclusions and ?alternatives"
                        .into(),
                )
            }
            Some('%') => {
                return Err(
                    "regular-expression filter patterns (%...%) are not supported by this server; use terms, \"quoted phrases\", -exclusions and ?alternatives"
                        .into(),
                )
            }
            _ => {}
        }
        let mut out = Self::default();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i].is_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            let kind = chars[i];
            if kind == '-' || kind == '?' {
                i += 1;
            }
            let term = if chars.get(i) == Some(&'"') {
                let open = i;
                i += 1;
                let mut term = String::new();
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!(
                                "unterminated quoted phrase in filter pattern at character {}",
                                open + 1
                            ))
                        }
                        Some('\\') if chars.get(i + 1).is_some() => {
                            term.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            term.push(*c);
                            i += 1;
                        }
                    }
                }
                term
            } else {
                let from = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                chars[from..i].iter().collect()
            };
            if term.is_empty() {
                if kind == '-' || kind == '?' {
                    return Err(format!(
                        "'{kind}' without a term in filter pattern at character {}",
                        start + 1
                    ));
                }
                // `""` matches every event, as an empty pattern does.
                continue;
            }
            match kind {
                '-' => out.excluded.push(term),
                '?' => out.optional.push(term),
                _ => out.required.push(term),
            }
        }
        Ok(out)
    }

    /// Whether `message` matches.
    pub fn matches(&self, message: &str) -> bool {
        self.required.iter().all(|t| message.contains(t.as_str()))
            && (self.optional.is_empty()
                || self.optional.iter().any(|t| message.contains(t.as_str())))
            && !self.excluded.iter().any(|t| message.contains(t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, message: &str) -> bool {
        FilterPattern::parse(pattern).unwrap().matches(message)
    }

    #[test]
    fn terms_phrases_exclusions_and_alternatives() {
        assert!(m("", "anything"));
        assert!(m("   ", "anything"));
        assert!(m("ERROR", "an ERROR here"));
        assert!(!m("ERROR", "an error here"), "case-sensitive");
        assert!(m("ERROR timeout", "timeout: ERROR"));
        assert!(!m("ERROR timeout", "ERROR only"));
        assert!(m("\"ERROR timeout\"", "x ERROR timeout y"));
        assert!(!m("\"ERROR timeout\"", "timeout ERROR"));
        assert!(m("ERROR -retry", "ERROR final"));
        assert!(!m("ERROR -retry", "ERROR will retry"));
        assert!(m("-\"will retry\"", "ok"));
        assert!(!m("-\"will retry\"", "it will retry"));
        assert!(m("?ERROR ?WARN", "WARN: disk"));
        assert!(m("?ERROR ?WARN", "ERROR: disk"));
        assert!(!m("?ERROR ?WARN", "INFO: disk"));
        assert!(m("disk ?ERROR ?WARN", "WARN: disk"));
        assert!(!m("disk ?ERROR ?WARN", "WARN: cpu"));
        assert!(m("\"say \\\"hi\\\"\"", "they say \"hi\" now"));
        assert!(m("\"\"", "anything"));
        assert!(m("a=b,c", "x a=b,c y"));
    }

    #[test]
    fn unsupported_and_malformed_patterns_are_refused() {
        for (p, needle) in [
            ("{ $.level = \"ERROR\" }", "JSON filter patterns"),
            ("[ip, user]", "space-delimited"),
            ("%ERR.*%", "regular-expression"),
            (
                "ERROR \"unterminated",
                "unterminated quoted phrase in filter pattern at character 7",
            ),
            (
                "ERROR -",
                "'-' without a term in filter pattern at character 7",
            ),
            ("? x", "'?' without a term"),
        ] {
            let e = FilterPattern::parse(p).unwrap_err();
            assert!(e.contains(needle), "{p}: {e}");
        }
    }
}
