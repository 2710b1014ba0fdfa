//! IAM's wildcard matching: `*` matches any run of characters (including none, and
//! including `:` and `/`), `?` exactly one character. Linear in the common case and
//! never worse than O(pattern × text): no recursion, so no input can blow the stack
//! or take exponential time (the policy evaluator is fuzzed).

/// Whether `text` matches `pattern`; `fold_case` compares ASCII letters without
/// regard to case (IAM compares action names so, resource ARNs exactly).
pub(crate) fn matches(pattern: &str, text: &str, fold_case: bool) -> bool {
    // ARNs and action names are ASCII: compare bytes, allocating nothing (this runs
    // for every statement of every authorized request).
    if pattern.is_ascii() && text.is_ascii() {
        return glob(
            pattern.as_bytes(),
            text.as_bytes(),
            |a, b| a == b || (fold_case && a.eq_ignore_ascii_case(&b)),
            b'*',
            b'?',
        );
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob(
        &p,
        &t,
        |a, b| a == b || (fold_case && a.eq_ignore_ascii_case(&b)),
        '*',
        '?',
    )
}

fn glob<T: Copy + PartialEq>(p: &[T], t: &[T], eq: impl Fn(T, T) -> bool, any: T, one: T) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // The last `*` seen and the text position it was tried at: on a mismatch, let it
    // swallow one more character and retry from just after it.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(&c) if c == any => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == one || eq(c, t[ti]) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == any)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("*", "", false));
        assert!(matches("*", "anything:at/all", false));
        assert!(matches("lambda:*", "lambda:InvokeFunction", false));
        assert!(matches("lambda:Get*", "lambda:GetFunction", false));
        assert!(!matches("lambda:Get*", "lambda:InvokeFunction", false));
        assert!(matches("a?c", "abc", false));
        assert!(!matches("a?c", "ac", false));
        assert!(!matches("a?c", "abbc", false));
        assert!(matches(
            "*:function:hello*",
            "arn:aws:lambda:us-east-1:1:function:hello:prod",
            false
        ));
        assert!(matches("a*b*c", "aXbYbZc", false));
        assert!(!matches("a*b*c", "aXbYbZ", false));
        assert!(matches("**x", "x", false));
        assert!(!matches("abc", "abcd", false));
        assert!(!matches("abcd", "abc", false));
    }

    #[test]
    fn case_folding_is_optional() {
        assert!(matches("LAMBDA:invoke*", "lambda:InvokeFunction", true));
        assert!(!matches("LAMBDA:invoke*", "lambda:InvokeFunction", false));
        assert!(!matches(
            "arn:aws:sqs:*:Queue",
            "arn:aws:sqs:x:queue",
            false
        ));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let text = "a".repeat(5000);
        let pattern = format!("{}b", "*a".repeat(200));
        assert!(!matches(&pattern, &text, false));
        assert!(matches(&"*a".repeat(200), &text, false));
    }

    #[test]
    fn multibyte_text() {
        assert!(matches("é?*", "éüß", false));
        assert!(matches("?", "ß", true));
    }
}
