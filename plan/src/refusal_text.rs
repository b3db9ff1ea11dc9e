//! [`RefusalText`]: an error's two parts, what is wrong and what to do about it, kept apart.
//! It lives here, in the crate every other swapover crate depends on, so the stager, the
//! migrator and resin-image give their errors' parts the same way; the one line printed for
//! people joins them with "; ".

use std::fmt;

use serde::Serialize;

/// What is wrong (`problem`) and, when the error names one, what to do about it (`fix`).
/// `stager check` prints them as a check's reason and fix; an error's one line
/// ([`fmt::Display`]) is `problem`, then "; fix" when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalText {
    pub problem: String,
    pub fix: Option<String>,
}

impl RefusalText {
    pub fn new(problem: String, fix: String) -> Self {
        RefusalText { problem, fix: Some(fix) }
    }

    /// A problem that names no fix of its own.
    pub fn problem_only(problem: String) -> Self {
        RefusalText { problem, fix: None }
    }

    /// The same fix, with `context` (e.g. "the plan is inconsistent") before the problem.
    pub fn within(self, context: &str) -> Self {
        RefusalText { problem: format!("{context}: {}", self.problem), fix: self.fix }
    }
}

impl fmt::Display for RefusalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fix {
            Some(fix) => write!(f, "{}; {fix}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_line_joins_problem_and_fix_with_a_semicolon() {
        let text = RefusalText::new("a is wrong".into(), "do b".into());
        assert_eq!(text.to_string(), "a is wrong; do b");
        assert_eq!(RefusalText::problem_only("a; b".into()).to_string(), "a; b");
        let within = RefusalText::new("a is wrong".into(), "do b".into()).within("the plan");
        assert_eq!(within.problem, "the plan: a is wrong");
        assert_eq!(within.fix.as_deref(), Some("do b"));
    }
}
